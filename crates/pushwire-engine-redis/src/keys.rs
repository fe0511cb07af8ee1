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
//!
//! On a Redis Cluster ([`Keys::cluster`]) every per-channel name carries the hash tag of the
//! channel's partition right after its kind: `<prefix>.stream.{<tag>}.<channel>`,
//! `<prefix>.meta.{<tag>}.<channel>`, `<prefix>.idem.{<tag>}.<len>.<channel>.<key>`,
//! `<prefix>.presence.data.{<tag>}.<channel>`, `<prefix>.presence.expire.{<tag>}.<channel>`
//! and the shard channel `<prefix>.pub.{<tag>}.<channel>`, so the publish script's keys and
//! its `SPUBLISH` share one slot. The partition is [`crate::shard::consistent_index`] of the
//! channel over `engine.redis.sharded_pub_sub_partitions`; the tags are chosen by
//! [`crate::slots::partition_tags`] so the partitions spread evenly over the slot range. The
//! occupancy keys all share the tag `{<prefix>.occupancy}` (the sweep script touches them
//! together): `<prefix>.{<prefix>.occupancy}.occ.<channel>` and so on.

/// Builds key names for one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    pub_prefix: String,
    control: String,
    node_prefix: String,
    /// Redis Cluster: the hash tag of each partition (`{` and `}` included); empty otherwise.
    tags: std::sync::Arc<[String]>,
    /// What occupancy keys start with: the prefix, or on a cluster the prefix and a fixed tag.
    occupancy_base: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            pub_prefix: format!("{prefix}.pub."),
            control: format!("{prefix}.control"),
            node_prefix: format!("{prefix}.node."),
            tags: std::sync::Arc::from(Vec::new()),
            occupancy_base: prefix.to_owned(),
        }
    }

    /// Keys under `prefix` on a Redis Cluster with one hash tag per sharded PUB/SUB partition
    /// (`tags` from [`crate::slots::partition_tags`], not empty).
    pub fn cluster(prefix: &str, tags: Vec<String>) -> Keys {
        assert!(!tags.is_empty(), "at least one partition");
        Keys {
            tags: tags
                .into_iter()
                .map(|t| format!("{{{t}}}"))
                .collect::<Vec<_>>()
                .into(),
            occupancy_base: format!("{prefix}.{{{prefix}.occupancy}}"),
            ..Keys::new(prefix)
        }
    }

    /// Whether the keys are laid out for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.tags.is_empty()
    }

    /// How many sharded PUB/SUB partitions there are (0 outside a cluster).
    pub fn partitions(&self) -> usize {
        self.tags.len()
    }

    /// The partition of `channel` (0 outside a cluster).
    pub fn partition(&self, channel: &str) -> usize {
        match self.tags.len() {
            0 | 1 => 0,
            n => crate::shard::consistent_index(channel, n),
        }
    }

    /// The hash tag of partition `index` with its braces (cluster only).
    pub fn partition_tag(&self, index: usize) -> &str {
        &self.tags[index]
    }

    /// `<prefix>.<kind>.<channel>`, or `<prefix>.<kind>.{<tag>}.<channel>` on a cluster.
    fn channel_key(&self, kind: &str, channel: &str) -> String {
        if self.tags.is_empty() {
            format!("{}.{kind}.{channel}", self.prefix)
        } else {
            let tag = &self.tags[self.partition(channel)];
            format!("{}.{kind}.{tag}.{channel}", self.prefix)
        }
    }

    /// What the occupancy keys start with (the sweep script derives them from it).
    pub fn occupancy_base(&self) -> &str {
        &self.occupancy_base
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The channel's publication stream.
    pub fn stream(&self, channel: &str) -> String {
        self.channel_key("stream", channel)
    }

    /// The channel's meta hash (epoch, top offset, version).
    pub fn meta(&self, channel: &str) -> String {
        self.channel_key("meta", channel)
    }

    /// The record of idempotency `key` in `channel`. The channel's length keeps
    /// (`a.b`, `c`) and (`a`, `b.c`) apart.
    pub fn idempotency(&self, channel: &str, key: &str) -> String {
        let mut name = self.channel_key("idem", channel);
        let at = name.len() - channel.len();
        name.insert_str(at, &format!("{}.", channel.len()));
        name.push('.');
        name.push_str(key);
        name
    }

    /// The channel's presence entries.
    pub fn presence_data(&self, channel: &str) -> String {
        self.channel_key("presence.data", channel)
    }

    /// The channel's presence expiry index.
    pub fn presence_expire(&self, channel: &str) -> String {
        self.channel_key("presence.expire", channel)
    }

    /// The PUB/SUB channel that carries `channel`'s publications, joins and leaves.
    pub fn pubsub(&self, channel: &str) -> String {
        self.channel_key("pub", channel)
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
        format!("{}.occ.{channel}", self.occupancy_base)
    }

    /// The channels node `uid` holds subscribers of.
    pub fn node_channels(&self, uid: &str) -> String {
        format!("{}.occn.{uid}", self.occupancy_base)
    }

    /// Node uid → last lifecycle heartbeat.
    pub fn node_heartbeats(&self) -> String {
        format!("{}.occnodes", self.occupancy_base)
    }

    /// The connection ids of `user` (per-user connection limit).
    pub fn user_connections(&self, user: &str) -> String {
        format!("{}.conns.{user}", self.prefix)
    }

    /// The channel a PUB/SUB channel name carries, if it is one of ours.
    pub fn channel_of<'a>(&self, pubsub: &'a str) -> Option<&'a str> {
        let rest = pubsub.strip_prefix(&self.pub_prefix)?;
        if self.tags.is_empty() {
            return Some(rest);
        }
        // `{<tag>}.<channel>`: tags hold no `}`.
        let end = rest.strip_prefix('{')?.find("}.")?;
        Some(&rest[end + 3..])
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
        assert_eq!(k.occupancy("c"), "pw.occ.c");
    }

    #[test]
    fn cluster_layout_puts_a_channel_on_one_slot() {
        let k = Keys::cluster("pw", crate::slots::partition_tags(16));
        for ch in ["chat:1", "a.b", "{x}", "}", "news{1}"] {
            let slot = crate::slots::key_slot(&k.stream(ch));
            for name in [
                k.meta(ch),
                k.idempotency(ch, "key"),
                k.presence_data(ch),
                k.presence_expire(ch),
                k.pubsub(ch),
            ] {
                assert_eq!(crate::slots::key_slot(&name), slot, "{name}");
            }
            assert_eq!(k.channel_of(&k.pubsub(ch)), Some(ch));
        }
        assert_ne!(k.idempotency("a.b", "c"), k.idempotency("a", "b.c"));
        let occ = crate::slots::key_slot(&k.node_heartbeats());
        assert_eq!(crate::slots::key_slot(&k.occupancy("x")), occ);
        assert_eq!(crate::slots::key_slot(&k.node_channels("n")), occ);
        assert!(k.is_control(k.control()) && !k.is_control(&k.pubsub("c")));
    }
}
