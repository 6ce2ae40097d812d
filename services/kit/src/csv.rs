//! CSV downloads: tables written by the `csv` crate (RFC 4180: CRLF line ends, a field
//! quoted when it holds a comma, a quote or a line break), and the one rule for when a
//! client has asked for CSV.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

/// The media type of CSV answers.
pub const MEDIA_TYPE: &str = "text/csv; charset=utf-8";

/// Whether to answer in CSV: as the operation's `format` parameter says when it is given
/// (`Some(true)` for `csv`), else when `Accept` names `text/csv` among its media ranges.
pub fn wanted(format_is_csv: Option<bool>, headers: &HeaderMap) -> bool {
    format_is_csv.unwrap_or_else(|| crate::negotiate::accepts(headers, "text/csv"))
}

/// A table: the header row, then one row per item.
pub fn table<R, F>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut out = ::csv::WriterBuilder::new().terminator(::csv::Terminator::CRLF).from_writer(Vec::new());
    // Writing to memory fails only for a row of another length, which callers never make.
    let written = out.write_record(header).and_then(|_| {
        rows.into_iter().try_for_each(|row| {
            let row: Vec<F> = row.into_iter().collect();
            out.write_record(row.iter().map(|field| inert(field.as_ref())))
        })
    });
    debug_assert!(written.is_ok(), "a CSV row of the wrong length");
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A field as a spreadsheet can open it safely (OWASP, CSV injection): one that would
/// start a formula (`=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`,
/// so a name such as `=HYPERLINK(...)` stays text in the organizer's Excel.
fn inert(field: &[u8]) -> Cow<'_, [u8]> {
    match field.first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned([b"'".as_slice(), field].concat()),
        _ => Cow::Borrowed(field),
    }
}

/// `body` as a download named `filename`.
pub fn download(body: String, filename: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_a_spreadsheet_would_run_stay_text() {
        let rows =
            [["=HYPERLINK(\"http://x\")", "+7 900", "-1", "@SUM(A1)"], ["\tTab", "ok = fine", "2026-12-05", "Анна"]];
        assert_eq!(
            table(&["a", "b", "c", "d"], rows),
            "a,b,c,d\r\n\"'=HYPERLINK(\"\"http://x\"\")\",'+7 900,'-1,'@SUM(A1)\r\n'\tTab,ok = fine,2026-12-05,Анна\r\n"
        );
    }

    #[test]
    fn fields_that_need_it_are_quoted() {
        let rows = [["Ёлка, ночь", "say \"hi\""], ["two\nlines", "plain"]];
        assert_eq!(
            table(&["title", "note"], rows),
            "title,note\r\n\"Ёлка, ночь\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",plain\r\n"
        );
    }

    #[test]
    fn csv_is_wanted_when_named_or_accepted() {
        let accept = |v: &str| HeaderMap::from_iter([(header::ACCEPT, HeaderValue::from_str(v).unwrap())]);
        assert!(wanted(Some(true), &HeaderMap::new()));
        assert!(!wanted(Some(false), &accept("text/csv")), "the parameter wins");
        assert!(wanted(None, &accept("application/json;q=0.5, Text/CSV;q=1")));
        // A media range that only contains the words is not CSV.
        assert!(!wanted(None, &accept("application/x-text/csv-like")));
        assert!(!wanted(None, &HeaderMap::new()));
    }
}
