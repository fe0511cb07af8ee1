//! Security and bad input: limits, origin checks, TLS, tokens, malformed frames.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test security`.

mod bad_input;
mod limits;
mod origin;
mod tls;
mod tokens;
