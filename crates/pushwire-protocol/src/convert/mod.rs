//! Conversions between the serde model and the generated protobuf types ([`crate::pb`]).
//!
//! The model stays the one the server works with; protobuf is only a wire format:
//! - client → server: `pb::Command` → [`crate::Command`] (decoding client frames);
//! - server → client: `&`[`crate::Reply`] / `&`[`crate::Push`] → `pb::Reply` / `pb::Push`
//!   (encoding), and back (`pb::Reply` → `Reply`), so that tests and Rust clients can read what
//!   the server writes, as the JSON model allows.
//!
//! `bytes` fields map to [`crate::RawJson`] verbatim (a refcount bump, no copy); tag maps go
//! between `BTreeMap` and `HashMap`. Fields that exist only in the schema (map subscriptions,
//! dictionary compression, channel compaction, ...) are dropped on the way in and left unset on
//! the way out.

mod command;
mod reply;
