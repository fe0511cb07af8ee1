//! Which proxies a configuration uses, how names resolve, and their validation.

use super::proxy::{is_default_name, ProxyConfig, ProxyKind};
use super::{ConfigError, NodeConfig};

/// A proxy in use: the event kind, the name it is referred to by (empty for the kind's
/// default), and the key that switched it on (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUse {
    /// Event kind.
    pub kind: ProxyKind,
    /// Name under `proxies`, or empty for the kind's default definition.
    pub name: String,
    /// Key that refers to the proxy.
    pub key: String,
}

impl NodeConfig {
    /// The definition `name` resolves to for `kind`: the kind's default section for an empty
    /// name or `default`, else the entry of `proxies` with that name.
    pub fn proxy_config(&self, kind: ProxyKind, name: &str) -> Option<&ProxyConfig> {
        if !is_default_name(name) {
            return self.proxies.iter().find(|p| p.name == name);
        }
        Some(match kind {
            ProxyKind::Connect => &self.client.proxy.connect,
            ProxyKind::Refresh => &self.client.proxy.refresh,
            ProxyKind::Send => &self.client.proxy.send,
            ProxyKind::Subscribe => &self.channel.proxy.subscribe,
            ProxyKind::Publish => &self.channel.proxy.publish,
            ProxyKind::SubRefresh => &self.channel.proxy.sub_refresh,
            ProxyKind::Rpc => &self.rpc.proxy,
        })
    }

    /// Every proxy some option switches on.
    pub fn proxy_uses(&self) -> Vec<ProxyUse> {
        let mut out = Vec::new();
        let mut add = |kind: ProxyKind, name: &str, key: String| {
            out.push(ProxyUse {
                kind,
                name: if is_default_name(name) {
                    String::new()
                } else {
                    name.to_owned()
                },
                key,
            })
        };
        let cp = &self.client.proxy;
        for (kind, p) in [
            (ProxyKind::Connect, &cp.connect),
            (ProxyKind::Refresh, &cp.refresh),
            (ProxyKind::Send, &cp.send),
        ] {
            if p.enabled {
                add(kind, "", format!("{}.enabled", kind.key()));
            }
        }
        let namespaces = std::iter::once(("channel.without_namespace".to_owned(), {
            &self.channel.without_namespace
        }))
        .chain(
            self.channel
                .namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| (format!("channel.namespaces[{i}]"), &ns.options)),
        );
        for (key, o) in namespaces {
            for (on, kind, name, field) in [
                (
                    o.subscribe_proxy_enabled,
                    ProxyKind::Subscribe,
                    &o.subscribe_proxy_name,
                    "subscribe_proxy_name",
                ),
                (
                    o.publish_proxy_enabled,
                    ProxyKind::Publish,
                    &o.publish_proxy_name,
                    "publish_proxy_name",
                ),
                (
                    o.sub_refresh_proxy_enabled,
                    ProxyKind::SubRefresh,
                    &o.sub_refresh_proxy_name,
                    "sub_refresh_proxy_name",
                ),
            ] {
                if on {
                    add(kind, name, format!("{key}.{field}"));
                }
            }
        }
        if self.rpc.without_namespace.proxy_enabled {
            add(
                ProxyKind::Rpc,
                &self.rpc.without_namespace.proxy_name,
                "rpc.without_namespace.proxy_name".into(),
            );
        }
        for (i, ns) in self.rpc.namespaces.iter().enumerate() {
            if ns.proxy_enabled {
                add(
                    ProxyKind::Rpc,
                    &ns.proxy_name,
                    format!("rpc.namespaces[{i}].proxy_name"),
                );
            }
        }
        out
    }

    /// Lower-case names of the request headers any proxy in use forwards: the only headers a
    /// client keeps from its HTTP request.
    pub fn forwarded_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .proxy_uses()
            .iter()
            .filter_map(|u| self.proxy_config(u.kind, &u.name))
            .flat_map(|p| p.http_headers.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Lower-case names of the emulated headers (connect command `headers`) any proxy in use
    /// forwards.
    pub fn emulated_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .proxy_uses()
            .iter()
            .filter_map(|u| self.proxy_config(u.kind, &u.name))
            .flat_map(|p| p.emulated_headers.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub(super) fn validate_proxies(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.proxies.iter().enumerate() {
            let key = format!("proxies[{i}]");
            if p.name.is_empty() || is_default_name(&p.name) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    "a named proxy needs a name other than \"default\"",
                ));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("duplicate proxy name {:?}", p.name),
                ));
            }
            p.validate(&key)?;
        }
        for (i, ns) in self.rpc.namespaces.iter().enumerate() {
            if ns.name.is_empty() {
                return Err(ConfigError::new(
                    format!("rpc.namespaces[{i}].name"),
                    "must not be empty",
                ));
            }
        }
        if self.rpc.namespace_boundary.is_empty() {
            return Err(ConfigError::new(
                "rpc.namespace_boundary",
                "must not be empty",
            ));
        }
        for u in self.proxy_uses() {
            match self.proxy_config(u.kind, &u.name) {
                None => {
                    return Err(ConfigError::new(
                        u.key,
                        format!("no proxy named {:?} under proxies", u.name),
                    ))
                }
                Some(p) => {
                    if u.name.is_empty() {
                        p.validate(u.kind.key())?;
                    }
                    if u.kind == ProxyKind::Send && p.endpoint.starts_with("grpc://") {
                        return Err(ConfigError::new(
                            format!("{}.endpoint", u.kind.key()),
                            "the send proxy is HTTP only (Centrifugo's gRPC service has no send)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_connect_proxy_needs_an_http_endpoint() {
        let mut c = NodeConfig::default();
        c.client.proxy.connect.enabled = true;
        assert_eq!(
            c.validate().unwrap_err().key,
            "client.proxy.connect.endpoint"
        );
        c.client.proxy.connect.endpoint = "tcp://x".into();
        assert_eq!(
            c.validate().unwrap_err().key,
            "client.proxy.connect.endpoint"
        );
        c.client.proxy.connect.endpoint = "http://127.0.0.1:1/connect".into();
        c.validate().unwrap();
    }

    #[test]
    fn unknown_proxy_name_is_named() {
        let mut c = NodeConfig::default();
        c.channel.without_namespace.subscribe_proxy_enabled = true;
        c.channel.without_namespace.subscribe_proxy_name = "auth".into();
        assert_eq!(
            c.validate().unwrap_err().key,
            "channel.without_namespace.subscribe_proxy_name"
        );
        c.proxies.push(ProxyConfig {
            name: "auth".into(),
            endpoint: "https://auth.example/sub".into(),
            http_headers: vec!["Cookie".into()],
            ..Default::default()
        });
        c.validate().unwrap();
        assert_eq!(c.forwarded_headers(), vec!["cookie".to_owned()]);
    }
}
