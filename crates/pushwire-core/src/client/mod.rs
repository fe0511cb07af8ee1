//! A client connection's session: the protocol state machine shared by every transport.
//!
//! A transport creates a [`Client`], feeds it every incoming frame with
//! [`Client::handle_frame`], writes whatever [`Client::outbox`] yields, calls
//! [`Client::on_timer`] at [`Client::next_deadline`], and calls [`Client::cleanup`] once the
//! connection is gone. The transport knows framing and HTTP only; everything about channels,
//! permissions and recovery happens here.
//!
//! Files: `connect.rs` (connect, refresh), `subscribe.rs` (subscribe, recovery, unsubscribe),
//! `commands.rs` (publish, history, presence), `timers.rs` (ping/pong, stale, expiry),
//! `proxied.rs` (rpc, send, and refreshes decided by the application backend), `delivery.rs`
//! (what a transport's writer books per drain, publications for one subscription).

mod commands;
mod connect;
mod delivery;
mod proxied;
mod rate;
mod submap;
mod subscribe;
mod timers;

pub use delivery::Polled;

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use pushwire_protocol::{
    encode_push, encode_reply, ClientInfo, Command, Disconnect, ErrorCode, Protocol, Push, RawJson,
    Reply, Request, TransportKind,
};
use tokio::time::Instant;

use crate::hub::ClientKey;
use crate::lifecycle::Record;
use crate::metrics::{self, Metrics};
use crate::node::Node;

/// How a transport carries the protocol: which transport, in which wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportInfo {
    /// The transport (its name, and whether it is unidirectional or emulated).
    pub kind: TransportKind,
    /// Wire format.
    pub protocol: Protocol,
}

impl TransportInfo {
    /// The transport's protocol name (`websocket`, `sse`, …).
    pub fn name(self) -> &'static str {
        self.kind.name()
    }

    /// Server-to-client only: pushes are sent bare, pings need no pong.
    pub fn unidirectional(self) -> bool {
        self.kind.is_unidirectional()
    }

    /// Bidirectional emulation (HTTP-streaming, SSE + `/emulation`): the connect result
    /// carries `session` and `node`.
    pub fn emulated(self) -> bool {
        self.kind.is_emulated()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Waiting for connect.
    Connecting,
    /// Authenticated.
    Connected,
    /// Connect answered with an error: every later command is a protocol violation.
    Unusable,
    /// Closed; cleanup ran or is running.
    Closed,
}

/// Per-channel state of one subscription.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubState {
    /// Subscribe in flight: a second subscribe gets 105.
    pub subscribing: bool,
    /// Presence entry kept for this subscription.
    pub presence: bool,
    /// Join/leave messages are published for this subscription.
    pub join_leave: bool,
    /// Channel info from the subscription token or proxy; boxed (one word) because most
    /// subscriptions have none. Read it with [`SubState::chan_info`].
    pub chan_info: Option<Box<RawJson>>,
    /// Subscription expiry, Unix seconds.
    pub expire_at: Option<i64>,
    /// At expiry the sub_refresh proxy decides (server-side refresh).
    pub proxy_refresh: bool,
}

impl SubState {
    /// The channel info (empty when none).
    pub(crate) fn chan_info(&self) -> RawJson {
        self.chan_info.as_deref().cloned().unwrap_or_default()
    }

    /// Boxes `info`, or nothing for an empty one.
    pub(crate) fn boxed_info(info: RawJson) -> Option<Box<RawJson>> {
        (!info.is_empty()).then(|| Box::new(info))
    }
}

#[derive(Debug)]
struct State {
    status: Status,
    user: String,
    /// Connection info, meta and kept connect-command headers; `None` (one word, no
    /// allocation) while there are none, which keeps an idle connection small.
    extra: Option<Box<Extra>>,
    expire_at: Option<i64>,
    subs: submap::SubMap,
    timers: timers::Timers,
    rate: rate::Bucket,
}

/// What only some connections carry.
#[derive(Debug, Default)]
struct Extra {
    /// Connection info (token `info` claim or connect proxy), sent in client info.
    conn_info: RawJson,
    /// Server-only connection meta (token `meta` claim or connect proxy).
    meta: RawJson,
    /// Connect command `headers` some proxy forwards (`emulated_headers`).
    emulated: Option<Arc<crate::proxy::HeaderPairs>>,
}

impl State {
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn conn_info(&self) -> RawJson {
        self.extra
            .as_ref()
            .map(|e| e.conn_info.clone())
            .unwrap_or_default()
    }

