//! Transports: WebSocket, HTTP-streaming/SSE emulation, long-poll and the unidirectional ones.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test transports`.

mod common;

mod deflate;
mod emulation;
mod long_poll;
mod uni;
mod websocket;
