//! `consumers[].postgresql_outbox`.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;

/// `consumers[].postgresql_outbox`: a transactional outbox table.
///
/// Schema (created when `create_tables` is on):
/// ```sql
/// CREATE TABLE <table> (
///   id         bigserial PRIMARY KEY,
///   method     text   NOT NULL DEFAULT 'publish',
///   payload    jsonb  NOT NULL,
///   partition  integer NOT NULL DEFAULT 0,
///   created_at timestamptz NOT NULL DEFAULT now()
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresOutboxSettings {
    /// Connection string (libpq key=value or URL). Default
    /// `host=127.0.0.1 user=postgres dbname=postgres`.
    pub dsn: String,
    /// PEM root certificate(s) trusted, besides the system's, when the connection uses TLS
    /// (`sslmode=require` in the DSN, or this set). The server's certificate is always verified
    /// and must name the DSN's host. Empty: the system's roots only.
    pub tls_ca_pem_file: String,
    /// Outbox table. Default `pushwire_outbox`.
    pub table: String,
    /// Table poison rows are moved to; empty = `<table>_dead_letter`.
    pub dead_letter_table: String,
    /// Create the tables and the NOTIFY trigger at start if missing. Default true.
    pub create_tables: bool,
    /// Partitions (`partition` column values `0..num_partitions`); each is processed by one
    /// node at a time (advisory lock), in `id` order. Default 1.
    pub num_partitions: u32,
    /// Rows taken per transaction. Default 100.
    pub batch_size: u32,
    /// Poll interval when no notification arrives. Default 1s.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// `LISTEN` channel woken by inserts; empty = the table name. The trigger created with
    /// `create_tables` notifies it; producers may also `NOTIFY` it themselves.
    pub notify_channel: String,
}

impl Default for PostgresOutboxSettings {
    fn default() -> Self {
        PostgresOutboxSettings {
            dsn: "host=127.0.0.1 user=postgres dbname=postgres".into(),
            tls_ca_pem_file: String::new(),
            table: "pushwire_outbox".into(),
            dead_letter_table: String::new(),
            create_tables: true,
            num_partitions: 1,
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            notify_channel: String::new(),
        }
    }
}

/// Whether `name` is a plain SQL identifier (optionally schema-qualified) that needs no quoting.
pub(crate) fn identifier(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

impl PostgresOutboxSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].postgresql_outbox`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        required(key, "dsn", &self.dsn)?;
        for (field, value) in [
            ("table", self.table.as_str()),
            ("dead_letter_table", self.dead_letter_table().as_str()),
        ] {
            if !identifier(value) {
                return Err(ConfigError::new(
                    format!("{key}.{field}"),
                    format!("{value:?} is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, optional schema.)"),
                ));
            }
        }
        if !self.notify_channel.is_empty() && !identifier(&self.notify_channel) {
            return Err(ConfigError::new(
                format!("{key}.notify_channel"),
                "must be a lower-case SQL identifier",
            ));
        }
        if self.num_partitions == 0 {
            return Err(ConfigError::new(
                format!("{key}.num_partitions"),
                "must be > 0",
            ));
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
        Ok(())
    }

    /// The dead-letter table name.
    pub fn dead_letter_table(&self) -> String {
        if self.dead_letter_table.is_empty() {
            format!("{}_dead_letter", self.table)
        } else {
            self.dead_letter_table.clone()
        }
    }

    /// The LISTEN channel.
    pub fn notify_channel(&self) -> String {
        if self.notify_channel.is_empty() {
            self.table.replace('.', "_")
        } else {
            self.notify_channel.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(identifier("pushwire_outbox"));
        assert!(identifier("app.outbox_2"));
        assert!(!identifier("Outbox"));
        assert!(!identifier("x; drop table y"));
        assert!(!identifier("a.b.c"));
        assert!(!identifier(""));
    }
}