    /// Sets the connection info; an empty one allocates nothing.
    fn set_conn_info(&mut self, info: RawJson) {
        if !info.is_empty() || self.extra.is_some() {
            self.extra().conn_info = info;
        }
    }
}

/// One client connection.
pub struct Client {
    node: Arc<Node>,
    key: ClientKey,
    id: Arc<str>,
    session: Option<Arc<str>>,
    transport: TransportInfo,
    outbox: Arc<crate::outbox::Outbox>,
    /// The HTTP request headers some proxy forwards (lower-case names).
    headers: Box<crate::proxy::HeaderPairs>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("transport", &self.transport.name())
            .finish_non_exhaustive()
    }
}

/// Counts the closed connection by transport and disconnect code (3000 when nobody gave a
/// reason: the peer went away), and logs it at debug. Drop runs exactly once per connection,
/// whichever way its transport ended.
impl Drop for Client {
    fn drop(&mut self) {
        let d = self
            .outbox
            .closed()
            .unwrap_or(Disconnect::CONNECTION_CLOSED);
        self.node
            .metrics()
            .connection_closed(self.transport.kind, d.code);
        let user = &self.state.get_mut().user;
        tracing::debug!(client = %self.id, user = %user, transport = self.transport.name(), code = d.code, reason = %d.reason, "disconnected");
    }
}

/// What a command handler ends with when it does not reply normally.
#[derive(Debug)]
pub(crate) enum CommandError {
    /// Answer with an error reply.
    Reply(ErrorCode),
    /// Close the connection.
    Disconnect(Disconnect),
    /// Answer with an error the application backend chose.
    Custom(pushwire_protocol::Error),
}

impl From<ErrorCode> for CommandError {
    fn from(e: ErrorCode) -> Self {
        CommandError::Reply(e)
    }
}

impl From<Disconnect> for CommandError {
    fn from(d: Disconnect) -> Self {
        CommandError::Disconnect(d)
    }
}

pub(crate) type CommandResult = Result<Reply, CommandError>;

impl Client {
    /// A new, not yet connected client. The stale timer starts now.
    pub fn new(node: Arc<Node>, transport: TransportInfo) -> Arc<Client> {
        Self::with_headers(node, transport, std::iter::empty())
    }

