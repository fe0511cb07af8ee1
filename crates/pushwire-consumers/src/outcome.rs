//! What applying one source message did ([`Effect`]) and what the source must do with it
//! ([`Outcome`]): the vocabulary the processor and the modes (route, API command, Debezium)
//! share, in its own module so neither depends on the other for it.

use pushwire_protocol::ErrorCode;

/// What happened to a message; the source acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In channel history (or suppressed as a duplicate): acknowledge.
    Done,
    /// Can never succeed (bad JSON, unknown namespace, ...): dead-letter, then acknowledge.
    Poison(String),
    /// Transient failure (engine down, node overloaded): do not acknowledge; retry after backoff.
    Retry(String),
}

/// What applying one message did, before it becomes an [`Outcome`].
pub(crate) type Applied = Result<Effect, Outcome>;

/// A successful application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Published / executed.
    Applied,
    /// Every publication was suppressed by its idempotency key.
    Duplicate,
    /// Nothing to publish (a Debezium tombstone or truncate): acknowledged.
    Skipped,
}

/// Maps a node error: `Internal` and `TooManyRequests` are transient, the rest poison.
pub(crate) fn failure(code: ErrorCode, context: &str) -> Outcome {
    let text = format!("{context}: {} ({})", code.message(), code.code());
    if code.temporary() {
        Outcome::Retry(text)
    } else {
        Outcome::Poison(text)
    }
}
