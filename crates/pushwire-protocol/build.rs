//! Generates the protobuf types of `proto/client.proto` (client protocol) and
//! `proto/control.proto` (messages between nodes) into `OUT_DIR`.
//!
//! `protox` parses the schema in pure Rust and `prost-build` turns the descriptors into code, so
//! building needs no `protoc` on the machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let schemas = [
        proto_dir.join("client.proto"),
        proto_dir.join("control.proto"),
    ];
    for schema in &schemas {
        println!("cargo:rerun-if-changed={}", schema.display());
    }

    let descriptors = protox::compile(&schemas, [&proto_dir])?;
    prost_build::Config::new()
        // Payloads stay `bytes::Bytes`, shared with `RawJson` without copying.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
