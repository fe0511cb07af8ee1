//! `subscribe` (permissions, positioning, recovery) and `unsubscribe`.

use std::sync::Arc;

use pushwire_protocol::{
    Disconnect, ErrorCode, Publication, Push, RawJson, Reply, StreamPosition, SubscribePush,
    SubscribeRequest, SubscribeResult, Unsubscribe, UnsubscribeRequest,
    SUBSCRIBE_FLAG_REJECT_UNRECOVERED,
};

use super::{Client, CommandError, CommandResult, SubState};
use crate::auth::{unix_now, ChannelOverride, TokenError};
use crate::config::{ChannelOptions, RecoveryMode, SlowSubscriberPolicy};
use crate::engine::{EngineError, HistoryQuery};
use crate::filter;
use crate::hub::Subscriber;
use crate::lifecycle::Record;
use crate::metrics::Metrics;
use crate::namespace::ChannelInfo;
use crate::node::api::engine_error;
use crate::outbox::Shedding;

/// Who asked for a subscription.
pub(crate) enum Origin {
    /// The client, with a subscribe command: every permission is checked.
    Client,
    /// The client, in `connect.subs`: permission checked, failures skipped by the caller.
    Requested,
    /// The server (token `channels`, API `subscribe`): no permission check.
    Granted {
        /// Channel info.
        info: RawJson,
        /// Data for the subscribe result.
        data: RawJson,
        /// Namespace option overrides (token `subs` entry).
        overrides: ChannelOverride,
    },
}

/// A subscription whose result is ready but not yet sent.
pub(crate) struct Prepared {
    pub channel: Arc<str>,
    pub result: SubscribeResult,
    delivered: u64,
    /// Offset of the last publication in the result (0: none): a delta subscriber's base.
    holds: u64,
    sub: SubState,
}

/// What a subscribe was granted.
struct Grant {
    chan_info: RawJson,
    data: RawJson,
    expire_at: Option<i64>,
    overrides: ChannelOverride,
}

/// Whether a connection may use history (or presence) in a namespace, as a subscriber or not.
pub(crate) fn allowed(
    for_client: bool,
    for_subscriber: bool,
    for_anonymous: bool,
    subscribed: bool,
    anonymous: bool,
) -> bool {
    (for_client || (for_subscriber && subscribed)) && (!anonymous || for_anonymous)
}

impl Client {
    async fn authorize_subscribe(
        &self,
        req: &SubscribeRequest,
        channel: &ChannelInfo,
        user: &str,
    ) -> Result<Grant, CommandError> {
        let ns = &channel.namespace.options;
        let mut grant = Grant {
            chan_info: RawJson::default(),
            data: RawJson::default(),
            expire_at: None,
            overrides: ChannelOverride::default(),
        };
        if !req.token.is_empty() {
            let verifier = self.node.verifier().ok_or(ErrorCode::PermissionDenied)?;
            let creds = match verifier.verify_subscribe(&req.token).await {
                Ok(c) => c,
                Err(TokenError::Expired) => return Err(ErrorCode::TokenExpired.into()),
                Err(TokenError::Unavailable(_)) => return Err(ErrorCode::Internal.into()),
                Err(TokenError::Invalid(_)) => return Err(ErrorCode::PermissionDenied.into()),
            };
            if creds.channel != req.channel
                || creds.user != user
                || creds.client.as_deref().is_some_and(|c| c != &*self.id)
            {
                return Err(Disconnect::INVALID_TOKEN.into());
            }
            if creds.expire_at.is_some_and(|e| e <= unix_now()) {
                return Err(ErrorCode::Expired.into());
            }
            grant.chan_info = creds.info;
            grant.data = creds.data;
            grant.expire_at = creds.expire_at;
            grant.overrides = creds.overrides;
            return Ok(grant);
        }
        let insecure = self.node.config().client.insecure;
        if channel.private && !insecure {
            return Err(ErrorCode::PermissionDenied.into());
        }
        if let Some(a) = self.proxy_subscribe(req, ns).await? {
            return Ok(Grant {
                chan_info: a.info,
                data: a.data,
                expire_at: a.expire_at,
                overrides: a.overrides,
            });
        }
        if let Some(users) = &channel.users {
            if !user.is_empty() && users.iter().any(|u| u == user) {
                return Ok(grant);
            }
        } else if ns.allow_subscribe_for_client
            && (!user.is_empty() || ns.allow_subscribe_for_anonymous)
        {
            return Ok(grant);
        }
        if insecure {
            return Ok(grant);
        }
        Err(ErrorCode::PermissionDenied.into())
    }

