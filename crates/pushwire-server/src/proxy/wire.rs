//! Centrifugo's HTTP proxy JSON, field for field (`internal/proxyproto/proxy.proto` in JSON
//! form): payloads (`data`, `info`, `meta`) travel as embedded JSON, or base64 in the `b64*`
//! fields with `binary_encoding`; empty fields are left out of requests.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use pushwire_core::auth::{ChannelOverride, ConnectCredentials, TokenSubscription};
use pushwire_core::proxy::{
    Answer, CallContext, ProxyError, PublishAnswer, RefreshAnswer, SubRefreshAnswer,
    SubscribeAnswer,
};
use pushwire_protocol::{Disconnect, RawJson};
use serde::{Deserialize, Serialize};

/// The fields every request starts with, plus the event's own.
#[derive(Debug, Default, Serialize)]
pub struct Request<'a> {
    client: &'a str,
    transport: &'a str,
    protocol: &'a str,
    encoding: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    /// User id (all but connect).
    pub user: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    /// Channel (subscribe, publish, sub_refresh).
    pub channel: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    /// RPC method.
    pub method: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    /// Subscription token (subscribe).
    pub token: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    /// SDK name (connect).
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    /// SDK version (connect).
    pub version: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    /// Channels asked for in `connect.subs` (connect).
    pub channels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawJson>,
}

impl<'a> Request<'a> {
    /// A request from `ctx`; `binary` selects `encoding: "binary"` (payloads as base64).
    pub fn new(ctx: &CallContext<'a>, binary: bool, with_meta: bool) -> Self {
        Request {
            client: ctx.client,
            transport: ctx.transport,
            protocol: ctx.protocol,
            encoding: if binary { "binary" } else { "json" },
            meta: (with_meta && !ctx.meta.is_empty()).then_some(ctx.meta),
            ..Default::default()
        }
    }

    /// Sets the payload (`data`, or `b64data` in binary encoding); empty payloads are left out.
    pub fn with_data(mut self, data: &'a RawJson) -> Self {
        if data.is_empty() {
            return self;
        }
        if self.encoding == "binary" {
            self.b64data = Some(base64::engine::general_purpose::STANDARD.encode(data.as_bytes()));
        } else {
            self.data = Some(data);
        }
        self
    }
}

/// `{"result": …, "error": …, "disconnect": …}`.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub struct Response<T> {
    #[serde(default)]
    result: Option<T>,
    #[serde(default)]
    error: Option<WireError>,
    #[serde(default)]
    disconnect: Option<WireDisconnect>,
}

#[derive(Debug, Deserialize)]
struct WireError {
    code: u32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Debug, Deserialize)]
struct WireDisconnect {
    code: u32,
    #[serde(default)]
    reason: String,
}

impl<T> Response<T> {
    /// The backend's decision: disconnect first, then error, then the result (`None` when
    /// the backend sent none).
    pub fn answer(self) -> Answer<Option<T>> {
        if let Some(d) = self.disconnect {
            let reason = if d.reason.is_empty() {
                "disconnect".to_owned()
            } else {
                d.reason
            };
            return Answer::Disconnect(Disconnect {
                code: d.code,
                reason: reason.into(),
            });
        }
        if let Some(e) = self.error {
            let message = if e.message.is_empty() {
                "error".to_owned()
            } else {
                e.message
            };
            return Answer::Error(pushwire_protocol::Error {
                code: e.code,
                message,
                temporary: e.temporary,
            });
        }
        Answer::Ok(self.result)
    }
}

/// Raw JSON or base64 of a payload field pair (`info`/`b64info`, `data`/`b64data`).
fn payload(json: Option<RawJson>, b64: Option<String>, field: &str) -> Result<RawJson, ProxyError> {
    match b64.filter(|s| !s.is_empty()) {
        Some(text) => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(RawJson::from_bytes)
            .map_err(|_| ProxyError::Invalid(format!("b64{field} is not base64"))),
        None => Ok(json.unwrap_or_default()),
    }
}

fn expiry(expire_at: i64) -> Option<i64> {
    (expire_at > 0).then_some(expire_at)
}

/// `SubscribeOptions` of a connect result's `subs`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SubOptions {
    info: Option<RawJson>,
    b64info: Option<String>,
    data: Option<RawJson>,
    b64data: Option<String>,
    #[serde(rename = "override")]
    overrides: Option<ChannelOverride>,
}

/// `ConnectResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectResult {
    user: String,
    expire_at: i64,
    info: Option<RawJson>,
    b64info: Option<String>,
    data: Option<RawJson>,
    b64data: Option<String>,
    channels: Vec<String>,
    subs: HashMap<String, SubOptions>,
    meta: Option<RawJson>,
}

impl ConnectResult {
    /// The credentials it grants.
    pub fn into_credentials(self) -> Result<ConnectCredentials, ProxyError> {
        let mut subs = Vec::with_capacity(self.subs.len());
        let mut names: Vec<_> = self.subs.into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (channel, o) in names {
            subs.push(TokenSubscription {
                info: payload(o.info, o.b64info, "info")?,
                data: payload(o.data, o.b64data, "data")?,
                overrides: o.overrides.unwrap_or_default(),
                channel,
            });
        }
        let mut channels = self.channels;
        if !subs.is_empty() {
            // `subs` and `channels` together: every channel once, `subs` options winning.
            for ch in channels.drain(..) {
                if !subs.iter().any(|s| s.channel == ch) {
                    subs.push(TokenSubscription {
                        channel: ch,
                        ..Default::default()
                    });
                }
            }
        }
        Ok(ConnectCredentials {
            user: self.user,
            expire_at: expiry(self.expire_at),
            info: payload(self.info, self.b64info, "info")?,
            channels,
            subs,
            meta: self.meta.unwrap_or_default(),
            data: payload(self.data, self.b64data, "data")?,
        })
    }
}

