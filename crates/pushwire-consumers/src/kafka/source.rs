//! The Kafka source loop: fetch, hand each record to its partition's worker, commit what the
//! workers finished.

use std::collections::HashMap;
use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::{self, SourceContext};
use super::convert;
use super::dead_letter::DeadLetter;
use super::partition::{self, Record, Shared};
use super::settings::KafkaSettings;
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::processor::Processor;

/// Runs the consumer until `shutdown`: joins the consumer group, fetches records and hands
/// each to a worker task of its partition (a bounded queue of `partition_queue_size`), so
/// partitions progress independently and each is processed in offset order. A record's
/// offset is stored only once it is done (or dead-lettered) and stored offsets are committed
/// every `commit_interval` and on shutdown; a crash re-reads at most the records processed
/// since the last commit, which the idempotency key (`kafka:{topic}:{partition}:{offset}`)
/// suppresses. Broker outages are retried by librdkafka; errors are logged with backoff.
pub async fn run(
    name: String,
    settings: KafkaSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut reconnect = super::backoff(&processor);
    while !shutdown.is_cancelled() {
        match session(&name, &settings, &processor, &shutdown, &mut reconnect).await {
            Ok(()) => break,
            Err(e) => {
                let delay = reconnect.next_delay();
                tracing::warn!(consumer = %name, error = %e, ?delay, "kafka consumer: restarting");
                processor.metrics().set_source_down(Some(e.to_string()));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::info!(consumer = %name, "kafka consumer stopped");
}

/// One consumer-group membership. `Ok` on shutdown.
async fn session(
    name: &str,
    s: &KafkaSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let context = SourceContext {
        name: name.to_owned(),
        metrics: processor.metrics().clone(),
    };
    let consumer: StreamConsumer<SourceContext> = client::consumer_config(name, s)
        .create_with_context(context)
        .map_err(|e| ConsumerError::config("kafka", e.to_string()))?;
    let consumer = Arc::new(consumer);
    let topics: Vec<&str> = s.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| ConsumerError::Broker(format!("subscribe: {e}")))?;
    let dead_letter = if s.dead_letter_topic.is_empty() {
        None
    } else {
        let producer: FutureProducer = client::producer_config(name, s)
            .create()
            .map_err(|e| ConsumerError::config("kafka", e.to_string()))?;
        Some(DeadLetter {
            producer,
            topic: s.dead_letter_topic.clone(),
            timeout: s.request_timeout,
        })
    };
    // Workers stop with the session (error or shutdown), not only with the consumer.
    let stop = shutdown.child_token();
    let shared = Shared {
        consumer: consumer.clone(),
        processor: processor.clone(),
        dead_letter,
        shutdown: stop.clone(),
        name: Arc::from(name),
    };
    tracing::info!(consumer = %name, topics = ?s.topics, group = %s.consumer_group, "kafka consumer subscribed");
    let mut workers: HashMap<(String, i32), mpsc::Sender<Record>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = processor.ready() => {}
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = consumer.recv() => next,
        };
        let record = match next {
            Ok(m) => {
                let (message, origin) = convert::to_message(&m);
                Record { message, origin }
            }
            Err(e) => {
                // Transport errors are retried by librdkafka itself; just do not spin.
                let delay = backoff.next_delay();
                tracing::warn!(consumer = %name, error = %e, ?delay, "kafka: fetch error");
                processor.metrics().set_source_down(Some(e.to_string()));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff.reset();
        processor.metrics().set_source_down(None);
        let key = (record.origin.topic.clone(), record.origin.partition);
        let tx = workers.entry(key).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(s.partition_queue_size);
            tasks.spawn(partition::run(shared.clone(), rx));
            tx
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            sent = tx.send(record) => if sent.is_err() { break },
        }
    }
    stop.cancel();
    drop(workers);
    // Workers finish the record in hand; then the stored offsets are committed.
    let drained = tokio::time::timeout(s.request_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    drop(shared);
    // Committing and closing (leaving the group) block: keep them off the runtime threads.
    let closed = tokio::task::spawn_blocking(move || {
        let committed = consumer.commit_consumer_state(CommitMode::Sync);
        drop(consumer);
        committed
    })
    .await;
    match closed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(consumer = %name, error = %e, "kafka: final commit"),
        Err(e) => tracing::warn!(consumer = %name, error = %e, "kafka: close failed"),
    }
    Ok(())
}
