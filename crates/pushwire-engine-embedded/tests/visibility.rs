//! The part of the broker contract the subscribe path relies on: a history read never sees a
//! publication that was not delivered to the node's handler yet (the stream top is at most the
//! last delivered offset), while publishers and readers run concurrently.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pushwire_core::engine::{Broker, BrokerEventHandler, HistoryQuery};
use pushwire_engine_embedded::EmbeddedBroker;
use pushwire_protocol::{ClientInfo, Publication};

/// Counts deliveries of channel `v`.
#[derive(Default)]
struct Counter(AtomicU64);

impl BrokerEventHandler for Counter {
    fn on_publication(&self, channel: &str, publication: &Publication) {
        if channel == "v" {
            let before = self.0.fetch_add(1, Ordering::SeqCst);
            assert_eq!(publication.offset, before + 1, "delivered in offset order");
        }
    }
    fn on_join_leave(&self, _: &str, _: &ClientInfo, _: bool) {}
    fn on_control(&self, _: &[u8]) {}
    fn on_resync(&self, _: &[String]) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_never_sees_an_undelivered_publication() {
    let dir = TempDir::new();
    let broker = Arc::new(EmbeddedBroker::open(&dir.config()).unwrap());
    let delivered = Arc::new(Counter::default());
    broker.set_handler("n", delivered.clone());
    let mut publishers = Vec::new();
    for _ in 0..4 {
        let broker = broker.clone();
        publishers.push(tokio::spawn(async move {
            for n in 0..150 {
                broker
                    .publish("v", publication(n), &history(1000))
                    .await
                    .unwrap();
                broker
                    .publish("other", publication(n), &history(10))
                    .await
                    .unwrap();
            }
        }));
    }
    let reader = {
        let (broker, delivered) = (broker.clone(), delivered.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while delivered.0.load(Ordering::SeqCst) < 600 {
                let page = broker
                    .history(
                        "v",
                        HistoryQuery {
                            limit: 0,
                            meta_ttl: Duration::from_secs(60),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                let seen = delivered.0.load(Ordering::SeqCst);
                assert!(
                    page.position.offset <= seen,
                    "read top {} but only {seen} delivered",
                    page.position.offset
                );
                reads += 1;
            }
            reads
        })
    };
    for p in publishers {
        p.await.unwrap();
    }
    let reads = reader.await.unwrap();
    assert!(reads > 10, "the reader ran alongside ({reads} reads)");
    assert_eq!(read(&broker, "v", None).await.position.offset, 600);
}
