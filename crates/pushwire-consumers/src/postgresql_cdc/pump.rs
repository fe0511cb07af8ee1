//! The task that owns a started replication stream's socket.
//!
//! [`spawn_pump`] forwards XLogData and keepalives, in order, into a bounded queue, and
//! reports the position it is given (never more) every `status_interval` and whenever the
//! server asks, even while the queue is full (it then stops reading, so TCP pushes back on
//! the server), so PostgreSQL keeps a slow or idle stream (`wal_sender_timeout`).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::pgoutput::Lsn;
use super::replication::{Message, ReplicationConnection, ReplicationError};

/// What arrives on the stream.
#[derive(Debug)]
pub(super) enum Event {
    /// One `pgoutput` message; `lsn` is the WAL position of its record.
    Data {
        /// WAL position of the record (XLogData's start).
        lsn: Lsn,
        /// The `pgoutput` message.
        data: Bytes,
    },
    /// The server has sent everything up to `wal_end`.
    Keepalive {
        /// The server's sent position.
        wal_end: Lsn,
    },
}

/// Hands `conn` (started) to a task that owns it (see the module docs): events go into a
/// queue of `capacity`; the position in `flushed` is reported every `status_interval` and
/// when the server asks. When `flushed`'s sender is dropped the task reports it one last
/// time, closes the stream and ends `Ok`; a broken stream ends it with the error (the queue
/// closes first).
pub(super) fn spawn_pump(
    conn: ReplicationConnection,
    flushed: watch::Receiver<Lsn>,
    status_interval: Duration,
    capacity: usize,
) -> (
    mpsc::Receiver<Event>,
    JoinHandle<Result<(), ReplicationError>>,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let task = tokio::spawn(pump(conn, tx, flushed, status_interval));
    (rx, task)
}

async fn pump(
    mut conn: ReplicationConnection,
    tx: mpsc::Sender<Event>,
    mut flushed: watch::Receiver<Lsn>,
    status_interval: Duration,
) -> Result<(), ReplicationError> {
    let mut tick = tokio::time::interval(status_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            biased;
            changed = flushed.changed() => {
                if changed.is_err() {
                    return finish(&mut conn, &flushed).await;
                }
                continue;
            }
            _ = tick.tick() => {
                let at = *flushed.borrow();
                conn.status(at).await?;
                continue;
            }
            message = conn.next_message() => message?,
        };
        let event = match message {
            Message::XLogData { start, data } => Event::Data { lsn: start, data },
            Message::Keepalive { wal_end, reply } => {
                if reply {
                    let at = *flushed.borrow();
                    conn.status(at).await?;
                }
                Event::Keepalive { wal_end }
            }
        };
        // Hand it over; while the consumer is behind, keep answering the server.
        loop {
            tokio::select! {
                biased;
                changed = flushed.changed() => {
                    if changed.is_err() {
                        return finish(&mut conn, &flushed).await;
                    }
                }
                _ = tick.tick() => {
                    let at = *flushed.borrow();
                    conn.status(at).await?;
                }
                permit = tx.reserve() => {
                    match permit {
                        Ok(permit) => permit.send(event),
                        Err(_) => return finish(&mut conn, &flushed).await,
                    }
                    break;
                }
            }
        }
    }
}

/// The last report, then the end of the stream.
async fn finish(
    conn: &mut ReplicationConnection,
    flushed: &watch::Receiver<Lsn>,
) -> Result<(), ReplicationError> {
    let at = *flushed.borrow();
    conn.status(at).await?;
    conn.close().await;
    Ok(())
}
