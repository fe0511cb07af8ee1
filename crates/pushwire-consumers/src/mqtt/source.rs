//! The MQTT session loop, MQTT 3.1.1 (`rumqttc`) or MQTT 5 (`rumqttc::v5`).
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

use rumqttc::v5::mqttbytes::v5 as mqtt5;
use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode,
    TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::settings::ProtocolVersion;
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

/// The client half of a session: what the worker acknowledges through.
#[derive(Clone)]
enum Client {
    V311(AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// What acknowledging one message takes (nothing for QoS 0).
enum Ack {
    None,
    V311(Publish),
    V5(mqtt5::Publish),
}

impl Client {
    /// Sends the PUBACK; false when the event loop is gone.
    async fn ack(&self, ack: &Ack) -> bool {
        match (self, ack) {
            (_, Ack::None) => true,
            (Client::V311(c), Ack::V311(p)) => c.ack(p).await.is_ok(),
            (Client::V5(c), Ack::V5(p)) => c.ack(p).await.is_ok(),
            _ => true,
        }
    }
}

/// One message handed from the event loop to the worker.
struct Incoming {
    msg: Message,
    ack: Ack,
}

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
    let (tx, rx) = mpsc::channel::<Incoming>(usize::from(settings.max_inflight).max(16));
    let (client, session) = match settings.protocol_version {
        ProtocolVersion::V311 => match options(&settings, &key) {
            Ok(o) => {
                let (client, eventloop) = AsyncClient::new(o, CLIENT_QUEUE);
                (
                    Client::V311(client.clone()),
                    Session::V311(client, Box::new(eventloop)),
                )
            }
            Err(e) => {
                tracing::error!(consumer = %name, error = %e, "mqtt consumer not started");
                return;
            }
        },
        ProtocolVersion::V5 => match options_v5(&settings, &key) {
            Ok(o) => {
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, CLIENT_QUEUE);
                (
                    Client::V5(client.clone()),
                    Session::V5(client, Box::new(eventloop)),
                )
            }
            Err(e) => {
                tracing::error!(consumer = %name, error = %e, "mqtt consumer not started");
                return;
            }
        },
    };
    let worker = tokio::spawn(work(processor.clone(), client, rx, shutdown.clone()));
    let mut forward = Forward {
        tx,
        pending: VecDeque::new(),
    };
    match session {
        Session::V311(client, eventloop) => {
            poll_v311(
                &name,
                &settings,
                &processor,
                &shutdown,
                client,
                *eventloop,
                &mut forward,
                &key,
            )
            .await;
        }
        Session::V5(client, eventloop) => {
            poll_v5(
                &name,
                &settings,
                &processor,
                &shutdown,
                client,
                *eventloop,
                &mut forward,
                &key,
            )
            .await;
        }
    }
    drop(forward);
    if tokio::time::timeout(STOP_TIMEOUT, worker).await.is_err() {
        tracing::warn!(consumer = %name, "mqtt worker did not stop in time");
    }
    tracing::info!(consumer = %name, "mqtt consumer stopped");
}

