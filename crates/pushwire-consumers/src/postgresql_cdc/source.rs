//! The PostgreSQL CDC session loop: connect, check (and create) the publication and the slot
//! over an ordinary connection, then read the slot the configured way
//! ([`super::stream`], the default, or [`super::peek`]). Either way the slot is confirmed
//! only past transactions whose every change is in channel history (or dead-lettered); a
//! node killed before that re-reads those changes, and their idempotency keys
//! (`pgcdc:<slot>:<commit LSN>:<n-th change>`) suppress what was already published.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::pgoutput::Lsn;
use super::settings::{qualified, PostgresCdcSettings, ReadMode};
use super::{peek, stream};
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::postgresql_outbox::{connect, PostgresOutboxSettings};
use crate::processor::Processor;

/// Timeout of connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the slot until `shutdown`, reconnecting with backoff on errors (each logged once
/// per attempt with its cause: wal_level not logical, slot or publication missing, no
/// replication permission, connection refused…). Never panics.
pub async fn run(
    name: String,
    settings: PostgresCdcSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut backoff = processor.backoff();
    while !shutdown.is_cancelled() {
        let result = session(&name, &settings, &processor, &shutdown, &mut backoff).await;
        if shutdown.is_cancelled() {
            break;
        }
        let delay = backoff.next_delay();
        if let Err(e) = result {
            tracing::warn!(consumer = %name, error = %e, ?delay, "postgresql cdc unavailable; retrying");
            processor.metrics().set_source_down(Some(e.to_string()));
        }
        processor.metrics().set_lag(-1);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(consumer = %name, "postgresql cdc consumer stopped");
}

/// A `tokio-postgres` error as a broker error saying `what` failed.
pub(super) fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> ConsumerError {
    move |e| ConsumerError::Broker(format!("{what}: {e}"))
}

/// The config key `field` of consumer `name`'s section.
pub(super) fn key(name: &str, field: &str) -> String {
    format!("consumers[name={name}].postgresql_cdc.{field}")
}

async fn session(
    name: &str,
    s: &PostgresCdcSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let conn = connect::connect(
        &PostgresOutboxSettings {
            dsn: s.dsn.clone(),
            tls_ca_pem_file: s.tls_ca_pem_file.clone(),
            ..Default::default()
        },
        CONNECT_TIMEOUT,
    )
    .await?;
    let client = &conn.client;
    let result = async {
        let from = prepare(name, client, s).await?;
        tracing::info!(consumer = %name, slot = %s.slot, publication = %s.publication, read = s.read.as_str(), "postgresql cdc consumer connected");
        match s.read {
            ReadMode::Peek => {
                backoff.reset();
                processor.metrics().set_source_down(None);
                peek::read(s, client, processor, shutdown).await
            }
            ReadMode::Stream => {
                let config: tokio_postgres::Config = s
                    .dsn
                    .parse()
                    .map_err(|e| ConsumerError::config(key(name, "dsn"), format!("{e}")))?;
                let tls = if connect::wants_tls(&config, &s.tls_ca_pem_file) {
                    let tls = connect::client_config(
                        &key(name, "tls_ca_pem_file"),
                        &s.tls_ca_pem_file,
                    )?;
                    Some(Arc::new(tls))
                } else {
                    None
                };
                // The stream needs no other connection.
                conn.driver.abort();
                stream::read(name, s, tls, from, processor, shutdown, backoff).await
            }
        }
    }
    .await;
    conn.driver.abort();
    result
}

/// Checks wal_level, the publication and the slot; creates them when allowed. Returns the
/// slot's confirmed position.
async fn prepare(
    name: &str,
    client: &Client,
    s: &PostgresCdcSettings,
) -> Result<Lsn, ConsumerError> {
    let key = |field: &str| key(name, field);
    let level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(pg("show wal_level"))?
        .get(0);
    if level != "logical" {
        return Err(ConsumerError::config(
            key("dsn"),
            format!("the server's wal_level is {level}, not logical: set wal_level = logical and restart PostgreSQL"),
        ));
    }
    let publication = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&s.publication],
        )
        .await
        .map_err(pg("read pg_publication"))?;
    if publication.is_none() {
        if !s.create_slot || s.tables.is_empty() {
            return Err(ConsumerError::config(
                key("publication"),
                format!(
                    "publication {:?} does not exist (create it, or set tables with create_slot)",
                    s.publication
                ),
            ));
        }
        let tables: Vec<String> = s.tables.iter().map(|t| qualified(t)).collect();
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                s.publication,
                tables.join(", ")
            ))
            .await
            .map_err(|e| {
                ConsumerError::config(
                    key("publication"),
                    format!("cannot create publication: {e}"),
                )
            })?;
        tracing::info!(consumer = %name, publication = %s.publication, "publication created");
    }
    let slot = client
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&s.slot],
        )
        .await
        .map_err(pg("read pg_replication_slots"))?;
    let confirmed: Option<String> = match slot {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(ConsumerError::config(
                    key("slot"),
                    format!("slot {:?} uses plugin {plugin:?}, not pgoutput", s.slot),
                ));
            }
            row.get(1)
        }
        None if s.create_slot => {
            let created = client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&s.slot],
                )
                .await
                .map_err(|e| ConsumerError::config(key("slot"), format!("cannot create slot (the role needs REPLICATION): {e}")))?;
            tracing::info!(consumer = %name, slot = %s.slot, "replication slot created");
            created.get(0)
        }
        None => {
            return Err(ConsumerError::config(
                key("slot"),
                format!("replication slot {:?} does not exist (create it with pgoutput, or set create_slot)", s.slot),
            ))
        }
    };
    match confirmed {
        Some(lsn) => lsn.parse().map_err(ConsumerError::Broker),
        None => Ok(Lsn(0)),
    }
}
