//! PostgreSQL change data capture: the row changes of a publication, read from a logical
//! replication slot with the built-in `pgoutput` plugin (no extension), each committed
//! INSERT / UPDATE / DELETE routed as one change event (see [`change`]) in commit order. The
//! slot is confirmed only past transactions whose changes are all in channel history.
//!
//! Layout: `settings` (the config section), `pgoutput` (message decoder), `change` (change
//! events), `transactions` (messages to applied changes), `source` (the session loop), which
//! reads the slot with `stream` (the replication protocol, over `replication`'s wire client
//! and the `pump` task that owns its socket; the default) or `peek` (the SQL interface, for poolers that refuse replication
//! connections).

pub mod change;
#[cfg(feature = "postgresql_cdc")]
mod peek;
pub mod pgoutput;
#[cfg(feature = "postgresql_cdc")]
mod pump;
#[cfg(feature = "postgresql_cdc")]
mod replication;
mod settings;
#[cfg(feature = "postgresql_cdc")]
mod source;
#[cfg(feature = "postgresql_cdc")]
mod stream;
#[cfg(feature = "postgresql_cdc")]
mod transactions;

pub use settings::{ColumnFilter, PostgresCdcSettings, ReadMode};
#[cfg(feature = "postgresql_cdc")]
pub use source::run;
