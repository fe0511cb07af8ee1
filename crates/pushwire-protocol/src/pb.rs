//! Protobuf types of the client protocol, generated at build time from `proto/client.proto`
//! (package `centrifugal.centrifuge.protocol`) by `build.rs`.
//!
//! These are wire types only: the server works with the serde model ([`crate::command`],
//! [`crate::reply`]); the private `convert` module maps between the two. `bytes` fields are
//! [`bytes::Bytes`].

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(
    env!("OUT_DIR"),
    "/centrifugal.centrifuge.protocol.rs"
));
