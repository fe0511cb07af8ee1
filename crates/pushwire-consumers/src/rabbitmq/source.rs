//! The RabbitMQ consume loop.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio_util::sync::CancellationToken;

use super::RabbitMqSettings;
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::hash::fnv1a_hex;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};

/// Timeout of the connect and of each declare at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the queue depth is read for the `lag` gauge.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Consumes `settings.queue` until `shutdown`: one delivery at a time (queue order), acked
/// after the processor says `Done`, nacked without requeue (→ the queue's dead-letter
/// exchange) on `Poison`, retried in place with backoff on `Retry` (requeueing would let later
/// deliveries overtake it). Reconnects with backoff when the broker is unreachable or the
/// connection breaks; never panics.
pub async fn run(
    name: String,
    settings: RabbitMqSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut backoff = processor.backoff();
    while !shutdown.is_cancelled() {
        let result = session(&settings, &processor, &shutdown, &mut backoff).await;
        if shutdown.is_cancelled() {
            break;
        }
        let delay = backoff.next_delay();
        match result {
            Ok(()) => {
                tracing::warn!(consumer = %name, ?delay, "rabbitmq consumer ended; reconnecting")
            }
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, ?delay, "rabbitmq unavailable; reconnecting");
                processor.metrics().set_source_down(Some(e.to_string()));
            }
        }
        processor.metrics().set_lag(-1);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(consumer = %name, "rabbitmq consumer stopped");
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "a `map_err` adapter: it is handed the error by value"
)]
fn broker(e: lapin::Error) -> ConsumerError {
    ConsumerError::Broker(e.to_string())
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, ConsumerError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| ConsumerError::Connection(format!("{what}: {e}"))),
        Err(_) => Err(ConsumerError::Connection(format!("{what}: timed out"))),
    }
}

/// Declares what the settings ask for; returns the queue depth.
async fn declare(ch: &Channel, s: &RabbitMqSettings) -> Result<u32, ConsumerError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let queue_opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    if !s.dead_letter_exchange.is_empty() && s.declare_dead_letter {
        timed(
            "declare dead-letter exchange",
            ch.exchange_declare(
                &s.dead_letter_exchange,
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            ),
        )
        .await?;
        let dlq = format!("{}.dead_letter", s.queue);
        timed(
            "declare dead-letter queue",
            ch.queue_declare(&dlq, queue_opts, FieldTable::default()),
        )
        .await?;
        timed(
            "bind dead-letter queue",
            ch.queue_bind(
                &dlq,
                &s.dead_letter_exchange,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
    }
    let depth = if s.declare_queue {
        let mut args = FieldTable::default();
        if !s.dead_letter_exchange.is_empty() {
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(s.dead_letter_exchange.clone().into()),
            );
            if !s.dead_letter_routing_key.is_empty() {
                args.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(s.dead_letter_routing_key.clone().into()),
                );
            }
        }
        timed(
            "declare queue",
            ch.queue_declare(&s.queue, queue_opts, args),
        )
        .await?
        .message_count()
    } else {
        depth(ch, &s.queue).await?
    };
    if !s.exchange.is_empty() {
        timed(
            "declare exchange",
            ch.exchange_declare(
                &s.exchange,
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            ),
        )
        .await?;
        for key in &s.routing_keys {
            timed(
                "bind queue",
                ch.queue_bind(
                    &s.queue,
                    &s.exchange,
                    key,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        }
    }
    Ok(depth)
}

/// Messages ready in `queue` (passive declare).
async fn depth(ch: &Channel, queue: &str) -> Result<u32, ConsumerError> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    Ok(timed(
        "inspect queue",
        ch.queue_declare(queue, passive, FieldTable::default()),
    )
    .await?
    .message_count())
}

/// One connection: declare, consume until shutdown or a broken connection.
async fn session(
    s: &RabbitMqSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
        .with_connection_name(format!("pushwire-{}", processor.name()).into());
    let conn = timed("connect", Connection::connect(&s.url, props)).await?;
    let result = consume(&conn, s, processor, shutdown, backoff).await;
    // Unacked deliveries go back to the queue when the connection closes.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        conn.close(200, "pushwire consumer stops"),
    )
    .await;
    result
}

