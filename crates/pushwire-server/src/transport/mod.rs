//! Transports: framing and HTTP only. Each one creates a [`pushwire_core::Client`], feeds it
//! frames, and writes what its outbox yields; none of them knows about channels.
//!
//! - [`websocket`]: bidirectional and unidirectional WebSocket; [`ws_upgrade`]: its HTTP
//!   handshake (subprotocol, permessage-deflate); `ws_socket`: one connection's socket
//!   (tungstenite's state machine driven from the connection task, data frames written
//!   straight to the stream).
//! - [`http_stream`], [`sse`], [`emulation`]: bidirectional emulation over HTTP.
//! - [`uni`]: unidirectional HTTP-streaming and SSE.
//! - [`long_poll`]: long-polling and polling by offset.
//! - [`stream`]: the streaming response body shared by the HTTP transports.
//! - [`admit`]: the preamble of every transport (origin 403, shutting down 503, the client).
//! - [`origin`], [`cors`], [`headers`], [`positions`]: shared pieces.

// Handlers return `Result<_, Response>` to answer early: at most once per request, so the
// size of the error variant does not matter.
#![allow(clippy::result_large_err)]

pub mod admit;
pub mod cors;
pub mod emulation;
pub mod forward;
pub mod headers;
pub mod http_stream;
pub mod long_poll;
pub mod origin;
pub mod positions;
pub mod sse;
pub mod stream;
pub mod uni;
pub mod websocket;
mod ws_socket;
pub mod ws_upgrade;
