//! Channel names: namespace resolution, private and user-limited channels.

use std::collections::HashMap;
use std::sync::Arc;

use pushwire_protocol::ErrorCode;
use regex::Regex;

use crate::config::{ChannelConfig, ChannelOptions};

/// A namespace ready for lookups: its options and compiled regex.
#[derive(Debug)]
pub struct Namespace {
    /// Namespace name; empty for channels without a namespace.
    pub name: String,
    /// Options of its channels.
    pub options: ChannelOptions,
    regex: Option<Regex>,
}

/// What a channel name says about itself once resolved.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    /// The channel's namespace.
    pub namespace: Arc<Namespace>,
    /// Starts with the private prefix (`$`): subscribing needs a token.
    pub private: bool,
    /// Users allowed by a user-limited (`#`) channel; `None` if not user-limited.
    pub users: Option<Vec<String>>,
}

/// Resolves channel names to namespaces. Built once from configuration.
#[derive(Debug)]
pub struct Namespaces {
    without: Arc<Namespace>,
    by_name: HashMap<String, Arc<Namespace>>,
    max_length: usize,
    private_prefix: String,
    namespace_boundary: String,
    user_boundary: String,
    user_separator: String,
}

impl Namespaces {
    /// Builds the resolver; `config` must have been validated.
    pub fn new(config: &ChannelConfig) -> Self {
        let build = |name: &str, options: &ChannelOptions| {
            Arc::new(Namespace {
                name: name.to_owned(),
                options: options.clone(),
                regex: (!options.channel_regex.is_empty())
                    .then(|| Regex::new(&options.channel_regex).expect("validated regex")),
            })
        };
        Namespaces {
            without: build("", &config.without_namespace),
            by_name: config
                .namespaces
                .iter()
                .map(|ns| (ns.name.clone(), build(&ns.name, &ns.options)))
                .collect(),
            max_length: config.max_length,
            private_prefix: config.private_prefix.clone(),
            namespace_boundary: config.namespace_boundary.clone(),
            user_boundary: config.user_boundary.clone(),
            user_separator: config.user_separator.clone(),
        }
    }

    /// Resolves `channel`: 107 for an empty, too long or malformed name, 102 for an unknown
    /// namespace.
    pub fn resolve(&self, channel: &str) -> Result<ChannelInfo, ErrorCode> {
        if channel.is_empty() || channel.len() > self.max_length {
            return Err(ErrorCode::BadRequest);
        }
        let private = channel.starts_with(&self.private_prefix);
        let rest = channel
            .strip_prefix(self.private_prefix.as_str())
            .unwrap_or(channel);
        let (namespace, name) = match rest.split_once(self.namespace_boundary.as_str()) {
            Some((ns, name)) => (
                self.by_name
                    .get(ns)
                    .cloned()
                    .ok_or(ErrorCode::UnknownChannel)?,
                name,
            ),
            None => (self.without.clone(), rest),
        };
        match &namespace.regex {
            Some(re) if !re.is_match(name) => return Err(ErrorCode::BadRequest),
            Some(_) => {}
            None if !channel.is_ascii() => return Err(ErrorCode::BadRequest),
            None => {}
        }
        let users = if namespace.options.allow_user_limited_channels {
            channel
                .rsplit_once(self.user_boundary.as_str())
                .map(|(_, users)| {
                    users
                        .split(self.user_separator.as_str())
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
        } else {
            None
        };
        Ok(ChannelInfo {
            namespace,
            private,
            users,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceConfig;

    fn ns() -> Namespaces {
        let mut c = ChannelConfig::default();
        c.namespaces.push(NamespaceConfig {
            name: "chat".into(),
            ..Default::default()
        });
        let mut limited = NamespaceConfig {
            name: "personal".into(),
            ..Default::default()
        };
        limited.options.allow_user_limited_channels = true;
        c.namespaces.push(limited);
        let mut re = NamespaceConfig {
            name: "num".into(),
            ..Default::default()
        };
        re.options.channel_regex = "^[0-9]+$".into();
        c.namespaces.push(re);
        Namespaces::new(&c)
    }

    #[test]
    fn resolution() {
        let n = ns();
        assert_eq!(n.resolve("news").unwrap().namespace.name, "");
        assert_eq!(n.resolve("chat:index").unwrap().namespace.name, "chat");
        let p = n.resolve("$chat:secret").unwrap();
        assert!(p.private);
        assert_eq!(p.namespace.name, "chat");
        assert_eq!(
            n.resolve("xxx:hello").unwrap_err(),
            ErrorCode::UnknownChannel
        );
        assert_eq!(n.resolve("").unwrap_err(), ErrorCode::BadRequest);
        assert_eq!(
            n.resolve(&"a".repeat(256)).unwrap_err(),
            ErrorCode::BadRequest
        );
        assert_eq!(n.resolve("héllo").unwrap_err(), ErrorCode::BadRequest);
        assert_eq!(n.resolve("num:12").unwrap().namespace.name, "num");
        assert_eq!(n.resolve("num:ab").unwrap_err(), ErrorCode::BadRequest);
    }

    #[test]
    fn user_limited() {
        let n = ns();
        let c = n.resolve("personal:dialog#42,43").unwrap();
        assert_eq!(c.users.unwrap(), vec!["42", "43"]);
        assert!(n.resolve("chat:dialog#42").unwrap().users.is_none());
    }
}
