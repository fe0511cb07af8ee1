//! Why a bench run could not start or finish, and the process exit codes.

/// Exit code of a complete run: every connection established and kept, every publication
/// accepted and delivered once.
pub const EXIT_OK: i32 = 0;
/// Exit code when no report could be produced (a [`BenchError`]).
pub const EXIT_ERROR: i32 = 1;
/// Exit code of a partial run: a report was printed but it counts connect errors, dropped
/// connections, publish errors, lost or duplicate deliveries, or failed reconnects.
pub const EXIT_PARTIAL: i32 = 2;

/// A failure that prevents a report. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option is out of range or malformed.
    #[error("invalid options: {0}")]
    InvalidArgs(String),
    /// `--url` is not loopback and `--allow-remote` was not given.
    #[error("refusing to load {0}: only loopback targets are allowed without --allow-remote")]
    RemoteTarget(String),
    /// The server does not accept TCP connections.
    #[error("server at {target} is not reachable ({reason}); is it running?")]
    ServerDown {
        /// `host:port`.
        target: String,
        /// The connect error.
        reason: String,
    },
    /// The open-file limit is too low for the requested connections.
    #[error("{needed} open files needed for the connections but the limit is {limit}; raise it with `ulimit -n`")]
    OpenFiles {
        /// Connections plus spare descriptors.
        needed: u64,
        /// The soft limit.
        limit: u64,
    },
    /// Reading the server's memory failed (`--server-pid`).
    #[error("reading memory of server pid {pid}: {reason}")]
    ServerMemory {
        /// `--server-pid`.
        pid: u32,
        /// What went wrong.
        reason: String,
    },
    /// Signing the token or building the HTTP client failed.
    #[error("setup: {0}")]
    Setup(String),
    /// Writing the HTML report failed.
    #[error("writing {path}: {reason}")]
    Output {
        /// The `--html` path.
        path: String,
        /// The I/O error.
        reason: String,
    },
}