async fn consume(
    conn: &Connection,
    s: &RabbitMqSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let ch = timed("open channel", conn.create_channel()).await?;
    timed(
        "basic.qos",
        ch.basic_qos(s.prefetch, BasicQosOptions::default()),
    )
    .await?;
    let lag_ch = timed("open channel", conn.create_channel()).await?;
    let ready = declare(&ch, s).await?;
    let metrics = processor.metrics().clone();
    metrics.set_lag(i64::from(ready));
    let tag = format!("pushwire-{}-{}", processor.name(), processor.node().id());
    let mut consumer = timed(
        "basic.consume",
        ch.basic_consume(
            &s.queue,
            &tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    tracing::info!(consumer = %processor.name(), queue = %s.queue, "rabbitmq consumer connected");
    backoff.reset();
    processor.metrics().set_source_down(None);
    let mut lag_tick = tokio::time::interval(LAG_INTERVAL);
    loop {
        // Back-pressure: while the node is overloaded no delivery is processed, so no ack
        // goes out and the broker stops after `prefetch` unacked deliveries.
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = processor.ready() => {}
        }
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = lag_tick.tick() => {
                if let Ok(n) = depth(&lag_ch, &s.queue).await {
                    metrics.set_lag(i64::from(n));
                }
                continue;
            }
            d = consumer.next() => d,
        };
        let delivery = match delivery {
            None => {
                return Err(ConsumerError::Connection(
                    "consumer cancelled by the broker".into(),
                ))
            }
            Some(Err(e)) => return Err(ConsumerError::Connection(e.to_string())),
            Some(Ok(d)) => d,
        };
        let msg = message(&s.queue, &delivery);
        let mut retry = processor.backoff();
        loop {
            match processor.process(&msg).await {
                Outcome::Done => {
                    delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(broker)?;
                    break;
                }
                Outcome::Poison(_) => {
                    delivery
                        .acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: false,
                        })
                        .await
                        .map_err(broker)?;
                    if !s.dead_letter_exchange.is_empty() {
                        ConsumerMetrics::inc(&metrics.dead_lettered);
                    } else {
                        tracing::warn!(consumer = %processor.name(), id = %msg.id, "poison message dropped: no dead_letter_exchange configured");
                    }
                    break;
                }
                Outcome::Retry(_) => {
                    let delay = retry.next_delay();
                    tokio::select! {
                        // Left unacked: the broker redelivers it when the connection closes.
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

/// The message of a delivery. Its id is `rabbitmq:<message_id>` when the publisher set one,
/// else `rabbitmq:<queue>:<hash>` over routing key, timestamp, correlation id, headers and body
/// (stable across redeliveries; identical messages without a message id collapse into one).
fn message(queue: &str, d: &Delivery) -> Message {
    let p = &d.properties;
    let mut headers = Vec::new();
    if let Some(table) = p.headers() {
        for (k, v) in table.inner() {
            if let Some(v) = header_value(v) {
                headers.push((k.as_str().to_owned(), v));
            }
        }
    }
    let short = |name: &str, v: &Option<ShortString>, headers: &mut Vec<(String, String)>| {
        if let Some(v) = v {
            headers.push((name.to_owned(), v.as_str().to_owned()));
        }
    };
    short("message_id", p.message_id(), &mut headers);
    short("correlation_id", p.correlation_id(), &mut headers);
    short("content_type", p.content_type(), &mut headers);
    short("type", p.kind(), &mut headers);
    short("app_id", p.app_id(), &mut headers);
    short("exchange", &Some(d.exchange.clone()), &mut headers);
    let id = match p.message_id() {
        Some(m) if !m.as_str().is_empty() => format!("rabbitmq:{}", m.as_str()),
        _ => {
            let ts = p.timestamp().map(|t| t.to_string()).unwrap_or_default();
            let mut hs: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            hs.sort();
            let hs = hs.join("\n");
            let digest = fnv1a_hex(&[
                d.exchange.as_str().as_bytes(),
                d.routing_key.as_str().as_bytes(),
                ts.as_bytes(),
                hs.as_bytes(),
                &d.data,
            ]);
            format!("rabbitmq:{queue}:{digest}")
        }
    };
    Message {
        id,
        subject: d.routing_key.as_str().to_owned(),
        headers,
        body: bytes::Bytes::copy_from_slice(&d.data),
    }
}

fn header_value(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ByteArray(_)
        | AMQPValue::FieldArray(_)
        | AMQPValue::FieldTable(_)
        | AMQPValue::DecimalValue(_)
        | AMQPValue::Void => return None,
    })
}
