//! Wire types and codecs of the Centrifugo client protocol v2, as spoken by pushwire.
//!
//! No async runtime and no HTTP here: this crate only turns bytes into [`Command`]s and
//! [`Reply`]/[`Push`] values into bytes.
//!
//! Layout:
//! - [`codes`]: error codes (100-113), unsubscribe codes (2000-2999), disconnect codes (3000-4999).
//! - [`command`]: what clients send (`Command` and its requests).
//! - [`reply`]: what the server sends (`Reply`, `Push` and their results).
//! - [`raw`]: payload bytes that travel as embedded raw JSON in the JSON protocol.
//! - [`encode`]: replies and pushes to bytes for a connection's protocol.
//! - [`frame`]: splitting batched frames into commands and joining encoded replies into frames.

pub mod codes;
pub mod command;
pub mod encode;
pub mod frame;
pub mod raw;
pub mod reply;

pub use codes::{Disconnect, ErrorCode, Unsubscribe};
pub use command::*;
pub use encode::{encode_push, encode_reply, EncodeError};
pub use frame::{FrameError, Protocol};
pub use raw::RawJson;
pub use reply::*;
