//! `/emulation` bodies, both encodings, down to the commands they carry. The first byte picks
//! the encoding (even: JSON `{"session","node","data"}` with newline-delimited JSON commands in
//! `data`, as the server parses it; odd: a protobuf `EmulationRequest` with delimited
//! protobuf commands in `data`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire_protocol::frame::{
    decode_emulation_request, decode_json_frame, decode_protobuf_frame,
};

/// The JSON emulation body, field for field as `transport::emulation` reads it.
#[derive(serde::Deserialize)]
struct JsonEmulation {
    #[serde(default)]
    #[allow(dead_code)]
    session: String,
    #[serde(default)]
    #[allow(dead_code)]
    node: String,
    #[serde(default)]
    data: String,
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(req) = serde_json::from_slice::<JsonEmulation>(body) {
            let _ = decode_json_frame(req.data.as_bytes());
        }
    } else if let Ok((_node, _session, data)) = decode_emulation_request(body) {
        let _ = decode_protobuf_frame(&data);
    }
});
