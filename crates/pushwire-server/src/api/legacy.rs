//! The legacy route `POST /api`: newline-delimited `{"id","method","params"}` commands in,
//! one `{"id","result"}` / `{"id","error"}` line per command out (cent.js `pipeline()`).

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pushwire_core::Node;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::dispatch::call;
use super::error::ApiError;
use super::method::Method;
use super::reply::{json_response, ApiResult, Envelope};
use super::request::{BodyError, Refused};

/// One legacy command. `null` fields count as absent.
#[derive(Debug, Deserialize)]
struct LegacyCommand<'a> {
    /// Echoed in the reply when present.
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    /// Name (case-insensitive) or number; absent = publish.
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    /// The method's request; absent = `{}`.
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// Runs every command in order. A body that is empty or does not parse as a sequence of
/// command objects gets 400 with a plain-text body.
pub async fn handle(node: &Node, body: Bytes) -> Response {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Refused::BAD_REQUEST.mark(BodyError("empty body").into_response());
    }
    let commands: Result<Vec<LegacyCommand<'_>>, _> = serde_json::Deserializer::from_slice(&body)
        .into_iter()
        .collect();
    let Ok(commands) = commands else {
        return Refused::BAD_REQUEST.mark(BodyError("invalid command").into_response());
    };
    let limits = node.config().api;
    if commands.len() > limits.batch_max_commands {
        return Refused::BAD_REQUEST
            .mark(BodyError("more commands than http_api.batch_max_commands").into_response());
    }
    let mut out = Vec::with_capacity(commands.len() * 64);
    for command in &commands {
        let outcome: ApiResult = if out.len() > limits.batch_max_reply_size {
            Err(ApiError::Node(pushwire_protocol::ErrorCode::LimitExceeded))
        } else {
            match resolve(command.method) {
                Some(method) => call(node, method, command.params).await,
                None => Err(ApiError::MethodNotFound),
            }
        };
        if !out.is_empty() {
            out.push(b'\n');
        }
        let line = Envelope {
            id: command.id,
            outcome: &outcome,
        };
        if let Err(e) = serde_json::to_writer(&mut out, &line) {
            tracing::error!(error = %e, "cannot encode legacy API reply");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    json_response(StatusCode::OK, out)
}

/// The method a legacy command names: a case-insensitive name, a number `0..=12`, or nothing
/// (publish). `None` for anything else.
fn resolve(method: Option<&RawValue>) -> Option<Method> {
    let Some(raw) = method else {
        return Some(Method::Publish);
    };
    if let Ok(name) = serde_json::from_str::<String>(raw.get()) {
        return Method::from_legacy_name(&name);
    }
    serde_json::from_str::<i64>(raw.get())
        .ok()
        .and_then(Method::from_legacy_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).expect("json")
    }

    #[test]
    fn methods() {
        assert_eq!(resolve(None), Some(Method::Publish));
        assert_eq!(resolve(Some(&raw(r#""publish""#))), Some(Method::Publish));
        assert_eq!(resolve(Some(&raw(r#""HISTORY""#))), Some(Method::History));
        assert_eq!(resolve(Some(&raw("5"))), Some(Method::PresenceStats));
        assert_eq!(resolve(Some(&raw(r#""batch""#))), None);
        assert_eq!(resolve(Some(&raw(r#""nope""#))), None);
        assert_eq!(resolve(Some(&raw("13"))), None);
        assert_eq!(resolve(Some(&raw("1.5"))), None);
        assert_eq!(resolve(Some(&raw("{}"))), None);
    }
}
