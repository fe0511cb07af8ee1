//! `consumers[].mysql_cdc`.

use std::collections::BTreeMap;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;
use crate::postgresql_cdc::ColumnFilter;

/// How the binlog position is kept (`consumers[].mysql_cdc.position`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionMode {
    /// MariaDB: GTIDs; MySQL: file and offset. Default.
    #[default]
    Auto,
    /// MariaDB GTIDs (`domain-server-seq` per replication domain, as in `gtid_slave_pos`):
    /// resumes at the same transaction after a restart or on another server of the same
    /// replication topology.
    Gtid,
    /// Binlog file name and offset: valid on this one server only.
    File,
}

/// `consumers[].mysql_cdc`: the row-based binary log of a MySQL or MariaDB server, read as a
/// replica. Needs `log_bin`, `binlog_format = ROW`, `binlog_row_image = FULL` and
/// `binlog_row_metadata = FULL` (column names), and a user with `REPLICATION SLAVE` and
/// `REPLICATION CLIENT`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlCdcSettings {
    /// Connection URL. Default `mysql://root@127.0.0.1:3306`.
    pub url: String,
    /// Replica server id, unique among the server's replicas. Default 65001.
    pub server_id: u32,
    /// File keeping the binlog position past the last transaction whose changes are all in
    /// history: `gtid <domain-server-seq,…>` (GTID mode) or `<file> <offset>`; written
    /// atomically (temporary file + rename). Without the file the consumer starts at the
    /// server's current position. Required.
    pub position_file: String,
    /// `auto` (default: GTIDs on MariaDB, file and offset on MySQL), `gtid` (MariaDB GTIDs;
    /// refused by a MySQL server) or `file`.
    pub position: PositionMode,
    /// Tables (`db.table`) routed; empty = every table.
    pub tables: Vec<String>,
    /// Column filters per table (`db.table`): `allow`, `deny`.
    pub columns: BTreeMap<String, ColumnFilter>,
}

impl Default for MysqlCdcSettings {
    fn default() -> Self {
        MysqlCdcSettings {
            url: "mysql://root@127.0.0.1:3306".into(),
            server_id: 65001,
            position_file: String::new(),
            position: PositionMode::Auto,
            tables: Vec::new(),
            columns: BTreeMap::new(),
        }
    }
}

impl MysqlCdcSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].mysql_cdc`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        required(key, "url", &self.url)?;
        if !self.url.starts_with("mysql://") {
            return Err(ConfigError::new(
                format!("{key}.url"),
                "must start with mysql://",
            ));
        }
        required(key, "position_file", &self.position_file)?;
        if self.server_id == 0 {
            return Err(ConfigError::new(format!("{key}.server_id"), "must be > 0"));
        }
        for (i, t) in self.tables.iter().enumerate() {
            if t.split('.').count() != 2 || t.split('.').any(str::is_empty) {
                return Err(ConfigError::new(
                    format!("{key}.tables[{i}]"),
                    format!("{t:?} is not db.table"),
                ));
            }
        }
        Ok(())
    }

    /// Whether changes of `db.table` are routed.
    pub fn routes(&self, db_table: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|t| t == db_table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let ok = MysqlCdcSettings {
            position_file: "/tmp/p".into(),
            tables: vec!["app.orders".into()],
            ..Default::default()
        };
        assert!(ok.validate("k").is_ok());
        assert!(ok.routes("app.orders") && !ok.routes("app.items"));
        let e = MysqlCdcSettings {
            position_file: String::new(),
            ..ok.clone()
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.position_file");
        let e = MysqlCdcSettings {
            tables: vec!["orders".into()],
            ..ok.clone()
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.tables[0]");
        let e = MysqlCdcSettings {
            url: "postgres://x".into(),
            ..ok
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.url");
    }
}
