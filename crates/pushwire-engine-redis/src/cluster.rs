//! Redis Cluster mode (`engine.redis.cluster_address`): the command connection and the node's
//! sharded PUB/SUB.
//!
//! Commands go through the `redis` crate's cluster connection, which follows `MOVED`/`ASK`,
//! refreshes the slot map when a node fails and retries. Every key and the shard channel of
//! one channel carry its partition's hash tag ([`crate::keys`]), so the publish script runs on
//! one slot and its `SPUBLISH` reaches exactly the nodes that `SSUBSCRIBE`d that channel on
//! the master serving the slot: fan-out scales with the masters.
//!
//! PUB/SUB runs on a second cluster connection in RESP3 with a push handler: the crate keeps
//! one connection per cluster node, so a pushwire node holds at most one PUB/SUB connection
//! per Redis node whatever the number of channels. Subscription changes are applied by one
//! task (the controller), grouped per partition (one slot per `SSUBSCRIBE`, as Redis
//! requires). Control messages use classic `SUBSCRIBE`/`PUBLISH`, which a cluster broadcasts
//! to every node.
//!
//! Continuity: when the crate reports a lost node connection (`Disconnection` push), the
//! messages in flight are gone; every channel with subscribers is resynced (`on_resync`, the
//! hub closes its subscribers with 3010 and they recover from history), and every channel is
//! `SSUBSCRIBE`d again explicitly on its next subscribe (confirmed by the master that serves
//! its slot then). A shard channel the server unsubscribes by itself (its slot moved to
//! another master) is resynced the same way. A probe routes `PING` to the master of every
//! partition's slot each second: the engine reports the PUB/SUB connection up only while all
//! answer, and a failing probe makes the crate refresh its slot map after a failover.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_core::engine::EngineError;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Msg, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::codec::{self, Message};
use crate::config::RedisConfig;
use crate::error::{backend, StartError};
use crate::keys::Keys;
use crate::metrics::RedisMetrics;
use crate::pubsub::{Command, PubSubHandle, SharedHandler};
use crate::slots::key_slot;
use crate::tls::Roots;

/// Subscription changes queued to the controller at most.
const QUEUE: usize = 4096;
/// Subscription changes applied in one batch at most.
const BATCH: usize = 512;
/// How often every partition's master is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The seed URL for a `cluster_address` entry: a `redis://`/`rediss://` URL as given, or
/// `host:port` completed with the scheme and credentials of `base` (`engine.redis.address`).
/// `None` when the entry is neither.
pub(crate) fn seed_url(entry: &str, base: &str) -> Option<String> {
    let entry = entry.trim();
    if entry.contains("://") {
        if !(entry.starts_with("redis://") || entry.starts_with("rediss://")) {
            return None;
        }
        return redis::Client::open(entry).ok().map(|_| entry.to_owned());
    }
    let (host, port) = entry.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() || host.contains(['/', '@']) {
        return None;
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("redis", base));
    let authority = rest.split('/').next().unwrap_or("");
    let credentials = authority
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    let url = format!("{scheme}://{credentials}{entry}");
    redis::Client::open(url.as_str()).ok().map(|_| url)
}

fn seeds(config: &RedisConfig) -> Vec<String> {
    config
        .cluster_address
        .iter()
        .filter_map(|e| seed_url(e, &config.address.urls()[0]))
        .collect()
}

/// A cluster client builder: RESP3 for the PUB/SUB connection (pushes), RESP2 for commands
/// (the replies the scripts' readers expect).
/// With `roots` (`engine.redis.tls_ca_pem_file`), `rediss://` nodes are verified with them.
fn builder(config: &RedisConfig, resp3: bool, roots: &Roots) -> ClusterClientBuilder {
    let builder = match roots.redis.clone() {
        Some(certs) => ClusterClientBuilder::new(seeds(config)).certs(certs),
        None => ClusterClientBuilder::new(seeds(config)),
    };
    builder
        .use_protocol(if resp3 {
            redis::ProtocolVersion::RESP3
        } else {
            redis::ProtocolVersion::RESP2
        })
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .overall_response_timeout(Some(config.command_timeout))
        .min_retry_wait(config.reconnect_min_delay.as_millis().max(1) as u64)
        .max_retry_wait(config.reconnect_max_delay.as_millis().max(1) as u64)
}

