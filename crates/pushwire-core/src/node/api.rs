//! Node operations shared by the server API and client commands.

use std::collections::{BTreeMap, HashMap};

use pushwire_protocol::{
    ClientInfo, Disconnect, ErrorCode, HistoryResult, Publication, RawJson, StreamPosition,
    Unsubscribe,
};

use super::Node;
use crate::config::{ChannelOptions, DataFormat};
use crate::engine::{EngineError, HistoryQuery, PublishOptions, PublishOutcome};
use crate::metrics::Metrics;

/// A publication to make, as the API or a client asks.
#[derive(Debug, Clone, Default)]
pub struct PublishParams {
    /// Payload.
    pub data: RawJson,
    /// Event-type tags.
    pub tags: BTreeMap<String, String>,
    /// Publisher, for client publications.
    pub info: Option<ClientInfo>,
    /// Do not append to history.
    pub skip_history: bool,
    /// Drop duplicates with this key for 5 minutes.
    pub idempotency_key: Option<String>,
    /// Drop publications whose version is not above the last seen.
    pub version: u64,
    /// Version epoch.
    pub version_epoch: String,
    /// The publication may go as a Fossil delta to subscribers that negotiated one (also
    /// on when the namespace has `delta_publish`).
    pub delta: bool,
}

/// Which connections of a user an API call targets.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSelector {
    /// User id.
    pub user: String,
    /// Only this client id, if set.
    pub client: Option<String>,
    /// Only the connection with this emulation/unidirectional session id, if set.
    pub session: Option<String>,
    /// Client ids to spare.
    pub whitelist: Vec<String>,
}

/// Numbers for the `info` API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeInfo {
    /// Node id.
    pub uid: String,
    /// Node name.
    pub name: String,
    /// Server version.
    pub version: String,
    /// Connected clients.
    pub num_clients: u32,
    /// Distinct connected users.
    pub num_users: u32,
    /// Channels with subscribers.
    pub num_channels: u32,
    /// Subscriptions.
    pub num_subs: u32,
    /// Seconds since start.
    pub uptime: u32,
}

pub(crate) fn engine_error(e: EngineError) -> ErrorCode {
    match e {
        EngineError::EpochMismatch => ErrorCode::UnrecoverablePosition,
        e @ EngineError::Backend { .. } => {
            tracing::warn!(error = %e, "engine error");
            ErrorCode::Internal
        }
        // The engine logged the circuit opening; one line per refused call would flood.
        EngineError::Unavailable { .. } => ErrorCode::Internal,
    }
}

/// Checks `data` against the namespace's `publication_data_format`.
pub(crate) fn validate_data(options: &ChannelOptions, data: &RawJson) -> Result<(), ErrorCode> {
    let ok = match options.publication_data_format {
        DataFormat::Default => !data.is_empty(),
        DataFormat::Json => !data.is_empty() && data.is_valid_json(),
        DataFormat::JsonObject => {
            data.is_valid_json()
                && data
                    .as_bytes()
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| *b == b'{')
        }
        DataFormat::Binary => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ErrorCode::BadRequest)
    }
}

impl ConnectionSelector {
    /// Whether `client` is targeted by the `client` and `session` filters (the user is
    /// matched by the registry lookup).
    pub fn matches(&self, client: &crate::client::Client) -> bool {
        self.client.as_deref().is_none_or(|id| id == client.id())
            && self
                .session
                .as_deref()
                .is_none_or(|s| s == client.session())
    }
}

/// Clears the server-internal "may go as a delta" mark the stream keeps on publications
/// ([`Publication::delta`]): read from history they are always full payloads.
pub(crate) fn without_delta_marks(
    mut page: crate::engine::HistoryPage,
) -> crate::engine::HistoryPage {
    for p in &mut page.publications {
        p.delta = false;
    }
    page
}

impl Node {
    /// Publishes to `channel`: validates the name and data, appends to history as the
    /// namespace says, and delivers to subscribers.
    pub async fn publish(
        &self,
        channel: &str,
        params: PublishParams,
    ) -> Result<PublishOutcome, ErrorCode> {
        let info = self.namespaces.resolve(channel)?;
        let ns = &info.namespace.options;
        validate_data(ns, &params.data)?;
        let options = PublishOptions {
            history_size: if params.skip_history {
                0
            } else {
                ns.history_size
            },
            history_ttl: ns.history_ttl,
            history_meta_ttl: self.meta_ttl(ns),
            idempotency_key: params.idempotency_key.filter(|k| !k.is_empty()),
            version: params.version,
            version_epoch: params.version_epoch,
        };
        let publication = Publication {
            data: params.data,
            info: params.info,
            tags: params.tags,
            delta: params.delta || ns.delta_publish,
            ..Default::default()
        };
        let outcome = self
            .broker
            .publish(channel, publication, &options)
            .await
            .map_err(engine_error)?;
        if !outcome.suppressed {
            Metrics::add(&self.metrics.publications, 1);
        }
        Ok(outcome)
    }

    pub(crate) fn meta_ttl(&self, ns: &ChannelOptions) -> std::time::Duration {
        if ns.history_meta_ttl.is_zero() {
            self.config.channel.history_meta_ttl
        } else {
            ns.history_meta_ttl
        }
    }

