//! `api_command` mode: the body is a server API command, as Centrifugo's consumers accept:
//! `{"method":"publish","payload":{"channel":"news","data":{...}}}`.
//!
//! Nothing here reads the payload: the method and payload go to the server API's own dispatch
//! through [`ApiDispatch`], so a command is accepted or refused exactly as `POST
//! /api/<method>` would. The one addition: a `publish` / `broadcast` without an
//! `idempotency_key` gets the message id as its key, so redeliveries are suppressed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dispatch::{ApiDispatch, ApiFailure, Dispatched};
use crate::message::Message;
use crate::outcome::{Applied, Effect, Outcome};

/// The command envelope. `payload` absent or `null` is `{}`, as an HTTP body-less call.
#[derive(Deserialize)]
struct Command<'a> {
    method: String,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// Executes the command in `msg.body` through `api`.
pub(crate) async fn apply(api: &dyn ApiDispatch, msg: &Message) -> Applied {
    let cmd: Command<'_> = serde_json::from_slice(&msg.body)
        .map_err(|e| Outcome::Poison(format!("body is not an API command: {e}")))?;
    let method = cmd.method.as_str();
    let keyed = match method {
        "publish" | "broadcast" if !msg.id.is_empty() => with_key(cmd.payload, &msg.id),
        _ => None,
    };
    let params = keyed.as_deref().or(cmd.payload);
    let reply = api.call(method, params).await;
    outcome(method, reply)
}

/// Maps a dispatch reply: temporary codes retry, other codes are poison; a call whose every
/// publication was suppressed is a duplicate. Per-channel broadcast errors count too: any
/// temporary one retries the whole message (channels already done are then suppressed).
pub(crate) fn outcome(method: &str, reply: Result<Dispatched, ApiFailure>) -> Applied {
    let failed = |f: &ApiFailure| {
        let text = format!("{method}: {f}");
        if f.temporary() {
            Outcome::Retry(text)
        } else {
            Outcome::Poison(text)
        }
    };
    let done = reply.map_err(|f| failed(&f))?;
    if let Some(f) = done.errors.iter().find(|f| f.temporary()) {
        return Err(failed(f));
    }
    if let Some(f) = done.errors.first() {
        return Err(failed(f));
    }
    if done.publications > 0 && done.suppressed == done.publications {
        return Ok(Effect::Duplicate);
    }
    Ok(Effect::Applied)
}

/// `payload` with `"idempotency_key": id` when it is an object whose key is absent, `null` or
/// empty; `None` to send it unchanged (a payload that is not an object is left for the API
/// to refuse). Other values stay byte for byte (raw JSON).
fn with_key(payload: Option<&RawValue>, id: &str) -> Option<Box<RawValue>> {
    let text = payload.map_or("{}", RawValue::get).trim();
    if !text.starts_with('{') {
        return None;
    }
    let mut fields: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    let has_key = fields
        .get("idempotency_key")
        .is_some_and(|v| !matches!(v.get(), "null" | "\"\""));
    if has_key {
        return None;
    }
    let key = serde_json::value::to_raw_value(id).ok()?;
    fields.insert("idempotency_key".into(), &key);
    serde_json::value::to_raw_value(&fields).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        serde_json::from_str(s).expect("json")
    }

    #[test]
    fn the_message_id_becomes_the_key_only_when_none_is_given() {
        let keyed = |p: Option<&str>| {
            let p = p.map(raw);
            with_key(p.as_deref(), "m1").map(|r| r.get().to_owned())
        };
        assert_eq!(
            keyed(Some(r#"{"channel":"a","data":{"x":1.50}}"#)).as_deref(),
            Some(r#"{"channel":"a","data":{"x":1.50},"idempotency_key":"m1"}"#)
        );
        assert_eq!(
            keyed(Some(r#"{"idempotency_key":null}"#)).as_deref(),
            Some(r#"{"idempotency_key":"m1"}"#)
        );
        assert_eq!(
            keyed(Some(r#"{"idempotency_key":""}"#)).as_deref(),
            Some(r#"{"idempotency_key":"m1"}"#)
        );
        assert_eq!(keyed(None).as_deref(), Some(r#"{"idempotency_key":"m1"}"#));
        assert_eq!(keyed(Some(r#"{"idempotency_key":"k"}"#)), None);
        assert_eq!(keyed(Some("[1]")), None);
    }

    #[test]
    fn outcomes() {
        let fail = |code| ApiFailure {
            code,
            message: "x".into(),
        };
        assert_eq!(
            outcome("p", Err(fail(100))),
            Err(Outcome::Retry("p: x (100)".into()))
        );
        assert_eq!(
            outcome("p", Err(fail(107))),
            Err(Outcome::Poison("p: x (107)".into()))
        );
        let d = |publications, suppressed, errors| Dispatched {
            publications,
            suppressed,
            errors,
        };
        assert_eq!(outcome("p", Ok(d(1, 0, vec![]))), Ok(Effect::Applied));
        assert_eq!(outcome("p", Ok(d(2, 2, vec![]))), Ok(Effect::Duplicate));
        assert_eq!(outcome("p", Ok(d(2, 1, vec![]))), Ok(Effect::Applied));
        assert_eq!(outcome("d", Ok(d(0, 0, vec![]))), Ok(Effect::Applied));
        assert!(matches!(
            outcome("b", Ok(d(2, 0, vec![fail(102), fail(100)]))),
            Err(Outcome::Retry(_))
        ));
        assert!(matches!(
            outcome("b", Ok(d(2, 0, vec![fail(102)]))),
            Err(Outcome::Poison(_))
        ));
    }
}
