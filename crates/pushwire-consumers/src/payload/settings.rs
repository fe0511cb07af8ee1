//! `consumers[].payload`.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

/// The encoding of message bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// JSON (or anything, passed through as is). Default.
    #[default]
    Json,
    /// Avro, Confluent wire format; schemas from `schema_dir` or `schema_registry_url`.
    Avro,
    /// Protobuf message `message` described by `descriptor_set_file`.
    Protobuf,
}

/// `consumers[].payload`: how to turn binary bodies into JSON before the mode applies them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadSettings {
    /// `json` (default), `avro` or `protobuf`.
    pub format: PayloadFormat,
    /// Avro: directory of writer schemas, one `<schema id>.avsc` file per Confluent schema id
    /// (read on first use). For `avro`, this or `schema_registry_url`.
    pub schema_dir: String,
    /// Avro: a Confluent-compatible schema registry (`http(s)://host:port[/path]`); a schema
    /// id is looked up once (`GET <url>/schemas/ids/<id>`) and cached. For `avro`, this or
    /// `schema_dir`.
    pub schema_registry_url: String,
    /// Registry HTTP basic-auth user (empty: none).
    pub schema_registry_username: String,
    /// Registry HTTP basic-auth password.
    pub schema_registry_password: String,
    /// Timeout of one registry request. Default 5s.
    #[serde(with = "humantime_serde")]
    pub schema_registry_timeout: Duration,
    /// Extra attempts of a failed registry lookup (unreachable, 5xx) before the message is
    /// handed back to the source to be retried later with the consumer's backoff. Default 2.
    pub schema_registry_retries: u32,
    /// Protobuf: a serialized `FileDescriptorSet` (`protoc --include_imports
    /// --descriptor_set_out=…`). Required for `protobuf`.
    pub descriptor_set_file: String,
    /// Protobuf: the full message name, e.g. `shop.v1.Order`. Required for `protobuf`.
    pub message: String,
}

impl Default for PayloadSettings {
    fn default() -> Self {
        PayloadSettings {
            format: PayloadFormat::Json,
            schema_dir: String::new(),
            schema_registry_url: String::new(),
            schema_registry_username: String::new(),
            schema_registry_password: String::new(),
            schema_registry_timeout: Duration::from_secs(5),
            schema_registry_retries: 2,
            descriptor_set_file: String::new(),
            message: String::new(),
        }
    }
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
                match (
                    self.schema_dir.trim().is_empty(),
                    self.schema_registry_url.trim().is_empty(),
                ) {
                    (true, true) => Err(ConfigError::new(
                        format!("{key}.schema_dir"),
                        "format = \"avro\" needs schema_dir or schema_registry_url",
                    )),
                    (false, false) => Err(ConfigError::new(
                        format!("{key}.schema_registry_url"),
                        "set schema_dir or schema_registry_url, not both",
                    )),
                    (true, false) => {
                        let u = &self.schema_registry_url;
                        let rest = u
                            .strip_prefix("http://")
                            .or_else(|| u.strip_prefix("https://"));
                        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                            return Err(ConfigError::new(
                                format!("{key}.schema_registry_url"),
                                format!("{u:?} is not an http:// or https:// URL"),
                            ));
                        }
                        if self.schema_registry_timeout < Duration::from_millis(10) {
                            return Err(ConfigError::new(
                                format!("{key}.schema_registry_timeout"),
                                "must be at least 10ms",
                            ));
                        }
                        if self.schema_registry_retries > 10 {
                            return Err(ConfigError::new(
                                format!("{key}.schema_registry_retries"),
                                "at most 10 (the source retries the message after that)",
                            ));
                        }
                        if self.schema_registry_username.is_empty()
                            && !self.schema_registry_password.is_empty()
                        {
                            return Err(ConfigError::new(
                                format!("{key}.schema_registry_username"),
                                "must be set with schema_registry_password",
                            ));
                        }
                        Ok(())
                    }
                    (false, true) => Ok(()),
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_needs_exactly_one_schema_source() {
        let avro = |dir: &str, url: &str| PayloadSettings {
            format: PayloadFormat::Avro,
            schema_dir: dir.into(),
            schema_registry_url: url.into(),
            ..Default::default()
        };
        assert!(avro("/s", "").validate("p").is_ok());
        assert!(avro("", "http://127.0.0.1:8081").validate("p").is_ok());
        assert!(avro("", "https://registry.local/api/")
            .validate("p")
            .is_ok());
        assert_eq!(avro("", "").validate("p").unwrap_err().key, "p.schema_dir");
        assert_eq!(
            avro("/s", "http://r").validate("p").unwrap_err().key,
            "p.schema_registry_url"
        );
        assert_eq!(
            avro("", "registry:8081").validate("p").unwrap_err().key,
            "p.schema_registry_url"
        );
        let mut s = avro("", "http://r");
        s.schema_registry_password = "x".into();
        assert_eq!(
            s.validate("p").unwrap_err().key,
            "p.schema_registry_username"
        );
    }
}
