//! The connection task: one per client, it owns the transport, the subscriptions and every
//! timer, and is the only writer of the state and the event stream.
//!
//! - `mod.rs`: the outer state machine (disconnected → connecting with backoff), operations
//!   received while not connected, state and event helpers, disconnect-code rules.
//! - [`connect`]: one connect attempt: token, transports in order (fallback), connect reply.
//! - [`session`]: a connected session: replies, pushes, pings, subscriptions, calls, timers.

mod connect;
mod session;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_protocol::Reply;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::codec::Body;
use crate::config::{ClientConfig, Validated};
use crate::error::{codes, disconnect_code_reconnects, ClientError};
use crate::event::Event;
use crate::ops::{Intent, Op, Status, Want};
use crate::state::{State, SubState};
use crate::subscription::SubEntry;

/// A server-side subscription's position (from the token or the server API).
#[derive(Debug, Clone, Default)]
struct ServerSub {
    recoverable: bool,
    offset: u64,
    epoch: String,
}

/// How a session (or a connect attempt) ended.
#[derive(Debug)]
enum End {
    /// Reconnect after a backoff delay; `code`/`reason` go into the Connecting event.
    Reconnect { code: u32, reason: String },
    /// Stop: Disconnected with this error.
    Terminal {
        code: u32,
        reason: String,
        error: ClientError,
    },
    /// The application asked for another state.
    User(Want),
}

type CallReply = oneshot::Sender<Result<Reply, ClientError>>;

/// The connection task.
pub(crate) struct Driver {
    cfg: ClientConfig,
    validated: Validated,
    http: reqwest::Client,
    ops: mpsc::Receiver<Op>,
    intent: watch::Receiver<Intent>,
    events: mpsc::Sender<Event>,
    status: Arc<watch::Sender<Status>>,
    sub_states: Arc<Mutex<HashMap<String, SubState>>>,
    cancel: CancellationToken,
    state: State,
    /// Failed connect attempts since the last success.
    attempt: u32,
    /// Index of the endpoint that last worked.
    preferred: usize,
    token: Option<String>,
    /// The next connect must fetch a new token (109, 3005).
    refresh_token: bool,
    subs: BTreeMap<String, SubEntry>,
    server_subs: HashMap<String, ServerSub>,
    /// Calls made while connecting, sent once connected.
    queued: VecDeque<(Body, CallReply)>,
}

