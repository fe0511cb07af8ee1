//! `disconnect` and `unsubscribe`: acting on a user's live connections.

use std::borrow::Cow;

use pushwire_core::node::ConnectionSelector;
use pushwire_core::Node;
use pushwire_protocol::{Disconnect, EmptyResult};
use serde::Deserialize;

use super::error::ApiError;
use super::reply::{encode, ApiResult};
use super::request::nullable;

/// Longest disconnect reason in bytes, exclusive (the WebSocket close-frame limit).
const MAX_REASON_BYTES: usize = 123;

/// `disconnect` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DisconnectRequest {
    #[serde(deserialize_with = "nullable")]
    user: String,
    #[serde(deserialize_with = "nullable")]
    client: String,
    #[serde(deserialize_with = "nullable")]
    session: String,
    #[serde(deserialize_with = "nullable")]
    whitelist: Vec<String>,
    disconnect: Option<DisconnectObject>,
}

/// The custom code and reason of a `disconnect` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DisconnectObject {
    #[serde(deserialize_with = "nullable")]
    code: u32,
    #[serde(deserialize_with = "nullable")]
    reason: String,
}

/// `unsubscribe` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UnsubscribeRequest {
    #[serde(deserialize_with = "nullable")]
    user: String,
    /// Empty = every channel.
    #[serde(deserialize_with = "nullable")]
    channel: String,
    #[serde(deserialize_with = "nullable")]
    client: String,
    #[serde(deserialize_with = "nullable")]
    session: String,
}

/// Disconnects a user's connections on every node (all, one `client`, minus `whitelist`):
/// `{}` once the other nodes were told; 100 when the engine could not carry it.
pub async fn disconnect(node: &Node, req: DisconnectRequest) -> ApiResult {
    let target = target(req.user, req.client, &req.session, req.whitelist)?;
    let disconnect = match req.disconnect {
        None => Disconnect::FORCE_DISCONNECT,
        Some(d) => custom_disconnect(d)?,
    };
    let n = node.disconnect_user(&target, disconnect).await?;
    tracing::debug!(user = %target.user, connections = n, "API disconnect");
    encode(&EmptyResult {})
}

/// Unsubscribes a user's connections on every node (all, or one `client`) from `channel` (or
/// every channel when empty) with Unsubscribe push 2000: `{}`.
pub async fn unsubscribe(node: &Node, req: UnsubscribeRequest) -> ApiResult {
    let target = target(req.user, req.client, &req.session, Vec::new())?;
    let n = node.unsubscribe_user(&target, &req.channel).await?;
    tracing::debug!(user = %target.user, connections = n, "API unsubscribe");
    encode(&EmptyResult {})
}

pub(super) fn target(
    user: String,
    client: String,
    session: &str,
    whitelist: Vec<String>,
) -> Result<ConnectionSelector, ApiError> {
    if user.is_empty() {
        return Err(ApiError::BadRequest);
    }
    Ok(ConnectionSelector {
        user,
        client: Some(client).filter(|c| !c.is_empty()),
        session: Some(session.to_owned()).filter(|s| !s.is_empty()),
        whitelist,
    })
}

/// Code 0 means the default 3503; other codes must be in 3000..=4999 and reasons shorter than
/// 123 bytes. An empty reason becomes "force disconnect".
fn custom_disconnect(d: DisconnectObject) -> Result<Disconnect, ApiError> {
    let code = match d.code {
        0 => Disconnect::FORCE_DISCONNECT.code,
        c @ 3000..=4999 => c,
        _ => return Err(ApiError::BadRequest),
    };
    if d.reason.len() >= MAX_REASON_BYTES {
        return Err(ApiError::BadRequest);
    }
    let reason = if d.reason.is_empty() {
        Disconnect::FORCE_DISCONNECT.reason
    } else {
        Cow::Owned(d.reason)
    };
    Ok(Disconnect { code, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(code: u32, reason: &str) -> DisconnectObject {
        DisconnectObject {
            code,
            reason: reason.into(),
        }
    }

    #[test]
    fn custom_disconnects() {
        assert_eq!(
            custom_disconnect(object(0, "")).ok(),
            Some(Disconnect::FORCE_DISCONNECT)
        );
        let d = custom_disconnect(object(4001, "bye")).ok();
        assert_eq!(
            d.as_ref().map(|d| (d.code, &*d.reason)),
            Some((4001, "bye"))
        );
        assert_eq!(
            custom_disconnect(object(2999, "x")).err(),
            Some(ApiError::BadRequest)
        );
        assert_eq!(
            custom_disconnect(object(5000, "x")).err(),
            Some(ApiError::BadRequest)
        );
        assert!(custom_disconnect(object(4000, &"r".repeat(122))).is_ok());
        assert_eq!(
            custom_disconnect(object(4000, &"r".repeat(123))).err(),
            Some(ApiError::BadRequest)
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            target(String::new(), String::new(), "", Vec::new()).err(),
            Some(ApiError::BadRequest)
        );
        let t = target("u".into(), String::new(), "s", Vec::new()).ok();
        assert_eq!(t.and_then(|t| t.session), Some("s".to_owned()));
        let t = target("u".into(), String::new(), "", vec!["c1".into()]).ok();
        assert_eq!(t.as_ref().map(|t| t.client.clone()), Some(None));
        let t = target("u".into(), "c2".into(), "", Vec::new()).ok();
        assert_eq!(t.and_then(|t| t.client), Some("c2".to_owned()));
    }
}