    /// A new client that keeps, of its HTTP request's `headers`, those some proxy forwards to
    /// the application backend (`http_headers`); the transport passes them all.
    pub fn with_headers<'a>(
        node: Arc<Node>,
        transport: TransportInfo,
        headers: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Arc<Client> {
        let wanted = node.forwarded_headers();
        let headers: Box<crate::proxy::HeaderPairs> = if wanted.is_empty() {
            Box::default()
        } else {
            headers
                .filter(|(k, _)| wanted.iter().any(|w| w.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (Box::from(k.to_ascii_lowercase()), Box::from(v)))
                .collect()
        };
        let cfg = &node.config().client;
        let outbox = Arc::new(crate::outbox::Outbox::of(node.outboxes().clone()));
        let now = Instant::now();
        let timers = timers::Timers::new(now + cfg.stale_close_delay);
        let rate = rate::Bucket::full(cfg.command_burst);
        node.metrics().connection_opened(transport.kind);
        Arc::new(Client {
            key: node.next_client_key(),
            id: Arc::from(uuid::Uuid::new_v4().to_string()),
            session: (transport.emulated() || transport.unidirectional())
                .then(|| Arc::from(uuid::Uuid::new_v4().to_string())),
            node,
            transport,
            outbox,
            headers,
            state: Mutex::new(State {
                status: Status::Connecting,
                user: String::new(),
                extra: None,
                expire_at: None,
                subs: Default::default(),
                timers,
                rate,
            }),
        })
    }

    /// Key of this client inside the node.
    pub fn key(&self) -> ClientKey {
        self.key
    }

    /// Client id sent to the client (a UUID).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Emulation session id (empty for plain WebSocket).
    pub fn session(&self) -> &str {
        self.session.as_deref().unwrap_or("")
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Transport description.
    pub fn transport(&self) -> TransportInfo {
        self.transport
    }

    /// The outgoing queue the transport's writer drains.
    pub fn outbox(&self) -> &Arc<crate::outbox::Outbox> {
        &self.outbox
    }

    /// User id; empty until connected or for anonymous users.
    pub fn user(&self) -> String {
        self.state.lock().user.clone()
    }

    /// Whether connect succeeded.
    pub fn is_connected(&self) -> bool {
        self.state.lock().status == Status::Connected
    }

    /// Channels this client is subscribed to.
    pub fn channels(&self) -> Vec<String> {
        self.state
            .lock()
            .subs
            .iter()
            .filter(|(_, s)| !s.subscribing)
            .map(|(c, _)| c.to_string())
            .collect()
    }

    pub(crate) fn client_info(&self, chan_info: RawJson) -> ClientInfo {
        let st = self.state.lock();
        ClientInfo {
            user: st.user.clone(),
            client: self.id.to_string(),
            conn_info: st.conn_info(),
            chan_info,
        }
    }

    /// Asks the transport to close the connection with `disconnect` (first reason wins).
    pub fn disconnect(&self, disconnect: Disconnect) {
        self.outbox.close(disconnect);
    }

    /// The encoding of this connection's messages.
    pub fn encoding(&self) -> crate::encoding::Encoding {
        crate::encoding::Encoding {
            protocol: self.transport.protocol,
            bare_push: self.transport.unidirectional(),
        }
    }

    /// Encodes and queues a reply. An encoding failure (non-JSON payload for a JSON client)
    /// closes the connection with 3506. Unidirectional connections get pushes bare, pings as
    /// empty pushes, and no command replies.
    pub(crate) fn send_reply(&self, reply: &Reply) -> bool {
        let encoded = if self.transport.unidirectional() {
            match &reply.push {
                Some(push) => encode_push(self.transport.protocol, push),
                None if reply.is_ping() => encode_push(self.transport.protocol, &Push::default()),
                None => return true,
            }
        } else {
            encode_reply(self.transport.protocol, reply)
        };
        match encoded {
            // A command reply larger than `client.reply_max_size` (a history read of huge
            // publications) is answered 106.
            Ok(bytes)
                if reply.id != 0 && bytes.len() > self.node.config().client.reply_max_size =>
            {
                let limited = Reply::error(
                    reply.id,
                    pushwire_protocol::Error::from(ErrorCode::LimitExceeded),
                );
                match encode_reply(self.transport.protocol, &limited) {
                    Ok(bytes) => self.queue(bytes),
                    Err(_) => false,
                }
            }
            Ok(bytes) => self.queue(bytes),
            Err(_) => {
                self.disconnect(Disconnect::INAPPROPRIATE_PROTOCOL);
                false
            }
        }
    }

    /// Queues an encoded message.
    pub(crate) fn queue(&self, bytes: Bytes) -> bool {
        let pushed = self.outbox.push_reply(bytes);
        if pushed == crate::outbox::Pushed::Overflowed {
            Metrics::add(&self.node.metrics().slow_disconnects, 1);
        }
        pushed.queued()
    }

    /// Handles one incoming frame: decodes every command and handles them in order. An error
    /// means the connection must close with that disconnect. The transport enforces the
    /// frame size limit before calling this.
    pub async fn handle_frame(self: &Arc<Self>, frame: &[u8]) -> Result<(), Disconnect> {
        let commands = match self.transport.protocol {
            Protocol::Json => pushwire_protocol::frame::decode_json_frame(frame),
            Protocol::Protobuf => pushwire_protocol::decode_protobuf_frame(frame),
        }
        .map_err(|e| self.bad_request(&e.to_string()))?;
        for cmd in commands {
            let stop = self.handle_command(cmd).await?;
            if stop {
                break;
            }
        }
        Ok(())
    }

    fn bad_request(&self, why: &str) -> Disconnect {
        tracing::debug!(client = %self.id, why, "bad request");
        Metrics::add(&self.node.metrics().bad_requests, 1);
        Disconnect::BAD_REQUEST
    }

    /// Handles one decoded command. Returns true when the rest of the frame must be skipped
    /// (a failed connect).
    pub async fn handle_command(self: &Arc<Self>, cmd: Command) -> Result<bool, Disconnect> {
        let (id, request) = cmd.into_request();
        let mut outcome = self
            .node
            .metrics()
            .command(metrics::command_index(&request));
        let status = self.state.lock().status;
        match (&request, status) {
            (_, Status::Closed) => return Ok(true),
            (Request::Connect(_), Status::Connecting) => {}
            (_, Status::Connecting | Status::Unusable) | (Request::Connect(_), _) => {
                outcome.fail(Disconnect::BAD_REQUEST.code);
                return Err(self.bad_request("command before connect or second connect"));
            }
            _ => {}
        }
        let is_connect = matches!(request, Request::Connect(_));
        if !is_connect && !matches!(request, Request::Pong) && !self.take_token() {
            outcome.fail(ErrorCode::TooManyRequests.code());
            if id != 0 {
                self.send_reply(&Reply::error(
                    id,
                    pushwire_protocol::Error::from(ErrorCode::TooManyRequests),
                ));
            }
            return Ok(false);
        }
        let result = match request {
            Request::Connect(req) => self.handle_connect(id, req).await,
            Request::Pong => {
                let pong = self.handle_pong().map(|_| false);
                if let Err(d) = &pong {
                    outcome.fail(d.code);
                }
                return pong;
            }
            Request::Unknown => {
                outcome.fail(Disconnect::BAD_REQUEST.code);
                return Err(self.bad_request("unknown command"));
            }
            Request::Ping => Err(ErrorCode::NotAvailable.into()),
            Request::Subscribe(req) => self.handle_subscribe(id, req).await,
            Request::Unsubscribe(req) => self.handle_unsubscribe(id, req).await,
            Request::Publish(req) => self.handle_publish(id, req).await,
            Request::Presence(req) => self.handle_presence(id, req, false).await,
            Request::PresenceStats(req) => self.handle_presence(id, req, true).await,
            Request::History(req) => self.handle_history(id, req).await,
            Request::Rpc(req) => self.handle_rpc(id, req).await,
            Request::Send(req) => self.handle_send(req).await,
            Request::Refresh(req) => self.handle_refresh(id, req).await,
            Request::SubRefresh(req) => self.handle_sub_refresh(id, req).await,
        };
        match result {
            Ok(reply) => {
                // Subscribe queues its own reply (before buffered publications).
                if reply.id != 0 {
                    self.send_reply(&reply);
                }
                Ok(false)
            }
            Err(CommandError::Reply(code)) => {
                outcome.fail(code.code());
                self.fail_command(id, pushwire_protocol::Error::from(code), is_connect)
            }
            Err(CommandError::Custom(error)) => {
                outcome.fail(error.code);
                self.fail_command(id, error, is_connect)
            }
            Err(CommandError::Disconnect(d)) => {
                outcome.fail(d.code);
                if d == Disconnect::BAD_REQUEST {
                    Metrics::add(&self.node.metrics().bad_requests, 1);
                }
                Err(d)
            }
        }
    }

    /// Answers command `id` with `error`; a failed connect makes the connection unusable and
    /// skips the rest of the frame.
    fn fail_command(
        &self,
        id: u32,
        error: pushwire_protocol::Error,
        is_connect: bool,
    ) -> Result<bool, Disconnect> {
        self.send_reply(&Reply::error(id, error));
        if is_connect {
            self.state.lock().status = Status::Unusable;
            return Ok(true);
        }
        Ok(false)
    }

    fn take_token(&self) -> bool {
        let cfg = &self.node.config().client;
        let mut st = self.state.lock();
        st.rate
            .take(cfg.command_rate_limit, cfg.command_burst, Instant::now())
    }

    /// Releases every subscription (used when a connect fails half-way).
    pub(crate) async fn release_all(&self) {
        let subs = std::mem::take(&mut self.state.lock().subs);
        for (channel, sub) in subs {
            self.release_subscription(&channel, &sub).await;
        }
    }

    /// Frees this connection's place in its user's cluster-wide connection count.
    pub(crate) async fn release_user_connection(&self, user: &str) {
        if self.node.config().client.user_connection_limit == 0 || user.is_empty() {
            return;
        }
        if let Err(e) = self.node.user_connections().remove(user, &self.id).await {
            tracing::warn!(client = %self.id, error = %e, "user connection count not released");
        }
    }

    /// Releases everything the connection holds: subscriptions, presence, the registry entry.
    /// Idempotent; the transport calls it once the connection is gone.
    pub async fn cleanup(self: &Arc<Self>) {
        let (subs, user, was_connected) = {
            let mut st = self.state.lock();
            if st.status == Status::Closed {
                return;
            }
            let was_connected = st.status == Status::Connected;
            st.status = Status::Closed;
            (std::mem::take(&mut st.subs), st.user.clone(), was_connected)
        };
        for (channel, sub) in subs {
            self.release_subscription(&channel, &sub).await;
        }
        if was_connected {
            self.node.registry().remove(self.key, &user);
            self.release_user_connection(&user).await;
            let d = self
                .outbox
                .closed()
                .unwrap_or(Disconnect::CONNECTION_CLOSED);
            self.node.lifecycle().record(Record::Disconnect {
                client: self.id.to_string(),
                user: user.clone(),
                code: d.code,
                reason: d.reason.to_string(),
            });
            self.node
                .metrics()
                .connections_active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.outbox.close(Disconnect::CONNECTION_CLOSED);
    }
}
