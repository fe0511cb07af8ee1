//! What a lifecycle event looks like on the wire (JSON, one object per event).

use serde::Serialize;

/// The kind of a lifecycle event (`type` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A connection authenticated.
    Connect,
    /// An authenticated connection closed (`code`, `reason`).
    Disconnect,
    /// A subscription became live (client or server-side).
    Subscribe,
    /// A live subscription ended (client, server, expiry, disconnect).
    Unsubscribe,
    /// The first subscriber of `channel` on any node.
    ChannelOccupied,
    /// The last subscriber of `channel` on any node left (or its node died).
    ChannelVacated,
    /// Node `lost_node` stopped heart-beating: its connections are gone.
    NodeLost,
    /// The node's live connections and subscriptions (`connections`), for reconciliation.
    Snapshot,
}

impl EventKind {
    /// Every kind, in documentation order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Connect,
        EventKind::Disconnect,
        EventKind::Subscribe,
        EventKind::Unsubscribe,
        EventKind::ChannelOccupied,
        EventKind::ChannelVacated,
        EventKind::NodeLost,
        EventKind::Snapshot,
    ];
}

/// One live connection in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotEntry {
    /// Client id.
    pub client: String,
    /// User id (empty: anonymous).
    pub user: String,
    /// Live subscriptions.
    pub channels: Vec<String>,
}

/// A lifecycle event. `id` is unique; `seq` grows by one per event of the emitting `node`
/// (so a consumer sees gaps and duplicates); `time` is Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unique id (UUID v4).
    pub id: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Uid of the emitting node.
    pub node: String,
    /// Per-node sequence number, from 1.
    pub seq: u64,
    /// When it was recorded, Unix ms.
    pub time: i64,
    /// Client id (connect, disconnect, subscribe, unsubscribe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// User id (connect, disconnect, subscribe, unsubscribe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Channel (subscribe, unsubscribe, channel_occupied, channel_vacated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Disconnect code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// Disconnect reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node that was lost (node_lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_node: Option<String>,
    /// Live connections (snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<SnapshotEntry>>,
}
