//! The subscriber connections of a run: opening them at a paced rate, the reconnect storm,
//! and closing them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::pace::schedule_offset;
use crate::progress::Progress;
use crate::subscriber::{self, Event, Shared};

/// Events buffered between the connection tasks and the run.
const EVENT_QUEUE: usize = 1024;
/// How long closing all connections may take before the rest are aborted.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The connection tasks.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    events: mpsc::Receiver<Event>,
    stop: watch::Sender<bool>,
}

/// How the connect phase went.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// Indexes of the connections that are subscribed, ascending.
    pub(crate) established: Vec<usize>,
    /// Failed connections.
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Seconds from the first attempt to the last outcome.
    pub(crate) secs: f64,
}

/// How the reconnect storm went.
#[derive(Debug, Default)]
pub(crate) struct Reconnected {
    /// Connections subscribed again.
    pub(crate) reconnected: u64,
    /// Reconnects that failed.
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Seconds from the trigger to the last outcome.
    pub(crate) secs: f64,
}

impl Pool {
    /// Opens `n` connections, `rate` per second (0: as fast as the handshake limit allows),
    /// and waits for every outcome.
    pub(crate) async fn open(
        shared: Arc<Shared>,
        n: usize,
        rate: u32,
        progress: &Progress,
    ) -> (Pool, Opened) {
        let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let start = Instant::now();
        let spawner = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut handles = Vec::with_capacity(n);
                for index in 0..n {
                    if rate > 0 {
                        tokio::time::sleep_until(start + schedule_offset(index as u64, rate)).await;
                    }
                    handles.push(tokio::spawn(subscriber::run(
                        index,
                        shared.clone(),
                        events_tx.clone(),
                        stop_rx.clone(),
                    )));
                }
                handles
            })
        };
        let mut opened = Opened::default();
        let mut outcomes = 0;
        while outcomes < n {
            let Some(event) = events.recv().await else {
                break;
            };
            match event {
                Event::Up { index } => opened.established.push(index),
                Event::Failed { error } => {
                    opened.errors += 1;
                    opened.first_error.get_or_insert(error);
                }
                Event::Reconnected | Event::ReconnectFailed { .. } => continue,
            }
            outcomes += 1;
            progress.set_position(outcomes as u64);
        }
        opened.secs = start.elapsed().as_secs_f64();
        opened.established.sort_unstable();
        let handles = spawner.await.unwrap_or_default();
        let pool = Pool {
            shared,
            handles,
            events,
            stop,
        };
        (pool, opened)
    }

    /// Arms reconnection, runs `trigger` (which makes the server close the connections) and
    /// waits until `expected` connections have reconnected or failed, or `wait` has passed.
    pub(crate) async fn reconnect_storm(
        &mut self,
        expected: u64,
        wait: Duration,
        trigger: impl std::future::Future<Output = Result<(), String>>,
        progress: &Progress,
    ) -> Reconnected {
        self.shared.reconnect.store(true, Ordering::Relaxed);
        let start = Instant::now();
        let mut out = Reconnected::default();
        if let Err(e) = trigger.await {
            out.first_error = Some(e);
            self.shared.reconnect.store(false, Ordering::Relaxed);
            return out;
        }
        let deadline = start + wait;
        while out.reconnected + out.errors < expected {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Event::Reconnected)) => out.reconnected += 1,
                Ok(Some(Event::ReconnectFailed { error })) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(error);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    out.first_error.get_or_insert_with(|| {
                        format!("not all connections were back within {wait:?}")
                    });
                    break;
                }
            }
            progress.set_position(out.reconnected + out.errors);
        }
        out.secs = start.elapsed().as_secs_f64();
        self.shared.reconnect.store(false, Ordering::Relaxed);
        out
    }

    /// Tells every connection to close, waits up to [`SHUTDOWN_WAIT`], aborts the rest.
    pub(crate) async fn close(mut self) {
        let _ = self.stop.send(true);
        self.events.close();
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for handle in &mut self.handles {
            if tokio::time::timeout_at(deadline, &mut *handle)
                .await
                .is_err()
            {
                break;
            }
        }
        for handle in &self.handles {
            handle.abort();
        }
    }
}
