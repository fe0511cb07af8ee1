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
//! - [`fossil`]: Fossil delta encoding of publication payloads (delta compression).
//! - [`frame`]: splitting batched frames (JSON or varint-delimited protobuf) into commands and
//!   joining encoded replies into frames.
//! - [`pb`]: protobuf wire types generated at build time from `proto/client.proto`.
//! - [`control`]: protobuf messages between nodes (`proto/control.proto`), versioned.
//! - [`transport`]: the transport kinds and their protocol names.
//! - `convert` (private): `From` impls between the model and [`pb`].

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod codes;
pub mod command;
pub mod control;
mod convert;
pub mod encode;
pub mod fossil;
pub mod frame;
pub mod pb;
pub mod raw;
pub mod reply;
pub mod transport;

pub use codes::{Disconnect, ErrorCode, Unsubscribe};
pub use command::*;
pub use encode::{encode_push, encode_reply, EncodeError};
pub use frame::{
    decode_emulation_request, decode_json_frame, decode_protobuf_frame, FrameError, Protocol,
};
/// The protobuf runtime the [`pb`] types are built on (for `Message::decode` and friends).
pub use prost;
pub use raw::RawJson;
pub use reply::*;
pub use transport::TransportKind;
