//! The real SDKs (centrifuge-js, centrifuge-python, cent) and a real browser against the server.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test sdk`.

mod browser;
mod deflate;
mod js;
mod python;
mod refresh;
mod transports;
