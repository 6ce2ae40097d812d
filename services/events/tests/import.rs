//! The importer's reading of real-world calendars, compared occurrence by occurrence with
//! an independent implementation: Python's icalendar and recurring_ical_events
//! (`tests/feeds/expand.py`), over the same window.

use events::import::{Window, calendar, decode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

const FROM: &str = "2026-12-01T00:00:00Z";
const TO: &str = "2027-06-01T00:00:00Z";

fn feeds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/feeds")
}

fn python() -> String {
    std::env::var("VECHE_PYTHON").unwrap_or_else(|_| {
        panic!("VECHE_PYTHON is not set: run the suite with scripts/test, which makes a venv with icalendar and recurring_ical_events")
    })
}

/// What Python expands: external id → (start, end, summary, cancelled).
fn reference(file: &str) -> BTreeMap<String, (String, String, String, bool)> {
    let out = std::process::Command::new(python())
        .arg(feeds().join("expand.py"))
        .arg(feeds().join(file))
        .args([FROM, TO])
        .output()
        .unwrap();
    assert!(out.status.success(), "expand.py {file}: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            let uid = r["uid"].as_str().unwrap();
            let id = match r["recurrence_id"].as_str() {
                Some(rid) => format!("{uid}/{rid}"),
                None => uid.to_owned(),
            };
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (id, (text("start"), text("end"), text("summary"), r["status"] == "CANCELLED"))
        })
        .collect()
}

fn ours(file: &str) -> BTreeMap<String, (String, String, String, bool)> {
    let bytes = std::fs::read(feeds().join(file)).unwrap();
    let window = Window { from: FROM.parse().unwrap(), to: TO.parse().unwrap() };
    let parsed = calendar::parse(&decode(&bytes, None), "UTC", window).unwrap();
    assert!(parsed.skipped.is_empty(), "{file}: {:?}", parsed.skipped);
    parsed
        .items
        .into_iter()
        .map(|i| (i.external_id, (i.start.to_wire(), i.end.to_wire(), i.title, i.cancelled)))
        .collect()
}

fn compare(file: &str) {
    let (want, got) = (reference(file), ours(file));
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{file}: missing {missing:#?}\nextra {extra:#?}");
    for (id, w) in &want {
        assert_eq!(&got[id], w, "{file}: {id}");
    }
    assert!(want.len() >= 10, "{file}: a real calendar, {} occurrences", want.len());
}

#[test]
fn google_calendar() {
    compare("google.ics");
}

#[test]
fn outlook_with_windows_time_zones() {
    compare("outlook.ics");
}

#[test]
fn an_older_outlook_in_windows_1252() {
    compare("outlook-1252.ics");
    let bytes = std::fs::read(feeds().join("outlook-1252.ics")).unwrap();
    assert!(std::str::from_utf8(&bytes).is_err(), "the file is not UTF-8");
    assert!(ours("outlook-1252.ics").values().any(|(_, _, title, _)| title.contains("Café")));
}

#[test]
fn apple_calendar() {
    compare("apple.ics");
}

#[test]
fn thunderbird() {
    compare("thunderbird.ics");
}

#[test]
fn nextcloud() {
    compare("nextcloud.ics");
}

#[test]
fn event_feeds_in_rss_and_atom() {
    use events::import::feed;
    let window = Window { from: FROM.parse().unwrap(), to: TO.parse().unwrap() };
    let read = |f: &str| feed::parse(&std::fs::read(feeds().join(f)).unwrap(), "UTC", window).unwrap();
    let rss = read("rss.xml");
    let got: Vec<_> = rss.items.iter().map(|i| (i.title.as_str(), i.start.to_wire(), i.end.to_wire())).collect();
    assert_eq!(
        got,
        vec![
            ("Jazz evening: The Quayside Quartet", "2027-01-16T19:30:00Z".into(), "2027-01-16T22:00:00Z".into()),
            ("Spring Folk Weekend", "2027-05-28T09:00:00Z".into(), "2027-05-30T17:00:00Z".into()),
            ("Online talk: the history of the harbour", "2027-02-11T17:00:00Z".into(), "2027-02-11T18:15:00Z".into()),
            ("Community garden planting day", "2027-04-17".into(), "2027-04-18".into()),
            ("Repair Café – bring your broken toaster", "2027-02-06T10:00:00Z".into(), "2027-02-06T13:00:00Z".into()),
        ]
    );
    assert_eq!(rss.items[0].external_id, "https://riverside.example.org/?post_type=tribe_events&p=4812", "the guid");
    assert_eq!(rss.items[0].categories, vec!["Concerts", "Music"]);
    assert!(rss.items[0].location.as_deref().unwrap().ends_with("Bristol BS1 4RW"));
    assert_eq!(rss.skipped.len(), 1, "the post without an event time: {:?}", rss.skipped);

    let atom = read("atom.xml");
    assert_eq!(atom.items.len(), 4);
    let reading = &atom.items[0];
    assert_eq!(reading.external_id, "tag:library.example.org,2026:node/1842");
    assert_eq!(reading.title, "Reading: Ingrid Sørensen, “The Salt Road”");
    assert_eq!(
        (reading.start.to_wire(), reading.end.to_wire()),
        ("2027-01-21T18:00:00Z".into(), "2027-01-21T19:30:00Z".into())
    );
    assert_eq!(atom.skipped[0].reason, "it has no event time (ev:startdate)");
}

#[test]
fn a_malformed_calendar_gives_what_it_can_and_names_what_it_cannot() {
    let bytes = std::fs::read(feeds().join("malformed.ics")).unwrap();
    let window = Window { from: FROM.parse().unwrap(), to: TO.parse().unwrap() };
    let parsed = calendar::parse(&decode(&bytes, None), "UTC", window).unwrap();
    assert!(parsed.items.iter().any(|i| i.external_id.starts_with("fine-1@example.org/")), "the good series is read");
    let reasons: Vec<(&str, &str)> =
        parsed.skipped.iter().map(|s| (s.external_id.as_str(), s.reason.as_str())).collect();
    assert!(reasons.contains(&("no-dtstart@example.org", "it has no DTSTART")), "{reasons:?}");
    assert!(reasons.contains(&("bad-rrule@example.org", "its RRULE cannot be read")), "{reasons:?}");
    assert!(parsed.items.iter().all(|i| i.external_id != "bad-rrule@example.org"));
}
