//! MQTT source (`rumqttc`, MQTT 3.1.1): subscriptions to topic filters (`+`, `#`, shared
//! `$share/<group>/<filter>`), QoS 1 messages acknowledged (PUBACK) only once their
//! publication is in channel history, a persistent session so a restarted node receives what
//! arrived meanwhile; TLS and username/password.

mod settings;
#[cfg(feature = "mqtt")]
mod source;

pub use settings::MqttSettings;
#[cfg(feature = "mqtt")]
pub use source::run;
