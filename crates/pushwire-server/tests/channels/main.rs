//! Channel features end to end: history, input validation, permissions, presence, recovery.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test channels`.

mod common;

mod history;
mod input;
mod permissions;
mod presence;
mod recovery;
