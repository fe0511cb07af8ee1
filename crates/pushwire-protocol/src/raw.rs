//! Payload bytes that travel as embedded raw JSON in the JSON protocol.
//!
//! In JSON mode the protocol's `bytes` fields (publication data, connection info, ...) are
//! written verbatim as JSON values, not base64. [`RawJson`] keeps the bytes opaque: they are
//! validated once when parsed and never re-parsed on the way out.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Deepest nesting of arrays and objects a JSON payload may have. serde_json (which the
/// server and the Rust SDK parse with) refuses deeper documents when it builds values, and
/// deep documents overflow the parsers of other SDKs (Python's `json` raises
/// `RecursionError` near 1,000): a payload no subscriber could parse is refused when it
/// enters (publish: error 107 / API 107) instead of being stored and relayed.
pub const MAX_JSON_DEPTH: usize = 128;

/// Opaque payload bytes. In the JSON protocol they must hold one valid JSON value.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RawJson(pub Bytes);

impl RawJson {
    /// Wraps bytes that are known to hold valid JSON (or arbitrary bytes for protobuf peers).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        RawJson(bytes.into())
    }

    /// Parses and validates `text` as one JSON value.
    pub fn from_json_str(text: &str) -> Result<Self, serde_json::Error> {
        let raw: Box<RawValue> = serde_json::from_str(text)?;
        Ok(RawJson(Bytes::from(String::from(Box::<str>::from(raw)))))
    }

    /// Whether the payload is empty (absent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the bytes hold one valid JSON value nested at most [`MAX_JSON_DEPTH`] deep.
    pub fn is_valid_json(&self) -> bool {
        within_depth(&self.0) && serde_json::from_slice::<&RawValue>(&self.0).is_ok()
    }

    /// Whether the payload nests arrays and objects deeper than [`MAX_JSON_DEPTH`].
    pub fn too_deep(&self) -> bool {
        !within_depth(&self.0)
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawJson({})", String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.0).map_err(serde::ser::Error::custom)?;
        // `\n` separates batched messages: valid JSON only has raw newlines as whitespace.
        let text = if text.contains('\n') {
            text.replace('\n', "")
        } else {
            text.to_owned()
        };
        let raw = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(deserializer)?;
        let text: Box<str> = raw.into();
        if !within_depth(text.as_bytes()) {
            return Err(serde::de::Error::custom(format!(
                "JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        if &*text == "null" {
            return Ok(RawJson::default());
        }
        Ok(RawJson(Bytes::from(String::from(text))))
    }
}

/// Whether the arrays and objects of `json` (assumed to be JSON text; strings are skipped
/// with their escapes) nest at most [`MAX_JSON_DEPTH`] deep. One linear pass, no allocation.
fn within_depth(json: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_and_strings_do_not_count() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(RawJson::from_bytes(ok.clone()).is_valid_json());
        let deep = format!("[{ok}]");
        assert!(!RawJson::from_bytes(deep.clone()).is_valid_json());
        let err = serde_json::from_str::<RawJson>(&deep).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        let quoted = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert!(
            RawJson::from_bytes(quoted.clone()).is_valid_json(),
            "{quoted}"
        );
        assert!(serde_json::from_str::<RawJson>(&quoted).is_ok());
    }

    #[test]
    fn round_trips_verbatim_and_strips_newlines() {
        let v: RawJson = serde_json::from_str("{\"a\":\n 1}").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "{\"a\": 1}");
        let v = RawJson::from_json_str("[1, 2]").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "[1, 2]");
        assert!(RawJson::from_json_str("{oops").is_err());
    }

    #[test]
    fn null_is_empty() {
        let v: RawJson = serde_json::from_str("null").unwrap();
        assert!(v.is_empty());
    }
}