    pub(super) async fn handle_subscribe(
        self: &Arc<Self>,
        id: u32,
        req: SubscribeRequest,
    ) -> CommandResult {
        if req.channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        if !req.delta.is_empty() && req.delta != "fossil" {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let prepared = self.subscribe_begin(&req, Origin::Client).await?;
        self.send_reply(&Reply {
            id,
            subscribe: Some(prepared.result.clone()),
            ..Default::default()
        });
        self.subscribe_finish(prepared).await;
        // The reply is already queued, ahead of the buffered publications.
        Ok(Reply::default())
    }

    /// Runs the subscribe logic up to the result: checks, permission, hub registration (live
    /// publications buffered), position and recovery. The caller queues the result (in a
    /// reply, a connect result or a subscribe push) and then calls [`Self::subscribe_finish`].
    pub(super) async fn subscribe_begin(
        self: &Arc<Self>,
        req: &SubscribeRequest,
        origin: Origin,
    ) -> Result<Prepared, CommandError> {
        if req.sub_type != 0 {
            return Err(ErrorCode::NotAvailable.into());
        }
        let user = {
            let st = self.state.lock();
            if st.subs.contains_key(req.channel.as_str()) {
                return Err(ErrorCode::AlreadySubscribed.into());
            }
            if st.subs.len() >= self.node.config().client.channel_limit {
                return Err(match origin {
                    Origin::Client => ErrorCode::LimitExceeded.into(),
                    _ => Disconnect::CHANNEL_LIMIT.into(),
                });
            }
            st.user.clone()
        };
        let channel = self.node.namespaces().resolve(&req.channel)?;
        let mut ns = channel.namespace.options.clone();
        if let Some(tf) = &req.tf {
            if !ns.allow_tags_filter {
                return Err(ErrorCode::BadRequest.into());
            }
            filter::validate(tf)?;
        }
        let grant = match &origin {
            Origin::Client | Origin::Requested => {
                self.authorize_subscribe(req, &channel, &user).await?
            }
            Origin::Granted {
                info,
                data,
                overrides,
            } => Grant {
                chan_info: info.clone(),
                data: data.clone(),
                expire_at: None,
                overrides: *overrides,
            },
        };
        grant.overrides.apply(&mut ns);
        let key: Arc<str> = self.node.hub().name(&req.channel);
        let anonymous = user.is_empty();
        let history_perm = allowed(
            ns.allow_history_for_client,
            ns.allow_history_for_subscriber,
            ns.allow_history_for_anonymous,
            true,
            anonymous,
        );
        let presence_perm = allowed(
            ns.allow_presence_for_client,
            ns.allow_presence_for_subscriber,
            ns.allow_presence_for_anonymous,
            true,
            anonymous,
        );
        let history = ns.history_enabled();
        let server_side = !matches!(origin, Origin::Client);
        let recoverable = history
            && (ns.force_recovery
                || ((req.recoverable || server_side) && (ns.allow_recovery || history_perm)));
        let positioned = history
            && (recoverable
                || ns.force_positioning
                || (req.positioned && (ns.allow_positioning || history_perm)));
        let push_join_leave =
            ns.force_push_join_leave || (req.join_leave && ns.join_leave && presence_perm);
        // A delta type the namespace does not allow: the subscription works without delta.
        let delta = req.delta == crate::delta::FOSSIL
            && ns
                .allowed_delta_types
                .iter()
                .any(|t| t == crate::delta::FOSSIL);
        let sub_state = SubState {
            subscribing: true,
            presence: ns.presence,
            join_leave: ns.join_leave,
            chan_info: SubState::boxed_info(grant.chan_info.clone()),
            expire_at: grant.expire_at,
            proxy_refresh: ns.sub_refresh_proxy_enabled && self.node.proxy().is_some(),
        };
        self.state
            .lock()
            .subs
            .insert(key.clone(), sub_state.clone());

        let first = self.node.hub().subscribe(
            key.clone(),
            self.key,
            Subscriber {
                outbox: self.outbox.clone(),
                encoding: self.encoding(),
                filter: req.tf.clone().map(Arc::new),
                push_join_leave,
                transport: self.transport.kind.index() as u8,
                shedding: match ns.slow_subscriber_policy {
                    SlowSubscriberPolicy::Disconnect => None,
                    SlowSubscriberPolicy::Resubscribe => Some(Shedding::Resubscribe),
                    SlowSubscriberPolicy::Latest => Some(Shedding::Latest),
                },
                delta,
            },
            true,
        );
        if first {
            self.node
                .lifecycle()
                .record(Record::NodeOccupied(req.channel.clone()));
        }
        let outcome = async {
            if first {
                self.node
                    .broker()
                    .subscribe(&req.channel)
                    .await
                    .map_err(engine_error)?;
            }
            self.position_and_recover(req, &ns, positioned, recoverable)
                .await
        }
        .await;
        let (mut result, delivered) = match outcome {
            Ok(r) => r,
            Err(e) => {
                self.abort_subscribe(&key).await;
                return Err(e);
            }
        };
        // With a sub_refresh proxy the server refreshes: the client is not told about expiry.
        if let Some(exp) = grant.expire_at.filter(|_| !sub_state.proxy_refresh) {
            result.expires = true;
            result.ttl = (exp - unix_now()).clamp(0, u32::MAX as i64) as u32;
        }
        result.data = grant.data;
        let holds = result.publications.last().map_or(0, |p| p.offset);
        if delta {
            result.delta = true;
            crate::delta::chain_recovered(&mut result.publications, self.encoding().protocol);
        }
        Ok(Prepared {
            channel: key,
            result,
            delivered,
            holds,
            sub: sub_state,
        })
    }

    /// Releases the publications buffered during [`Self::subscribe_begin`] (after the result
    /// was queued), marks the subscription live, adds presence and publishes the join.
    pub(super) async fn subscribe_finish(&self, prepared: Prepared) {
        self.node.hub().finish_recovery(
            &prepared.channel,
            self.key,
            prepared.delivered,
            prepared.holds,
        );
        // Unsubscribed meanwhile (API unsubscribe, disconnect): no join, no presence. An
        // unsubscribe that sees the flip below waits for this join before its leave.
        let _order = self.node.announce_lock(self.key).lock().await;
        let still = match self.state.lock().subs.get_mut(&prepared.channel) {
            Some(s) if s.subscribing => {
                s.subscribing = false;
                true
            }
            _ => false,
        };
        if still && prepared.sub.expire_at.is_some() {
            let mut st = self.state.lock();
            self.arm_sub_expiry(&mut st);
        }
        if still {
            self.node.lifecycle().record(Record::Subscribe {
                client: self.id.to_string(),
                user: self.user(),
                channel: prepared.channel.to_string(),
            });
            self.announce(&prepared.channel, &prepared.sub, true).await;
        }
    }

    /// Subscribes with the client's permissions and returns the result instead of sending it
    /// (for request/response transports such as long-polling). Live publications after the
    /// result's position flow into the outbox.
    pub async fn subscribe_and_position(
        self: &Arc<Self>,
        req: SubscribeRequest,
    ) -> Result<SubscribeResult, ErrorCode> {
        if req.channel.is_empty() {
            return Err(ErrorCode::BadRequest);
        }
        let prepared = match self.subscribe_begin(&req, Origin::Requested).await {
            Ok(p) => p,
            Err(CommandError::Reply(code)) => return Err(code),
            Err(CommandError::Custom(_) | CommandError::Disconnect(_)) => {
                return Err(ErrorCode::PermissionDenied)
            }
        };
        let result = prepared.result.clone();
        self.subscribe_finish(prepared).await;
        Ok(result)
    }

    /// Subscribes on the server's initiative (API `subscribe`, with `overrides` of the
    /// namespace options) and tells the client with a Subscribe push.
    pub async fn server_subscribe(
        self: &Arc<Self>,
        req: SubscribeRequest,
        info: RawJson,
        data: RawJson,
        overrides: ChannelOverride,
    ) -> Result<(), ErrorCode> {
        let prepared = match self
            .subscribe_begin(
                &req,
                Origin::Granted {
                    info,
                    data,
                    overrides,
                },
            )
            .await
        {
            Ok(p) => p,
            Err(CommandError::Reply(code)) => return Err(code),
            Err(CommandError::Custom(_)) => return Err(ErrorCode::PermissionDenied),
            Err(CommandError::Disconnect(d)) => {
                self.disconnect(d);
                return Ok(());
            }
        };
        let r = &prepared.result;
        self.send_reply(&Reply::push(Push {
            channel: req.channel.clone(),
            subscribe: Some(SubscribePush {
                recoverable: r.recoverable,
                epoch: r.epoch.clone(),
                offset: r.offset,
                positioned: r.positioned,
                data: r.data.clone(),
            }),
            ..Default::default()
        }));
        self.subscribe_finish(prepared).await;
        Ok(())
    }

    /// Reads the stream position and, when asked, the missed publications. Returns the result
    /// to send and the offset up to which publications are in it (live ones above it follow).
    async fn position_and_recover(
        &self,
        req: &SubscribeRequest,
        ns: &ChannelOptions,
        positioned: bool,
        recoverable: bool,
    ) -> Result<(SubscribeResult, u64), CommandError> {
        let mut result = SubscribeResult {
            recoverable,
            positioned,
            ..Default::default()
        };
        if !positioned {
            return Ok((result, 0));
        }
        let meta_ttl = self.node.meta_ttl(ns);
        let cache = ns.force_recovery_mode == RecoveryMode::Cache;
        let recovering = recoverable && (req.recover || (cache && ns.auto_cache_recover));
        if !recovering {
            let page = self.read(&req.channel, None, 0, false, meta_ttl).await?;
            result.epoch = page.position.epoch;
            result.offset = page.position.offset;
            let offset = result.offset;
            return Ok((result, offset));
        }
        Metrics::add(&self.node.metrics().recoveries, 1);
        result.was_recovering = true;
        let since = StreamPosition {
            offset: req.offset,
            epoch: req.epoch.clone(),
        };
        let (recovered, publications, top) = if cache {
            let page = self.read(&req.channel, None, 1, true, meta_ttl).await?;
            let top = page.position.clone();
            let fresh = page
                .publications
                .into_iter()
                .filter(|p| req.epoch != top.epoch || p.offset > req.offset)
                .collect::<Vec<_>>();
            (true, fresh, top)
        } else {
            let limit = self.node.config().client.recovery_max_publication_limit;
            match self
                .read(
                    &req.channel,
                    Some(since.clone()),
                    limit + 1,
                    false,
                    meta_ttl,
                )
                .await
            {
                Ok(page) => {
                    let top = page.position;
                    let pubs = page.publications;
                    let complete = match (pubs.first(), pubs.last()) {
                        (None, _) => top.offset == req.offset,
                        (Some(first), Some(last)) => {
                            first.offset == req.offset + 1 && last.offset == top.offset
                        }
                        _ => false,
                    };
                    // A recovery larger than one reply may be is not attempted (it would be
                    // refused on every retry): `recovered: false` instead.
                    let budget = self.node.config().client.reply_max_size;
                    let ok = complete
                        && pubs.len() <= limit
                        && pubs.iter().map(approx_size).sum::<usize>() <= budget;
                    (ok, if ok { pubs } else { Vec::new() }, top)
                }
                Err(CommandError::Reply(ErrorCode::UnrecoverablePosition)) => {
                    let page = self.read(&req.channel, None, 0, false, meta_ttl).await?;
                    (false, Vec::new(), page.position)
                }
                Err(e) => return Err(e),
            }
        };
        if !recovered {
            Metrics::add(&self.node.metrics().recoveries_failed, 1);
            if req.flag & SUBSCRIBE_FLAG_REJECT_UNRECOVERED != 0 {
                return Err(ErrorCode::UnrecoverablePosition.into());
            }
        }
        result.epoch = top.epoch;
        result.recovered = recovered;
        let delivered = publications.last().map(|p| p.offset).unwrap_or(top.offset);
        result.offset = if recovered && !cache {
            req.offset
        } else {
            top.offset
        };
        let publications: Vec<Publication> = match &req.tf {
            Some(tf) => publications
                .into_iter()
                .filter(|p| filter::matches(tf, &p.tags))
                .collect(),
            None => publications,
        };
        result.publications = publications;
        Ok((result, delivered.max(top.offset)))
    }

    async fn read(
        &self,
        channel: &str,
        since: Option<StreamPosition>,
        limit: usize,
        reverse: bool,
        meta_ttl: std::time::Duration,
    ) -> Result<crate::engine::HistoryPage, CommandError> {
        self.node
            .broker()
            .history(
                channel,
                HistoryQuery {
                    since,
                    limit,
                    reverse,
                    meta_ttl,
                },
            )
            .await
            .map(crate::node::api::without_delta_marks)
            .map_err(|e| match e {
                EngineError::EpochMismatch => ErrorCode::UnrecoverablePosition.into(),
                other => CommandError::Reply(engine_error(other)),
            })
    }

    async fn abort_subscribe(&self, channel: &Arc<str>) {
        let sub = self.state.lock().subs.remove(channel);
        if let Some(sub) = sub {
            let quiet = SubState {
                presence: false,
                join_leave: false,
                ..sub
            };
            self.release_subscription(channel, &quiet).await;
        }
    }

    /// Adds presence and publishes join (`join`), or removes presence and publishes leave.
    async fn announce(&self, channel: &str, sub: &SubState, join: bool) {
        if !sub.presence && !sub.join_leave {
            return;
        }
        let info = self.client_info(sub.chan_info());
        if sub.presence {
            let r = if join {
                self.node.presence().add(channel, info.clone()).await
            } else {
                self.node.presence().remove(channel, &self.id).await
            };
            match r {
                // Refused by an open circuit: the engine logged the opening, not each call.
                Err(e) if e.is_unavailable() => {}
                Err(e) => {
                    tracing::warn!(client = %self.id, user = %self.user(), channel, error = %e, "presence update failed");
                }
                Ok(()) => {}
            }
        }
        if sub.join_leave
            && let Err(e) = self
                .node
                .broker()
                .publish_join_leave(channel, info, join)
                .await
            && !e.is_unavailable()
        {
            tracing::warn!(client = %self.id, user = %self.user(), channel, error = %e, "join/leave publish failed");
        }
    }

    /// Drops a subscription from the hub, the broker (when last on this node) and presence.
    pub(super) async fn release_subscription(&self, channel: &str, sub: &SubState) {
        let last = self.node.hub().unsubscribe(channel, self.key);
        if !sub.subscribing {
            self.node.lifecycle().record(Record::Unsubscribe {
                client: self.id.to_string(),
                user: self.user(),
                channel: channel.to_owned(),
            });
        }
        if last {
            self.node
                .lifecycle()
                .record(Record::NodeVacated(channel.to_owned()));
            if let Err(e) = self.node.broker().unsubscribe(channel).await {
                tracing::warn!(client = %self.id, user = %self.user(), channel, error = %e, "broker unsubscribe failed");
            }
        }
        if !sub.subscribing {
            let _order = self.node.announce_lock(self.key).lock().await;
            self.announce(channel, sub, false).await;
        }
    }

    pub(super) async fn handle_unsubscribe(
        &self,
        id: u32,
        req: UnsubscribeRequest,
    ) -> CommandResult {
        if req.channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let sub = self.state.lock().subs.remove(req.channel.as_str());
        if let Some(sub) = sub {
            self.release_subscription(&req.channel, &sub).await;
        }
        Ok(Reply {
            id,
            unsubscribe: Some(Default::default()),
            ..Default::default()
        })
    }

    /// Unsubscribes the subscriptions the outbox shed (`slow_subscriber_policy = "resubscribe"`)
    /// with 2500, so the SDK resubscribes and recovers what was dropped. Called by the
    /// transport's writer with [`crate::outbox::Drained::shed`].
    pub async fn release_shed(&self, shed: &[Arc<str>]) {
        for channel in shed {
            let sub = self.state.lock().subs.remove(channel);
            if let Some(sub) = sub {
                self.release_subscription(channel, &sub).await;
            }
            // After the hub let go of it and before the push: nothing of the old subscription
            // can be queued any more, and the resubscription's publications are not dropped.
            self.outbox.release_shed(channel);
            Metrics::add(&self.node.metrics().subscriptions_shed, 1);
            self.send_reply(&Reply::push(Push {
                channel: channel.to_string(),
                unsubscribe: Some(Unsubscribe::INSUFFICIENT_STATE),
                ..Default::default()
            }));
        }
    }

    /// Unsubscribes from `channel` (every channel when empty) on the server's initiative and
    /// tells the client with an Unsubscribe push. Returns whether anything was unsubscribed.
    pub async fn server_unsubscribe(&self, channel: &str, unsubscribe: Unsubscribe) -> bool {
        let removed: Vec<(Arc<str>, SubState)> = {
            let mut st = self.state.lock();
            let keys: Vec<Arc<str>> = st
                .subs
                .keys()
                .filter(|c| channel.is_empty() || &***c == channel)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| st.subs.remove(&k).map(|s| (k, s)))
                .collect()
        };
        for (ch, sub) in &removed {
            self.release_subscription(ch, sub).await;
            self.send_reply(&Reply::push(Push {
                channel: ch.to_string(),
                unsubscribe: Some(unsubscribe.clone()),
                ..Default::default()
            }));
        }
        !removed.is_empty()
    }
}

/// About the bytes `p` takes in a reply (payload, tags and publisher info), for the recovery
/// budget (`client.reply_max_size`).
fn approx_size(p: &Publication) -> usize {
    let info = p.info.as_ref().map_or(0, |i| {
        i.user.len() + i.client.len() + i.conn_info.as_bytes().len() + i.chan_info.as_bytes().len()
    });
    let tags: usize = p.tags.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    p.data.as_bytes().len() + info + tags + 32
}
