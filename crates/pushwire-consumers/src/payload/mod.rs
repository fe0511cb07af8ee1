//! Binary payloads decoded to JSON before a message is applied: Avro in the Confluent wire
//! format (magic byte 0, 4-byte big-endian schema id, Avro binary datum) with schemas from a
//! local directory or a Confluent-compatible schema registry, and Protobuf with a descriptor set file and a message name. A message that
//! does not decode is poison (dead-lettered with the reason).

#[cfg(any(feature = "avro", feature = "protobuf"))]
mod decoder;
#[cfg(feature = "avro")]
mod registry;
mod settings;

#[cfg(any(feature = "avro", feature = "protobuf"))]
pub(crate) use decoder::{DecodeError, Decoder};
pub use settings::{PayloadFormat, PayloadSettings};
