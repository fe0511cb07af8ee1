//! `grpc_api.*`: Centrifugo's gRPC server API (`proto/api.proto`) on its own listener.

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use super::{ApiErrorMode, TlsConfig};

/// gRPC's usual message size limit, used when `max_receive_message_size` is 0.
pub(super) const DEFAULT_MAX_RECEIVE_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// `grpc_api.*` (key names of Centrifugo v6, plus `insecure` as on `http_api`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcApiConfig {
    /// Serve the gRPC API.
    pub enabled: bool,
    /// Bind address; empty uses `http_server.address`.
    pub address: String,
    /// Bind port (0 picks a free port).
    pub port: u16,
    /// Key expected in the metadata `authorization: apikey <key>`. Empty refuses to start
    /// unless `insecure`.
    pub key: String,
    /// No key check (for development behind a trusted network only).
    pub insecure: bool,
    /// Largest request message in bytes (`RESOURCE_EXHAUSTED` beyond it); 0 = 4 MiB.
    pub max_receive_message_size: usize,
    /// `""`: errors in the response's `error` field; `transport`: errors as gRPC statuses (a
    /// call can also ask with the metadata `x-centrifugo-error-mode: transport`).
    pub error_mode: ApiErrorMode,
    /// `grpc_api.tls.*`: serve over TLS (HTTP/2 by ALPN).
    pub tls: TlsConfig,
}

impl Default for GrpcApiConfig {
    fn default() -> Self {
        GrpcApiConfig {
            enabled: false,
            address: String::new(),
            port: 10000,
            key: String::new(),
            insecure: false,
            max_receive_message_size: 0,
            error_mode: ApiErrorMode::Body,
            tls: TlsConfig::default(),
        }
    }
}

impl GrpcApiConfig {
    /// The effective message size limit.
    pub fn receive_limit(&self) -> usize {
        if self.max_receive_message_size == 0 {
            DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
        } else {
            self.max_receive_message_size
        }
    }

    /// Checks the section when enabled; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if !self.address.is_empty() && self.address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                "grpc_api.address",
                format!("{:?} is not an IP address", self.address),
            ));
        }
        if self.key.is_empty() && !self.insecure {
            return Err(ConfigError::new(
                "grpc_api.key",
                "required when grpc_api.enabled (or set grpc_api.insecure for no key check)",
            ));
        }
        if self.max_receive_message_size != 0 && self.max_receive_message_size < 1024 {
            return Err(ConfigError::new(
                "grpc_api.max_receive_message_size",
                "must be 0 (4 MiB) or at least 1024 bytes",
            ));
        }
        if self.tls.enabled {
            for (key, path) in [
                ("grpc_api.tls.cert_pem_file", &self.tls.cert_pem_file),
                ("grpc_api.tls.key_pem_file", &self.tls.key_pem_file),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(ConfigError::new(key, "required when TLS is enabled"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ServerConfig;

    fn key_of(c: &ServerConfig) -> String {
        c.validate().expect_err("invalid").to_string()
    }

    #[test]
    fn enabled_needs_a_key_unless_insecure() {
        let mut c = ServerConfig::default();
        c.grpc_api.enabled = true;
        assert!(key_of(&c).contains("grpc_api.key"));
        c.grpc_api.insecure = true;
        c.validate().expect("insecure without key");
        c.grpc_api.insecure = false;
        c.grpc_api.key = "k".into();
        c.validate().expect("with key");
        c.grpc_api.max_receive_message_size = 10;
        assert!(key_of(&c).contains("grpc_api.max_receive_message_size"));
        c.grpc_api.max_receive_message_size = 0;
        assert_eq!(c.grpc_api.receive_limit(), 4 * 1024 * 1024);
        c.grpc_api.address = "nope".into();
        assert!(key_of(&c).contains("grpc_api.address"));
        c.grpc_api.address = "127.0.0.1".into();
        c.grpc_api.tls.enabled = true;
        assert!(key_of(&c).contains("grpc_api.tls.cert_pem_file"));
    }

    #[test]
    fn disabled_section_is_not_checked() {
        let mut c = ServerConfig::default();
        c.grpc_api.address = "nope".into();
        c.validate().expect("disabled");
    }
}
