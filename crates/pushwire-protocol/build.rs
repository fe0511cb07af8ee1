//! Generates the protobuf types of `proto/client.proto` into `OUT_DIR`.
//!
//! `protox` parses the schema in pure Rust and `prost-build` turns the descriptors into code, so
//! building needs no `protoc` on the machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let schema = proto_dir.join("client.proto");
    println!("cargo:rerun-if-changed={}", schema.display());

    let descriptors = protox::compile([&schema], [&proto_dir])?;
    prost_build::Config::new()
        // Payloads stay `bytes::Bytes`, shared with `RawJson` without copying.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
