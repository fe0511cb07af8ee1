//! What the client tells the application, as one ordered async stream.
//!
//! Events come through a bounded queue (`ClientConfig::event_queue_capacity`). The connection
//! task waits when the queue is full, so an application that stops reading slows its own
//! connection down (and the server eventually disconnects it as slow) instead of losing
//! publications silently.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use pushwire_protocol::{ClientInfo, Publication};
use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::state::{State, SubState};
use crate::transport::TransportKind;

/// One event.
#[derive(Debug, Clone)]
pub enum Event {
    /// The connection state changed. `code`/`reason` say why (client-local codes in
    /// [`crate::codes`], or the server's disconnect code).
    State {
        /// New state.
        state: State,
        /// Why.
        code: u32,
        /// Why, in words.
        reason: String,
    },
    /// The connect reply arrived.
    Connected {
        /// The connection id the server assigned.
        client_id: String,
        /// The transport in use.
        transport: TransportKind,
        /// Server version.
        version: String,
    },
    /// A non-fatal error: a failed connect attempt, a bad token callback, a failed refresh.
    /// The client keeps trying (with backoff) unless a [`Event::State`] with
    /// [`State::Disconnected`] follows.
    Error(ClientError),
    /// A subscription's state changed (subscribing, unsubscribed).
    SubState {
        /// Channel.
        channel: String,
        /// New state.
        state: SubState,
        /// Why (unsubscribe code, client-local code).
        code: u32,
        /// Why, in words.
        reason: String,
    },
    /// A subscribe reply (or a server-side subscription) arrived.
    ///
    /// When `was_recovering` is true and `recovered` is false, publications were missed and
    /// could not be recovered: the application must reload its state for this channel.
    Subscribed {
        /// Channel.
        channel: String,
        /// A recovery attempt was made.
        was_recovering: bool,
        /// Every missed publication was delivered (they follow as [`Event::Publication`]).
        recovered: bool,
        /// Recovery is on for this subscription.
        recoverable: bool,
        /// Positioning is on.
        positioned: bool,
        /// Stream position after the reply (when positioned or recoverable).
        offset: u64,
        /// Stream epoch.
        epoch: String,
        /// Server-side subscription (from the token or the server API).
        server_side: bool,
    },
    /// A subscription failed (error reply); `Unsubscribed` follows when it is terminal.
    SubscriptionError {
        /// Channel.
        channel: String,
        /// The error.
        error: ClientError,
    },
    /// A publication in a channel.
    Publication {
        /// Channel.
        channel: String,
        /// The publication (data, offset, tags, publisher).
        publication: Publication,
    },
    /// Someone joined a channel (join/leave pushes).
    Join {
        /// Channel.
        channel: String,
        /// Who.
        info: ClientInfo,
    },
    /// Someone left a channel.
    Leave {
        /// Channel.
        channel: String,
        /// Who.
        info: ClientInfo,
    },
    /// An async message from the server (no channel).
    Message {
        /// Payload.
        data: bytes::Bytes,
    },
}

/// The stream of [`Event`]s; ends after the client is closed (or dropped).
///
/// ```no_run
/// # async fn run() -> Result<(), pushwire_client::ClientError> {
/// use futures_util::StreamExt;
/// use pushwire_client::{Client, ClientConfig, Event};
///
/// let (client, mut events) = Client::new(ClientConfig::new("ws://127.0.0.1:8000/connection/websocket"))?;
/// client.connect();
/// while let Some(event) = events.next().await {
///     if let Event::Publication { channel, publication } = event {
///         println!("{channel}: {:?}", publication.data);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
}

impl EventStream {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        EventStream { rx }
    }

    /// The next event; `None` once the client is closed.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