/// `RefreshResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RefreshResult {
    expired: bool,
    expire_at: i64,
    info: Option<RawJson>,
    b64info: Option<String>,
    meta: Option<RawJson>,
}

impl RefreshResult {
    /// The decision.
    pub fn into_answer(self) -> Result<RefreshAnswer, ProxyError> {
        let has_info = self.info.is_some() || self.b64info.is_some();
        let info = payload(self.info, self.b64info, "info")?;
        Ok(RefreshAnswer {
            expired: self.expired,
            expire_at: expiry(self.expire_at),
            info: has_info.then_some(info),
            meta: self.meta,
        })
    }
}

/// `SubscribeResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeResult {
    expire_at: i64,
    info: Option<RawJson>,
    b64info: Option<String>,
    data: Option<RawJson>,
    b64data: Option<String>,
    #[serde(rename = "override")]
    overrides: Option<ChannelOverride>,
}

impl SubscribeResult {
    /// The grant.
    pub fn into_answer(self) -> Result<SubscribeAnswer, ProxyError> {
        Ok(SubscribeAnswer {
            expire_at: expiry(self.expire_at),
            info: payload(self.info, self.b64info, "info")?,
            data: payload(self.data, self.b64data, "data")?,
            overrides: self.overrides.unwrap_or_default(),
        })
    }
}

/// `PublishResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PublishResult {
    data: Option<RawJson>,
    b64data: Option<String>,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: String,
    version: u64,
    version_epoch: String,
}

impl PublishResult {
    /// The decision.
    pub fn into_answer(self) -> Result<PublishAnswer, ProxyError> {
        let replaced = self.data.as_ref().is_some_and(|d| !d.is_empty())
            || self.b64data.as_ref().is_some_and(|d| !d.is_empty());
        let data = payload(self.data, self.b64data, "data")?;
        Ok(PublishAnswer {
            data: replaced.then_some(data),
            skip_history: self.skip_history,
            tags: self.tags,
            idempotency_key: (!self.idempotency_key.is_empty()).then_some(self.idempotency_key),
            version: self.version,
            version_epoch: self.version_epoch,
        })
    }
}

/// `RPCResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RpcResult {
    data: Option<RawJson>,
    b64data: Option<String>,
}

impl RpcResult {
    /// The result data.
    pub fn into_data(self) -> Result<RawJson, ProxyError> {
        payload(self.data, self.b64data, "data")
    }
}

/// `SubRefreshResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubRefreshResult {
    expired: bool,
    expire_at: i64,
    info: Option<RawJson>,
    b64info: Option<String>,
}

impl SubRefreshResult {
    /// The decision.
    pub fn into_answer(self) -> Result<SubRefreshAnswer, ProxyError> {
        let has_info = self.info.is_some() || self.b64info.is_some();
        let info = payload(self.info, self.b64info, "info")?;
        Ok(SubRefreshAnswer {
            expired: self.expired,
            expire_at: expiry(self.expire_at),
            info: has_info.then_some(info),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_result_with_subs_b64_and_override() {
        let r: Response<ConnectResult> = serde_json::from_str(
            r#"{"result":{"user":"56","expire_at":1999999999,"info":{"n":"a"},"b64data":"eyJ4IjoxfQ==",
                "channels":["a"],"subs":{"b":{"override":{"presence":{"value":false}},"data":{"d":1}}},
                "meta":{"m":true}}}"#,
        )
        .unwrap();
        let Answer::Ok(Some(c)) = r.answer() else {
            panic!("not ok")
        };
        let c = c.into_credentials().unwrap();
        assert_eq!(c.user, "56");
        assert_eq!(c.expire_at, Some(1999999999));
        assert_eq!(c.data.as_bytes(), br#"{"x":1}"#);
        assert_eq!(c.subs.len(), 2);
        assert_eq!(c.subs[0].overrides.presence, Some(false));
        assert_eq!(c.meta.as_bytes(), br#"{"m":true}"#);
    }

    #[test]
    fn error_and_disconnect_answers() {
        let r: Response<RpcResult> =
            serde_json::from_str(r#"{"error":{"code":1000,"message":"nope"}}"#).unwrap();
        assert!(matches!(r.answer(), Answer::Error(e) if e.code == 1000 && e.message == "nope"));
        let r: Response<RpcResult> =
            serde_json::from_str(r#"{"disconnect":{"code":4501,"reason":"bye"}}"#).unwrap();
        assert!(matches!(r.answer(), Answer::Disconnect(d) if d.code == 4501));
    }

    #[test]
    fn request_leaves_out_empty_fields_and_encodes_binary() {
        let meta = RawJson::default();
        let ctx = CallContext {
            client: "c",
            transport: "websocket",
            protocol: "json",
            user: "",
            meta: &meta,
            headers: &[],
            emulated: &[],
        };
        let data = RawJson::from_json_str(r#"{"a":1}"#).unwrap();
        let json =
            serde_json::to_string(&Request::new(&ctx, false, true).with_data(&data)).unwrap();
        assert_eq!(
            json,
            r#"{"client":"c","transport":"websocket","protocol":"json","encoding":"json","data":{"a":1}}"#
        );
        let json =
            serde_json::to_string(&Request::new(&ctx, true, false).with_data(&data)).unwrap();
        assert!(
            json.contains(r#""encoding":"binary","b64data":"eyJhIjoxfQ==""#),
            "{json}"
        );
    }
}
