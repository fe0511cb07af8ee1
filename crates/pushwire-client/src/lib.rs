//! A Rust client for pushwire and any server speaking the Centrifugo client protocol v2.
//!
//! - Connects with a fixed token or a token callback, over WebSocket first and falls back to
//!   HTTP-streaming or SSE emulation when an endpoint does not open.
//! - Reconnects with exponential backoff and full jitter ([`Backoff`]), following the
//!   Centrifugo disconnect rules: codes 3000-3499 and 4000-4499 reconnect, 3500-3999 and
//!   4500-4999 stop ([`State::Disconnected`]).
//! - Detects a dead link: no server ping within the ping interval plus
//!   `max_server_ping_delay` closes the connection and reconnects; pings are answered with
//!   pongs when the server asks.
//! - Resubscribes after every reconnect and recovers missed publications from the last
//!   offset and epoch; [`Event::Subscribed`] says whether everything was `recovered`.
//! - JSON or Protobuf ([`Protocol`]); typed results and errors ([`ClientError`] keeps the
//!   server's code).
//!
//! ```no_run
//! # async fn run() -> Result<(), pushwire_client::ClientError> {
//! use futures_util::StreamExt;
//! use pushwire_client::{Client, ClientConfig, Event, SubscriptionOptions};
//!
//! let (client, mut events) = Client::new(ClientConfig::new("ws://127.0.0.1:8000/connection/websocket"))?;
//! client.connect();
//! client.new_subscription("chat:index", SubscriptionOptions::default())?.subscribe().await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Publication { channel, publication } = event {
//!         println!("{channel} #{}: {}", publication.offset, String::from_utf8_lossy(publication.data.as_bytes()));
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Layout: [`config`] (settings), `client` (the handle), `shared` (what the handles share and
//! the calls), `ops` (types the handles and the task share), [`state`], [`event`],
//! [`backoff`], [`subscription`], [`error`], `codec` (commands and replies on the wire),
//! `transport` (WebSocket, HTTP-streaming, SSE, `/emulation`), `driver` (the connection task).

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod backoff;
mod client;
mod codec;
pub mod config;
mod driver;
pub mod error;
pub mod event;
mod ops;
mod shared;
pub mod state;
pub mod subscription;
mod tls;
mod transport;

pub use backoff::Backoff;
pub use client::Client;
pub use config::{ClientConfig, Endpoint, Protocol};
pub use error::{codes, BoxError, ClientError, ServerError};
pub use event::{Event, EventStream};
pub use ops::HistoryOptions;
pub use pushwire_protocol::{
    ClientInfo, HistoryResult, PresenceResult, PresenceStatsResult, Publication, RawJson,
};
pub use state::{State, SubState};
pub use subscription::{Subscription, SubscriptionOptions};
pub use transport::TransportKind;
