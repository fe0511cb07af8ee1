//! The node's control loop and its cluster-wide operations: user operations on every node,
//! `info` of every node, the `channels` survey, and `/emulation` bodies for sessions owned by
//! another node. See [`crate::cluster`] for the message flow.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use pushwire_protocol::control::{
    self as pb, envelope::Body, request, response, user_op, EmulationResponse,
};
use pushwire_protocol::{Disconnect, ErrorCode, Protocol, RawJson, StreamPosition};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{ConnectionSelector, Node, NodeInfo};
use crate::auth::ChannelOverride;
use crate::cluster::{self, ClusterMetrics};
use crate::glob::Glob;

/// What became of an `/emulation` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulationOutcome {
    /// Handed to the session's connection, or the session is gone (its stream has ended).
    Accepted,
    /// The body's protocol differs from the session stream's.
    ProtocolMismatch,
    /// No live node has this uid.
    UnknownNode,
    /// The owning node did not answer in time (it died, or the engine is down).
    Unreachable,
}

/// The merged answer of a `channels` survey.
#[derive(Debug, Clone, Default)]
pub struct ChannelsSurvey {
    /// Channel → subscribers summed over the nodes that answered.
    pub channels: BTreeMap<String, u32>,
    /// Whether a live node did not answer in time.
    pub partial: bool,
}

