//! MQTT source (`rumqttc`, MQTT 3.1.1 or MQTT 5 by `protocol_version`): subscriptions to topic
//! filters (`+`, `#`, shared `$share/<group>/<filter>`), QoS 1 messages acknowledged (PUBACK)
//! only once their publication is in channel history, a persistent session (MQTT 5: with a
//! session expiry interval) so a restarted node receives what arrived meanwhile; TLS and
//! username/password.

mod settings;
#[cfg(feature = "mqtt")]
mod source;

pub use settings::{MqttSettings, ProtocolVersion};
#[cfg(feature = "mqtt")]
pub use source::run;