/// What the cluster connections report to.
pub(crate) struct Hooks {
    /// The node's event handler.
    pub handler: SharedHandler,
    /// The engine's counters.
    pub metrics: Arc<RedisMetrics>,
}

/// Connects to the cluster: the command connection, the PUB/SUB connection, a first probe of
/// every partition's master, and the controller task (stopped by `cancel`). Errors name
/// `engine.redis.cluster_address`: unreachable seeds, a seed that is a plain Redis (no
/// cluster support), or slots that no master serves.
pub(crate) async fn connect(
    config: &RedisConfig,
    keys: Keys,
    hooks: Hooks,
    cancel: CancellationToken,
) -> Result<(ClusterConnection, PubSubHandle, JoinHandle<()>), StartError> {
    let seeds_text = config.cluster_address.join(",");
    let fail = |source: redis::RedisError| StartError::Cluster {
        seeds: seeds_text.clone(),
        source,
    };
    let start_timeout = config.connect_timeout * 3 + config.command_timeout;
    let timed_out = || StartError::ClusterTimeout {
        seeds: seeds_text.clone(),
        timeout: start_timeout,
    };
    let roots = Roots::load(config)?;
    let commands = builder(config, false, &roots).build().map_err(fail)?;
    let mut conn = tokio::time::timeout(start_timeout, commands.get_async_connection())
        .await
        .map_err(|_| timed_out())?
        .map_err(fail)?;
    let shared = Arc::new(Shared {
        keys: keys.clone(),
        handler: hooks.handler,
        metrics: hooks.metrics,
        state: Mutex::new(State::default()),
    });
    let push = shared.clone();
    let pubsub_client = builder(config, true, &roots)
        .push_sender(move |info: PushInfo| -> Result<(), ()> {
            push.on_push(info);
            Ok(())
        })
        .build()
        .map_err(fail)?;
    let mut pubsub = tokio::time::timeout(start_timeout, pubsub_client.get_async_connection())
        .await
        .map_err(|_| timed_out())?
        .map_err(fail)?;
    tokio::time::timeout(start_timeout, probe(&mut conn, &keys))
        .await
        .map_err(|_| timed_out())?
        .map_err(fail)?;
    tokio::time::timeout(start_timeout, probe(&mut pubsub, &keys))
        .await
        .map_err(|_| timed_out())?
        .map_err(fail)?;
    shared.metrics.set_pubsub_connected(true);
    shared.state.lock().connected = true;
    let (tx, rx) = mpsc::channel(QUEUE);
    let controller = Controller {
        conn: pubsub,
        shared,
        rx,
        command_timeout: config.command_timeout,
        cancel,
        pinned: Vec::new(),
    };
    let task = tokio::spawn(controller.run());
    Ok((conn, PubSubHandle::from_sender(tx), task))
}

/// Routes `PING` to the master serving every partition's slot.
async fn probe(conn: &mut ClusterConnection, keys: &Keys) -> redis::RedisResult<()> {
    let slots: HashSet<u16> = (0..keys.partitions())
        .map(|i| key_slot(keys.partition_tag(i)))
        .collect();
    for slot in slots {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            slot,
            SlotAddr::Master,
        )));
        conn.route_command(redis::cmd("PING"), route).await?;
    }
    Ok(())
}

#[derive(Default)]
struct State {
    /// Subscribe minus unsubscribe calls per channel (as in `pubsub`).
    counts: HashMap<String, i64>,
    /// Channels whose `SSUBSCRIBE` a master confirmed since the last loss.
    confirmed: HashSet<String>,
    /// Whether the last probe (or the start) found every partition's master.
    connected: bool,
}

/// What the push handler (called by the crate's connection task) and the controller share.
struct Shared {
    keys: Keys,
    handler: SharedHandler,
    metrics: Arc<RedisMetrics>,
    state: Mutex<State>,
}

