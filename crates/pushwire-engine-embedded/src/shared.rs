//! What the broker (reads, deliveries without storage) and the writer thread share: the open
//! store, the shard locks that order reads against deliveries, the node's handler, metrics;
//! and how the store is reopened after an I/O failure (a full disk) once space returns.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use pushwire_core::engine::BrokerEventHandler;
use redb::Database;

use crate::error::StoreError;
use crate::metrics::EmbeddedMetrics;
use crate::open;

const SHARDS: usize = 32;
/// Free space a probe must be able to write before the store is reopened after a failure.
const PROBE_BYTES: usize = 4 << 20;
/// Longest wait for in-flight reads to let go of the store being reopened.
const READERS_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by the broker and its writer thread.
pub(crate) struct Shared {
    db: RwLock<Option<Arc<Database>>>,
    /// The data file.
    pub file: PathBuf,
    /// Per-channel-shard locks: a read holds its channel's, the writer holds those of the
    /// channels it delivers to from before its commit until the deliveries are done.
    pub shards: Box<[Mutex<()>]>,
    /// The node's handler, set once.
    pub handler: OnceLock<Arc<dyn BrokerEventHandler>>,
    /// The engine's figures.
    pub metrics: Arc<EmbeddedMetrics>,
}

impl Shared {
    /// Shares the open store `db` kept in `file`.
    pub(crate) fn new(db: Database, file: PathBuf, metrics: Arc<EmbeddedMetrics>) -> Shared {
        Shared {
            db: RwLock::new(Some(Arc::new(db))),
            file,
            shards: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            handler: OnceLock::new(),
            metrics,
        }
    }

    /// The open store; [`StoreError::Unavailable`] while it is being reopened.
    pub(crate) fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db.read().clone().ok_or(StoreError::Unavailable)
    }

    /// The index of the shard lock that orders `channel`'s reads and deliveries.
    pub(crate) fn shard(&self, channel: &str) -> usize {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in channel.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        (h as usize) % SHARDS
    }

    /// Refreshes the file-size gauge; returns the size.
    pub(crate) fn measure_file(&self) -> u64 {
        let len = std::fs::metadata(&self.file).map_or(0, |m| m.len());
        EmbeddedMetrics::set(&self.metrics.disk_bytes, len);
        len
    }

    /// Whether [`PROBE_BYTES`] can be written (and synced) next to the data file now.
    pub(crate) fn space_returned(&self) -> bool {
        let probe = self.file.with_extension("space-probe");
        let written = std::fs::File::create(&probe).and_then(|mut f| {
            f.write_all(&vec![0u8; PROBE_BYTES])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        written.is_ok()
    }

    /// Closes the store (after in-flight reads let go of it) and opens it again: after an I/O
    /// failure the store refuses every write until it is reopened, which also rolls back to
    /// the last durable commit. Reads fail with [`StoreError::Unavailable`] meanwhile.
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        let taken = self.db.write().take();
        if let Some(mut old) = taken {
            let deadline = Instant::now() + READERS_TIMEOUT;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still) => {
                        *self.db.write() = Some(still);
                        return Err(StoreError::Unavailable);
                    }
                }
            }
        }
        let db = open::open_file(&self.file).map_err(|e| StoreError::Reopen(e.to_string()))?;
        *self.db.write() = Some(Arc::new(db));
        Ok(())
    }
}
