//! MySQL / MariaDB change data capture (`mysql_async`): the row-based binary log read as a
//! replica, each committed row change routed as one change event (the shape of
//! [`crate::postgresql_cdc::change`]) in commit order; the binlog position (MariaDB GTIDs, or
//! file and offset) is kept in `position_file` and only moves past a transaction once every
//! change of it is in channel history.

#[cfg(feature = "mysql_cdc")]
mod gtid;
mod settings;
#[cfg(feature = "mysql_cdc")]
mod source;
#[cfg(feature = "mysql_cdc")]
mod value;

pub use settings::{MysqlCdcSettings, PositionMode};
#[cfg(feature = "mysql_cdc")]
pub use source::run;
