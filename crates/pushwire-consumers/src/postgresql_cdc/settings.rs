//! `consumers[].postgresql_cdc`.

use std::collections::BTreeMap;
use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;
use crate::postgresql_outbox::identifier;

/// How the slot is read (`postgresql_cdc.read`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// The streaming replication protocol (`replication=database` connection,
    /// `START_REPLICATION … LOGICAL`): each transaction is pushed as soon as it commits, and
    /// the confirmed position goes back in standby status updates. The default.
    #[default]
    Stream,
    /// The SQL interface over an ordinary connection (`pg_logical_slot_peek_binary_changes`
    /// every `poll_interval`, confirmed with `pg_replication_slot_advance`): for poolers and
    /// proxies that refuse replication connections. Slower (a change waits up to
    /// `poll_interval`).
    Peek,
}

impl ReadMode {
    /// `stream` or `peek`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Stream => "stream",
            ReadMode::Peek => "peek",
        }
    }
}

/// `consumers[].postgresql_cdc`: the change stream of a logical replication slot (built-in
/// `pgoutput` plugin) over a publication. Needs `wal_level = logical` and a role with the
/// `REPLICATION` attribute (or superuser).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresCdcSettings {
    /// Connection string (libpq key=value or URL). Default
    /// `host=127.0.0.1 user=postgres dbname=postgres`.
    pub dsn: String,
    /// PEM root certificate(s) trusted, besides the system's, when the DSN says
    /// `sslmode=require` (the server's certificate is always verified).
    pub tls_ca_pem_file: String,
    /// Logical replication slot. Required. Its confirmed position only moves past a
    /// transaction once every change of it is in channel history.
    pub slot: String,
    /// Publication the slot streams. Required.
    pub publication: String,
    /// Create the slot (`pgoutput`) when missing; with `tables` set, also the publication
    /// (`FOR TABLE …`). Off: a missing slot or publication is an error naming the key, retried
    /// with backoff. Default true.
    pub create_slot: bool,
    /// Tables (`schema.table`, or `table` for `public.table`) whose changes are routed; empty
    /// = every table of the publication. Also the tables of a publication created here.
    pub tables: Vec<String>,
    /// Column filters per table (`schema.table`): `allow` keeps only the listed columns,
    /// `deny` drops the listed ones (after `allow`).
    pub columns: BTreeMap<String, ColumnFilter>,
    /// How the slot is read: `stream` (the replication protocol, default) or `peek` (the SQL
    /// interface polled every `poll_interval`, for poolers that refuse replication
    /// connections). See [`ReadMode`].
    pub read: ReadMode,
    /// `read = "stream"`: how often the confirmed position is reported to PostgreSQL in a
    /// standby status update (also sent whenever the server asks, so an idle stream outlives
    /// `wal_sender_timeout`). Keep it below the server's `wal_sender_timeout` (60s by default):
    /// while the consumer is behind, these updates are what keeps the stream alive. A node
    /// killed re-reads at most about this much, suppressed by the idempotency keys. Default 10s.
    #[serde(with = "humantime_serde")]
    pub status_interval: Duration,
    /// `read = "peek"`: changes read from the slot per round trip (whole transactions: a
    /// round trip ends at the first transaction end past this many). Default 1000.
    pub batch_size: u32,
    /// `read = "peek"`: pause between reads when the slot had nothing new. Default 100ms.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

/// `postgresql_cdc.columns."schema.table"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColumnFilter {
    /// Only these columns (empty = all).
    pub allow: Vec<String>,
    /// Never these columns.
    pub deny: Vec<String>,
}

impl ColumnFilter {
    /// Whether column `name` is kept.
    pub fn keeps(&self, name: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|c| c == name))
            && !self.deny.iter().any(|c| c == name)
    }
}

