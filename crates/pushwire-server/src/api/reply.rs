//! Response envelopes: `{"result":…}` / `{"error":{…}}`, with an `id` on the legacy route.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

use super::error::ApiError;

/// What a method call produced: its result already encoded as JSON, or an error.
pub type ApiResult = Result<Box<RawValue>, ApiError>;

/// Encodes a method's result. Encoding our own result types does not fail; if it did, the
/// call answers 100.
pub fn encode<T: Serialize>(value: &T) -> ApiResult {
    serde_json::value::to_raw_value(value).map_err(|e| {
        tracing::error!(error = %e, "cannot encode API result");
        ApiError::Node(pushwire_protocol::ErrorCode::Internal)
    })
}

/// `{"id":…?,"result":…}` or `{"id":…?,"error":{"code","message"}}`.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// Legacy command id, echoed when present.
    pub id: Option<&'a RawValue>,
    /// The outcome.
    pub outcome: &'a ApiResult,
}

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(id) = self.id {
            map.serialize_entry("id", id)?;
        }
        match self.outcome {
            Ok(result) => map.serialize_entry("result", result)?,
            Err(e) => map.serialize_entry("error", &e.body())?,
        }
        map.end()
    }
}

/// An outcome without an id, as a broadcast response item or a whole answer.
pub fn envelope(outcome: &ApiResult) -> Envelope<'_> {
    Envelope { id: None, outcome }
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Serializes `value` into a 200 JSON response (500 if it can not be encoded).
pub fn ok_json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode API response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: &Envelope<'_>) -> String {
        serde_json::to_string(e).unwrap_or_default()
    }

    #[test]
    fn envelopes() {
        let ok = encode(&serde_json::json!({})).map(|r| r.get().to_owned());
        assert_eq!(ok.as_deref(), Ok("{}"));
        let ok: ApiResult = encode(&serde_json::json!({"offset": 1}));
        assert_eq!(text(&envelope(&ok)), r#"{"result":{"offset":1}}"#);
        let err: ApiResult = Err(ApiError::MethodNotFound);
        assert_eq!(
            text(&envelope(&err)),
            r#"{"error":{"code":104,"message":"method not found"}}"#
        );
        let id: Box<RawValue> = serde_json::from_str("7").expect("id");
        let with_id = Envelope {
            id: Some(&id),
            outcome: &err,
        };
        assert_eq!(
            text(&with_id),
            r#"{"id":7,"error":{"code":104,"message":"method not found"}}"#
        );
    }
}
