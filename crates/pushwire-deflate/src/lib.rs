//! permessage-deflate (RFC 7692) for WebSockets driven by tungstenite, which has no extension
//! support of its own and refuses frames with RSV1 set.
//!
//! Layout:
//! - [`negotiate`]: the `Sec-WebSocket-Extensions` offer and answer. The server always answers
//!   with `server_no_context_takeover; client_no_context_takeover`, as Centrifugo (gorilla
//!   websocket) does: every message is compressed on its own, so no compression context lives
//!   in an idle connection.
//! - [`codec`]: one message deflated or inflated, with per-thread compressors reset for each
//!   message; inflating stops as soon as the output passes its bound (a decompression bomb
//!   never allocates more than the bound).
//! - [`stream`]: [`DeflateStream`], a byte-stream layer beneath tungstenite. It parses the
//!   peer's frames, passes every uncompressed frame through untouched, collects a compressed
//!   message (RSV1), inflates it and hands tungstenite one plain frame instead. Outgoing
//!   compressed messages need no layer: [`codec::compressed_frame`] builds a frame with RSV1
//!   set that tungstenite writes as it is.
//!
//! Failures reach tungstenite's reader as `io::Error`s carrying a [`DeflateError`]; callers
//! map them to close codes with [`DeflateError::of`] and [`DeflateError::close_code`].

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod codec;
mod error;
pub mod negotiate;
pub mod stream;

pub use error::DeflateError;
pub use stream::{DeflateStream, Limits};
