//! Errors of the embedded engine: why it could not open its store, and what a failed
//! operation tells the node.

use std::path::PathBuf;

use pushwire_core::engine::EngineError;

/// Why the engine could not start. Every message names the data file or directory
/// (`engine.embedded.path`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created or read.
    #[error("engine.embedded.path {path}: cannot create the data directory: {source}")]
    Directory {
        /// The data directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Another process (or another engine in this process) holds the store's file lock.
    #[error(
        "engine.embedded.path {path}: the data file is locked by another running pushwire \
         (one process per data directory)"
    )]
    Locked {
        /// The data file.
        path: PathBuf,
    },
    /// The file is not a store, is damaged or truncated and could not be repaired.
    #[error(
        "engine.embedded.path {path}: the data file is corrupted or truncated ({reason}); \
         move it away (or set engine.embedded.on_corruption = \"move_aside\") to start with \
         empty streams, or restore it from a backup"
    )]
    Corrupted {
        /// The data file.
        path: PathBuf,
        /// What the store detected.
        reason: String,
    },
    /// Any other failure of the store while opening (I/O, version).
    #[error("engine.embedded.path {path}: cannot open the data file: {source}")]
    Store {
        /// The data file.
        path: PathBuf,
        /// The store's error.
        source: redb::Error,
    },
}

/// A store failure during operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store failed (I/O, disk full, ...).
    #[error("embedded store: {0}")]
    Redb(#[from] redb::Error),
    /// A stored value could not be read back.
    #[error("embedded store: malformed {0}")]
    Malformed(&'static str),
    /// The store uses more than `engine.embedded.max_size`.
    #[error("embedded store is full: {used} bytes used, engine.embedded.max_size is {max}")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The configured cap.
        max: u64,
    },
    /// The writer thread is gone (the broker is shutting down).
    #[error("embedded store is closed")]
    Closed,
    /// The store is being reopened after an I/O failure.
    #[error("embedded store is being reopened after an I/O failure")]
    Unavailable,
    /// Reopening the store after an I/O failure failed.
    #[error("embedded store could not be reopened: {0}")]
    Reopen(String),
}

impl StoreError {
    /// Wraps any of redb's error types.
    pub(crate) fn redb(e: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb(e.into())
    }

    /// An I/O failure (a full disk, a failing device) after which the store refuses writes
    /// until it is reopened.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Redb(redb::Error::Io(_) | redb::Error::PreviousIo)
        )
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> EngineError {
        EngineError::caused("embedded store", e)
    }
}
