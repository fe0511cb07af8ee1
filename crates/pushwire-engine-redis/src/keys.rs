//! Names of the Redis keys and PUB/SUB channels, all under one prefix.
//!
//! | name | type | holds |
//! |---|---|---|
//! | `<prefix>.stream.<channel>` | stream | publications, entry id `<offset>-0`, field `d` = protobuf `Publication` without offset |
//! | `<prefix>.meta.<channel>` | hash | `e` epoch, `s` top offset, `v`/`ve` last version and its epoch |
//! | `<prefix>.idem.<len>.<channel>.<key>` | hash | `e`/`s`: position of the publication an idempotency key already made |
//! | `<prefix>.presence.data.<channel>` | hash | client id → protobuf `ClientInfo` |
//! | `<prefix>.presence.expire.<channel>` | sorted set | client id scored by its expiry (Unix ms) |
//! | `<prefix>.pub.<channel>` | PUB/SUB channel | publications, joins and leaves ([`crate::codec`]) |
//! | `<prefix>.control` | PUB/SUB channel | control messages to every node (`pushwire_protocol::control`) |
//! | `<prefix>.node.<uid>` | PUB/SUB channel | control messages to the node with that uid |
//! | `<prefix>.occ.<channel>` | set | uids of the nodes with subscribers in the channel (lifecycle occupancy) |
//! | `<prefix>.occn.<uid>` | set | channels the node holds subscribers of |
//! | `<prefix>.occnodes` | hash | node uid → last lifecycle heartbeat (Unix ms) |
//! | `<prefix>.conns.<user>` | sorted set | the user's connection ids scored by expiry (Unix ms), for `client.user_connection_limit` |

/// Builds key names for one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    pub_prefix: String,
    control: String,
    node_prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            pub_prefix: format!("{prefix}.pub."),
            control: format!("{prefix}.control"),
            node_prefix: format!("{prefix}.node."),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The channel's publication stream.
    pub fn stream(&self, channel: &str) -> String {
        format!("{}.stream.{channel}", self.prefix)
    }

    /// The channel's meta hash (epoch, top offset, version).
    pub fn meta(&self, channel: &str) -> String {
        format!("{}.meta.{channel}", self.prefix)
    }

    /// The record of idempotency `key` in `channel`. The channel's length keeps
    /// (`a.b`, `c`) and (`a`, `b.c`) apart.
    pub fn idempotency(&self, channel: &str, key: &str) -> String {
        format!("{}.idem.{}.{channel}.{key}", self.prefix, channel.len())
    }

    /// The channel's presence entries.
    pub fn presence_data(&self, channel: &str) -> String {
        format!("{}.presence.data.{channel}", self.prefix)
    }

    /// The channel's presence expiry index.
    pub fn presence_expire(&self, channel: &str) -> String {
        format!("{}.presence.expire.{channel}", self.prefix)
    }

    /// The PUB/SUB channel that carries `channel`'s publications, joins and leaves.
    pub fn pubsub(&self, channel: &str) -> String {
        format!("{}{channel}", self.pub_prefix)
    }

    /// The PUB/SUB channel of control messages to every node.
    pub fn control(&self) -> &str {
        &self.control
    }

    /// The PUB/SUB channel of control messages to node `uid`.
    pub fn node(&self, uid: &str) -> String {
        format!("{}{uid}", self.node_prefix)
    }

    /// Whether a PUB/SUB channel name carries control messages.
    pub fn is_control(&self, pubsub: &str) -> bool {
        pubsub == self.control || pubsub.starts_with(&self.node_prefix)
    }

    /// The nodes with subscribers in `channel`.
    pub fn occupancy(&self, channel: &str) -> String {
        format!("{}.occ.{channel}", self.prefix)
    }

    /// The channels node `uid` holds subscribers of.
    pub fn node_channels(&self, uid: &str) -> String {
        format!("{}.occn.{uid}", self.prefix)
    }

    /// Node uid → last lifecycle heartbeat.
    pub fn node_heartbeats(&self) -> String {
        format!("{}.occnodes", self.prefix)
    }

    /// The connection ids of `user` (per-user connection limit).
    pub fn user_connections(&self, user: &str) -> String {
        format!("{}.conns.{user}", self.prefix)
    }

    /// The channel a PUB/SUB channel name carries, if it is one of ours.
    pub fn channel_of<'a>(&self, pubsub: &'a str) -> Option<&'a str> {
        pubsub.strip_prefix(&self.pub_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("pw");
        assert_eq!(k.stream("chat:1"), "pw.stream.chat:1");
        assert_eq!(k.meta("chat:1"), "pw.meta.chat:1");
        assert_ne!(k.idempotency("a.b", "c"), k.idempotency("a", "b.c"));
        assert_eq!(k.channel_of(&k.pubsub("x.y")), Some("x.y"));
        assert_eq!(k.channel_of("other.pub.x"), None);
        assert!(k.is_control(k.control()) && k.is_control(&k.node("n1")));
        assert!(!k.is_control(&k.pubsub("pw.control")));
        assert_eq!(k.channel_of(k.control()), None);
    }
}
