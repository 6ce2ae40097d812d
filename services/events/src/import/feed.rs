//! RSS and Atom feeds into [`Item`]s. feed-rs reads the feed (RSS 0.9x to 2.0, Atom,
//! their date formats and encodings); the event times come from the RSS event module
//! (`ev:startdate`, `ev:enddate`, `ev:location`), which event sites publish and feed-rs
//! does not read, so quick-xml collects them per item. An item without a start is not
//! an event: it is skipped with that reason.

use super::{Item, Moment, ParseError, Parsed, Window};
use jiff::Timestamp;
use quick_xml::events::Event as Xml;
use quick_xml::name::ResolveResult;

const EVENT_MODULE: &str = "http://purl.org/rss/1.0/modules/event/";

/// The event module's fields of one item.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct EventFields {
    /// The item's own id (`guid`, Atom's `id`): feed-rs makes one up when it has none.
    id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    location: Option<String>,
}

/// The event module's fields of every item or entry, in document order.
fn event_fields(bytes: &[u8]) -> Result<Vec<EventFields>, ParseError> {
    let mut reader = quick_xml::NsReader::from_reader(bytes);
    let mut items = Vec::new();
    let mut depth_in_item: Option<usize> = None;
    let mut depth = 0usize;
    // The event field being read, and its text so far (text and entity references
    // arrive as separate events).
    let mut field: Option<(u8, String)> = None;
    let mut buf = Vec::new();
    let bad = |e: quick_xml::Error| ParseError(format!("the feed is not well-formed XML: {e}"));
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).map_err(bad)?;
        match event {
            Xml::Start(e) => {
                depth += 1;
                let local = e.local_name();
                if depth_in_item.is_none() && matches!(local.as_ref(), "item" | "entry") {
                    depth_in_item = Some(depth);
                    items.push(EventFields::default());
                } else if depth_in_item.is_some_and(|d| d + 1 == depth) && matches!(local.as_ref(), "guid" | "id") {
                    field = Some((b'i', String::new()));
                } else if depth_in_item.is_some() && matches!(ns, ResolveResult::Bound(n) if n.as_ref() == EVENT_MODULE)
                {
                    field = match local.as_ref() {
                        "startdate" => Some((b's', String::new())),
                        "enddate" => Some((b'e', String::new())),
                        "location" => Some((b'l', String::new())),
                        _ => None,
                    };
                }
            }
            // `<item/>`: an item all the same, so positions keep matching feed-rs's entries.
            Xml::Empty(e) if depth_in_item.is_none() && matches!(e.local_name().as_ref(), "item" | "entry") => {
                items.push(EventFields::default());
            }
            Xml::End(_) => {
                if let (Some((f, text)), Some(item)) = (field.take(), items.last_mut()) {
                    let slot = match f {
                        b'i' => &mut item.id,
                        b's' => &mut item.start,
                        b'e' => &mut item.end,
                        _ => &mut item.location,
                    };
                    *slot = Some(text.trim().to_owned());
                }
                if depth_in_item == Some(depth) {
                    depth_in_item = None;
                }
                depth = depth.saturating_sub(1);
            }
            Xml::Text(t) => {
                if let Some((_, text)) = &mut field {
                    text.push_str(&t.xml10_content());
                }
            }
            Xml::CData(t) => {
                if let Some((_, text)) = &mut field {
                    text.push_str(&t.xml10_content());
                }
            }
            Xml::GeneralRef(r) => {
                if let Some((_, text)) = &mut field {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => text.push(c),
                        _ => text.push_str(quick_xml::escape::resolve_predefined_entity(&r).unwrap_or_default()),
                    }
                }
            }
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(items)
}

/// An ISO 8601 time as feeds write it: with an offset (an instant), a date alone (a
/// day), or a local time (read in `floating`).
fn moment(s: &str, floating: &jiff::tz::TimeZone) -> Option<Moment> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(Moment::At(t));
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>()
        && s.contains('T')
    {
        return dt.to_zoned_datetime(floating.clone()).ok().map(|z| Moment::At(z.timestamp()));
    }
    s.parse::<jiff::civil::Date>().ok().map(Moment::Day)
}

