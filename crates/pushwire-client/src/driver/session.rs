//! A connected session: subscribes what is wanted, sends calls, answers pings, watches the
//! server's pings, refreshes the token, and turns replies and pushes into events.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use pushwire_protocol::{Push, Reply, SubscribeResult};
use rand::Rng;
use tokio::time::Instant;

use super::connect::{frame, Opened};
use super::{CallReply, Driver, End, ServerSub};
use crate::codec::{self, Body};
use crate::error::{codes, ClientError, ServerError};
use crate::event::Event;
use crate::ops::{Op, Want};
use crate::state::{State, SubState};
use crate::transport::{Incoming, Transport};

/// What a command id is waiting for.
enum Pending {
    Subscribe { channel: String, deadline: Instant },
    Unsubscribe,
    Refresh,
    Call(CallReply),
}

/// Per-session bookkeeping.
struct Session {
    pending: HashMap<u32, Pending>,
    next_id: u32,
    /// Server ping interval plus `max_server_ping_delay`; `None` when the server sends no pings.
    ping_window: Option<Duration>,
    ping_deadline: Option<Instant>,
    pong: bool,
    refresh_at: Option<Instant>,
}

impl Session {
    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(2);
        self.next_id
    }

    fn saw_traffic(&mut self) {
        if let Some(w) = self.ping_window {
            self.ping_deadline = Some(Instant::now() + w);
        }
    }
}

/// When to refresh a token with `ttl` seconds left: at 90% of it, at least 1 s from now.
fn refresh_delay(ttl: u32) -> Duration {
    Duration::from_millis((u64::from(ttl) * 900).max(1000))
}

/// Retry delay after a failed refresh: 5-10 s.
fn refresh_retry() -> Duration {
    Duration::from_millis(rand::rng().random_range(5000..=10000))
}

impl Driver {
    /// Runs a session until it ends.
    pub(super) async fn session(&mut self, opened: Opened) -> End {
        let Opened {
            mut transport,
            result,
            extra,
            ..
        } = opened;
        transport.set_session(&result.session, &result.node);
        let mut s = Session {
            pending: HashMap::new(),
            next_id: 1,
            ping_window: (result.ping > 0).then(|| {
                Duration::from_secs(u64::from(result.ping)) + self.cfg.max_server_ping_delay
            }),
            ping_deadline: None,
            pong: result.pong,
            refresh_at: (result.expires && result.ttl > 0 && self.cfg.token_fn.is_some())
                .then(|| Instant::now() + refresh_delay(result.ttl)),
        };
        s.saw_traffic();
        self.set_state(State::Connected, 0, "connected", None).await;
        self.emit(Event::Connected {
            client_id: result.client.clone(),
            transport: transport.kind(),
            version: result.version.clone(),
        })
        .await;
        for (channel, r) in result.subs {
            self.on_server_subscribed(channel, r).await;
        }
        let end = self.session_loop(&mut transport, &mut s, extra).await;
        for (_, p) in s.pending.drain() {
            if let Pending::Call(reply) = p {
                let _ = reply.send(Err(ClientError::ConnectionLost));
            }
        }
        match &end {
            End::User(Want::Closed) | End::User(Want::Disconnected) => transport.close().await,
            _ => drop(transport),
        }
        if !matches!(end, End::User(Want::Closed)) {
            let (code, reason) = match &end {
                End::Reconnect { code, reason } | End::Terminal { code, reason, .. } => {
                    (*code, reason.clone())
                }
                End::User(_) => (codes::DISCONNECT_CALLED, "disconnect called".to_owned()),
            };
            let wanted: Vec<String> = self
                .subs
                .iter()
                .filter(|(_, e)| e.wanted)
                .map(|(c, _)| c.clone())
                .collect();
            for ch in wanted {
                if let Some(e) = self.subs.get_mut(&ch) {
                    e.retry_at = None;
                }
                self.set_sub_state(&ch, SubState::Subscribing, code, &reason)
                    .await;
            }
        }
        end
    }

