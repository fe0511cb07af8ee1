//! `read = "stream"` (the default): the slot streamed over the replication protocol.
//!
//! Each transaction arrives as soon as it commits. The slot's position reported back (see
//! [`super::pump`]) is the end of the last transaction whose every change is in
//! channel history or dead-lettered, or a keepalive's position reached between transactions
//! (everything before it was received and applied), so an idle slot does not hold WAL back.
//! The stream starts at the slot's confirmed position: what a killed node had applied but not
//! yet reported is read again, and its idempotency keys suppress it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pgoutput::Lsn;
use super::pump::{spawn_pump, Event};
use super::replication::{ReplicationConnection, ReplicationError};
use super::settings::PostgresCdcSettings;
use super::source::key;
use super::transactions::{Step, Transactions};
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::processor::Processor;

/// Timeout of connecting and starting the stream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Stream messages queued between the socket and the processor.
const QUEUE_MESSAGES: usize = 1024;

/// How long a stopping stream may take to report its last position.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Aborts the pump task if the stream is dropped with it still running.
struct Pump(JoinHandle<Result<(), ReplicationError>>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Streams the slot from `from` (its confirmed position) until `shutdown` or an error;
/// `backoff` is reset once the stream has started (a refused replication connection keeps
/// backing off).
pub(super) async fn read(
    name: &str,
    s: &PostgresCdcSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    from: Lsn,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let config: tokio_postgres::Config = s
        .dsn
        .parse()
        .map_err(|e| ConsumerError::config(key(name, "dsn"), format!("{e}")))?;
    let mut conn = ReplicationConnection::connect(&config, tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| refused(name, &e))?;
    tokio::time::timeout(CONNECT_TIMEOUT, conn.start(&s.slot, &s.publication, from))
        .await
        .map_err(|_| ConsumerError::Connection("START_REPLICATION: timed out".into()))?
        .map_err(|e| refused(name, &e))?;
    backoff.reset();
    processor.metrics().set_source_down(None);
    tracing::info!(consumer = %name, slot = %s.slot, %from, "postgresql cdc streaming");

    let (flushed, reported) = watch::channel(from);
    let (mut events, task) = spawn_pump(conn, reported, s.status_interval, QUEUE_MESSAGES);
    let mut pump = Pump(task);
    let mut transactions = Transactions::new(s);
    let mut confirmed = from;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.recv() => event,
        };
        let Some(event) = event else {
            // The pump ended: the stream broke.
            return Err(match (&mut pump.0).await {
                Ok(Err(e)) => refused(name, &e),
                Ok(Ok(())) => ConsumerError::Connection("the replication stream ended".into()),
                Err(e) => ConsumerError::Connection(format!("replication stream task: {e}")),
            });
        };
        let wal_end = match event {
            Event::Data { lsn, data } => {
                processor.ready().await;
                match transactions.apply(lsn, &data, processor, shutdown).await? {
                    Step::Read => {}
                    Step::Committed(end) => {
                        confirmed = confirmed.max(end);
                        flushed.send_replace(confirmed);
                    }
                    Step::ShutDown => break,
                }
                lsn
            }
            Event::Keepalive { wal_end } => {
                if !transactions.in_transaction() && wal_end > confirmed {
                    confirmed = wal_end;
                    flushed.send_replace(confirmed);
                }
                wal_end
            }
        };
        processor
            .metrics()
            .set_lag(i64::try_from(wal_end.0.saturating_sub(confirmed.0)).unwrap_or(i64::MAX));
    }
    // Shutting down: the pump reports the last confirmed position and closes the stream.
    drop(flushed);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut pump.0).await;
    Ok(())
}

/// A replication error as a consumer error, naming the key at fault when it is one.
fn refused(name: &str, e: &ReplicationError) -> ConsumerError {
    let message = e.to_string();
    match e.code() {
        // invalid_authorization_specification / insufficient_privilege: no REPLICATION.
        Some("28000" | "42501") if message.contains("replication") => ConsumerError::config(
            key(name, "dsn"),
            format!("{message}: the role needs the REPLICATION attribute (ALTER ROLE … REPLICATION), or set read = \"peek\" when a pooler refuses replication connections"),
        ),
        // undefined_object: the slot or the publication.
        Some("42704") if message.contains("publication") => {
            ConsumerError::config(key(name, "publication"), message)
        }
        Some("42704") => ConsumerError::config(key(name, "slot"), message),
        Some(_) => ConsumerError::Broker(message),
        None => ConsumerError::Connection(message),
    }
}