enum Session {
    V311(AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

/// Hands messages to the worker. Messages the worker has no room for yet wait in `pending`:
/// the event loop never waits for the worker, since it must keep running to send the worker's
/// acknowledgements, or a burst (the backlog a restarted node receives) would fill both queues
/// and deadlock. Bounded by what the broker sends without acknowledgements.
struct Forward {
    tx: mpsc::Sender<Incoming>,
    pending: VecDeque<Incoming>,
}

impl Forward {
    /// Queues `m` for the worker; false when the worker is gone.
    fn push(&mut self, m: Incoming) -> bool {
        if !self.pending.is_empty() {
            self.pending.push_back(m);
            return true;
        }
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(m)) => {
                self.pending.push_back(m);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Moves the oldest pending message to the worker once it has room; false when the worker
    /// is gone. Pending forever while nothing is pending (a `select!` branch).
    async fn drain_one(&mut self) -> bool {
        if self.pending.is_empty() {
            return std::future::pending().await;
        }
        match self.tx.reserve().await {
            Ok(permit) => {
                if let Some(m) = self.pending.pop_front() {
                    permit.send(m);
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Waits `delay` after a connection error (logged); false when shut down meanwhile.
async fn pause(
    name: &str,
    processor: &Processor,
    shutdown: &CancellationToken,
    delay: Duration,
    hint: &str,
) -> bool {
    processor.metrics().set_lag(-1);
    tracing::warn!(consumer = %name, error = %hint, ?delay, "mqtt broker unavailable; reconnecting");
    processor.metrics().set_source_down(Some(hint.to_owned()));
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// The MQTT 3.1.1 event loop.
// Both event loops take the same worker parts; bundling them would only be unpacked here.
#[allow(clippy::too_many_arguments)]
async fn poll_v311(
    name: &str,
    settings: &MqttSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    forward: &mut Forward,
    key: &(dyn Fn(&str) -> String + Sync),
) {
    let qos = if settings.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let mut backoff = processor.backoff();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            alive = forward.drain_one() => {
                if !alive {
                    break;
                }
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                processor.metrics().set_source_down(None);
                tracing::info!(consumer = %name, session_present = ack.session_present, protocol = "3.1.1", "mqtt consumer connected");
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
                let ack = if p.qos == QoS::AtMostOnce {
                    Ack::None
                } else {
                    Ack::V311(p.clone())
                };
                if p.retain && !settings.retained {
                    // A retained value replayed at subscribe time: acknowledged, not routed.
                    if let Ack::V311(p) = &ack {
                        let _ = client.try_ack(p);
                    }
                    continue;
                }
                let msg = message(&settings.client_id, &p);
                if !forward.push(Incoming { msg, ack }) {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
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
                if !pause(name, processor, shutdown, backoff.next_delay(), &hint).await {
                    break;
                }
            }
        }
    }
}

/// The MQTT 5 event loop.
// Same parts as the 3.1.1 loop (see there).
#[allow(clippy::too_many_arguments)]
async fn poll_v5(
    name: &str,
    settings: &MqttSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    client: rumqttc::v5::AsyncClient,
    mut eventloop: rumqttc::v5::EventLoop,
    forward: &mut Forward,
    key: &(dyn Fn(&str) -> String + Sync),
) {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::{ConnectionError as E5, Event as Event5};
    let qos = if settings.qos == 0 {
        QoS5::AtMostOnce
    } else {
        QoS5::AtLeastOnce
    };
    let mut backoff = processor.backoff();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            alive = forward.drain_one() => {
                if !alive {
                    break;
                }
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event5::Incoming(mqtt5::Packet::ConnAck(ack))) => {
                backoff.reset();
                processor.metrics().set_source_down(None);
                tracing::info!(consumer = %name, session_present = ack.session_present, protocol = "5", "mqtt consumer connected");
                for t in &settings.topics {
                    let mut filter = mqtt5::Filter::new(t.clone(), qos);
                    if !settings.retained {
                        // Retained values are not routed: ask the broker not to send them.
                        filter.retain_forward_rule = mqtt5::RetainForwardRule::Never;
                    }
                    if let Err(e) = client.try_subscribe_many(std::iter::once(filter)) {
                        tracing::warn!(consumer = %name, topic = %t, error = %e, "mqtt subscribe not queued");
                    }
                }
            }
            Ok(Event5::Incoming(mqtt5::Packet::SubAck(ack))) => {
                if let Some(code) = ack
                    .return_codes
                    .iter()
                    .find(|c| !matches!(c, mqtt5::SubscribeReasonCode::Success(_)))
                {
                    let reason = ack
                        .properties
                        .as_ref()
                        .and_then(|p| p.reason_string.clone())
                        .unwrap_or_default();
                    tracing::error!(consumer = %name, key = %key("topics"), ?code, %reason, "the broker refused a subscription (not allowed, or a bad filter)");
                }
            }
            Ok(Event5::Incoming(mqtt5::Packet::Publish(p))) => {
                let ack = if p.qos == QoS5::AtMostOnce {
                    Ack::None
                } else {
                    Ack::V5(p.clone())
                };
                if p.retain && !settings.retained {
                    if let Ack::V5(p) = &ack {
                        let _ = client.try_ack(p);
                    }
                    continue;
                }
                let msg = message_v5(&settings.client_id, &p);
                if !forward.push(Incoming { msg, ack }) {
                    break;
                }
            }
            Ok(Event5::Incoming(mqtt5::Packet::Disconnect(d))) => {
                tracing::warn!(consumer = %name, reason = ?d.reason_code, "the broker disconnected the mqtt session");
            }
            Ok(_) => {}
            Err(e) => {
                let hint = match &e {
                    E5::ConnectionRefused(code) => {
                        use mqtt5::ConnectReturnCode as C;
                        let field = match code {
                            C::BadUserNamePassword
                            | C::NotAuthorized
                            | C::BadAuthenticationMethod => "username",
                            C::ClientIdentifierNotValid | C::BadClientId => "client_id",
                            C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => {
                                "protocol_version"
                            }
                            _ => "url",
                        };
                        format!(
                            "{}: the broker refused the connection: {code:?}",
                            key(field)
                        )
                    }
                    E5::Tls(_) => format!("{}: TLS: {e}", key("url")),
                    other => other.to_string(),
                };
                if !pause(name, processor, shutdown, backoff.next_delay(), &hint).await {
                    break;
                }
            }
        }
    }
}

/// Applies messages in order; acknowledges QoS 1 messages once done.
async fn work(
    processor: Processor,
    client: Client,
    mut rx: mpsc::Receiver<Incoming>,
    shutdown: CancellationToken,
) {
    while let Some(Incoming { msg, ack }) = rx.recv().await {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = processor.ready() => {}
        }
        let mut retry = processor.backoff();
        loop {
            match processor.process(&msg).await {
                Outcome::Done => break,
                Outcome::Poison(why) => {
                    ConsumerMetrics::inc(&processor.metrics().dead_lettered);
                    tracing::warn!(consumer = %processor.name(), topic = %msg.subject, reason = %why, "mqtt message dead-lettered (logged and acknowledged)");
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
        if !client.ack(&ack).await {
            return;
        }
    }
}

/// The idempotency key of a QoS 1 message: stable across redeliveries of one session (same
/// packet id, same payload); empty for QoS 0 (never redelivered).
fn message_id(client_id: &str, topic: &str, qos0: bool, pkid: u16, payload: &[u8]) -> String {
    if qos0 {
        String::new()
    } else {
        format!("mqtt:{client_id}:{topic}:{pkid}:{}", fnv1a_hex(&[payload]))
    }
}

/// The message of a 3.1.1 PUBLISH: subject = topic (templates read `{topic.N}`), headers
/// `topic` and `retain`.
fn message(client_id: &str, p: &Publish) -> Message {
    Message {
        id: message_id(
            client_id,
            &p.topic,
            p.qos == QoS::AtMostOnce,
            p.pkid,
            &p.payload,
        ),
        subject: p.topic.clone(),
        headers: vec![
            ("topic".into(), p.topic.clone()),
            ("retain".into(), p.retain.to_string()),
        ],
        body: p.payload.clone(),
    }
}

/// The message of an MQTT 5 PUBLISH: as for 3.1.1, plus the publication's user properties
/// and `content_type` as headers (`{header.NAME}`).
fn message_v5(client_id: &str, p: &mqtt5::Publish) -> Message {
    let topic = String::from_utf8_lossy(&p.topic).into_owned();
    let mut headers = vec![
        ("topic".into(), topic.clone()),
        ("retain".into(), p.retain.to_string()),
    ];
    if let Some(props) = &p.properties {
        if let Some(ct) = &props.content_type {
            headers.push(("content_type".into(), ct.clone()));
        }
        headers.extend(props.user_properties.iter().cloned());
    }
    Message {
        id: message_id(
            client_id,
            &topic,
            p.qos == rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            p.pkid,
            &p.payload,
        ),
        subject: topic,
        headers,
        body: p.payload.clone(),
    }
}

/// MQTT 3.1.1 client options from the settings.
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

/// MQTT 5 client options from the settings: manual acks, receive maximum = `max_inflight`,
/// session expiry (never by default, so the broker keeps the session across a node restart).
fn options_v5(
    s: &MqttSettings,
    key: &dyn Fn(&str) -> String,
) -> Result<rumqttc::v5::MqttOptions, ConsumerError> {
    let broker = s
        .broker()
        .map_err(|e| ConsumerError::config(key("url"), e))?;
    let mut o = rumqttc::v5::MqttOptions::new(s.client_id.clone(), broker.host, broker.port);
    let expiry = if s.clean_session {
        None
    } else {
        Some(s.session_expiry.map_or(u32::MAX, |d| {
            u32::try_from(d.as_secs()).unwrap_or(u32::MAX - 1)
        }))
    };
    o.set_keep_alive(s.keep_alive)
        .set_clean_start(s.clean_session)
        .set_session_expiry_interval(expiry)
        .set_manual_acks(true)
        .set_receive_maximum(Some(s.max_inflight))
        .set_max_packet_size(Some(u32::try_from(s.max_packet_size).unwrap_or(u32::MAX)));
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

    #[test]
    fn v5_messages_carry_user_properties_and_the_same_key_shape() {
        let props = mqtt5::PublishProperties {
            content_type: Some("application/json".into()),
            user_properties: vec![("site".into(), "berlin".into())],
            ..Default::default()
        };
        let mut p = mqtt5::Publish::new(
            "sensors/d1/temp",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            b"{\"n\":1}".to_vec(),
            Some(props),
        );
        p.pkid = 7;
        let m = message_v5("n1", &p);
        let mut p4 = Publish::new("sensors/d1/temp", QoS::AtLeastOnce, b"{\"n\":1}".to_vec());
        p4.pkid = 7;
        assert_eq!(m.id, message("n1", &p4).id);
        assert_eq!(m.subject, "sensors/d1/temp");
        assert_eq!(m.header("site"), Some("berlin"));
        assert_eq!(m.header("content_type"), Some("application/json"));
        p.qos = rumqttc::v5::mqttbytes::QoS::AtMostOnce;
        assert!(message_v5("n1", &p).id.is_empty());
    }
}