    async fn session_loop(
        &mut self,
        transport: &mut Transport,
        s: &mut Session,
        extra: Vec<Reply>,
    ) -> End {
        // Everything wanted, plus the calls made while connecting, in one frame.
        let mut parts = Vec::new();
        let wanted: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, e)| e.wanted)
            .map(|(c, _)| c.clone())
            .collect();
        for ch in wanted {
            if let Some(p) = self.subscribe_part(&ch, s) {
                parts.push(p);
            }
        }
        while let Some((body, reply)) = self.queued.pop_front() {
            if reply.is_closed() {
                continue;
            }
            match self.call_part(&body, reply, s) {
                Some(p) => parts.push(p),
                None => continue,
            }
        }
        if !parts.is_empty()
            && let Err(e) = transport.send(frame(self.cfg.protocol, &parts)).await
        {
            return self.lost(e).await;
        }
        for r in extra {
            if let Some(end) = self.on_reply(r, s, transport).await {
                return end;
            }
        }
        loop {
            enum Ev {
                Stop,
                Intent(Want),
                In(Result<Incoming, ClientError>),
                Op(Op),
                Timer,
            }
            let deadline = self.next_deadline(s);
            let ev = tokio::select! {
                _ = self.cancel.cancelled() => Ev::Stop,
                r = self.intent.changed() => match r {
                    Ok(()) => Ev::Intent(self.intent.borrow_and_update().want),
                    Err(_) => Ev::Stop,
                },
                i = transport.next() => Ev::In(i),
                op = self.ops.recv() => match op {
                    Some(op) => Ev::Op(op),
                    None => Ev::Stop,
                },
                _ = sleep_until_opt(deadline) => Ev::Timer,
            };
            let end = match ev {
                Ev::Stop => Some(End::User(Want::Closed)),
                Ev::Intent(Want::Connected) => None,
                Ev::Intent(w) => Some(End::User(w)),
                Ev::In(Err(e)) => Some(self.lost(e).await),
                Ev::In(Ok(Incoming::Closed { code, reason })) => {
                    Some(self.end_for_code(code, &reason))
                }
                Ev::In(Ok(Incoming::Replies(replies))) => {
                    s.saw_traffic();
                    let mut end = None;
                    for r in replies {
                        end = self.on_reply(r, s, transport).await;
                        if end.is_some() {
                            break;
                        }
                    }
                    end
                }
                Ev::Op(op) => self.op_online(op, s, transport).await,
                Ev::Timer => self.on_timer(s, transport).await,
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    async fn lost(&mut self, e: ClientError) -> End {
        self.emit(Event::Error(e)).await;
        End::Reconnect {
            code: codes::TRANSPORT_CLOSED,
            reason: "transport closed".into(),
        }
    }

    fn next_deadline(&self, s: &Session) -> Option<Instant> {
        let pending = s.pending.values().filter_map(|p| match p {
            Pending::Subscribe { deadline, .. } => Some(*deadline),
            _ => None,
        });
        let retries = self.subs.values().filter_map(|e| e.retry_at);
        [s.ping_deadline, s.refresh_at]
            .into_iter()
            .flatten()
            .chain(pending)
            .chain(retries)
            .min()
    }

    /// Encodes a subscribe for `channel` and records it as pending.
    fn subscribe_part(&mut self, channel: &str, s: &mut Session) -> Option<Bytes> {
        let entry = self.subs.get_mut(channel)?;
        entry.retry_at = None;
        let body = Body::Subscribe(entry.request(channel));
        let id = s.id();
        let bytes = codec::encode(self.cfg.protocol, id, &body).ok()?;
        s.pending.insert(
            id,
            Pending::Subscribe {
                channel: channel.to_owned(),
                deadline: Instant::now() + self.cfg.timeout,
            },
        );
        Some(bytes)
    }

    fn call_part(&mut self, body: &Body, reply: CallReply, s: &mut Session) -> Option<Bytes> {
        let id = s.id();
        match codec::encode(self.cfg.protocol, id, body) {
            Ok(b) => {
                s.pending.insert(id, Pending::Call(reply));
                Some(b)
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        }
    }

    async fn send_parts(&mut self, parts: &[Bytes], transport: &mut Transport) -> Option<End> {
        if parts.is_empty() {
            return None;
        }
        match transport.send(frame(self.cfg.protocol, parts)).await {
            Ok(()) => None,
            Err(e) => Some(self.lost(e).await),
        }
    }

    async fn op_online(&mut self, op: Op, s: &mut Session, t: &mut Transport) -> Option<End> {
        match op {
            Op::Subscribe { channel, opts } => {
                let entry = self
                    .subs
                    .entry(channel.clone())
                    .or_insert_with(|| crate::subscription::SubEntry::new(opts));
                if entry.wanted {
                    return None;
                }
                entry.wanted = true;
                self.set_sub_state(&channel, SubState::Subscribing, 0, "subscribe called")
                    .await;
                let part = self.subscribe_part(&channel, s)?;
                self.send_parts(&[part], t).await
            }
            Op::Unsubscribe { channel } => {
                let entry = self.subs.get_mut(&channel)?;
                if !entry.wanted {
                    return None;
                }
                entry.wanted = false;
                entry.retry_at = None;
                self.set_sub_state(
                    &channel,
                    SubState::Unsubscribed,
                    codes::UNSUBSCRIBE_CALLED,
                    "unsubscribe called",
                )
                .await;
                let id = s.id();
                let part =
                    codec::encode(self.cfg.protocol, id, &Body::Unsubscribe { channel }).ok()?;
                s.pending.insert(id, Pending::Unsubscribe);
                self.send_parts(&[part], t).await
            }
            Op::Call { body, reply } => {
                let part = self.call_part(&body, reply, s)?;
                self.send_parts(&[part], t).await
            }
        }
    }

    async fn on_timer(&mut self, s: &mut Session, t: &mut Transport) -> Option<End> {
        let now = Instant::now();
        if s.ping_deadline.is_some_and(|d| d <= now) {
            tracing::debug!("no ping from the server in time");
            return Some(End::Reconnect {
                code: codes::NO_PING,
                reason: "no ping".into(),
            });
        }
        let timed_out = s
            .pending
            .values()
            .any(|p| matches!(p, Pending::Subscribe { deadline, .. } if *deadline <= now));
        if timed_out {
            return Some(End::Reconnect {
                code: codes::SUBSCRIBE_TIMEOUT,
                reason: "subscribe timeout".into(),
            });
        }
        if s.refresh_at.is_some_and(|d| d <= now) {
            s.refresh_at = None;
            if let Some(end) = self.refresh(s, t).await {
                return Some(end);
            }
        }
        let due: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, e)| e.wanted && e.retry_at.is_some_and(|r| r <= now))
            .map(|(c, _)| c.clone())
            .collect();
        let mut parts = Vec::new();
        for ch in due {
            if let Some(p) = self.subscribe_part(&ch, s) {
                parts.push(p);
            }
        }
        self.send_parts(&parts, t).await
    }

    /// Fetches a new token and sends `refresh`.
    async fn refresh(&mut self, s: &mut Session, t: &mut Transport) -> Option<End> {
        let f = self.cfg.token_fn.clone()?;
        match tokio::time::timeout(self.cfg.timeout, f()).await {
            Ok(Ok(token)) if !token.is_empty() => {
                self.token = Some(token.clone());
                let id = s.id();
                let part = codec::encode(self.cfg.protocol, id, &Body::Refresh { token }).ok()?;
                s.pending.insert(id, Pending::Refresh);
                self.send_parts(&[part], t).await
            }
            other => {
                let msg = match other {
                    Err(_) => "timed out".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => "empty token".to_owned(),
                };
                self.emit(Event::Error(ClientError::Token(msg))).await;
                s.refresh_at = Some(Instant::now() + refresh_retry());
                None
            }
        }
    }

    async fn on_reply(&mut self, r: Reply, s: &mut Session, t: &mut Transport) -> Option<End> {
        if r.id > 0 {
            return match s.pending.remove(&r.id) {
                Some(Pending::Call(reply)) => {
                    let _ = reply.send(Ok(r));
                    None
                }
                Some(Pending::Subscribe { channel, .. }) => {
                    self.on_subscribe_reply(channel, r).await;
                    None
                }
                Some(Pending::Refresh) => self.on_refresh_reply(r, s).await,
                Some(Pending::Unsubscribe) | None => None,
            };
        }
        if let Some(push) = r.push {
            return self.on_push(push, s, t).await;
        }
        if r.error.is_none() && s.pong {
            // A ping: answer with an empty command.
            if let Err(e) = t.send(codec::pong(self.cfg.protocol)).await {
                return Some(self.lost(e).await);
            }
        }
        None
    }

    async fn on_refresh_reply(&mut self, r: Reply, s: &mut Session) -> Option<End> {
        if let Some(e) = r.error {
            let e = ServerError::from(e);
            if e.retryable() {
                self.emit(Event::Error(ClientError::Server(e))).await;
                s.refresh_at = Some(Instant::now() + refresh_retry());
                return None;
            }
            return Some(End::Terminal {
                code: e.code,
                reason: e.message.clone(),
                error: ClientError::Server(e),
            });
        }
        if let Some(res) = r.refresh
            && res.expires
            && res.ttl > 0
        {
            s.refresh_at = Some(Instant::now() + refresh_delay(res.ttl));
        }
        None
    }

    async fn on_subscribe_reply(&mut self, channel: String, r: Reply) {
        let Some(entry) = self.subs.get_mut(&channel) else {
            return;
        };
        if !entry.wanted {
            return;
        }
        if let Some(e) = r.error {
            let e = ServerError::from(e);
            let retry = e.retryable();
            if retry {
                let delay = self.cfg.backoff.delay(entry.attempt, &mut rand::rng());
                entry.attempt = entry.attempt.saturating_add(1);
                entry.retry_at = Some(Instant::now() + delay);
            } else {
                entry.wanted = false;
            }
            self.emit(Event::SubscriptionError {
                channel: channel.clone(),
                error: ClientError::Server(e.clone()),
            })
            .await;
            if !retry {
                self.set_sub_state(&channel, SubState::Unsubscribed, e.code, &e.message)
                    .await;
            }
            return;
        }
        let Some(res) = r.subscribe else {
            return;
        };
        entry.attempt = 0;
        entry.retry_at = None;
        entry.recover = res.recoverable;
        if res.recoverable || res.positioned {
            entry.offset = res.offset;
            entry.epoch = res.epoch.clone();
        }
        self.set_sub_state(&channel, SubState::Subscribed, 0, "")
            .await;
        self.emit_subscribed(channel, res, false).await;
    }

    /// Emits `Subscribed`, then the publications the reply carried, advancing the position.
    async fn emit_subscribed(&mut self, channel: String, res: SubscribeResult, server_side: bool) {
        self.emit(Event::Subscribed {
            channel: channel.clone(),
            was_recovering: res.was_recovering,
            recovered: res.recovered,
            recoverable: res.recoverable,
            positioned: res.positioned,
            offset: res.offset,
            epoch: res.epoch.clone(),
            server_side,
        })
        .await;
        for p in res.publications {
            self.advance(&channel, p.offset);
            self.emit(Event::Publication {
                channel: channel.clone(),
                publication: p,
            })
            .await;
        }
    }

    fn advance(&mut self, channel: &str, offset: u64) {
        if offset == 0 {
            return;
        }
        if let Some(e) = self.subs.get_mut(channel) {
            e.offset = e.offset.max(offset);
        } else if let Some(e) = self.server_subs.get_mut(channel) {
            e.offset = e.offset.max(offset);
        }
    }

    async fn on_server_subscribed(&mut self, channel: String, res: SubscribeResult) {
        self.server_subs.insert(
            channel.clone(),
            ServerSub {
                recoverable: res.recoverable,
                offset: res.offset,
                epoch: res.epoch.clone(),
            },
        );
        self.emit_subscribed(channel, res, true).await;
    }

    async fn on_push(&mut self, p: Push, s: &mut Session, t: &mut Transport) -> Option<End> {
        let channel = p.channel;
        if let Some(publication) = p.publication {
            self.advance(&channel, publication.offset);
            self.emit(Event::Publication {
                channel,
                publication,
            })
            .await;
        } else if let Some(j) = p.join {
            self.emit(Event::Join {
                channel,
                info: j.info,
            })
            .await;
        } else if let Some(l) = p.leave {
            self.emit(Event::Leave {
                channel,
                info: l.info,
            })
            .await;
        } else if let Some(u) = p.unsubscribe {
            return self
                .on_unsubscribe_push(channel, u.code, &u.reason, s, t)
                .await;
        } else if let Some(sub) = p.subscribe {
            let res = SubscribeResult {
                recoverable: sub.recoverable,
                epoch: sub.epoch,
                offset: sub.offset,
                positioned: sub.positioned,
                data: sub.data,
                ..Default::default()
            };
            self.on_server_subscribed(channel, res).await;
        } else if let Some(m) = p.message {
            self.emit(Event::Message { data: m.data.0 }).await;
        } else if let Some(d) = p.disconnect {
            return Some(self.end_for_code(d.code, &d.reason));
        }
        None
    }

    async fn on_unsubscribe_push(
        &mut self,
        channel: String,
        code: u32,
        reason: &str,
        s: &mut Session,
        t: &mut Transport,
    ) -> Option<End> {
        if self.server_subs.remove(&channel).is_some() {
            self.emit(Event::SubState {
                channel,
                state: SubState::Unsubscribed,
                code,
                reason: reason.into(),
            })
            .await;
            return None;
        }
        let entry = self.subs.get_mut(&channel)?;
        if code < 2500 {
            entry.wanted = false;
            self.set_sub_state(&channel, SubState::Unsubscribed, code, reason)
                .await;
            return None;
        }
        if code == 2502 {
            entry.recover = false;
            entry.offset = 0;
            entry.epoch.clear();
        }
        self.set_sub_state(&channel, SubState::Subscribing, code, reason)
            .await;
        let part = self.subscribe_part(&channel, s)?;
        self.send_parts(&[part], t).await
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
