//! PostgreSQL outbox source (`tokio-postgres`): rows taken in `id` order per partition under
//! an advisory lock with `FOR UPDATE SKIP LOCKED`, deleted in the same transaction once
//! processed; `LISTEN/NOTIFY` wakes the poller; poison rows move to a dead-letter table.

#[cfg(feature = "postgresql_outbox")]
pub(crate) mod connect;
mod settings;
#[cfg(feature = "postgresql_outbox")]
mod source;

pub(crate) use settings::identifier;
pub use settings::PostgresOutboxSettings;
#[cfg(feature = "postgresql_outbox")]
pub use source::run;
