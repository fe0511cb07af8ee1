//! Decoding request bodies and params.
//!
//! Unknown fields are ignored and `null` means "absent" for every field, so requests built by
//! the Python and JS clients (which may send `null` for unset options) decode.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use pushwire_protocol::RawJson;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::error::ApiError;

/// A request body that is not a JSON object: answered with 400 and a short plain-text body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad request: {0}")]
pub struct BodyError(pub &'static str);

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

/// Why a request was refused before any method ran: an index into
/// [`pushwire_core::metrics::API_REFUSALS`], carried as a response extension and counted by
/// [`super::auth::require_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub usize);

impl Refused {
    /// Wrong or missing API key (401).
    pub const UNAUTHORIZED: Refused = Refused(0);
    /// Body that is not what the endpoint reads (400).
    pub const BAD_REQUEST: Refused = Refused(1);
    /// `/api/<name>` with no such method (404).
    pub const UNKNOWN_METHOD: Refused = Refused(2);
    /// Body over `http_api.max_body_size` (413).
    pub const TOO_LARGE: Refused = Refused(3);

    /// `response`, marked as refused for this reason.
    pub fn mark(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// The body as one JSON object (surrounding whitespace allowed).
pub fn object(body: &[u8]) -> Result<&RawValue, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError("empty body"));
    }
    let raw: &RawValue = serde_json::from_slice(body).map_err(|_| BodyError("invalid JSON"))?;
    if !is_object(raw) {
        return Err(BodyError("body must be a JSON object"));
    }
    Ok(raw)
}

/// Whether `raw` holds a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// Decodes `params` (absent = `{}`) into a method's request; anything but an object of the
/// right shape is [`ApiError::InvalidParams`].
pub fn parse<'a, T: Deserialize<'a>>(params: Option<&'a RawValue>) -> Result<T, ApiError> {
    let text = params.map_or("{}", RawValue::get);
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::InvalidParams);
    }
    serde_json::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "invalid API params");
        ApiError::InvalidParams
    })
}

/// `deserialize_with` for optional fields: `null` is the default value.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The payload of a request: `b64data` (decoded) when set, else `data` kept as opaque raw
/// JSON; empty when neither is present. Invalid base64 is a bad request.
pub fn payload(data: Option<Box<RawValue>>, b64data: &str) -> Result<RawJson, ApiError> {
    if !b64data.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64data)
            .map_err(|_| ApiError::BadRequest)?;
        return Ok(RawJson::from_bytes(bytes));
    }
    let data = data
        .map(|raw| RawJson::from_bytes(String::from(Box::<str>::from(raw))))
        .unwrap_or_default();
    if data.too_deep() {
        return Err(ApiError::BadRequest);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Sample {
        #[serde(deserialize_with = "nullable")]
        name: String,
        #[serde(deserialize_with = "nullable")]
        n: u64,
    }

    #[test]
    fn bodies() {
        assert!(object(b"").is_err());
        assert!(object(b"  \n").is_err());
        assert!(object(b"{oops").is_err());
        assert!(object(b"[1]").is_err());
        assert!(object(b"null").is_err());
        assert!(object(b" {\"a\":1} \n").is_ok());
    }

    #[test]
    fn params_null_is_default_and_types_are_checked() {
        let raw: Box<RawValue> =
            serde_json::from_str(r#"{"name":null,"n":3,"extra":true}"#).expect("json");
        let s: Sample = parse(Some(&raw)).expect("decodes");
        assert_eq!((s.name.as_str(), s.n), ("", 3));
        let raw: Box<RawValue> = serde_json::from_str(r#"{"name":5}"#).expect("json");
        assert_eq!(
            parse::<Sample>(Some(&raw)).err(),
            Some(ApiError::InvalidParams)
        );
        let raw: Box<RawValue> = serde_json::from_str("[]").expect("json");
        assert_eq!(
            parse::<Sample>(Some(&raw)).err(),
            Some(ApiError::InvalidParams)
        );
    }

    #[test]
    fn absent_params_are_an_empty_object() {
        let s: Sample = parse(None).expect("decodes");
        assert_eq!((s.name.as_str(), s.n), ("", 0));
    }

    #[test]
    fn payloads() {
        let data: Box<RawValue> = serde_json::from_str(r#"{"a": 1}"#).expect("json");
        let p = payload(Some(data), "").expect("data");
        assert_eq!(p.as_bytes(), br#"{"a": 1}"#);
        let p = payload(None, "aGk=").expect("b64");
        assert_eq!(p.as_bytes(), b"hi");
        assert_eq!(payload(None, "!!").err(), Some(ApiError::BadRequest));
        assert!(payload(None, "").expect("empty").is_empty());
    }
}
