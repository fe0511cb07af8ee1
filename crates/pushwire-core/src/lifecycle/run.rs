//! The node's lifecycle task: records → numbered events, cluster-wide occupancy, heartbeats,
//! lost nodes and snapshots.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, EventKind, Record, SnapshotEntry};
use crate::auth::unix_now_ms;
use crate::node::Node;

impl Node {
    /// Runs the lifecycle pipeline until `cancel` fires, handing every event to `out` in
    /// per-node sequence order (waiting when `out` is full: the bounded record queue absorbs
    /// the wait, dropping beyond it). Every `node.info_interval` it heart-beats in the engine
    /// and sweeps nodes silent for `node.info_ttl` (`node_lost` and the channels they left
    /// vacant); every `lifecycle.snapshot_interval` it emits a snapshot. Call once; returns
    /// at once when lifecycle events are disabled.
    pub async fn run_lifecycle(
        self: Arc<Self>,
        out: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) {
        let lifecycle = self.lifecycle();
        if !lifecycle.enabled() {
            return;
        }
        let Some(mut records) = lifecycle.take_receiver() else {
            tracing::error!("run_lifecycle called twice");
            return;
        };
        let mut heartbeat = tokio::time::interval(self.cluster().config().info_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let snapshot_every = lifecycle.settings().snapshot_interval;
        let mut snapshot =
            tokio::time::interval_at(tokio::time::Instant::now() + snapshot_every, snapshot_every);
        snapshot.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let events = tokio::select! {
                _ = cancel.cancelled() => return,
                Some(record) = records.recv() => self.resolve(record).await,
                _ = heartbeat.tick() => self.heartbeat_and_sweep().await,
                _ = snapshot.tick() => vec![self.snapshot_event()],
            };
            for event in events {
                if out.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    fn event(&self, kind: EventKind) -> Event {
        let lifecycle = self.lifecycle();
        lifecycle.count(kind);
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            node: self.id().to_owned(),
            seq: lifecycle.next_seq(),
            time: unix_now_ms(),
            client: None,
            user: None,
            channel: None,
            code: None,
            reason: None,
            lost_node: None,
            connections: None,
        }
    }

    fn engine_failed(&self, what: &str, e: impl std::fmt::Display) {
        let m = &self.lifecycle().metrics().engine_errors;
        if m.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
            tracing::warn!(error = %e, what, "lifecycle: engine call failed");
        }
    }

    async fn resolve(&self, record: Record) -> Vec<Event> {
        let client_event = |kind, client: String, user: String| {
            let mut e = self.event(kind);
            e.client = Some(client);
            e.user = Some(user);
            e
        };
        match record {
            Record::Connect { client, user } => {
                vec![client_event(EventKind::Connect, client, user)]
            }
            Record::Disconnect {
                client,
                user,
                code,
                reason,
            } => {
                let mut e = client_event(EventKind::Disconnect, client, user);
                e.code = Some(code);
                e.reason = Some(reason);
                vec![e]
            }
            Record::Subscribe {
                client,
                user,
                channel,
            } => {
                let mut e = client_event(EventKind::Subscribe, client, user);
                e.channel = Some(channel);
                vec![e]
            }
            Record::Unsubscribe {
                client,
                user,
                channel,
            } => {
                let mut e = client_event(EventKind::Unsubscribe, client, user);
                e.channel = Some(channel);
                vec![e]
            }
            Record::NodeOccupied(channel) => {
                match self.engine().occupancy.occupy(&channel, self.id()).await {
                    Ok(true) => vec![self.channel_event(EventKind::ChannelOccupied, channel)],
                    Ok(false) => Vec::new(),
                    Err(e) => {
                        self.engine_failed("occupy", e);
                        Vec::new()
                    }
                }
            }
            Record::NodeVacated(channel) => {
                match self.engine().occupancy.vacate(&channel, self.id()).await {
                    Ok(true) => vec![self.channel_event(EventKind::ChannelVacated, channel)],
                    Ok(false) => Vec::new(),
                    Err(e) => {
                        self.engine_failed("vacate", e);
                        Vec::new()
                    }
                }
            }
        }
    }

    fn channel_event(&self, kind: EventKind, channel: String) -> Event {
        let mut e = self.event(kind);
        e.channel = Some(channel);
        e
    }

    async fn heartbeat_and_sweep(&self) -> Vec<Event> {
        let occupancy = &self.engine().occupancy;
        if let Err(e) = occupancy.heartbeat(self.id()).await {
            self.engine_failed("heartbeat", e);
            return Vec::new();
        }
        let ttl = self.cluster().config().info_ttl.as_millis() as u64;
        let lost = match occupancy.sweep(ttl).await {
            Ok(lost) => lost,
            Err(e) => {
                self.engine_failed("sweep", e);
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        for (node, channels) in lost {
            tracing::warn!(node = %node, channels = channels.len(), "lifecycle: node lost");
            let mut e = self.event(EventKind::NodeLost);
            e.lost_node = Some(node);
            events.push(e);
            for channel in channels {
                events.push(self.channel_event(EventKind::ChannelVacated, channel));
            }
        }
        events
    }

    fn snapshot_event(&self) -> Event {
        let mut connections: Vec<SnapshotEntry> = self
            .registry()
            .all()
            .iter()
            .map(|c| {
                let mut channels: Vec<String> = c.channels().into_iter().collect();
                channels.sort();
                SnapshotEntry {
                    client: c.id().to_owned(),
                    user: c.user(),
                    channels,
                }
            })
            .collect();
        connections.sort_by(|a, b| a.client.cmp(&b.client));
        let mut e = self.event(EventKind::Snapshot);
        e.connections = Some(connections);
        e
    }
}