impl Driver {
    // The task is built once from the handle's parts; a struct for them would only be
    // unpacked here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: ClientConfig,
        http: reqwest::Client,
        validated: Validated,
        ops: mpsc::Receiver<Op>,
        intent: watch::Receiver<Intent>,
        events: mpsc::Sender<Event>,
        status: Arc<watch::Sender<Status>>,
        sub_states: Arc<Mutex<HashMap<String, SubState>>>,
        cancel: CancellationToken,
    ) -> Self {
        let token = cfg.token.clone();
        Driver {
            cfg,
            validated,
            http,
            ops,
            intent,
            events,
            status,
            sub_states,
            cancel,
            state: State::Disconnected,
            attempt: 0,
            preferred: 0,
            token,
            refresh_token: false,
            subs: BTreeMap::new(),
            server_subs: HashMap::new(),
            queued: VecDeque::new(),
        }
    }

    /// Runs until closed (or every handle is dropped).
    pub(crate) async fn run(mut self) {
        loop {
            match self.state {
                State::Closed => break,
                State::Disconnected => self.idle().await,
                State::Connecting | State::Connected => self.connecting().await,
            }
        }
        for (_, reply) in self.queued.drain(..) {
            let _ = reply.send(Err(ClientError::Closed));
        }
    }

    /// Disconnected: wait for `connect()`, handle operations offline.
    async fn idle(&mut self) {
        enum Ev {
            Stop,
            Intent(Want),
            Op(Op),
        }
        let ev = tokio::select! {
            _ = self.cancel.cancelled() => Ev::Stop,
            r = self.intent.changed() => match r {
                Ok(()) => Ev::Intent(self.intent.borrow_and_update().want),
                Err(_) => Ev::Stop,
            },
            op = self.ops.recv() => match op {
                Some(op) => Ev::Op(op),
                None => Ev::Stop,
            },
        };
        match ev {
            Ev::Stop => self.apply_want(Want::Closed).await,
            Ev::Intent(w) => self.apply_want(w).await,
            Ev::Op(op) => self.op_offline(op).await,
        }
    }

    /// Connecting: attempts with backoff until connected, stopped, or terminal.
    async fn connecting(&mut self) {
        loop {
            let params = self.connect_params();
            let fut = connect::attempt(params);
            tokio::pin!(fut);
            let outcome = loop {
                enum Ev {
                    Done(Box<connect::Outcome>),
                    Stop,
                    Intent(Want),
                    Op(Op),
                }
                let ev = tokio::select! {
                    o = &mut fut => Ev::Done(Box::new(o)),
                    _ = self.cancel.cancelled() => Ev::Stop,
                    r = self.intent.changed() => match r {
                        Ok(()) => Ev::Intent(self.intent.borrow_and_update().want),
                        Err(_) => Ev::Stop,
                    },
                    op = self.ops.recv() => match op {
                        Some(op) => Ev::Op(op),
                        None => Ev::Stop,
                    },
                };
                match ev {
                    Ev::Done(o) => break *o,
                    Ev::Stop => return self.apply_want(Want::Closed).await,
                    Ev::Intent(Want::Connected) => {}
                    Ev::Intent(w) => return self.apply_want(w).await,
                    Ev::Op(op) => self.op_offline(op).await,
                }
            };
            if let Some(t) = outcome.token {
                self.token = Some(t);
                self.refresh_token = false;
            }
            for e in outcome.errors {
                self.emit(Event::Error(e)).await;
            }
            let end = match outcome.result {
                Ok(opened) => {
                    self.attempt = 0;
                    self.preferred = opened.index;
                    self.session(opened).await
                }
                Err(end) => end,
            };
            match end {
                End::Reconnect { code, reason } => {
                    if code == 109 {
                        self.refresh_token = true;
                    }
                    self.set_state(State::Connecting, code, &reason, None).await;
                }
                End::Terminal {
                    code,
                    reason,
                    error,
                } => {
                    self.emit(Event::Error(error.clone())).await;
                    self.set_state(State::Disconnected, code, &reason, Some(error))
                        .await;
                    return;
                }
                End::User(w) => return self.apply_want(w).await,
            }
            let delay = self.cfg.backoff.delay(self.attempt, &mut rand::rng());
            self.attempt = self.attempt.saturating_add(1);
            tracing::debug!(?delay, attempt = self.attempt, "reconnect after backoff");
            if !self.wait(delay).await {
                return;
            }
        }
    }

    /// Sleeps `delay` while handling operations; false when the state changed meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            enum Ev {
                Done,
                Stop,
                Intent(Want),
                Op(Op),
            }
            let ev = tokio::select! {
                _ = tokio::time::sleep_until(until) => Ev::Done,
                _ = self.cancel.cancelled() => Ev::Stop,
                r = self.intent.changed() => match r {
                    Ok(()) => Ev::Intent(self.intent.borrow_and_update().want),
                    Err(_) => Ev::Stop,
                },
                op = self.ops.recv() => match op {
                    Some(op) => Ev::Op(op),
                    None => Ev::Stop,
                },
            };
            match ev {
                Ev::Done => return true,
                Ev::Stop => {
                    self.apply_want(Want::Closed).await;
                    return false;
                }
                Ev::Intent(Want::Connected) => {}
                Ev::Intent(w) => {
                    self.apply_want(w).await;
                    return false;
                }
                Ev::Op(op) => self.op_offline(op).await,
            }
        }
    }

    /// Moves to the state the application asked for.
    async fn apply_want(&mut self, want: Want) {
        match want {
            Want::Connected => {
                if self.state == State::Disconnected {
                    self.attempt = 0;
                    self.set_state(
                        State::Connecting,
                        codes::CONNECT_CALLED,
                        "connect called",
                        None,
                    )
                    .await;
                }
            }
            Want::Disconnected => {
                if self.state != State::Disconnected {
                    self.fail_queued(&ClientError::NotConnected);
                    self.set_state(
                        State::Disconnected,
                        codes::DISCONNECT_CALLED,
                        "disconnect called",
                        None,
                    )
                    .await;
                }
            }
            Want::Closed => {
                self.fail_queued(&ClientError::Closed);
                let channels: Vec<String> = self.subs.keys().cloned().collect();
                for ch in channels {
                    self.set_sub_state(
                        &ch,
                        SubState::Unsubscribed,
                        codes::CLIENT_CLOSED,
                        "client closed",
                    )
                    .await;
                }
                self.set_state(State::Closed, 0, "client closed", None)
                    .await;
            }
        }
    }

    fn fail_queued(&mut self, e: &ClientError) {
        for (_, reply) in self.queued.drain(..) {
            let _ = reply.send(Err(e.clone()));
        }
    }

    /// Operations while not connected: subscriptions are recorded (sent once connected),
    /// calls wait while connecting and fail while disconnected.
    async fn op_offline(&mut self, op: Op) {
        match op {
            Op::Subscribe { channel, opts } => {
                let entry = self
                    .subs
                    .entry(channel.clone())
                    .or_insert_with(|| SubEntry::new(opts));
                if !entry.wanted {
                    entry.wanted = true;
                    self.set_sub_state(&channel, SubState::Subscribing, 0, "subscribe called")
                        .await;
                }
            }
            Op::Unsubscribe { channel } => {
                if let Some(e) = self.subs.get_mut(&channel) {
                    e.wanted = false;
                    self.set_sub_state(
                        &channel,
                        SubState::Unsubscribed,
                        codes::UNSUBSCRIBE_CALLED,
                        "unsubscribe called",
                    )
                    .await;
                }
            }
            Op::Call { body, reply } => {
                if self.state != State::Connecting {
                    let _ = reply.send(Err(ClientError::NotConnected));
                } else if self.queued.len() >= self.cfg.command_queue_capacity {
                    let _ = reply.send(Err(ClientError::Config {
                        key: "command_queue_capacity",
                        message: "too many calls waiting for the connection".into(),
                    }));
                } else {
                    self.queued.push_back((body, reply));
                }
            }
        }
    }

    /// What a close code (WebSocket close frame or disconnect push) means.
    fn end_for_code(&mut self, code: u32, reason: &str) -> End {
        if code == 1009 {
            return End::Terminal {
                code: codes::MESSAGE_SIZE_LIMIT,
                reason: "message size limit exceeded".into(),
                error: ClientError::Disconnected {
                    code,
                    reason: reason.into(),
                },
            };
        }
        if !disconnect_code_reconnects(code) {
            return End::Terminal {
                code,
                reason: reason.into(),
                error: ClientError::Disconnected {
                    code,
                    reason: reason.into(),
                },
            };
        }
        if code == 3005 {
            self.refresh_token = true;
        }
        if code == 3014 {
            if self.cfg.token_fn.is_some() {
                self.token = None;
            }
            for e in self.subs.values_mut() {
                e.recover = false;
                e.offset = 0;
                e.epoch.clear();
            }
        }
        if code < 3000 {
            End::Reconnect {
                code: codes::TRANSPORT_CLOSED,
                reason: "transport closed".into(),
            }
        } else {
            End::Reconnect {
                code,
                reason: reason.into(),
            }
        }
    }

    async fn emit(&self, ev: Event) {
        tokio::select! {
            _ = self.events.send(ev) => {}
            _ = self.cancel.cancelled() => {}
        }
    }

    async fn set_state(
        &mut self,
        state: State,
        code: u32,
        reason: &str,
        error: Option<ClientError>,
    ) {
        let changed = self.state != state;
        self.state = state;
        self.status.send_modify(|s| {
            s.state = state;
            s.error = error;
        });
        if changed || state == State::Connecting {
            self.emit(Event::State {
                state,
                code,
                reason: reason.into(),
            })
            .await;
        }
    }

    async fn set_sub_state(&mut self, channel: &str, state: SubState, code: u32, reason: &str) {
        let Some(e) = self.subs.get_mut(channel) else {
            return;
        };
        let changed = e.state != state;
        e.state = state;
        self.sub_states.lock().insert(channel.to_owned(), state);
        if changed && state != SubState::Subscribed {
            self.emit(Event::SubState {
                channel: channel.into(),
                state,
                code,
                reason: reason.into(),
            })
            .await;
        }
    }
}