    /// Reads history: `limit` 0 = position only, -1 = all (capped by
    /// `client.history_max_publication_limit`), above the cap = capped. 108 when history is
    /// off, 112 when `since.epoch` is not the stream's, 107 for `reverse` with offset 0.
    pub async fn history(
        &self,
        channel: &str,
        limit: i32,
        since: Option<StreamPosition>,
        reverse: bool,
    ) -> Result<HistoryResult, ErrorCode> {
        let info = self.namespaces.resolve(channel)?;
        let ns = &info.namespace.options;
        if !ns.history_enabled() {
            return Err(ErrorCode::NotAvailable);
        }
        if reverse && since.as_ref().is_some_and(|s| s.offset == 0) {
            return Err(ErrorCode::BadRequest);
        }
        if limit < -1 {
            return Err(ErrorCode::BadRequest);
        }
        let cap = self.config.client.history_max_publication_limit;
        let limit = if limit < 0 {
            cap
        } else {
            (limit as usize).min(cap)
        };
        let page = self
            .broker
            .history(
                channel,
                HistoryQuery {
                    since,
                    limit,
                    reverse,
                    meta_ttl: self.meta_ttl(ns),
                },
            )
            .await
            .map(without_delta_marks)
            .map_err(engine_error)?;
        Ok(HistoryResult {
            publications: page.publications,
            epoch: page.position.epoch,
            offset: page.position.offset,
        })
    }

    /// Removes a channel's publications, keeping its position. 108 when history is off.
    pub async fn history_remove(&self, channel: &str) -> Result<(), ErrorCode> {
        let info = self.namespaces.resolve(channel)?;
        if !info.namespace.options.history_enabled() {
            return Err(ErrorCode::NotAvailable);
        }
        self.broker
            .remove_history(channel)
            .await
            .map_err(engine_error)
    }

    /// Presence entries keyed by client id. 108 when presence is off.
    pub async fn presence_of(
        &self,
        channel: &str,
    ) -> Result<HashMap<String, ClientInfo>, ErrorCode> {
        let info = self.namespaces.resolve(channel)?;
        if !info.namespace.options.presence {
            return Err(ErrorCode::NotAvailable);
        }
        self.engine
            .presence
            .presence(channel)
            .await
            .map_err(engine_error)
    }

    /// Presence counts. 108 when presence is off.
    pub async fn presence_stats_of(
        &self,
        channel: &str,
    ) -> Result<crate::engine::PresenceStats, ErrorCode> {
        let info = self.namespaces.resolve(channel)?;
        if !info.namespace.options.presence {
            return Err(ErrorCode::NotAvailable);
        }
        self.engine
            .presence
            .stats(channel)
            .await
            .map_err(engine_error)
    }

    /// This node's numbers (`info` lists them for every node: [`Node::cluster_info`]).
    pub fn info(&self) -> NodeInfo {
        let (num_clients, num_users) = self.registry.counts();
        let (num_channels, num_subs) = self.hub.counts();
        NodeInfo {
            uid: self.id.clone(),
            name: self.name.clone(),
            version: super::VERSION.into(),
            num_clients: num_clients as u32,
            num_users: num_users as u32,
            num_channels: num_channels as u32,
            num_subs: num_subs as u32,
            uptime: self.uptime().as_secs() as u32,
        }
    }

    /// The live connections a user operation targets.
    fn targeted(&self, target: &ConnectionSelector) -> Vec<std::sync::Arc<crate::client::Client>> {
        let mut clients = self.registry.user_clients(&target.user);
        clients.retain(|c| target.matches(c));
        clients
    }

    /// Disconnects this node's targeted connections with `disconnect`. Returns how many.
    pub(crate) fn disconnect_local(
        &self,
        target: &ConnectionSelector,
        disconnect: &Disconnect,
    ) -> usize {
        let mut n = 0;
        for c in self.targeted(target) {
            if target.whitelist.iter().any(|w| w == c.id()) {
                continue;
            }
            c.disconnect(disconnect.clone());
            n += 1;
        }
        n
    }

    /// Subscribes this node's targeted connections of a user to `channel`, each getting a
    /// Subscribe push; `since` recovers from that position. Returns how many.
    pub(crate) async fn subscribe_local(
        &self,
        target: &ConnectionSelector,
        channel: &str,
        info: RawJson,
        data: RawJson,
        since: Option<StreamPosition>,
        overrides: crate::auth::ChannelOverride,
    ) -> Result<usize, ErrorCode> {
        if channel.is_empty() || target.user.is_empty() && target.client.is_none() {
            return Err(ErrorCode::BadRequest);
        }
        self.namespaces.resolve(channel)?;
        let mut n = 0;
        for c in self.targeted(target) {
            let mut req = pushwire_protocol::SubscribeRequest {
                channel: channel.to_owned(),
                ..Default::default()
            };
            if let Some(s) = &since {
                req.recover = true;
                req.offset = s.offset;
                req.epoch = s.epoch.clone();
            }
            match c
                .server_subscribe(req, info.clone(), data.clone(), overrides)
                .await
            {
                Ok(()) => n += 1,
                Err(ErrorCode::AlreadySubscribed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Refreshes this node's targeted connections. Returns how many.
    pub(crate) fn refresh_local(
        &self,
        target: &ConnectionSelector,
        expired: bool,
        expire_at: Option<i64>,
        info: Option<&RawJson>,
    ) -> usize {
        let mut n = 0;
        for c in self.targeted(target) {
            c.server_refresh(expired, expire_at, info.cloned());
            n += 1;
        }
        n
    }

    /// Unsubscribes this node's targeted connections from `channel` (every channel when
    /// empty) with an Unsubscribe push (2000). Returns how many.
    pub(crate) async fn unsubscribe_local(
        &self,
        target: &ConnectionSelector,
        channel: &str,
    ) -> Result<usize, ErrorCode> {
        if !channel.is_empty() {
            self.namespaces.resolve(channel)?;
        }
        let mut n = 0;
        for c in self.targeted(target) {
            if c.server_unsubscribe(channel, Unsubscribe::SERVER).await {
                n += 1;
            }
        }
        Ok(n)
    }
}
