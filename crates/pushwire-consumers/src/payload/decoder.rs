//! The decoders.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{PayloadFormat, PayloadSettings};
use crate::error::ConsumerError;

/// Why a body did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// It never will (not the wire format, unknown schema id, bad bytes): dead-letter.
    Poison(String),
    /// The schema registry could not answer (after the bounded retries): hand the message
    /// back to the source to retry later; the consumer is degraded meanwhile.
    Unavailable(String),
}

/// Where Avro writer schemas come from.
#[cfg(feature = "avro")]
pub(crate) enum SchemaSource {
    /// `<dir>/<id>.avsc`.
    Dir(std::path::PathBuf),
    /// A Confluent-compatible schema registry.
    Registry(super::registry::Registry),
}

/// Turns a binary body into JSON bytes.
pub(crate) enum Decoder {
    /// Confluent-framed Avro; schemas by id from a directory or a registry (cached once read:
    /// a schema id never changes its schema).
    #[cfg(feature = "avro")]
    Avro {
        source: SchemaSource,
        schemas: Mutex<HashMap<u32, Arc<apache_avro::Schema>>>,
    },
    /// Protobuf of one message type.
    #[cfg(feature = "protobuf")]
    Protobuf(prost_reflect::MessageDescriptor),
}

impl Decoder {
    /// The decoder of `s`, `None` for JSON; errors name the key under `key`.
    pub(crate) fn new(s: &PayloadSettings, key: &str) -> Result<Option<Decoder>, ConsumerError> {
        match s.format {
            PayloadFormat::Json => Ok(None),
            #[cfg(feature = "avro")]
            PayloadFormat::Avro => {
                let source = if s.schema_registry_url.trim().is_empty() {
                    let dir = std::path::PathBuf::from(&s.schema_dir);
                    if !dir.is_dir() {
                        return Err(ConsumerError::config(
                            format!("{key}.schema_dir"),
                            format!("{} is not a directory", s.schema_dir),
                        ));
                    }
                    SchemaSource::Dir(dir)
                } else {
                    SchemaSource::Registry(super::registry::Registry::new(s).map_err(|e| {
                        ConsumerError::config(format!("{key}.schema_registry_url"), e)
                    })?)
                };
                Ok(Some(Decoder::Avro {
                    source,
                    schemas: Mutex::new(HashMap::new()),
                }))
            }
            #[cfg(feature = "protobuf")]
            PayloadFormat::Protobuf => {
                let bytes = std::fs::read(&s.descriptor_set_file).map_err(|e| {
                    ConsumerError::config(
                        format!("{key}.descriptor_set_file"),
                        format!("{}: {e}", s.descriptor_set_file),
                    )
                })?;
                let pool =
                    prost_reflect::DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
                        ConsumerError::config(
                            format!("{key}.descriptor_set_file"),
                            format!("{}: not a FileDescriptorSet: {e}", s.descriptor_set_file),
                        )
                    })?;
                let desc = pool.get_message_by_name(&s.message).ok_or_else(|| {
                    ConsumerError::config(
                        format!("{key}.message"),
                        format!("no message {:?} in {}", s.message, s.descriptor_set_file),
                    )
                })?;
                Ok(Some(Decoder::Protobuf(desc)))
            }
            // Reached only in builds without the avro or protobuf feature.
            #[allow(unreachable_patterns)]
            _ => Err(ConsumerError::config(
                format!("{key}.format"),
                "not compiled into this build",
            )),
        }
    }

    /// Whether decoding may wait on a schema registry (its failures degrade the consumer).
    pub(crate) fn uses_registry(&self) -> bool {
        match self {
            #[cfg(feature = "avro")]
            Decoder::Avro {
                source: SchemaSource::Registry(_),
                ..
            } => true,
            _ => false,
        }
    }

    /// `body` as JSON bytes.
    pub(crate) async fn decode(&self, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let poison = DecodeError::Poison;
        match self {
            #[cfg(feature = "avro")]
            Decoder::Avro { source, schemas } => {
                if body.len() < 5 || body[0] != 0 {
                    return Err(poison(
                        "avro: not the Confluent wire format (magic byte 0 + schema id)".into(),
                    ));
                }
                let id = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
                let cached = schemas.lock().get(&id).cloned();
                let schema = match cached {
                    Some(s) => s,
                    None => {
                        let text = match source {
                            SchemaSource::Dir(dir) => {
                                let path = dir.join(format!("{id}.avsc"));
                                // A small file, read once per schema id.
                                std::fs::read_to_string(&path).map_err(|_| {
                                    poison(format!(
                                        "avro: unknown schema id {id} (no {})",
                                        path.display()
                                    ))
                                })?
                            }
                            SchemaSource::Registry(r) => r.schema(id).await?,
                        };
                        let schema = Arc::new(
                            apache_avro::Schema::parse_str(&text)
                                .map_err(|e| poison(format!("avro: schema {id}: {e}")))?,
                        );
                        schemas.lock().insert(id, schema.clone());
                        schema
                    }
                };
                let mut rest = &body[5..];
                let value = apache_avro::from_avro_datum(&schema, &mut rest, None)
                    .map_err(|e| poison(format!("avro: schema {id}: {e}")))?;
                let json = serde_json::Value::try_from(value)
                    .map_err(|e| poison(format!("avro: schema {id}: {e}")))?;
                serde_json::to_vec(&json).map_err(|e| poison(format!("avro: {e}")))
            }
            #[cfg(feature = "protobuf")]
            Decoder::Protobuf(desc) => {
                let msg = prost_reflect::DynamicMessage::decode(desc.clone(), body)
                    .map_err(|e| poison(format!("protobuf {}: {e}", desc.full_name())))?;
                serde_json::to_vec(&msg)
                    .map_err(|e| poison(format!("protobuf {}: {e}", desc.full_name())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("pushwire-payload-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn reason(e: DecodeError) -> String {
        match e {
            DecodeError::Poison(r) => r,
            DecodeError::Unavailable(r) => panic!("not poison: {r}"),
        }
    }

    #[cfg(feature = "avro")]
    #[tokio::test]
    async fn confluent_avro_decodes_and_unknown_ids_are_named() {
        let dir = tmp("avro");
        let text = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"status","type":"string"}]}"#;
        std::fs::write(dir.join("7.avsc"), text).expect("schema");
        let s = PayloadSettings {
            format: PayloadFormat::Avro,
            schema_dir: dir.display().to_string(),
            ..Default::default()
        };
        let d = Decoder::new(&s, "k").expect("decoder").expect("some");
        let schema = apache_avro::Schema::parse_str(text).expect("parse");
        let mut record = apache_avro::types::Record::new(&schema).expect("record");
        record.put("id", 42i64);
        record.put("status", "paid");
        let datum = apache_avro::to_avro_datum(&schema, record).expect("encode");
        let mut body = vec![0, 0, 0, 0, 7];
        body.extend_from_slice(&datum);
        let json: serde_json::Value =
            serde_json::from_slice(&d.decode(&body).await.expect("decodes")).expect("json");
        assert_eq!(json, serde_json::json!({"id": 42, "status": "paid"}));
        body[4] = 9;
        assert!(reason(d.decode(&body).await.unwrap_err()).contains("unknown schema id 9"));
        assert!(reason(d.decode(b"{\"id\":1}").await.unwrap_err()).contains("Confluent"));
        let missing = PayloadSettings {
            schema_dir: "/nonexistent/x".into(),
            ..s
        };
        assert!(Decoder::new(&missing, "k").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "protobuf")]
    #[tokio::test]
    async fn protobuf_decodes_with_a_descriptor_set() {
        use prost::Message as _;
        use prost_types::{
            field_descriptor_proto::Type, DescriptorProto, FieldDescriptorProto,
            FileDescriptorProto, FileDescriptorSet,
        };
        let field = |name: &str, number: i32, t: Type| FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(t as i32),
            json_name: Some(name.into()),
            label: Some(1),
            ..Default::default()
        };
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("shop.proto".into()),
                package: Some("shop.v1".into()),
                syntax: Some("proto3".into()),
                message_type: vec![DescriptorProto {
                    name: Some("Order".into()),
                    field: vec![
                        field("id", 1, Type::Int64),
                        field("status", 2, Type::String),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let dir = tmp("proto");
        let file = dir.join("shop.desc");
        std::fs::write(&file, set.encode_to_vec()).expect("descriptor set");
        let s = PayloadSettings {
            format: PayloadFormat::Protobuf,
            descriptor_set_file: file.display().to_string(),
            message: "shop.v1.Order".into(),
            ..Default::default()
        };
        let d = Decoder::new(&s, "k").expect("decoder").expect("some");
        // id = 42 (field 1, varint), status = "paid" (field 2, bytes).
        let body = [0x08, 42, 0x12, 4, b'p', b'a', b'i', b'd'];
        let json: serde_json::Value =
            serde_json::from_slice(&d.decode(&body).await.expect("decodes")).expect("json");
        assert_eq!(json, serde_json::json!({"id": "42", "status": "paid"}));
        assert!(d.decode(&[0x12, 9, b'x']).await.is_err(), "truncated");
        let wrong = PayloadSettings {
            message: "shop.v1.Nope".into(),
            ..s
        };
        match Decoder::new(&wrong, "k") {
            Err(ConsumerError::Config { key, .. }) => assert_eq!(key, "k.message"),
            _ => panic!("a missing message names the key"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
