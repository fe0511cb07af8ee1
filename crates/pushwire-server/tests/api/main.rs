//! The server API (HTTP, batch, legacy route, consumer API path), admin page, CLI commands.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test api`.

mod api_consumer;

mod admin;
mod api;
mod cli_sub_pub;
