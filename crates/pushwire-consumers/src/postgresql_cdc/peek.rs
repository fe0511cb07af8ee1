//! `read = "peek"`: the slot read through the SQL interface over an ordinary connection, for
//! poolers and proxies that refuse replication connections.
//!
//! Whole transactions are read with `pg_logical_slot_peek_binary_changes` (up to
//! `batch_size` changes per round trip, every `poll_interval` while the slot is idle) and the
//! slot is confirmed with `pg_replication_slot_advance` to the end of the last transaction
//! whose every change is in channel history (or dead-lettered).

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::pgoutput::Lsn;
use super::settings::PostgresCdcSettings;
use super::source::pg;
use super::transactions::{Step, Transactions};
use crate::error::ConsumerError;
use crate::processor::Processor;

/// Reads and applies transactions until `shutdown` or an error.
pub(super) async fn read(
    s: &PostgresCdcSettings,
    client: &Client,
    processor: &Processor,
    shutdown: &CancellationToken,
) -> Result<(), ConsumerError> {
    let peek = client
        .prepare(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
        )
        .await
        .map_err(pg("prepare peek"))?;
    let advance = client
        .prepare("SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)::text")
        .await
        .map_err(pg("prepare advance"))?;
    let lag = client
        .prepare(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
        )
        .await
        .map_err(pg("prepare lag"))?;
    let batch = i32::try_from(s.batch_size).unwrap_or(i32::MAX);
    let mut transactions = Transactions::new(s);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = processor.ready() => {}
        }
        // Each peek is a fresh decoding session.
        transactions.restart();
        let rows = client
            .query(&peek, &[&s.slot, &batch, &s.publication])
            .await
            .map_err(pg("read slot"))?;
        if let Ok(row) = client.query_one(&lag, &[&s.slot]).await {
            processor
                .metrics()
                .set_lag(row.get::<_, Option<i64>>(0).unwrap_or(-1));
        }
        if rows.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(s.poll_interval) => {}
            }
            continue;
        }
        let mut confirm: Option<Lsn> = None;
        for row in rows {
            let lsn: String = row.get(0);
            let lsn: Lsn = lsn.parse().map_err(ConsumerError::Broker)?;
            let data: &[u8] = row.get(1);
            match transactions.apply(lsn, data, processor, shutdown).await? {
                Step::Read => {}
                Step::Committed(end) => confirm = Some(end),
                Step::ShutDown => return Ok(()),
            }
        }
        if let Some(lsn) = confirm {
            client
                .query_one(&advance, &[&s.slot, &lsn.to_string()])
                .await
                .map_err(pg("confirm slot position"))?;
        }
    }
}
