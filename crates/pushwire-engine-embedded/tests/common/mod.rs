//! Shared by the embedded engine tests: a temporary data directory removed on drop, a
//! recording handler, publications with a number in them.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_core::engine::{
    Broker, BrokerEventHandler, HistoryPage, HistoryQuery, PublishOptions,
};
use pushwire_engine_embedded::{EmbeddedBroker, EmbeddedConfig};
use pushwire_protocol::{ClientInfo, Publication, RawJson, StreamPosition};

/// A fresh data directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, not yet existing, directory.
    pub fn new() -> TempDir {
        TempDir(std::env::temp_dir().join(format!("pw-embedded-{}", uuid::Uuid::new_v4())))
    }

    /// A config for this directory.
    pub fn config(&self) -> EmbeddedConfig {
        EmbeddedConfig::at(self.0.to_string_lossy())
    }

    /// The data file.
    pub fn file(&self) -> PathBuf {
        pushwire_engine_embedded::data_file(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens a broker with a recording handler.
pub fn open(config: &EmbeddedConfig) -> (EmbeddedBroker, Arc<Recorder>) {
    let broker = EmbeddedBroker::open(config).unwrap();
    let rec = Arc::new(Recorder::default());
    broker.set_handler("node", rec.clone());
    (broker, rec)
}

/// History on: `size` kept, 300 s, meta 1 h.
pub fn history(size: usize) -> PublishOptions {
    PublishOptions {
        history_size: size,
        history_ttl: Duration::from_secs(300),
        history_meta_ttl: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// A publication with JSON `{"n":n}`.
pub fn publication(n: u64) -> Publication {
    Publication {
        data: RawJson::from_json_str(&format!("{{\"n\":{n}}}")).unwrap(),
        ..Default::default()
    }
}

/// The `n` of a publication made by [`publication`].
pub fn n_of(p: &Publication) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(p.data.as_bytes()).unwrap();
    v["n"].as_u64().unwrap()
}

/// Reads up to 1000 publications after `since` (all without).
pub async fn read(
    broker: &EmbeddedBroker,
    channel: &str,
    since: Option<StreamPosition>,
) -> HistoryPage {
    broker
        .history(
            channel,
            HistoryQuery {
                since,
                limit: 1000,
                reverse: false,
                meta_ttl: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap()
}

/// `(offset, n)` of each publication of a page.
pub fn pairs(page: &HistoryPage) -> Vec<(u64, u64)> {
    page.publications
        .iter()
        .map(|p| (p.offset, n_of(p)))
        .collect()
}

/// What the handler received.
#[derive(Default)]
pub struct Recorder {
    /// Publications by channel, in arrival order.
    pub publications: Mutex<Vec<(String, Publication)>>,
}

impl BrokerEventHandler for Recorder {
    fn on_publication(&self, channel: &str, publication: &Publication) {
        self.publications
            .lock()
            .push((channel.to_owned(), publication.clone()));
    }
    fn on_join_leave(&self, _channel: &str, _info: &ClientInfo, _join: bool) {}
    fn on_control(&self, _data: &[u8]) {}
    fn on_resync(&self, _channels: &[String]) {}
}

impl Recorder {
    /// Offsets delivered in `channel`, in arrival order.
    pub fn offsets(&self, channel: &str) -> Vec<u64> {
        self.publications
            .lock()
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, p)| p.offset)
            .collect()
    }
}
