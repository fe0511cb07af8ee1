//! The MQTT session loop.
//!
//! One task polls the `rumqttc` event loop (connects, reconnects with backoff, subscribes after
//! every CONNACK) and hands each PUBLISH to a worker through a bounded queue (holding back what
//! does not fit, without ever pausing the event loop); the worker
//! applies messages in arrival order and sends the PUBACK of a QoS 1 message only after it is
//! done (in history, a duplicate, or dead-lettered). A node that dies before that leaves the
//! message unacknowledged in the broker's persistent session: it comes again, with the same
//! packet id, to the restarted node, and the idempotency key
//! (`mqtt:<client_id>:<topic>:<packet id>:<payload hash>`) suppresses what was already
//! published.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode,
    TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::MqttSettings;
use crate::error::ConsumerError;
use crate::hash::fnv1a_hex;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};

/// Requests queued from the client to the event loop (acks, subscribes).
const CLIENT_QUEUE: usize = 256;
/// How long stopping waits for the worker to finish its message.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the session until `shutdown`. A bad TLS file is logged and ends the consumer;
/// everything else (broker down, authentication refused, subscription refused) is logged with
/// the key at fault and retried with backoff. Never panics.
pub async fn run(
    name: String,
    settings: MqttSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let key = |field: &str| format!("consumers[name={name}].mqtt.{field}");
    let options = match options(&settings, &key) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(consumer = %name, error = %e, "mqtt consumer not started");
            return;
        }
    };
    let (client, mut eventloop) = AsyncClient::new(options, CLIENT_QUEUE);
    let (tx, rx) = mpsc::channel::<Publish>(usize::from(settings.max_inflight).max(16));
    let worker = tokio::spawn(work(
        processor.clone(),
        client.clone(),
        rx,
        settings.client_id.clone(),
        shutdown.clone(),
    ));
    let qos = if settings.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let mut backoff = processor.backoff();
    // Messages the worker has no room for yet. The event loop never waits for the worker: it
    // must keep running to send the worker's acknowledgements, or a burst (the backlog a
    // restarted node receives) would fill both queues and deadlock. Bounded by what the broker
    // sends without acknowledgements.
    let mut pending: VecDeque<Publish> = VecDeque::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = tx.reserve(), if !pending.is_empty() => {
                match (permit, pending.pop_front()) {
                    (Ok(permit), Some(p)) => permit.send(p),
                    _ => break,
                }
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                tracing::info!(consumer = %name, session_present = ack.session_present, "mqtt consumer connected");
                for t in &settings.topics {
                    if let Err(e) = client.try_subscribe(t.clone(), qos) {
                        tracing::warn!(consumer = %name, topic = %t, error = %e, "mqtt subscribe not queued");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    tracing::error!(consumer = %name, key = %key("topics"), "the broker refused a subscription (not allowed, or a bad filter)");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.retain && !settings.retained {
                    // A retained value replayed at subscribe time: acknowledged, not routed.
                    if p.qos != QoS::AtMostOnce {
                        let _ = client.try_ack(&p);
                    }
                    continue;
                }
                if !pending.is_empty() {
                    pending.push_back(p);
                    continue;
                }
                match tx.try_send(p) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(p)) => pending.push_back(p),
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            Ok(_) => {}
            Err(e) => {
                processor.metrics().set_lag(-1);
                let delay = backoff.next_delay();
                let hint = match &e {
                    ConnectionError::ConnectionRefused(code) => {
                        format!(
                            "{}: the broker refused the connection: {code:?}",
                            key("username")
                        )
                    }
                    ConnectionError::Tls(_) => format!("{}: TLS: {e}", key("url")),
                    other => other.to_string(),
                };
                tracing::warn!(consumer = %name, error = %hint, ?delay, "mqtt broker unavailable; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    drop(tx);
    if tokio::time::timeout(STOP_TIMEOUT, worker).await.is_err() {
        tracing::warn!(consumer = %name, "mqtt worker did not stop in time");
    }
    tracing::info!(consumer = %name, "mqtt consumer stopped");
}

/// Applies messages in order; acknowledges QoS 1 messages once done.
async fn work(
    processor: Processor,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Publish>,
    client_id: String,
    shutdown: CancellationToken,
) {
    while let Some(p) = rx.recv().await {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = processor.ready() => {}
        }
        let msg = message(&client_id, &p);
        let mut retry = processor.backoff();
        loop {
            match processor.process(&msg).await {
                Outcome::Done => break,
                Outcome::Poison(why) => {
                    ConsumerMetrics::inc(&processor.metrics().dead_lettered);
                    tracing::warn!(consumer = %processor.name(), topic = %p.topic, reason = %why, "mqtt message dead-lettered (logged and acknowledged)");
                    break;
                }
                Outcome::Retry(_) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                    }
                }
            }
        }
        if p.qos != QoS::AtMostOnce && client.ack(&p).await.is_err() {
            return;
        }
    }
}

/// The message of a PUBLISH: subject = topic (templates read `{topic.N}`), headers `topic` and
/// `retain`; QoS 0 messages carry no idempotency key (they are never redelivered).
fn message(client_id: &str, p: &Publish) -> Message {
    let id = if p.qos == QoS::AtMostOnce {
        String::new()
    } else {
        format!(
            "mqtt:{client_id}:{}:{}:{}",
            p.topic,
            p.pkid,
            fnv1a_hex(&[&p.payload])
        )
    };
    Message {
        id,
        subject: p.topic.clone(),
        headers: vec![
            ("topic".into(), p.topic.clone()),
            ("retain".into(), p.retain.to_string()),
        ],
        body: p.payload.clone(),
    }
}

/// Client options from the settings.
fn options(s: &MqttSettings, key: &dyn Fn(&str) -> String) -> Result<MqttOptions, ConsumerError> {
    let broker = s
        .broker()
        .map_err(|e| ConsumerError::config(key("url"), e))?;
    let mut o = MqttOptions::new(s.client_id.clone(), broker.host, broker.port);
    o.set_keep_alive(s.keep_alive)
        .set_clean_session(s.clean_session)
        .set_manual_acks(true)
        .set_inflight(s.max_inflight)
        .set_max_packet_size(s.max_packet_size, s.max_packet_size);
    if !s.username.is_empty() {
        o.set_credentials(s.username.clone(), s.password.clone());
    }
    if broker.tls {
        let config = tls_config(&s.tls_ca_pem_file, &key("tls_ca_pem_file"))?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    Ok(o)
}

/// Rustls (ring) with the system's roots plus `ca_file`.
fn tls_config(ca_file: &str, key: &str) -> Result<rustls::ClientConfig, ConsumerError> {
    let bad = |m: String| ConsumerError::config(key, m);
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if !ca_file.is_empty() {
        let certs =
            CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(format!("{ca_file}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("{ca_file}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("{ca_file}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_per_redelivery_and_absent_for_qos0() {
        let mut p = Publish::new("sensors/d1/temp", QoS::AtLeastOnce, b"{\"n\":1}".to_vec());
        p.pkid = 7;
        let a = message("n1", &p);
        p.dup = true;
        assert_eq!(message("n1", &p).id, a.id);
        assert!(a.id.starts_with("mqtt:n1:sensors/d1/temp:7:"), "{}", a.id);
        assert_eq!(a.subject, "sensors/d1/temp");
        p.qos = QoS::AtMostOnce;
        assert!(message("n1", &p).id.is_empty());
    }
}
