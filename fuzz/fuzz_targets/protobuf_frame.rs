//! Protobuf command frames: varint-length-delimited `Command` messages. Any input must give
//! commands or an error, never a panic, and never more than `MAX_COMMANDS_PER_FRAME`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushwire_protocol::frame::{decode_protobuf_frame, MAX_COMMANDS_PER_FRAME};

fuzz_target!(|data: &[u8]| {
    if let Ok(commands) = decode_protobuf_frame(data) {
        assert!(!commands.is_empty() && commands.len() <= MAX_COMMANDS_PER_FRAME);
    }
});
