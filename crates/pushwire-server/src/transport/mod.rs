//! Transports: framing and HTTP only. Each one creates a [`pushwire_core::Client`], feeds it
//! frames, and writes what its outbox yields; none of them knows about channels.

pub mod origin;
pub mod websocket;
