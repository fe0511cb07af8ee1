//! Backend proxies (HTTP and gRPC): connect, refresh, subscribe, publish, RPC, sub-refresh.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test proxies`.

mod proxy_backend;

mod hang;
mod proxies;
