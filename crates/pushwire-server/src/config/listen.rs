//! `http_server.tls.*` and the validation of the listener's limits (`http_server.*`) and of the
//! separate API listener (`http_api.address` / `http_api.port`).

use std::path::PathBuf;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use super::{HttpApiConfig, HttpServerConfig};

/// `http_server.tls.*`: HTTPS on the listener (HTTP/1.1 and HTTP/2, chosen by ALPN).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve TLS instead of plain HTTP.
    pub enabled: bool,
    /// PEM file with the certificate chain, leaf first.
    pub cert_pem_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem_file: PathBuf,
}

impl HttpServerConfig {
    /// Checks the listener's values; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                "http_server.address",
                format!("{:?} is not an IP address", self.address),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "http_server.max_connections",
                "must be > 0",
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::new(
                "http_server.handshake_timeout",
                "must be > 0",
            ));
        }
        if self.header_read_timeout.is_zero() {
            return Err(ConfigError::new(
                "http_server.header_read_timeout",
                "must be > 0",
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_size) {
            return Err(ConfigError::new(
                "http_server.max_header_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(ConfigError::new(
                "http_server.http2_max_concurrent_streams",
                "must be > 0",
            ));
        }
        if self.http2_idle_timeout.is_zero() {
            return Err(ConfigError::new(
                "http_server.http2_idle_timeout",
                "must be > 0",
            ));
        }
        if self.write_timeout.is_zero() {
            return Err(ConfigError::new("http_server.write_timeout", "must be > 0"));
        }
        if self.body_read_timeout.is_zero() {
            return Err(ConfigError::new(
                "http_server.body_read_timeout",
                "must be > 0",
            ));
        }
        if self.connect_rate_per_ip > 0 && self.connect_burst_per_ip == 0 {
            return Err(ConfigError::new(
                "http_server.connect_burst_per_ip",
                "must be > 0 when http_server.connect_rate_per_ip is set",
            ));
        }
        if self.connect_rate_per_node > 0 && self.connect_burst_per_node == 0 {
            return Err(ConfigError::new(
                "http_server.connect_burst_per_node",
                "must be > 0 when http_server.connect_rate_per_node is set",
            ));
        }
        if self.connect_rate_max_ips == 0 {
            return Err(ConfigError::new(
                "http_server.connect_rate_max_ips",
                "must be > 0",
            ));
        }
        crate::limits::client_ip::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError::new("http_server.trusted_proxies", e))?;
        if self.listen_backlog == 0 {
            return Err(ConfigError::new(
                "http_server.listen_backlog",
                "must be > 0",
            ));
        }
        if self.connection_body_size_limit < 1024 {
            return Err(ConfigError::new(
                "http_server.connection_body_size_limit",
                "must be at least 1024 bytes",
            ));
        }
        if self.tls.enabled {
            for (key, path) in [
                ("http_server.tls.cert_pem_file", &self.tls.cert_pem_file),
                ("http_server.tls.key_pem_file", &self.tls.key_pem_file),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(ConfigError::new(key, "required when TLS is enabled"));
                }
            }
        }
        Ok(())
    }
}

impl HttpApiConfig {
    /// Checks the API listener's address; the error names the key.
    pub(super) fn validate_listener(&self) -> Result<(), ConfigError> {
        if !self.address.is_empty() && self.address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                "http_api.address",
                format!("{:?} is not an IP address", self.address),
            ));
        }
        if self.address.is_empty() && self.port != 0 {
            return Err(ConfigError::new(
                "http_api.port",
                "needs http_api.address (the API shares the main listener without it)",
            ));
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
    fn defaults_are_valid_and_bad_values_name_their_key() {
        ServerConfig::default().validate().expect("defaults valid");
        let mut c = ServerConfig::default();
        c.http_server.tls.enabled = true;
        assert!(key_of(&c).contains("http_server.tls.cert_pem_file"));
        let mut c = ServerConfig::default();
        c.http_server.max_header_size = 10;
        assert!(key_of(&c).contains("http_server.max_header_size"));
        let mut c = ServerConfig::default();
        c.http_server.header_read_timeout = std::time::Duration::ZERO;
        assert!(key_of(&c).contains("http_server.header_read_timeout"));
        let mut c = ServerConfig::default();
        c.http_server.connect_burst_per_ip = 0;
        assert!(key_of(&c).contains("http_server.connect_burst_per_ip"));
        let mut c = ServerConfig::default();
        c.http_server.listen_backlog = 0;
        assert!(key_of(&c).contains("http_server.listen_backlog"));
        let mut c = ServerConfig::default();
        c.http_server.connect_rate_per_ip = 0;
        c.http_server.connect_burst_per_ip = 0;
        c.validate().expect("rate 0 turns the limit off");
        let mut c = ServerConfig::default();
        c.http_api.port = 9001;
        assert!(key_of(&c).contains("http_api.port"));
        c.http_api.address = "not-an-ip".into();
        assert!(key_of(&c).contains("http_api.address"));
    }
}
