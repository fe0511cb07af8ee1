//! `api_command` mode: the body is a server API command, as Centrifugo's consumers accept:
//! `{"method":"publish","payload":{"channel":"news","data":{...}}}`.
//!
//! Methods: `publish`, `broadcast`, `history_remove`, `disconnect`, `unsubscribe`,
//! `subscribe`, `refresh`. Payload fields follow the HTTP API of the same name.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use pushwire_core::node::{DisconnectTarget, PublishParams};
use pushwire_core::Node;
use pushwire_protocol::{Disconnect, RawJson};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::message::Message;
use crate::processor::{failure, Applied, Effect, Outcome};

#[derive(Deserialize)]
struct Command<'a> {
    method: String,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// The payload of `publish` (`channel`) and `broadcast` (`channels`). No `#[serde(flatten)]`
/// anywhere here: it cannot carry `RawValue` fields.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PublishPayload {
    channel: String,
    channels: Vec<String>,
    data: Option<Box<RawValue>>,
    b64data: String,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: String,
    version: u64,
    version_epoch: String,
    delta: bool,
}

#[derive(Deserialize)]
struct HistoryRemove {
    channel: String,
}

/// Which connections a user command targets, plus what each command needs.
#[derive(Deserialize, Default)]
#[serde(default)]
struct UserCommand {
    user: String,
    client: String,
    session: String,
    channel: String,
    whitelist: Vec<String>,
    disconnect: Option<DisconnectSpec>,
    info: Option<Box<RawValue>>,
    data: Option<Box<RawValue>>,
    expired: bool,
    expire_at: Option<i64>,
}

impl UserCommand {
    fn target(&self) -> DisconnectTarget {
        DisconnectTarget {
            user: self.user.clone(),
            client: Some(self.client.clone()).filter(|c| !c.is_empty()),
            session: Some(self.session.clone()).filter(|s| !s.is_empty()),
            whitelist: self.whitelist.clone(),
        }
    }
}

#[derive(Deserialize)]
struct DisconnectSpec {
    code: u32,
    #[serde(default)]
    reason: String,
}

fn poison(text: impl Into<String>) -> Outcome {
    Outcome::Poison(text.into())
}

fn payload<'a, T: Deserialize<'a>>(method: &str, raw: Option<&'a RawValue>) -> Result<T, Outcome> {
    let raw = raw.ok_or_else(|| poison(format!("{method}: payload missing")))?;
    serde_json::from_str(raw.get()).map_err(|e| poison(format!("{method}: bad payload: {e}")))
}

fn raw(v: Option<Box<RawValue>>) -> RawJson {
    v.map(|r| RawJson::from_bytes(r.get().as_bytes().to_vec()))
        .unwrap_or_default()
}

/// Executes the command in `msg.body`.
pub(crate) async fn apply(node: &Node, msg: &Message) -> Applied {
    let cmd: Command<'_> = serde_json::from_slice(&msg.body)
        .map_err(|e| poison(format!("body is not an API command: {e}")))?;
    match cmd.method.as_str() {
        "publish" => {
            let mut p: PublishPayload = payload("publish", cmd.payload)?;
            let channel = std::mem::take(&mut p.channel);
            let params = publish_params(p, msg)?;
            publish_one(node, &channel, params).await
        }
        "broadcast" => {
            let mut b: PublishPayload = payload("broadcast", cmd.payload)?;
            let channels = std::mem::take(&mut b.channels);
            if channels.is_empty() {
                return Err(poison("broadcast: channels empty"));
            }
            let params = publish_params(b, msg)?;
            broadcast(node, &channels, params).await
        }
        "history_remove" => {
            let h: HistoryRemove = payload("history_remove", cmd.payload)?;
            node.history_remove(&h.channel)
                .await
                .map_err(|c| failure(c, "history_remove"))?;
            Ok(Effect::Applied)
        }
        method @ ("disconnect" | "unsubscribe" | "subscribe" | "refresh") => {
            let u: UserCommand = payload(method, cmd.payload)?;
            if u.user.is_empty() {
                return Err(poison(format!("{method}: user missing")));
            }
            user_command(node, method, u).await
        }
        other => Err(poison(format!("unknown method {other:?}"))),
    }
}

