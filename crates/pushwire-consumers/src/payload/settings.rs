//! `consumers[].payload`.

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

/// The encoding of message bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// JSON (or anything, passed through as is). Default.
    #[default]
    Json,
    /// Avro, Confluent wire format; schemas from `schema_dir`.
    Avro,
    /// Protobuf message `message` described by `descriptor_set_file`.
    Protobuf,
}

/// `consumers[].payload`: how to turn binary bodies into JSON before the mode applies them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadSettings {
    /// `json` (default), `avro` or `protobuf`.
    pub format: PayloadFormat,
    /// Avro: directory of writer schemas, one `<schema id>.avsc` file per Confluent schema id
    /// (read on first use). Required for `avro`.
    pub schema_dir: String,
    /// Protobuf: a serialized `FileDescriptorSet` (`protoc --include_imports
    /// --descriptor_set_out=…`). Required for `protobuf`.
    pub descriptor_set_file: String,
    /// Protobuf: the full message name, e.g. `shop.v1.Order`. Required for `protobuf`.
    pub message: String,
}

impl PayloadSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].payload`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let need = |field: &str, v: &str| {
            if v.trim().is_empty() {
                Err(ConfigError::new(
                    format!("{key}.{field}"),
                    format!("must be set for format = \"{}\"", self.format_name()),
                ))
            } else {
                Ok(())
            }
        };
        match self.format {
            PayloadFormat::Json => Ok(()),
            PayloadFormat::Avro => {
                if !cfg!(feature = "avro") {
                    return Err(ConfigError::new(
                        format!("{key}.format"),
                        "this build does not include Avro (cargo feature `avro`)",
                    ));
                }
                need("schema_dir", &self.schema_dir)
            }
            PayloadFormat::Protobuf => {
                if !cfg!(feature = "protobuf") {
                    return Err(ConfigError::new(
                        format!("{key}.format"),
                        "this build does not include Protobuf (cargo feature `protobuf`)",
                    ));
                }
                need("descriptor_set_file", &self.descriptor_set_file)?;
                need("message", &self.message)
            }
        }
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            PayloadFormat::Json => "json",
            PayloadFormat::Avro => "avro",
            PayloadFormat::Protobuf => "protobuf",
        }
    }
}
