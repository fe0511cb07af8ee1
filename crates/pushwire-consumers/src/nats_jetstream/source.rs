//! The NATS JetStream source loop: pull, process in stream order, acknowledge.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::settings::NatsJetStreamSettings;
use super::setup::{self, Session};
use super::{convert, dead_letter};
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};

/// How long the server may stay silent on a pull before the client considers the pull lost.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long one pull request stays open on the server (a stuck pull is renewed after this).
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// How often the consumer's pending acknowledgements are checked while settling at start.
const SETTLE_POLL: Duration = Duration::from_millis(250);
/// Slack after `ack_wait` for the server to move expired deliveries to redelivery.
const SETTLE_MARGIN: Duration = Duration::from_millis(500);

/// Runs the consumer until `shutdown`: connects (retrying with backoff and jitter while NATS
/// is unreachable), pulls from the durable consumer and processes messages one at a time in
/// stream order. A message is acknowledged only once the processor says `Done`; a poison one
/// is dead-lettered (when configured) and terminated (`+TERM`); a transient failure keeps the
/// message (in-progress acknowledgements stop redelivery) and retries it with backoff, so
/// later messages never overtake it. On shutdown a message being retried is `-NAK`ed.
pub async fn run(
    name: String,
    settings: NatsJetStreamSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut reconnect = super::backoff(&processor);
    while !shutdown.is_cancelled() {
        let worker = Worker {
            name: &name,
            settings: &settings,
            processor: &processor,
            shutdown: &shutdown,
        };
        match worker.session(&mut reconnect).await {
            Ok(()) => break,
            Err(e) => {
                processor.metrics().set_lag(-1);
                let delay = reconnect.next_delay();
                tracing::warn!(consumer = %name, error = %e, ?delay, "nats_jetstream consumer: reconnecting");
                processor.metrics().set_source_down(Some(e.to_string()));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::info!(consumer = %name, "nats_jetstream consumer stopped");
}

/// What a message's processing ended with.
enum Handled {
    /// Acknowledged or terminated: take the next one.
    Next,
    /// Shutdown while the message was being retried: it was `-NAK`ed.
    Stopped,
}

struct Worker<'a> {
    name: &'a str,
    settings: &'a NatsJetStreamSettings,
    processor: &'a Processor,
    shutdown: &'a CancellationToken,
}

impl Worker<'_> {
    /// One connection: returns `Ok` on shutdown, `Err` when the connection or the pull broke.
    async fn session(&self, reconnect: &mut Backoff) -> Result<(), ConsumerError> {
        let Session {
            js,
            mut consumer,
            disconnected,
        } = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            s = setup::connect(self.name, self.settings) => s?,
        };
        if !self.settle(&mut consumer).await? {
            return Ok(());
        }
        tracing::info!(consumer = %self.name, stream = %self.settings.stream, durable = %self.settings.durable_consumer_name, "nats_jetstream consumer connected");
        // One pull request at a time (a batch of `batch_size`, streamed as messages arrive):
        // overlapping pulls were seen to stall on NATS 2.9 under load.
        let result = 'session: loop {
            let mut batch = match consumer
                .batch()
                .max_messages(self.settings.batch_size)
                .heartbeat(HEARTBEAT)
                .expires(PULL_EXPIRES)
                .messages()
                .await
            {
                Ok(b) => b,
                Err(e) => break Err(ConsumerError::Broker(format!("pull: {e}"))),
            };
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => break 'session Ok(Some(batch)),
                    _ = self.processor.ready() => {}
                }
                let next = tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => break 'session Ok(Some(batch)),
                    _ = disconnected.cancelled() => {
                        break 'session Err(ConsumerError::Connection("connection lost".into()))
                    }
                    next = batch.next() => next,
                };
                let msg = match next {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        break 'session Err(ConsumerError::Connection(format!("pull: {e}")))
                    }
                    // The batch is complete or expired: pull again.
                    None => break,
                };
                match self.handle(&js, msg).await {
                    Ok(Handled::Next) => {
                        reconnect.reset();
                        self.processor.metrics().set_source_down(None);
                    }
                    Ok(Handled::Stopped) => break 'session Ok(Some(batch)),
                    Err(e) => break 'session Err(e),
                }
            }
        };
        let result = match result {
            Ok(Some(mut batch)) => {
                // Shutdown: hand back what was pulled but not processed, in order, so it is
                // redelivered at once (to another node, or to this one when it comes back).
                while let Some(Some(Ok(msg))) = batch.next().now_or_never() {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        // Acknowledgements are buffered by the client: send them before going away.
        let _ = tokio::time::timeout(self.settings.request_timeout, js.client().flush()).await;
        result
    }

    /// Order across a crash: messages an earlier session (a killed node) pulled and never
    /// acknowledged are redelivered only once their `ack_wait` expires, and a pull made
    /// before that would get newer messages first. So when the consumer has unacknowledged
    /// deliveries at start, wait until they are acknowledged or `ack_wait` has passed (they
    /// are then redelivered before anything newer). False on shutdown.
    async fn settle(&self, consumer: &mut PullConsumer) -> Result<bool, ConsumerError> {
        let info_error =
            |e: &dyn std::fmt::Display| ConsumerError::Broker(format!("consumer info: {e}"));
        let info = consumer.info().await.map_err(|e| info_error(&e))?;
        let metrics = self.processor.metrics();
        metrics.set_lag(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
        let pending = info.num_ack_pending;
        if pending == 0 {
            return Ok(true);
        }
        tracing::info!(consumer = %self.name, pending, ack_wait = ?self.settings.ack_wait, "nats_jetstream: waiting for deliveries of an earlier session to be acknowledged or expire (keeps order)");
        let deadline = tokio::time::Instant::now() + self.settings.ack_wait + SETTLE_MARGIN;
        while tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(SETTLE_POLL) => {}
            }
            let info = consumer.info().await.map_err(|e| info_error(&e))?;
            if info.num_ack_pending == 0 {
                break;
            }
        }
        Ok(true)
    }

    /// Processes one message until it is acknowledged, terminated or (on shutdown) nak-ed.
    async fn handle(
        &self,
        js: &jetstream::Context,
        msg: jetstream::Message,
    ) -> Result<Handled, ConsumerError> {
        let metrics = self.processor.metrics();
        let (seq, pending) = match msg.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(e) => {
                // Not a JetStream delivery (no ack subject): nothing to acknowledge.
                tracing::warn!(consumer = %self.name, error = %e, "nats_jetstream: message without JetStream metadata skipped");
                return Ok(Handled::Next);
            }
        };
        metrics.set_lag(i64::try_from(pending).unwrap_or(i64::MAX));
        let message = convert::to_message(&self.settings.stream, seq, &msg);
        let mut retry = super::backoff(self.processor);
        loop {
            match self.processor.process(&message).await {
                Outcome::Done => {
                    msg.ack().await.map_err(|e| ack_error("ack", &e))?;
                    return Ok(Handled::Next);
                }
                Outcome::Poison(reason) => {
                    if !self.dead_letter(js, &msg, seq, &reason, &mut retry).await {
                        return self.stop(&msg).await;
                    }
                    msg.ack_with(AckKind::Term)
                        .await
                        .map_err(|e| ack_error("term", &e))?;
                    return Ok(Handled::Next);
                }
                Outcome::Retry(_) => {
                    if !self.hold(&msg, retry.next_delay()).await? {
                        return self.stop(&msg).await;
                    }
                }
            }
        }
    }

    /// Hands a poison message to the dead-letter subject (retrying transient failures with
    /// backoff, holding the message meanwhile) and counts it. False on shutdown.
    async fn dead_letter(
        &self,
        js: &jetstream::Context,
        msg: &jetstream::Message,
        seq: u64,
        reason: &str,
        retry: &mut Backoff,
    ) -> bool {
        let metrics = self.processor.metrics();
        let subject = self.settings.dead_letter_subject.as_str();
        if subject.is_empty() {
            tracing::warn!(consumer = %self.name, seq, reason, "nats_jetstream: poison message terminated (no dead_letter_subject)");
            return true;
        }
        loop {
            let timeout = self.settings.request_timeout;
            match dead_letter::publish(js, subject, msg, seq, reason, timeout).await {
                Ok(()) => {
                    tracing::warn!(consumer = %self.name, seq, reason, subject, "nats_jetstream: poison message dead-lettered");
                    ConsumerMetrics::inc(&metrics.dead_lettered);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(consumer = %self.name, seq, error = %e, "nats_jetstream: dead-letter publish failed; retrying");
                    match self.hold(msg, retry.next_delay()).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => return false,
                    }
                }
            }
        }
    }

    /// Waits `delay` while keeping `msg` from being redelivered (`+WPI` at least every half
    /// `ack_wait`). False when shutdown came first.
    async fn hold(&self, msg: &jetstream::Message, delay: Duration) -> Result<bool, ConsumerError> {
        let step = self.settings.ack_wait / 2;
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            msg.ack_with(AckKind::Progress)
                .await
                .map_err(|e| ack_error("in-progress ack", &e))?;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(true);
            }
            let wake = deadline.min(now + step);
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Shutdown while `msg` is unfinished: `-NAK` it so it is redelivered at once.
    async fn stop(&self, msg: &jetstream::Message) -> Result<Handled, ConsumerError> {
        if let Err(e) = msg.ack_with(AckKind::Nak(None)).await {
            tracing::debug!(consumer = %self.name, error = %e, "nats_jetstream: nak on shutdown failed (redelivered after ack_wait)");
        }
        Ok(Handled::Stopped)
    }
}

fn ack_error(what: &str, e: &async_nats::Error) -> ConsumerError {
    ConsumerError::Connection(format!("{what}: {e}"))
}