async fn user_command(node: &Node, method: &str, u: UserCommand) -> Applied {
    let target = u.target();
    match method {
        "disconnect" => {
            let disconnect = match u.disconnect {
                Some(s) => Disconnect {
                    code: s.code,
                    reason: Cow::Owned(if s.reason.is_empty() {
                        "force disconnect".into()
                    } else {
                        s.reason
                    }),
                },
                None => Disconnect::FORCE_DISCONNECT,
            };
            node.disconnect_user(&target, disconnect)
                .await
                .map_err(|c| failure(c, "disconnect"))?;
        }
        "unsubscribe" => {
            node.unsubscribe_user(&target, &u.channel)
                .await
                .map_err(|c| failure(c, "unsubscribe"))?;
        }
        "subscribe" => {
            node.subscribe_user(
                &target,
                &u.channel,
                raw(u.info),
                raw(u.data),
                None,
                Default::default(),
            )
            .await
            .map_err(|c| failure(c, "subscribe"))?;
        }
        _ => {
            let info = u.info.map(|i| raw(Some(i)));
            node.refresh_user(&target, u.expired, u.expire_at, info)
                .await
                .map_err(|c| failure(c, "refresh"))?;
        }
    }
    Ok(Effect::Applied)
}

/// Publish parameters; the idempotency key is the payload's own or else the message id.
fn publish_params(f: PublishPayload, msg: &Message) -> Result<PublishParams, Outcome> {
    let data = if !f.b64data.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(f.b64data.as_bytes())
            .map_err(|e| poison(format!("b64data: {e}")))?;
        RawJson::from_bytes(bytes)
    } else {
        match f.data {
            Some(d) => RawJson::from_bytes(d.get().as_bytes().to_vec()),
            None => return Err(poison("data missing")),
        }
    };
    let key = if f.idempotency_key.is_empty() {
        msg.id.clone()
    } else {
        f.idempotency_key
    };
    Ok(PublishParams {
        data,
        tags: f.tags,
        skip_history: f.skip_history,
        idempotency_key: Some(key).filter(|k| !k.is_empty()),
        version: f.version,
        version_epoch: f.version_epoch,
        info: None,
        delta: f.delta,
    })
}

async fn publish_one(node: &Node, channel: &str, params: PublishParams) -> Applied {
    if channel.is_empty() {
        return Err(poison("publish: channel missing"));
    }
    match node.publish(channel, params).await {
        Ok(o) if o.suppressed => Ok(Effect::Duplicate),
        Ok(_) => Ok(Effect::Applied),
        Err(c) => Err(failure(c, &format!("publish to {channel:?}"))),
    }
}

/// Publishes to every channel (each with the same idempotency key, which is per channel). A
/// transient failure anywhere retries the whole message (channels already done are then
/// suppressed as duplicates); otherwise a permanent failure makes it poison.
async fn broadcast(node: &Node, channels: &[String], params: PublishParams) -> Applied {
    let mut retry = None;
    let mut poisoned = None;
    let mut any_applied = false;
    for ch in channels {
        match publish_one(node, ch, params.clone()).await {
            Ok(Effect::Applied) => any_applied = true,
            Ok(Effect::Duplicate) => {}
            Err(Outcome::Retry(r)) => retry = retry.or(Some(r)),
            Err(other) => poisoned = poisoned.or(Some(other)),
        }
    }
    if let Some(r) = retry {
        return Err(Outcome::Retry(r));
    }
    if let Some(p) = poisoned {
        return Err(p);
    }
    Ok(if any_applied {
        Effect::Applied
    } else {
        Effect::Duplicate
    })
}
