//! PostgreSQL change data capture (`tokio-postgres`): the row changes of a publication, read
//! from a logical replication slot with the built-in `pgoutput` plugin (no extension), each
//! committed INSERT / UPDATE / DELETE routed as one change event (see [`change`]) in commit
//! order. The slot is confirmed only past transactions whose changes are all in channel
//! history.

pub mod change;
pub mod pgoutput;
mod settings;
#[cfg(feature = "postgresql_cdc")]
mod source;

pub use settings::{ColumnFilter, PostgresCdcSettings};
#[cfg(feature = "postgresql_cdc")]
pub use source::run;
