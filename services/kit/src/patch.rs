//! One PATCH rule for the whole API: JSON Merge Patch (RFC 7396). A member absent from the
//! patch keeps its value, `null` removes or clears it, and an object merges member by
//! member. Bodies come as `application/merge-patch+json` (or `application/json`).
//!
//! Two ways to take one: [`MergePatch`] for a handler that patches a whole document and
//! validates the result (events), or a typed patch whose optional members read through
//! [`nullable`] so that absent and `null` differ (profiles, organizations).

use crate::extract::{json_body, parse_json};
use crate::problem::ApiError;
use axum::extract::{FromRequest, Request};
use serde::Deserialize;
use serde_json::Value;

/// The media type of a merge patch.
pub const MEDIA_TYPE: &str = "application/merge-patch+json";

/// A merge patch to apply to a whole document: always a JSON object.
#[derive(Debug, Clone)]
pub struct MergePatch(pub Value);

impl MergePatch {
    /// `doc` after the patch.
    pub fn apply_to(&self, doc: &mut Value) {
        json_patch::merge(doc, &self.0);
    }

    /// `current` after the patch, read back as its type: a field the patch made wrong
    /// (a bad type, an unknown member) is a 422 naming it, as in a `POST` body.
    pub fn applied<T: serde::Serialize + serde::de::DeserializeOwned>(&self, current: &T) -> Result<T, ApiError> {
        let mut doc = serde_json::to_value(current).map_err(ApiError::internal)?;
        self.apply_to(&mut doc);
        parse_json(doc.to_string().as_bytes())
    }
}

impl<S: Send + Sync> FromRequest<S> for MergePatch {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state, MEDIA_TYPE).await?;
        let patch: serde_json::Map<String, Value> = parse_json(&bytes)?;
        Ok(MergePatch(Value::Object(patch)))
    }
}

/// Reads a nullable member of a typed patch: absent is `None` (with `#[serde(default)]`),
/// `null` is `Some(None)`, a value is `Some(Some(value))`.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merging_follows_rfc_7396() {
        // The RFC's own example (appendix A's first case and section 3's document).
        let mut doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                             "tags": ["example", "sample"], "content": "This will be unchanged"});
        MergePatch(json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                          "author": {"familyName": null}, "tags": ["example"]}))
        .apply_to(&mut doc);
        assert_eq!(
            doc,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                   "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }

    #[derive(Deserialize)]
    struct Patch {
        #[serde(default, deserialize_with = "nullable")]
        bio: Option<Option<String>>,
    }

    #[test]
    fn a_typed_patch_tells_absent_from_null() {
        let read = |s: &str| serde_json::from_str::<Patch>(s).unwrap().bio;
        assert_eq!(read("{}"), None);
        assert_eq!(read(r#"{"bio": null}"#), Some(None));
        assert_eq!(read(r#"{"bio": "hi"}"#), Some(Some("hi".to_owned())));
    }
}
