//! Opening the store: the data directory, the file lock, corruption detection, and what the
//! previous run left behind.

use std::path::{Path, PathBuf};

use redb::{CompactionMode, Database, DatabaseError, ReadableTable as _, StorageError};

use crate::config::{EmbeddedConfig, FsyncPolicy, OnCorruption};
use crate::error::{OpenError, StoreError};
use crate::store::{Tables, OPEN_MARKER, STATE};

/// The data file inside `engine.embedded.path`.
pub const FILE_NAME: &str = "pushwire.redb";

/// What opening found.
pub(crate) struct Opened {
    pub db: Database,
    pub file: PathBuf,
    /// The previous run did not close the store (crash, kill -9, power loss).
    pub crashed: bool,
    /// Streams whose epoch was renewed because the crashed run did not fsync every publish.
    pub rotated: usize,
    /// Where a damaged file was moved (`on_corruption = "move_aside"`).
    pub moved_aside: Option<PathBuf>,
}

/// The data file of a data directory.
pub fn data_file(dir: impl AsRef<Path>) -> PathBuf {
    dir.as_ref().join(FILE_NAME)
}

/// Creates the directory, opens (or creates) the file with every page checksum verified,
/// handles a previous crash, marks the store open under `config.fsync`, and compacts it.
pub(crate) fn open(config: &EmbeddedConfig) -> Result<Opened, OpenError> {
    let dir = PathBuf::from(&config.path);
    std::fs::create_dir_all(&dir).map_err(|source| OpenError::Directory {
        path: dir.clone(),
        source,
    })?;
    let file = data_file(&dir);
    let mut moved_aside = None;
    let mut db = match open_file(&file) {
        Err(OpenError::Corrupted { path, reason })
            if config.on_corruption == OnCorruption::MoveAside =>
        {
            let aside = file.with_extension(format!("redb.corrupt-{}", crate::store::now_ms()));
            std::fs::rename(&file, &aside).map_err(|source| OpenError::Directory {
                path: path.clone(),
                source,
            })?;
            tracing::error!(file = %path.display(), moved_to = %aside.display(), %reason, "embedded store corrupted: moved aside, starting empty");
            moved_aside = Some(aside);
            open_file(&file)?
        }
        other => other?,
    };
    let (crashed, rotated) = mark_open(&db, config.fsync).map_err(|e| store_error(&file, e))?;
    if let Err(e) = db.compact(CompactionMode::Balanced) {
        tracing::warn!(error = %e, file = %file.display(), "embedded store not compacted");
    }
    Ok(Opened {
        db,
        file,
        crashed,
        rotated,
        moved_aside,
    })
}

/// Opens (or creates) the data file with every page checksum verified; a damaged file is an
/// error naming it, never a panic.
pub(crate) fn open_file(file: &Path) -> Result<Database, OpenError> {
    let opened = std::panic::catch_unwind(|| {
        redb::Builder::new()
            .set_check_integrity_on_open(true)
            .create(file)
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(open_error(file, e)),
        Err(_) => Err(OpenError::Corrupted {
            path: file.to_owned(),
            reason: "the store failed while reading it".into(),
        }),
    }
}

/// Creates the tables, reads the previous run's marker and writes this run's (durably).
fn mark_open(db: &Database, policy: FsyncPolicy) -> Result<(bool, usize), StoreError> {
    let txn = db.begin_write().map_err(StoreError::redb)?;
    let (crashed, rotated) = {
        let mut tables = Tables::open(&txn)?;
        let mut state = txn.open_table(STATE).map_err(StoreError::redb)?;
        let previous = state
            .get(OPEN_MARKER)
            .map_err(StoreError::redb)?
            .map(|v| v.value().to_vec());
        let crashed = previous.is_some();
        let lossy = previous.is_some_and(|p| p != FsyncPolicy::Always.name().as_bytes());
        let rotated = if lossy { tables.rotate_epochs()? } else { 0 };
        state
            .insert(OPEN_MARKER, policy.name().as_bytes())
            .map_err(StoreError::redb)?;
        (crashed, rotated)
    };
    txn.commit().map_err(StoreError::redb)?;
    Ok((crashed, rotated))
}

fn open_error(file: &Path, e: DatabaseError) -> OpenError {
    let path = file.to_owned();
    match e {
        DatabaseError::DatabaseAlreadyOpen => OpenError::Locked { path },
        DatabaseError::RepairAborted => OpenError::Corrupted {
            path,
            reason: "repair aborted".into(),
        },
        DatabaseError::Storage(StorageError::Corrupted(reason)) => {
            OpenError::Corrupted { path, reason }
        }
        DatabaseError::Storage(StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            OpenError::Corrupted {
                path,
                reason: io.to_string(),
            }
        }
        other => OpenError::Store {
            path,
            source: other.into(),
        },
    }
}

fn store_error(file: &Path, e: StoreError) -> OpenError {
    match e {
        StoreError::Redb(redb::Error::Corrupted(reason)) => OpenError::Corrupted {
            path: file.to_owned(),
            reason,
        },
        StoreError::Redb(source) => OpenError::Store {
            path: file.to_owned(),
            source,
        },
        other => OpenError::Corrupted {
            path: file.to_owned(),
            reason: other.to_string(),
        },
    }
}