impl Default for PostgresCdcSettings {
    fn default() -> Self {
        PostgresCdcSettings {
            dsn: "host=127.0.0.1 user=postgres dbname=postgres".into(),
            tls_ca_pem_file: String::new(),
            slot: String::new(),
            publication: String::new(),
            create_slot: true,
            tables: Vec::new(),
            columns: BTreeMap::new(),
            read: ReadMode::Stream,
            status_interval: Duration::from_secs(10),
            batch_size: 1000,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// `table` as `schema.table` (`public.` when unqualified).
pub(crate) fn qualified(table: &str) -> String {
    if table.contains('.') {
        table.to_owned()
    } else {
        format!("public.{table}")
    }
}

impl PostgresCdcSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].postgresql_cdc`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        required(key, "dsn", &self.dsn)?;
        #[cfg(feature = "postgresql_cdc")]
        self.dsn
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::new(format!("{key}.dsn"), e.to_string()))?;
        for (field, value) in [("slot", &self.slot), ("publication", &self.publication)] {
            required(key, field, value)?;
            if !identifier(value) || value.contains('.') {
                return Err(ConfigError::new(
                    format!("{key}.{field}"),
                    format!("{value:?} is not a lower-case SQL name ([a-z_][a-z0-9_]*)"),
                ));
            }
        }
        for (i, t) in self.tables.iter().enumerate() {
            if !identifier(t) {
                return Err(ConfigError::new(
                    format!("{key}.tables[{i}]"),
                    format!("{t:?} is not a lower-case table name ([schema.]table)"),
                ));
            }
        }
        for table in self.columns.keys() {
            if !identifier(table) {
                return Err(ConfigError::new(
                    format!("{key}.columns.{table}"),
                    "not a lower-case table name ([schema.]table)",
                ));
            }
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new(format!("{key}.batch_size"), "must be > 0"));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.poll_interval"),
                "must be > 0",
            ));
        }
        if self.status_interval < Duration::from_millis(10) {
            return Err(ConfigError::new(
                format!("{key}.status_interval"),
                "must be at least 10ms",
            ));
        }
        Ok(())
    }

    /// The column filter of `schema.table`, if any.
    pub fn filter(&self, schema_table: &str) -> Option<&ColumnFilter> {
        self.columns.get(schema_table).or_else(|| {
            schema_table
                .strip_prefix("public.")
                .and_then(|t| self.columns.get(t))
        })
    }

    /// Whether changes of `schema.table` are routed.
    pub fn routes(&self, schema_table: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|t| qualified(t) == schema_table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let ok = PostgresCdcSettings {
            slot: "s".into(),
            publication: "p".into(),
            ..Default::default()
        };
        assert!(ok.validate("k").is_ok());
        let e = PostgresCdcSettings {
            slot: String::new(),
            ..ok.clone()
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.slot");
        let e = PostgresCdcSettings {
            publication: "Bad-Name".into(),
            ..ok.clone()
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.publication");
        let e = PostgresCdcSettings {
            tables: vec!["ok".into(), "x;y".into()],
            ..ok.clone()
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.tables[1]");
        let e = PostgresCdcSettings {
            status_interval: Duration::ZERO,
            ..ok.clone()
        };
        assert_eq!(e.validate("k").unwrap_err().key, "k.status_interval");
        if cfg!(feature = "postgresql_cdc") {
            let e = PostgresCdcSettings {
                dsn: "host=a port=notaport".into(),
                ..ok
            };
            assert_eq!(e.validate("k").unwrap_err().key, "k.dsn");
        }
    }

    #[test]
    fn read_mode_is_stream_by_default_and_named_in_config() {
        assert_eq!(PostgresCdcSettings::default().read, ReadMode::Stream);
        let s: PostgresCdcSettings =
            serde_json::from_value(serde_json::json!({"read": "peek"})).expect("peek");
        assert_eq!(s.read, ReadMode::Peek);
        let bad =
            serde_json::from_value::<PostgresCdcSettings>(serde_json::json!({"read": "poll"}))
                .expect_err("unknown mode");
        assert!(bad.to_string().contains("stream"), "{bad}");
    }

    #[test]
    fn filters_and_routing() {
        let mut s = PostgresCdcSettings {
            tables: vec!["orders".into(), "app.items".into()],
            ..Default::default()
        };
        s.columns.insert(
            "orders".into(),
            ColumnFilter {
                allow: vec!["id".into(), "secret".into()],
                deny: vec!["secret".into()],
            },
        );
        assert!(s.routes("public.orders") && s.routes("app.items") && !s.routes("public.items"));
        let f = s.filter("public.orders").expect("filter");
        assert!(f.keeps("id") && !f.keeps("secret") && !f.keeps("other"));
        assert!(s.filter("app.items").is_none());
    }
}
