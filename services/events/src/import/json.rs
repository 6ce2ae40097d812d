//! A JSON document (a ticketing site's API, an exported list) into [`Item`]s, read through
//! the source's [`JsonMapping`] of JSON Pointers.

use super::{Item, Moment, ParseError, Parsed, Window};
use crate::model::source::JsonMapping;
use serde_json::Value;

fn text(item: &Value, pointer: Option<&String>) -> Option<String> {
    match item.pointer(pointer?)? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn moment(s: &str) -> Option<Moment> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(Moment::At(t));
    }
    s.parse::<jiff::civil::Date>().ok().map(Moment::Day)
}

pub fn parse(bytes: &[u8], mapping: &JsonMapping, window: Window) -> Result<Parsed, ParseError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| ParseError(format!("not a JSON document: {e}")))?;
    let items = doc
        .pointer(&mapping.items)
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError(format!("no array of items at `{}`", mapping.items)))?;
    let mut parsed = Parsed::default();
    for (n, item) in items.iter().enumerate() {
        let Some(external_id) = text(item, Some(&mapping.id)) else {
            parsed.skip(&format!("item #{}", n + 1), format!("it has no id at `{}`", mapping.id));
            continue;
        };
        let Some(start) = text(item, Some(&mapping.start)).as_deref().and_then(moment) else {
            parsed.skip(&external_id, format!("it has no RFC 3339 start at `{}`", mapping.start));
            continue;
        };
        let end = match text(item, mapping.end.as_ref()).map(|end| moment(&end)) {
            Some(None) => {
                parsed.skip(&external_id, "its end is not an RFC 3339 time");
                continue;
            }
            given => match super::listed_end(start, given.flatten()) {
                Some(end) => end,
                None => {
                    parsed.skip(&external_id, "its start is out of range");
                    continue;
                }
            },
        };
        if !window.overlaps(start, end) {
            continue;
        }
        let cancelled = mapping.cancelled.as_ref().and_then(|p| item.pointer(p)).is_some_and(|v| {
            v.as_bool().unwrap_or(false)
                || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("cancelled") || s.eq_ignore_ascii_case("canceled"))
        });
        if parsed.items.len() >= super::ITEMS_MAX {
            return Err(ParseError(format!("the document has more than {} events in the window", super::ITEMS_MAX)));
        }
        parsed.items.push(Item {
            external_id: super::external_key(&external_id),
            title: text(item, Some(&mapping.title)).unwrap_or_default(),
            description: text(item, mapping.description.as_ref())
                .map(|d| super::feed::plain_text(&d))
                .unwrap_or_default(),
            start,
            end,
            time_zone: None,
            location: text(item, mapping.location.as_ref()),
            url: text(item, mapping.url.as_ref()),
            categories: vec![],
            cancelled,
            sequence: 0,
            modified: None,
        });
    }
    parsed.items.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    parsed.items.dedup_by(|a, b| a.external_id == b.external_id);
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_read_through_the_mapping() {
        let mapping: JsonMapping = serde_json::from_value(json!({"items": "/data/events", "id": "/id", "title": "/name",
            "start": "/when/start", "end": "/when/end", "location": "/venue/name", "url": "/url", "cancelled": "/state"}))
        .unwrap();
        let doc = json!({"data": {"events": [
            {"id": 17, "name": "Opera", "when": {"start": "2027-02-01T19:00:00+03:00", "end": "2027-02-01T22:00:00+03:00"},
             "venue": {"name": "Theatre"}, "url": "https://tickets.example/17", "state": "on_sale"},
            {"id": "18", "name": "Ballet", "when": {"start": "2027-02-02T19:00:00Z"}, "state": "cancelled"},
            {"id": "19", "name": "No time"},
            {"name": "No id", "when": {"start": "2027-02-02T19:00:00Z"}},
            {"id": "20", "name": "Past", "when": {"start": "2020-02-02T19:00:00Z"}}
        ]}});
        let window =
            Window { from: "2027-01-01T00:00:00Z".parse().unwrap(), to: "2027-07-01T00:00:00Z".parse().unwrap() };
        let parsed = parse(doc.to_string().as_bytes(), &mapping, window).unwrap();
        let got: Vec<_> = parsed
            .items
            .iter()
            .map(|i| (i.external_id.as_str(), i.start.to_wire(), i.end.to_wire(), i.cancelled))
            .collect();
        assert_eq!(
            got,
            vec![
                ("17", "2027-02-01T16:00:00Z".into(), "2027-02-01T19:00:00Z".into(), false),
                ("18", "2027-02-02T19:00:00Z".into(), "2027-02-02T20:00:00Z".into(), true),
            ]
        );
        assert_eq!(parsed.items[0].location.as_deref(), Some("Theatre"));
        assert_eq!(parsed.skipped.iter().map(|s| s.external_id.as_str()).collect::<Vec<_>>(), vec!["19", "item #4"]);
        assert!(parse(b"{}", &mapping, window).is_err());
        assert!(parse(b"not json", &mapping, window).is_err());
    }
}
