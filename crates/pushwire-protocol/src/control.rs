//! Protobuf types of the control messages between nodes, generated at build time from
//! `proto/control.proto` (package `pushwire.control`) by `build.rs`.
//!
//! Every message on the control plane is an [`Envelope`] whose `version` is
//! [`CONTROL_VERSION`]; the core's `cluster` module encodes, decodes and acts on them.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Version of the control messages this build sends and understands.
pub const CONTROL_VERSION: u32 = 1;

include!(concat!(env!("OUT_DIR"), "/pushwire.control.rs"));