impl Node {
    /// Runs the control plane until `cancel` fires: announces this node every
    /// `node.info_interval`, forgets silent nodes, and handles received control messages
    /// (user operations in arrival order; requests concurrently, at most
    /// `node.max_requests_in_flight`). Call once.
    pub async fn run_cluster(self: Arc<Self>, cancel: CancellationToken) {
        let Some(mut inbox) = self.cluster.take_inbox() else {
            tracing::error!("run_cluster called twice");
            return;
        };
        let cfg = self.cluster.config().clone();
        let mut tick = tokio::time::interval(cfg.info_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let permits = Arc::new(Semaphore::new(cfg.max_requests_in_flight));
        let mut requests = JoinSet::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    self.announce().await;
                    for uid in self.cluster.peers().prune() {
                        tracing::warn!(node = %uid, "node gone: no announcement within node.info_ttl");
                    }
                }
                Some(data) = inbox.recv() => self.handle_control(&data, &permits, &mut requests).await,
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
            }
        }
        requests.shutdown().await;
    }

    /// Tells the other nodes this one is leaving (graceful shutdown), so `info` and surveys
    /// stop counting it at once.
    pub async fn leave_cluster(&self) {
        let _ = self.send_control(Body::Leave(pb::Leave {}), None).await;
    }

    async fn announce(&self) {
        let info = pb::NodeInfo::from(&self.info());
        let _ = self.send_control(Body::Node(info), None).await;
    }

    /// Publishes a control message; failures are counted and logged once per interval.
    async fn send_control(&self, body: Body, to: Option<&str>) -> Result<(), ErrorCode> {
        let data = cluster::encode(self.id(), body);
        let metrics = self.cluster.metrics();
        match self.broker.publish_control(data, to).await {
            Ok(()) => {
                ClusterMetrics::inc(&metrics.sent);
                Ok(())
            }
            Err(e) => {
                ClusterMetrics::inc(&metrics.send_errors);
                if let Some(more) = self.cluster.send_log.allow() {
                    tracing::warn!(error = %e, suppressed = more, "control message not sent");
                }
                Err(ErrorCode::Internal)
            }
        }
    }

    async fn handle_control(
        self: &Arc<Self>,
        data: &[u8],
        permits: &Arc<Semaphore>,
        requests: &mut JoinSet<()>,
    ) {
        let (from, body) = match cluster::decode(data) {
            Ok(m) => m,
            Err(e) => {
                ClusterMetrics::inc(&self.cluster.metrics().invalid);
                if let Some(more) = self.cluster.drop_log.allow() {
                    tracing::warn!(error = %e, suppressed = more, "control message dropped");
                }
                return;
            }
        };
        if from == self.id() {
            return; // Our own broadcast: applied locally before it was sent.
        }
        match body {
            Body::Node(info) => {
                let info = NodeInfo::from(info);
                let (uid, name) = (info.uid.clone(), info.name.clone());
                if uid == from && self.cluster.peers().update(info) {
                    tracing::info!(node = %uid, name = %name, "node joined");
                }
            }
            Body::Leave(_) => {
                if self.cluster.peers().remove(&from) {
                    tracing::info!(node = %from, "node left");
                }
            }
            Body::UserOp(op) => self.apply_user_op(op).await,
            Body::Request(req) => match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let node = self.clone();
                    requests.spawn(async move {
                        node.answer(from, req).await;
                        drop(permit);
                    });
                }
                Err(_) => ClusterMetrics::inc(&self.cluster.metrics().requests_rejected),
            },
            Body::Response(resp) => {
                if let Some(kind) = resp.kind {
                    self.cluster.pending().complete(resp.id, from, kind);
                }
            }
        }
    }

    async fn apply_user_op(&self, op: pb::UserOp) {
        let target = ConnectionSelector::from(op.target.unwrap_or_default());
        match op.op {
            Some(user_op::Op::Disconnect(d)) => {
                let disconnect = Disconnect {
                    code: d.code,
                    reason: d.reason.into(),
                };
                self.disconnect_local(&target, &disconnect);
            }
            Some(user_op::Op::Unsubscribe(u)) => {
                let _ = self.unsubscribe_local(&target, &u.channel).await;
            }
            Some(user_op::Op::Subscribe(s)) => {
                let since = s.since.map(cluster::position_from_pb);
                let overrides = s.r#override.map(ChannelOverride::from).unwrap_or_default();
                let _ = self
                    .subscribe_local(
                        &target,
                        &s.channel,
                        RawJson::from_bytes(s.info),
                        RawJson::from_bytes(s.data),
                        since,
                        overrides,
                    )
                    .await;
            }
            Some(user_op::Op::Refresh(r)) => {
                let expire_at = (r.expire_at > 0).then_some(r.expire_at);
                self.refresh_local(
                    &target,
                    r.expired,
                    expire_at,
                    r.info.map(RawJson::from_bytes).as_ref(),
                );
            }
            None => {}
        }
    }

    async fn answer(&self, from: String, req: pb::Request) {
        let kind = match req.kind {
            Some(request::Kind::Channels(c)) => {
                let channels = self.local_channels(&c.pattern).into_iter().collect();
                response::Kind::Channels(pb::ChannelsResponse { channels })
            }
            Some(request::Kind::Emulation(e)) => {
                let outcome = self.emulation_local(&e.session, e.protobuf, &e.data).await;
                let status = match outcome {
                    EmulationOutcome::ProtocolMismatch => {
                        pb::emulation_response::Status::ProtocolMismatch
                    }
                    _ => pb::emulation_response::Status::Accepted,
                };
                response::Kind::Emulation(EmulationResponse {
                    status: status as i32,
                })
            }
            None => return,
        };
        let resp = pb::Response {
            id: req.id,
            kind: Some(kind),
        };
        let _ = self.send_control(Body::Response(resp), Some(&from)).await;
    }

    /// Every live node: this one (fresh figures) and the others' last announcements,
    /// ordered by name then uid.
    pub fn cluster_info(&self) -> Vec<NodeInfo> {
        let mut nodes = self.cluster.peer_infos();
        nodes.push(self.info());
        nodes.sort_by(|a, b| (&a.name, &a.uid).cmp(&(&b.name, &b.uid)));
        nodes
    }

    /// This node's channels with subscribers matching `pattern` (empty = all).
    fn local_channels(&self, pattern: &str) -> BTreeMap<String, u32> {
        let glob = Glob::new(pattern);
        let all = glob.matches_all();
        self.hub
            .channels()
            .into_iter()
            .filter(|(name, n)| *n > 0 && (all || glob.matches(name)))
            .map(|(name, n)| (name.to_string(), n as u32))
            .collect()
    }

    /// Channels with subscribers on any live node, matching `pattern` (empty = all): a
    /// survey of every live node, merged with this node's. A node that does not answer within
    /// `node.survey_timeout` makes the result partial (logged once per interval, counted).
    pub async fn channels(&self, pattern: &str) -> ChannelsSurvey {
        let mut survey = ChannelsSurvey {
            channels: self.local_channels(pattern),
            partial: false,
        };
        let peers: HashSet<String> = self.cluster.peers().live_ids().into_iter().collect();
        if peers.is_empty() {
            return survey;
        }
        ClusterMetrics::inc(&self.cluster.metrics().surveys);
        let kind = request::Kind::Channels(pb::ChannelsRequest {
            pattern: pattern.to_owned(),
        });
        let answers = self.request(kind, None, peers.len()).await;
        let answered = match answers {
            Ok(answers) => {
                let mut answered = HashSet::new();
                for (from, kind) in answers {
                    if let response::Kind::Channels(c) = kind
                        && peers.contains(&from)
                        && answered.insert(from)
                    {
                        for (name, n) in c.channels {
                            *survey.channels.entry(name).or_default() += n;
                        }
                    }
                }
                answered.len()
            }
            Err(_) => 0,
        };
        if answered < peers.len() {
            survey.partial = true;
            ClusterMetrics::inc(&self.cluster.metrics().surveys_partial);
            if let Some(more) = self.cluster.survey_log.allow() {
                tracing::warn!(
                    expected = peers.len(),
                    answered,
                    suppressed = more,
                    "channels survey partial: not every node answered within node.survey_timeout"
                );
            }
        }
        survey
    }

    /// Sends a request (to every node, or to `to`) and gathers up to `expected` answers
    /// within `node.survey_timeout`.
    async fn request(
        &self,
        kind: request::Kind,
        to: Option<&str>,
        expected: usize,
    ) -> Result<Vec<cluster::Answer>, ErrorCode> {
        let mut awaiting = self.cluster.pending().register(expected);
        let req = pb::Request {
            id: awaiting.id,
            kind: Some(kind),
        };
        self.send_control(Body::Request(req), to).await?;
        let deadline = tokio::time::Instant::now() + self.cluster.config().survey_timeout;
        let mut answers = Vec::with_capacity(expected);
        while answers.len() < expected {
            match tokio::time::timeout_at(deadline, awaiting.answers.recv()).await {
                Ok(Some(a)) => answers.push(a),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(answers)
    }

    /// Hands an `/emulation` body to session `session` on node `node` — this node, or another
    /// one over the control plane.
    pub async fn emulation(
        &self,
        node: &str,
        session: &str,
        protobuf: bool,
        data: Bytes,
    ) -> EmulationOutcome {
        if node == self.id() {
            return self.emulation_local(session, protobuf, &data).await;
        }
        if !self.cluster.peers().is_live(node) {
            return EmulationOutcome::UnknownNode;
        }
        let metrics = self.cluster.metrics();
        ClusterMetrics::inc(&metrics.emulation_forwarded);
        let kind = request::Kind::Emulation(pb::EmulationRequest {
            session: session.to_owned(),
            protobuf,
            data,
        });
        let answers = self.request(kind, Some(node), 1).await.unwrap_or_default();
        match answers.into_iter().next() {
            Some((_, response::Kind::Emulation(e))) => {
                if e.status == pb::emulation_response::Status::ProtocolMismatch as i32 {
                    EmulationOutcome::ProtocolMismatch
                } else {
                    EmulationOutcome::Accepted
                }
            }
            _ => {
                ClusterMetrics::inc(&metrics.emulation_forward_failed);
                EmulationOutcome::Unreachable
            }
        }
    }

    async fn emulation_local(
        &self,
        session: &str,
        protobuf: bool,
        data: &[u8],
    ) -> EmulationOutcome {
        let Some(client) = self.sessions.get(session) else {
            return EmulationOutcome::Accepted;
        };
        let expected = if protobuf {
            Protocol::Protobuf
        } else {
            Protocol::Json
        };
        if client.transport().protocol != expected {
            return EmulationOutcome::ProtocolMismatch;
        }
        if let Err(d) = client.handle_frame(data).await {
            client.disconnect(d);
        }
        EmulationOutcome::Accepted
    }

    /// Publishes a user operation to every other node. Fails (100) when the engine does not
    /// take it; the caller then applies nothing.
    async fn broadcast_user_op(
        &self,
        target: &ConnectionSelector,
        op: user_op::Op,
    ) -> Result<(), ErrorCode> {
        let op = pb::UserOp {
            target: Some(pb::Target::from(target)),
            op: Some(op),
        };
        self.send_control(Body::UserOp(op), None).await
    }

    /// Disconnects the targeted connections on every node with `disconnect`: published to
    /// the other nodes, then applied here. Returns how many connections of this node closed;
    /// 100 when the engine could not carry it (then nothing was applied).
    pub async fn disconnect_user(
        &self,
        target: &ConnectionSelector,
        disconnect: Disconnect,
    ) -> Result<usize, ErrorCode> {
        let op = user_op::Op::Disconnect(pb::Disconnect {
            code: disconnect.code,
            reason: disconnect.reason.to_string(),
        });
        self.broadcast_user_op(target, op).await?;
        Ok(self.disconnect_local(target, &disconnect))
    }

    /// Unsubscribes the targeted connections on every node from `channel` (every channel when
    /// empty) with an Unsubscribe push (2000). Returns how many of this node's; 100 when the
    /// engine could not carry it.
    pub async fn unsubscribe_user(
        &self,
        target: &ConnectionSelector,
        channel: &str,
    ) -> Result<usize, ErrorCode> {
        if !channel.is_empty() {
            self.namespaces.resolve(channel)?;
        }
        let op = user_op::Op::Unsubscribe(pb::Unsubscribe {
            channel: channel.to_owned(),
        });
        self.broadcast_user_op(target, op).await?;
        self.unsubscribe_local(target, channel).await
    }

    /// Subscribes the targeted connections on every node to `channel` (API `subscribe`), each
    /// getting a Subscribe push; `since` recovers from that position. Returns how many of this
    /// node's; 100 when the engine could not carry it.
    pub async fn subscribe_user(
        &self,
        target: &ConnectionSelector,
        channel: &str,
        info: RawJson,
        data: RawJson,
        since: Option<StreamPosition>,
        overrides: ChannelOverride,
    ) -> Result<usize, ErrorCode> {
        if channel.is_empty() || target.user.is_empty() && target.client.is_none() {
            return Err(ErrorCode::BadRequest);
        }
        self.namespaces.resolve(channel)?;
        let op = user_op::Op::Subscribe(pb::Subscribe {
            channel: channel.to_owned(),
            info: info.as_bytes().to_vec().into(),
            data: data.as_bytes().to_vec().into(),
            since: since.clone().map(cluster::position_to_pb),
            r#override: Some(overrides.into()),
        });
        self.broadcast_user_op(target, op).await?;
        self.subscribe_local(target, channel, info, data, since, overrides)
            .await
    }

    /// Refreshes the targeted connections on every node (API `refresh`). Returns how many of
    /// this node's; 100 when the engine could not carry it.
    pub async fn refresh_user(
        &self,
        target: &ConnectionSelector,
        expired: bool,
        expire_at: Option<i64>,
        info: Option<RawJson>,
    ) -> Result<usize, ErrorCode> {
        let op = user_op::Op::Refresh(pb::Refresh {
            expired,
            expire_at: expire_at.unwrap_or(0),
            info: info.as_ref().map(|i| i.as_bytes().to_vec().into()),
        });
        self.broadcast_user_op(target, op).await?;
        Ok(self.refresh_local(target, expired, expire_at, info.as_ref()))
    }
}