/// Text of an HTML fragment: tags dropped, entities feed-rs left decoded, blank runs
/// collapsed. Descriptions are plain text here.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = decode_entities(&out).replace('\u{a0}', " ");
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// HTML's character references and the entities feeds use; anything else stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let name = tail.find(';').filter(|&end| end <= 10).map(|end| &tail[..end]);
        let decoded = name.and_then(|n| match n.strip_prefix('#') {
            Some(num) => match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse().ok(),
            }
            .and_then(char::from_u32)
            .map(String::from),
            None if n == "nbsp" => Some(" ".into()),
            None => quick_xml::escape::resolve_predefined_entity(n).map(str::to_owned),
        });
        match (decoded, name) {
            (Some(text), Some(n)) => {
                out.push_str(&text);
                rest = &tail[n.len() + 1..];
            }
            _ => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads a feed's events over `window`; times without an offset are read in `floating`
/// (an IANA name; UTC if unknown).
pub fn parse(bytes: &[u8], floating: &str, window: Window) -> Result<Parsed, ParseError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| ParseError(format!("not an RSS or Atom feed: {e}")))?;
    let fields = event_fields(bytes)?;
    let floating = jiff::tz::TimeZone::get(floating).unwrap_or(jiff::tz::TimeZone::UTC);
    let moment = |s: &str| moment(s, &floating);
    // An item's event fields: by its id where it has one, else by position when both
    // readers counted the same items.
    let by_id: std::collections::HashMap<&str, &EventFields> =
        fields.iter().filter_map(|f| Some((f.id.as_deref()?, f))).collect();
    let aligned = fields.len() == feed.entries.len();
    let mut parsed = Parsed::default();
    for (n, entry) in feed.entries.iter().enumerate() {
        let ev = match by_id.get(entry.id.as_str()) {
            Some(f) => (*f).clone(),
            None if aligned => fields[n].clone(),
            None => EventFields::default(),
        };
        let link =
            entry.links.iter().find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate")).map(|l| l.href.clone());
        // Without an id of its own, the link; without one, the title and time.
        let external_id = match (ev.id.clone().filter(|i| !i.is_empty()), &link) {
            (Some(id), _) => id,
            (None, Some(link)) => link.clone(),
            (None, None) => format!(
                "{}@{}",
                entry.title.as_ref().map(|t| t.content.as_str()).unwrap_or_default(),
                ev.start.clone().unwrap_or_default()
            ),
        };
        let Some(start) = ev.start.as_deref().and_then(moment) else {
            let reason = if ev.start.is_some() {
                "its ev:startdate is not an ISO 8601 time"
            } else {
                "it has no event time (ev:startdate)"
            };
            parsed.skip(&external_id, reason);
            continue;
        };
        let end = match ev.end.as_deref().map(moment) {
            Some(None) => {
                parsed.skip(&external_id, "its ev:enddate is not an ISO 8601 time");
                continue;
            }
            given => match super::listed_end(start, given.flatten()) {
                Some(end) => end,
                None => {
                    parsed.skip(&external_id, "its ev:startdate is out of range");
                    continue;
                }
            },
        };
        if !window.overlaps(start, end) {
            continue;
        }
        let description = entry
            .summary
            .as_ref()
            .map(|t| t.content.clone())
            .or_else(|| entry.content.as_ref().and_then(|c| c.body.clone()))
            .unwrap_or_default();
        if parsed.items.len() >= super::ITEMS_MAX {
            return Err(ParseError(format!("the feed has more than {} events in the window", super::ITEMS_MAX)));
        }
        parsed.items.push(Item {
            external_id: super::external_key(&external_id),
            title: entry.title.as_ref().map(|t| plain_text(&t.content)).unwrap_or_default(),
            description: plain_text(&description),
            start,
            end,
            time_zone: None,
            location: ev.location.filter(|l| !l.is_empty()),
            url: link,
            categories: entry.categories.iter().map(|c| c.label.clone().unwrap_or_else(|| c.term.clone())).collect(),
            cancelled: false,
            sequence: 0,
            modified: entry.updated.or(entry.published).map(|t| t.timestamp()),
        });
    }
    parsed.items.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    parsed.items.dedup_by(|a, b| a.external_id == b.external_id);
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window { from: "2027-01-01T00:00:00Z".parse().unwrap(), to: "2027-07-01T00:00:00Z".parse().unwrap() }
    }

    const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:ev="http://purl.org/rss/1.0/modules/event/"><channel><title>Club</title>
<item><title>Jazz &amp; Blues</title><link>https://club.example.org/e/1</link><guid isPermaLink="false">evt-1</guid>
<description>&lt;p&gt;Live &lt;b&gt;music&lt;/b&gt;&lt;/p&gt;</description><category>Music</category>
<ev:startdate>2027-02-01T19:00:00+03:00</ev:startdate><ev:enddate>2027-02-01T22:00:00+03:00</ev:enddate>
<ev:location>Club, Kazan</ev:location></item>
<item><title>News</title><link>https://club.example.org/news</link><pubDate>Mon, 01 Feb 2027 10:00:00 GMT</pubDate></item>
<item><title>Fair</title><link>https://club.example.org/e/3</link><ev:startdate>2027-03-05</ev:startdate></item>
</channel></rss>"#;

    #[test]
    fn rss_items_with_event_times_become_items() {
        let parsed = parse(RSS.as_bytes(), "UTC", window()).unwrap();
        assert_eq!(parsed.items.len(), 2, "{parsed:?}");
        let jazz = &parsed.items[0];
        assert_eq!(
            (jazz.external_id.as_str(), jazz.title.as_str(), jazz.description.as_str()),
            ("evt-1", "Jazz & Blues", "Live music")
        );
        assert_eq!(
            (jazz.start.to_wire(), jazz.end.to_wire()),
            ("2027-02-01T16:00:00Z".into(), "2027-02-01T19:00:00Z".into())
        );
        assert_eq!(jazz.location.as_deref(), Some("Club, Kazan"));
        assert_eq!(jazz.categories, vec!["Music"]);
        let fair = &parsed.items[1];
        assert_eq!((fair.start.to_wire(), fair.end.to_wire()), ("2027-03-05".into(), "2027-03-06".into()));
        assert_eq!(parsed.skipped.len(), 1);
        assert!(parsed.skipped[0].reason.contains("no event time"));
    }

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(plain_text("<p>One &amp; <b>two</b></p>\n<p>three&nbsp;four</p>"), "One & two\nthree four");
        assert_eq!(plain_text("a &#233;&#xE9; &unknown; & b &lt;3"), "a éé &unknown; & b <3");
    }

    #[test]
    fn not_a_feed_is_an_error() {
        assert!(parse(b"BEGIN:VCALENDAR", "UTC", window()).is_err());
        assert!(parse(b"<rss><channel><item>", "UTC", window()).is_err());
    }
}
