//! The claims of connection and subscription tokens (docs/protocol.md: connection token claims, subscription token claims) and how they become
//! the core's credentials.

use std::collections::BTreeMap;

use base64::Engine;
use pushwire_core::auth::{
    ChannelOverride, ConnectCredentials, SubscribeCredentials, TokenError, TokenSubscription,
};
use pushwire_protocol::RawJson;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Claims of a connection token. `aud`, `iss`, `nbf` are checked by the decoder.
#[derive(Debug, Deserialize)]
pub(crate) struct ConnectClaims {
    #[serde(default)]
    sub: String,
    #[serde(default, deserialize_with = "super::numeric_date::optional")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "super::numeric_date::optional")]
    expire_at: Option<i64>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    subs: BTreeMap<String, SubOptions>,
    #[serde(default)]
    meta: Option<Box<RawValue>>,
    #[serde(default)]
    channel: Option<serde::de::IgnoredAny>,
}

/// One `subs` entry.
#[derive(Debug, Default, Deserialize)]
struct SubOptions {
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default, rename = "override")]
    overrides: Option<ChannelOverride>,
}

/// Claims of a subscription token.
#[derive(Debug, Deserialize)]
pub(crate) struct SubscribeClaims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default, deserialize_with = "super::numeric_date::optional")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "super::numeric_date::optional")]
    expire_at: Option<i64>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    b64info: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: Option<String>,
    #[serde(default, rename = "override")]
    overrides: Option<ChannelOverride>,
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::invalid(why.into())
}

/// `expire_at` wins over `exp`; `expire_at: 0` never expires.
fn expiry(exp: Option<i64>, expire_at: Option<i64>) -> Option<i64> {
    match expire_at {
        Some(0) => None,
        Some(v) => Some(v),
        None => exp,
    }
}

/// `b64<name>` (decoded) wins over `<name>`.
fn json_or_b64(
    json: Option<Box<RawValue>>,
    b64: Option<String>,
    name: &str,
) -> Result<RawJson, TokenError> {
    if let Some(text) = b64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| invalid(format!("b64{name} is not base64")))?;
        return Ok(RawJson::from_bytes(bytes));
    }
    Ok(json
        .map(|r| RawJson::from_bytes(String::from(Box::<str>::from(r))))
        .unwrap_or_default())
}

impl ConnectClaims {
    /// The credentials, or why the token is not a connection token.
    pub(crate) fn into_credentials(self) -> Result<ConnectCredentials, TokenError> {
        if self.channel.is_some() {
            return Err(invalid("connection token must not have a channel claim"));
        }
        let meta = match self.meta {
            Some(m) if !m.get().trim_start().starts_with('{') => {
                return Err(invalid("meta must be a JSON object"))
            }
            Some(m) => RawJson::from_bytes(String::from(Box::<str>::from(m))),
            None => RawJson::default(),
        };
        let mut subs = Vec::with_capacity(self.subs.len());
        for (channel, o) in self.subs {
            subs.push(TokenSubscription {
                info: json_or_b64(o.info, o.b64info, "info")?,
                data: json_or_b64(o.data, o.b64data, "data")?,
                overrides: o.overrides.unwrap_or_default(),
                channel,
            });
        }
        Ok(ConnectCredentials {
            expire_at: expiry(self.exp, self.expire_at),
            info: json_or_b64(self.info, self.b64info, "info")?,
            user: self.sub,
            channels: self.channels,
            subs,
            meta,
            data: Default::default(),
        })
    }
}

impl SubscribeClaims {
    /// The credentials, or why the token is not a subscription token.
    pub(crate) fn into_credentials(self) -> Result<SubscribeCredentials, TokenError> {
        let channel = match self.channel {
            Some(c) if !c.is_empty() => c,
            _ => return Err(invalid("subscription token needs a channel claim")),
        };
        Ok(SubscribeCredentials {
            expire_at: expiry(self.exp, self.expire_at),
            user: self.sub,
            channel,
            client: self.client,
            info: json_or_b64(self.info, self.b64info, "info")?,
            data: json_or_b64(self.data, self.b64data, "data")?,
            overrides: self.overrides.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(v: serde_json::Value) -> Result<ConnectCredentials, TokenError> {
        serde_json::from_value::<ConnectClaims>(v)
            .unwrap()
            .into_credentials()
    }

    #[test]
    fn connect_claims() {
        let c = connect(serde_json::json!({
            "sub": "42", "exp": 100, "expire_at": 200, "b64info": "eyJhIjoxfQ==",
            "info": {"ignored": true}, "meta": {"plan": "pro"},
            "subs": {"news": {"info": {"x": 1}, "b64data": "eyJkIjoyfQ=="}},
        }))
        .unwrap();
        assert_eq!(c.user, "42");
        assert_eq!(c.expire_at, Some(200));
        assert_eq!(c.info.as_bytes(), br#"{"a":1}"#);
        assert_eq!(c.meta.as_bytes(), br#"{"plan":"pro"}"#);
        assert_eq!(c.subs.len(), 1);
        assert_eq!(c.subs[0].channel, "news");
        assert_eq!(c.subs[0].info.as_bytes(), br#"{"x":1}"#);
        assert_eq!(c.subs[0].data.as_bytes(), br#"{"d":2}"#);
        let c = connect(serde_json::json!({"sub": "1", "exp": 100, "expire_at": 0})).unwrap();
        assert_eq!(c.expire_at, None);
    }

    #[test]
    fn bad_connect_claims() {
        assert!(connect(serde_json::json!({"channel": "x"})).is_err());
        assert!(connect(serde_json::json!({"meta": [1]})).is_err());
        assert!(connect(serde_json::json!({"b64info": "!!"})).is_err());
    }

    #[test]
    fn subscribe_claims() {
        let s: SubscribeClaims =
            serde_json::from_value(serde_json::json!({"sub": "1", "channel": "$c", "data": [1]}))
                .unwrap();
        let s = s.into_credentials().unwrap();
        assert_eq!(s.channel, "$c");
        assert_eq!(s.data.as_bytes(), b"[1]");
        let s: SubscribeClaims = serde_json::from_value(serde_json::json!({"sub": "1"})).unwrap();
        assert!(s.into_credentials().is_err());
        let s: SubscribeClaims = serde_json::from_value(serde_json::json!({
            "sub": "1", "channel": "c",
            "override": {"presence": {"value": false}, "force_recovery": {"value": true}},
        }))
        .unwrap();
        let o = s.into_credentials().unwrap().overrides;
        let null: SubscribeClaims =
            serde_json::from_value(serde_json::json!({"channel": "c", "override": null})).unwrap();
        assert_eq!(
            null.into_credentials().unwrap().overrides,
            ChannelOverride::default()
        );
        assert_eq!(o.presence, Some(false));
        assert_eq!(o.force_recovery, Some(true));
        assert_eq!(o.join_leave, None);
    }
}
