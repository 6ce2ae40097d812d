//! Cursor pagination: `{ "items": [...], "next_cursor": "..." }`.
//!
//! A cursor is the sort key of the last item sent, base64url-encoded JSON, so it stays
//! valid while rows are added and deleted (offsets do not).

use crate::problem::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One page of a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of a list without search (1 to [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when left out).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// 1 to 200; 50 when left out.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The page size callers get when they do not ask, and the most they may ask for.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// Checks a requested page size.
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field("limit", format!("must be between 1 and {MAX_LIMIT}"))),
    }
}

/// Makes a page from up to `limit + 1` items fetched in order: the extra one only says
/// that another page exists, and `key` of the last item kept is the next cursor.
pub fn paginate<T, K: Serialize>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|item| encode_cursor(&key(item)))
    } else {
        None
    };
    Page { items, next_cursor }
}

pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor this API issued"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = encode_cursor(&(1700000000i64, "abc"));
        let back: (i64, String) = decode_cursor(&c).unwrap();
        assert_eq!(back, (1700000000, "abc".to_owned()));
        assert!(decode_cursor::<(i64, String)>("!!!").is_err());
    }

    #[test]
    fn a_page_keeps_limit_items_and_points_past_the_last() {
        let page = paginate(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(decode_cursor::<i32>(&page.next_cursor.unwrap()).unwrap(), 2);
        assert!(paginate(vec![1, 2], 2, |n| *n).next_cursor.is_none());
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