impl Shared {
    /// Handles one push: messages to the node, losses to resyncs.
    fn on_push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Disconnection => self.lost(),
            PushKind::SUnsubscribe => {
                let Some(name) = info.data.first().and_then(text) else {
                    return;
                };
                let Some(channel) = self.keys.channel_of(&name) else {
                    return;
                };
                let unsolicited = {
                    let mut state = self.state.lock();
                    let wanted = state.counts.get(channel).is_some_and(|n| *n > 0);
                    wanted && state.confirmed.remove(channel)
                };
                if unsolicited {
                    tracing::warn!(channel, "redis cluster moved a shard channel; resyncing it");
                    if let Some(handler) = self.handler.get() {
                        handler.on_resync(&[channel.to_owned()]);
                    }
                }
            }
            PushKind::Message | PushKind::SMessage => {
                let Some(msg) = Msg::from_push_info(info) else {
                    return;
                };
                self.deliver(&msg);
            }
            _ => {}
        }
    }

    fn deliver(&self, msg: &Msg) {
        let name = msg.get_channel_name();
        let Some(channel) = self.keys.channel_of(name) else {
            if let (true, Some(handler)) = (self.keys.is_control(name), self.handler.get()) {
                handler.on_control(msg.get_payload_bytes());
            }
            return;
        };
        RedisMetrics::inc(&self.metrics.pubsub_messages);
        let Some(handler) = self.handler.get() else {
            return;
        };
        match codec::decode_message(msg.get_payload_bytes()) {
            Ok(Message::Publication(p)) => handler.on_publication(channel, &p),
            Ok(Message::JoinLeave(info, join)) => handler.on_join_leave(channel, &info, join),
            Err(e) => tracing::warn!(channel, error = %e, "dropped a malformed pub/sub message"),
        }
    }

    /// A node connection was lost: whatever it carried is gone. Every channel is resynced
    /// and must be confirmed again.
    fn lost(&self) {
        let channels: Vec<String> = {
            let mut state = self.state.lock();
            state.confirmed.clear();
            if state.connected {
                state.connected = false;
                self.metrics.set_pubsub_connected(false);
            }
            state
                .counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, _)| c.clone())
                .collect()
        };
        tracing::warn!(
            channels = channels.len(),
            "redis cluster pub/sub lost a node connection; resyncing"
        );
        if let Some(handler) = self.handler.get()
            && !channels.is_empty()
        {
            handler.on_resync(&channels);
        }
    }

    /// Records a probe's result in the gauge (and counts a recovery as a reconnect).
    fn probed(&self, ok: bool) {
        let mut state = self.state.lock();
        if ok != state.connected {
            state.connected = ok;
            self.metrics.set_pubsub_connected(ok);
            if ok {
                RedisMetrics::inc(&self.metrics.pubsub_reconnects);
                tracing::info!("redis cluster pub/sub: every partition's master answers again");
            } else {
                tracing::warn!("redis cluster pub/sub: a partition's master does not answer");
            }
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

struct Controller {
    conn: ClusterConnection,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    command_timeout: Duration,
    cancel: CancellationToken,
    /// Control channels, subscribed with classic `SUBSCRIBE` (the crate resubscribes them).
    pinned: Vec<String>,
}

impl Controller {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => {
                    let ok = tokio::time::timeout(
                        self.command_timeout,
                        probe(&mut self.conn, &self.shared.keys),
                    )
                    .await;
                    self.shared.probed(matches!(ok, Ok(Ok(()))));
                }
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    self.apply_batch(cmd).await;
                }
            }
        }
    }

    /// Applies `first` and whatever else is queued (up to [`BATCH`]): one `SSUBSCRIBE` and one
    /// `SUNSUBSCRIBE` per partition touched.
    async fn apply_batch(&mut self, first: Command) {
        let mut waiters: HashMap<String, Vec<oneshot::Sender<Result<(), EngineError>>>> =
            HashMap::new();
        let mut pins = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        let mut before: HashMap<String, i64> = HashMap::new();
        {
            let mut state = self.shared.state.lock();
            let mut next = Some(first);
            let mut n = 0;
            while let Some(cmd) = next.take() {
                let (channel, delta) = match cmd {
                    Command::Subscribe { channel, done } => {
                        waiters.entry(channel.clone()).or_default().push(done);
                        (channel, 1)
                    }
                    Command::Unsubscribe { channel } => (channel, -1),
                    Command::Pin { name } => {
                        pins.push(name);
                        next = self.rx.try_recv().ok();
                        continue;
                    }
                };
                let count = state.counts.entry(channel.clone()).or_insert(0);
                if !before.contains_key(&channel) {
                    before.insert(channel.clone(), *count);
                    touched.push(channel.clone());
                }
                *count += delta;
                if *count == 0 {
                    state.counts.remove(&channel);
                }
                n += 1;
                if n < BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
        }
        if !pins.is_empty() {
            let r = tokio::time::timeout(self.command_timeout, self.conn.subscribe(&pins)).await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::error!("redis cluster: control channels not subscribed");
            }
            self.pinned.extend(pins);
        }
        // Per partition: channels to subscribe (wanted, not confirmed) and to unsubscribe.
        let mut subscribe: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut unsubscribe: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        {
            let mut state = self.shared.state.lock();
            for channel in touched {
                let was = before[&channel];
                let now = state.counts.get(&channel).copied().unwrap_or(0);
                let partition = self.shared.keys.partition(&channel);
                if now > 0 && !state.confirmed.contains(&channel) {
                    subscribe.entry(partition).or_default().push(channel);
                } else if was > 0 && now <= 0 {
                    state.confirmed.remove(&channel);
                    unsubscribe.entry(partition).or_default().push(channel);
                } else if now > 0
                    && let Some(ws) = waiters.remove(&channel)
                {
                    for w in ws {
                        let _ = w.send(Ok(()));
                    }
                }
            }
        }
        for channels in subscribe.into_values() {
            for chunk in channels.chunks(BATCH) {
                let names: Vec<String> = chunk.iter().map(|c| self.shared.keys.pubsub(c)).collect();
                let result =
                    match tokio::time::timeout(self.command_timeout, self.conn.ssubscribe(&names))
                        .await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(backend(e)),
                        Err(_) => Err(EngineError::backend("redis: SSUBSCRIBE timed out")),
                    };
                if result.is_ok() {
                    let mut state = self.shared.state.lock();
                    for c in chunk {
                        if state.counts.get(c).is_some_and(|n| *n > 0) {
                            state.confirmed.insert(c.clone());
                        }
                    }
                } else {
                    tracing::warn!(channels = chunk.len(), "redis cluster SSUBSCRIBE failed");
                }
                for c in chunk {
                    for w in waiters.remove(c).unwrap_or_default() {
                        let _ = w.send(result.clone());
                    }
                }
            }
        }
        for channels in unsubscribe.into_values() {
            for chunk in channels.chunks(BATCH) {
                let names: Vec<String> = chunk.iter().map(|c| self.shared.keys.pubsub(c)).collect();
                let r = tokio::time::timeout(self.command_timeout, self.conn.sunsubscribe(&names))
                    .await;
                if !matches!(r, Ok(Ok(()))) {
                    // A stale shard subscription only brings messages the hub drops.
                    tracing::debug!(channels = chunk.len(), "redis cluster SUNSUBSCRIBE failed");
                }
            }
        }
        for (_, ws) in waiters {
            for w in ws {
                let _ = w.send(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_urls_take_scheme_and_credentials_from_the_address() {
        assert_eq!(
            seed_url("127.0.0.1:7001", "redis://127.0.0.1:6379").as_deref(),
            Some("redis://127.0.0.1:7001")
        );
        assert_eq!(
            seed_url("h:7001", "rediss://u:p@x:6379/0").as_deref(),
            Some("rediss://u:p@h:7001")
        );
        assert_eq!(
            seed_url("redis://h:7002", "redis://x").as_deref(),
            Some("redis://h:7002")
        );
        for bad in ["h", "h:port", "http://h:1", ":7001", "u@h:1"] {
            assert_eq!(seed_url(bad, "redis://x:1"), None, "{bad}");
        }
    }
}
