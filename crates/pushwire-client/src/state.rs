//! Connection and subscription states.
//!
//! ```text
//!                connect()                 connect reply
//! Disconnected ───────────▶ Connecting ─────────────────▶ Connected
//!      ▲   ▲                 │   ▲                            │
//!      │   │ terminal code   │   │ transport lost, no ping,   │
//!      │   └─────────────────┘   │ code 3000-3499 (backoff)   │
//!      │                         └────────────────────────────┘
//!      │ disconnect() or terminal code (3500-3999, 4500-4999)
//!      └──────────────────────────────────────────────────────────
//! close(): any state ──▶ Closed (final; the event stream ends)
//! ```

/// The connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not connected and not trying: before `connect()`, after `disconnect()`, or after a
    /// terminal disconnect. `connect()` starts again.
    Disconnected,
    /// Opening a transport or waiting for the connect reply, or waiting out a backoff delay.
    Connecting,
    /// The connect reply arrived; calls and subscriptions go through.
    Connected,
    /// `close()` was called: final. Every call returns [`crate::ClientError::Closed`].
    Closed,
}

/// A subscription's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubState {
    /// Not subscribed and not trying.
    Unsubscribed,
    /// A subscribe is in flight, or waits for the connection or a backoff delay.
    Subscribing,
    /// The subscribe reply arrived; publications flow.
    Subscribed,
}
