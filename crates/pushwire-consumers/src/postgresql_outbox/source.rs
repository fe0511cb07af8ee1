//! Source loop (being written).

use tokio_util::sync::CancellationToken;

use super::PostgresOutboxSettings;
use crate::processor::Processor;

/// Runs the consumer until `shutdown`.
pub async fn run(name: String, settings: PostgresOutboxSettings, processor: Processor, shutdown: CancellationToken) {
    let _ = (name, settings, processor);
    shutdown.cancelled().await;
}
