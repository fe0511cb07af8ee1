//! Between the node's types and the control messages' protobuf types.

use pushwire_protocol::control as pb;
use pushwire_protocol::StreamPosition;

use crate::auth::ChannelOverride;
use crate::node::{ConnectionSelector, NodeInfo};

impl From<&ConnectionSelector> for pb::Target {
    fn from(t: &ConnectionSelector) -> Self {
        pb::Target {
            user: t.user.clone(),
            client: t.client.clone().unwrap_or_default(),
            session: t.session.clone().unwrap_or_default(),
            whitelist: t.whitelist.clone(),
        }
    }
}

impl From<pb::Target> for ConnectionSelector {
    fn from(t: pb::Target) -> Self {
        ConnectionSelector {
            user: t.user,
            client: Some(t.client).filter(|c| !c.is_empty()),
            session: Some(t.session).filter(|s| !s.is_empty()),
            whitelist: t.whitelist,
        }
    }
}

impl From<ChannelOverride> for pb::Override {
    fn from(o: ChannelOverride) -> Self {
        pb::Override {
            presence: o.presence,
            join_leave: o.join_leave,
            force_push_join_leave: o.force_push_join_leave,
            force_recovery: o.force_recovery,
            force_positioning: o.force_positioning,
        }
    }
}

impl From<pb::Override> for ChannelOverride {
    fn from(o: pb::Override) -> Self {
        ChannelOverride {
            presence: o.presence,
            join_leave: o.join_leave,
            force_push_join_leave: o.force_push_join_leave,
            force_recovery: o.force_recovery,
            force_positioning: o.force_positioning,
        }
    }
}

/// A stream position as a control message carries it.
pub fn position_to_pb(p: StreamPosition) -> pb::StreamPosition {
    pb::StreamPosition {
        offset: p.offset,
        epoch: p.epoch,
    }
}

/// A stream position from a control message.
pub fn position_from_pb(p: pb::StreamPosition) -> StreamPosition {
    StreamPosition {
        offset: p.offset,
        epoch: p.epoch,
    }
}

impl From<&NodeInfo> for pb::NodeInfo {
    fn from(i: &NodeInfo) -> Self {
        pb::NodeInfo {
            uid: i.uid.clone(),
            name: i.name.clone(),
            version: i.version.clone(),
            num_clients: i.num_clients,
            num_users: i.num_users,
            num_channels: i.num_channels,
            num_subs: i.num_subs,
            uptime: i.uptime,
        }
    }
}

impl From<pb::NodeInfo> for NodeInfo {
    fn from(i: pb::NodeInfo) -> Self {
        NodeInfo {
            uid: i.uid,
            name: i.name,
            version: i.version,
            num_clients: i.num_clients,
            num_users: i.num_users,
            num_channels: i.num_channels,
            num_subs: i.num_subs,
            uptime: i.uptime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_overrides_round_trip() {
        let t = ConnectionSelector {
            user: "42".into(),
            client: Some("c".into()),
            session: None,
            whitelist: vec!["w".into()],
        };
        let back = ConnectionSelector::from(pb::Target::from(&t));
        assert_eq!(back.user, "42");
        assert_eq!(back.client.as_deref(), Some("c"));
        assert_eq!(back.session, None);
        assert_eq!(back.whitelist, vec!["w".to_owned()]);
        let o = ChannelOverride {
            presence: Some(false),
            force_recovery: Some(true),
            ..Default::default()
        };
        let back = ChannelOverride::from(pb::Override::from(o));
        assert_eq!(back.presence, Some(false));
        assert_eq!(back.force_recovery, Some(true));
        assert_eq!(back.join_leave, None);
    }
}
