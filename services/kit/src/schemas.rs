//! OpenAPI schemas of the kinds of values every service takes, each matching its check in
//! [`crate::validate`] so that a client generated from the document refuses what the
//! server would: one-line text, web URLs, emails, IANA time zones, RFC 3339 times. Used as
//! `#[schema(schema_with = kit::schemas::web_url)]`.

use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// Text without control or invisible characters and not blank, up to `MAX` characters:
/// names, titles, cities ([`crate::validate::check_plain`]).
pub fn one_line<const MAX: usize>() -> RefOr<Schema> {
    from_json(json!({"type": "string", "minLength": 1, "maxLength": MAX, "pattern": ONE_LINE}))
}

/// [`one_line`], or `null`.
pub fn optional_one_line<const MAX: usize>() -> RefOr<Schema> {
    from_json(json!({"type": ["string", "null"], "minLength": 1, "maxLength": MAX, "pattern": ONE_LINE}))
}

/// At least one visible character and no control or invisible ones (ECMA-262 syntax).
const ONE_LINE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\ufeff]*\\S[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\ufeff]*$";

const WEB_URL: &str = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s\\u0000-\\u001f\\u007f]+$";

/// An absolute http(s) URL ([`crate::validate::web_url`]).
pub fn web_url() -> RefOr<Schema> {
    from_json(json!({"type": "string", "format": "uri", "maxLength": 2048, "pattern": WEB_URL}))
}

/// [`web_url`], or `null`.
pub fn optional_web_url() -> RefOr<Schema> {
    from_json(json!({"type": ["string", "null"], "format": "uri", "maxLength": 2048, "pattern": WEB_URL}))
}

/// An email address ([`crate::validate::is_valid_email`]).
pub fn email() -> RefOr<Schema> {
    from_json(json!({"type": "string", "format": "email", "maxLength": 254, "example": "anna@example.org"}))
}

/// An RFC 3339 date and time, e.g. `2026-12-05T16:00:00Z`.
pub fn date_time() -> RefOr<Schema> {
    from_json(json!({"type": "string", "format": "date-time", "example": "2026-12-05T16:00:00Z"}))
}

/// A moment a query takes ([`crate::moment`]): an RFC 3339 time, or a plain date read in
/// the operation's `time_zone`.
pub fn date_or_date_time() -> RefOr<Schema> {
    from_json(json!({"type": "string", "example": "2027-02-01",
                     "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}))
}

/// [`date_time`], or `null`.
pub fn optional_date_time() -> RefOr<Schema> {
    from_json(json!({"type": ["string", "null"], "format": "date-time"}))
}

/// An IANA time zone name, one of the tz database this build carries
/// ([`crate::validate::is_time_zone`]).
pub fn time_zone() -> RefOr<Schema> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
    names.sort();
    from_json(json!({"type": "string", "enum": names, "example": "Europe/Moscow",
                     "description": "An IANA time zone name."}))
}

/// [`time_zone`], or `null`.
pub fn optional_time_zone() -> RefOr<Schema> {
    let mut names: Vec<serde_json::Value> = jiff::tz::db().available().map(|n| n.as_str().into()).collect();
    names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    names.push(serde_json::Value::Null);
    from_json(json!({"type": ["string", "null"], "enum": names, "description": "An IANA time zone name."}))
}

fn from_json(value: serde_json::Value) -> RefOr<Schema> {
    // The values above are valid schemas by construction; a failure is a bug in this file.
    serde_json::from_value(value).expect("a valid schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_builds_and_time_zones_are_listed() {
        for schema in [one_line::<10>(), optional_one_line::<10>(), web_url(), optional_web_url(), email(), date_time()]
        {
            assert!(!serde_json::to_value(schema).unwrap()["type"].is_null());
        }
        let zones = serde_json::to_value(time_zone()).unwrap();
        let names = zones["enum"].as_array().unwrap();
        assert!(names.len() > 300, "{}", names.len());
        for zone in ["Europe/Moscow", "UTC", "America/New_York"] {
            assert!(names.contains(&json!(zone)), "{zone}");
            assert!(crate::validate::is_time_zone(zone));
        }
        assert!(!crate::validate::is_time_zone("Mars/Olympus"));
    }
}
