//! Watches the sentinels for a master switch, so the node leaves a demoted master at once
//! instead of when its connections happen to fail: Sentinel turns the old master into a
//! replica only some seconds after promoting the new one, and what the old master accepted
//! meanwhile is discarded.
//!
//! One task per engine, watching every sentinel of `engine.redis.sentinel_address`:
//! subscribed to `+switch-master` and to the start (`+failover-state-send-slaveof-noone`)
//! and aborts of a failover, and asking `SENTINEL GET-MASTER-ADDR-BY-NAME` every [`POLL`] in
//! case an event is missed; a failed sentinel is reconnected with backoff. The start of a
//! failover holds commands ([`MasterResolver::failover_started`]) so the old master accepts
//! nothing during the promotion that would then be lost; a switch goes to
//! [`MasterResolver::observe`], which drops the connections to the old master (the PUB/SUB
//! controller reconnects and resyncs its channels) and releases the commands.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::RedisConfig;
use crate::sentinel::MasterResolver;
use crate::tls::Roots;

/// How often the current master is asked of the sentinel besides the switch events.
pub(crate) const POLL: Duration = Duration::from_millis(500);

/// What the watcher needs from the configuration.
pub(crate) struct WatchSettings {
    sentinels: Vec<ConnectionAddr>,
    master_name: String,
    user: String,
    password: String,
    command_timeout: Duration,
    reconnect_min_delay: Duration,
    reconnect_max_delay: Duration,
    roots: Roots,
}

impl WatchSettings {
    /// The `sentinel_*` keys and timeouts of `config` (validated), and the sentinels' TLS
    /// roots read at start.
    pub(crate) fn new(config: &RedisConfig, roots: Roots) -> WatchSettings {
        WatchSettings {
            sentinels: config
                .sentinel_address
                .iter()
                .filter_map(|s| roots.sentinel_addr(s))
                .collect(),
            master_name: config.sentinel_master_name.clone(),
            user: config.sentinel_user.clone(),
            password: config.sentinel_password.clone(),
            command_timeout: config.command_timeout,
            reconnect_min_delay: config.reconnect_min_delay,
            reconnect_max_delay: config.reconnect_max_delay,
            roots,
        }
    }

    /// How many sentinels are watched.
    pub(crate) fn len(&self) -> usize {
        self.sentinels.len()
    }

    /// A client for the first sentinel (`None` without sentinels).
    pub(crate) fn first_client(&self) -> Option<Result<redis::Client, RedisError>> {
        self.sentinels.first().map(|addr| self.client(addr))
    }

    fn client(&self, addr: &ConnectionAddr) -> Result<redis::Client, RedisError> {
        let mut node = RedisConnectionInfo::default();
        if !self.user.is_empty() {
            node = node.set_username(&self.user);
        }
        if !self.password.is_empty() {
            node = node.set_password(&self.password);
        }
        let info = addr
            .clone()
            .into_connection_info()?
            .set_redis_settings(node);
        self.roots.sentinel_client(info)
    }
}

/// How many sentinels have been tried once: subscribed to their events, or failed to.
/// The engine's start waits for all of them ([`Tried::all`]) so that a failover begun right
/// after the node starts is not missed by a watcher still connecting.
#[derive(Debug, Clone)]
pub(crate) struct Tried(tokio::sync::watch::Sender<usize>);

impl Tried {
    /// None tried yet.
    pub(crate) fn new() -> Tried {
        Tried(tokio::sync::watch::channel(0).0)
    }

    fn one_more(&self) {
        self.0.send_modify(|n| *n += 1);
    }

    /// Resolves once `total` sentinels have been tried, or after `bound`; says whether all
    /// were.
    pub(crate) async fn all(&self, total: usize, bound: Duration) -> bool {
        let mut rx = self.0.subscribe();
        tokio::time::timeout(bound, rx.wait_for(|n| *n >= total))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Watches every sentinel at once (the one leading a failover is the one that announces its
/// start) until `cancel` fires; counts each sentinel's first attempt in `tried`.
pub(crate) async fn run(
    resolver: Arc<MasterResolver>,
    settings: WatchSettings,
    tried: Tried,
    cancel: CancellationToken,
) {
    let settings = &settings;
    let watchers = settings
        .sentinels
        .iter()
        .map(|addr| watch_forever(&resolver, settings, addr, &tried, &cancel));
    futures_util::future::join_all(watchers).await;
}

/// Watches one sentinel, reconnecting with backoff, until `cancel` fires.
async fn watch_forever(
    resolver: &MasterResolver,
    settings: &WatchSettings,
    addr: &ConnectionAddr,
    tried: &Tried,
    cancel: &CancellationToken,
) {
    let mut backoff = Backoff::new(settings.reconnect_min_delay, settings.reconnect_max_delay);
    let mut first = Some(tried);
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = watch_one(resolver, settings, addr, &mut first) => r,
        };
        if let Some(tried) = first.take() {
            tried.one_more();
        }
        if let Err(e) = result {
            tracing::warn!(sentinel = %addr, error = %e, "redis sentinel watch failed; reconnecting");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

async fn watch_one(
    resolver: &MasterResolver,
    settings: &WatchSettings,
    addr: &ConnectionAddr,
    first: &mut Option<&Tried>,
) -> Result<(), RedisError> {
    let timeout = settings.command_timeout;
    let timed_out = || RedisError::from((redis::ErrorKind::Io, "sentinel did not answer in time"));
    let client = settings.client(addr)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let (mut sink, mut stream) = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??
        .split();
    let events = [
        "+switch-master",
        "+failover-state-send-slaveof-noone",
        "-failover-abort-not-elected",
        "-failover-abort-no-good-slave",
        "-failover-abort-slave-timeout",
    ];
    tokio::time::timeout(timeout, sink.subscribe(&events[..]))
        .await
        .map_err(|_| timed_out())??;
    if let Some(tried) = first.take() {
        tried.one_more();
    }
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(RedisError::from((redis::ErrorKind::Io, "sentinel connection closed")));
                };
                let payload: String = msg.get_payload().unwrap_or_default();
                let parts: Vec<&str> = payload.split(' ').collect();
                match msg.get_channel_name() {
                    // `<master name> <old ip> <old port> <new ip> <new port>`
                    "+switch-master" => {
                        if let [name, _, _, ip, port] = parts.as_slice()
                            && *name == settings.master_name {
                                resolver.observe(&format!("{ip}:{port}"));
                            }
                    }
                    // `<instance details> @ <master name> <ip> <port>`
                    event if ours(&parts, &settings.master_name) => {
                        if event.starts_with('+') {
                            resolver.failover_started();
                        } else {
                            resolver.failover_ended();
                        }
                    }
                    _ => {}
                }
            }
            _ = poll.tick() => {
                let addr: Option<(String, u16)> = tokio::time::timeout(
                    timeout,
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(&settings.master_name)
                        .query_async(&mut conn),
                )
                .await
                .map_err(|_| timed_out())??;
                if let Some((host, port)) = addr {
                    resolver.observe(&format!("{host}:{port}"));
                }
            }
        }
    }
}

/// Whether a sentinel event's details (`… @ <master name> <ip> <port>`) name our master.
fn ours(parts: &[&str], master_name: &str) -> bool {
    parts
        .iter()
        .position(|p| *p == "@")
        .and_then(|at| parts.get(at + 1))
        .is_some_and(|name| *name == master_name)
}
