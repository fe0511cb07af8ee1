//! TLS to Redis beyond a single `rediss://` address: the `engine.redis.sentinel_tls` section
//! (TLS to the sentinels, Centrifugo v6's key names) and the root certificates every topology
//! verifies its servers with.
//!
//! Which connection uses TLS:
//! - a Redis (single, sharded, the master a sentinel names, every Redis Cluster node): the
//!   `rediss://` scheme of `engine.redis.address` (for Cluster: of the seeds, completed from
//!   `address` when given as `host:port`), verified with `engine.redis.tls_ca_pem_file`
//!   (empty: the system's roots);
//! - a sentinel: `engine.redis.sentinel_tls.enabled`, verified with
//!   `engine.redis.sentinel_tls.server_ca_pem_file` (empty: the system's roots).
//!
//! Server certificates are always verified (there is no "insecure" switch), and must name
//! the host the client dials: for Sentinel and Cluster that is the address the sentinels or
//! the cluster announce (usually an IP address, so the certificate needs that IP as a
//! subject alternative name).

use pushwire_core::config::ConfigError;
use redis::{ConnectionAddr, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::config::RedisConfig;
use crate::error::StartError;
use crate::sentinel_watch::WatchSettings;

/// `engine.redis.sentinel_tls`: TLS to the sentinels of `engine.redis.sentinel_address`
/// (the master they name follows `engine.redis.address`'s scheme).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentinelTlsConfig {
    /// Connect to the sentinels over TLS (verifying their certificate). Default `false`.
    pub enabled: bool,
    /// PEM file of the root certificate(s) that verify the sentinels instead of the system's
    /// roots (a private CA). Empty: the system's roots. Requires `enabled`.
    pub server_ca_pem_file: String,
}

impl SentinelTlsConfig {
    /// Checks the section against the rest of `config`; `section` is `engine.redis`.
    pub fn validate(&self, config: &RedisConfig, section: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.sentinel_tls.{k}");
        if (self.enabled || !self.server_ca_pem_file.is_empty())
            && config.sentinel_address.is_empty()
        {
            let k = if self.enabled {
                "enabled"
            } else {
                "server_ca_pem_file"
            };
            return Err(ConfigError::new(key(k), "needs sentinel_address"));
        }
        if !self.server_ca_pem_file.is_empty() && !self.enabled {
            return Err(ConfigError::new(
                key("server_ca_pem_file"),
                "needs sentinel_tls.enabled = true",
            ));
        }
        Ok(())
    }
}

/// The root certificates read at start: `None` where the system's roots apply.
#[derive(Clone, Default)]
pub(crate) struct Roots {
    /// `engine.redis.tls_ca_pem_file`: the Redis servers' (and Cluster nodes').
    pub redis: Option<TlsCertificates>,
    /// `engine.redis.sentinel_tls.server_ca_pem_file`: the sentinels'.
    pub sentinel: Option<TlsCertificates>,
    /// `engine.redis.sentinel_tls.enabled`.
    pub sentinel_tls: bool,
}

impl Roots {
    /// Reads the configured PEM files (each must hold at least one certificate) and makes
    /// sure rustls has its crypto provider when any TLS is configured. Errors name the key.
    pub(crate) fn load(config: &RedisConfig) -> Result<Roots, StartError> {
        let tls_somewhere = config.sentinel_tls.enabled
            || config
                .address
                .urls()
                .iter()
                .chain(&config.cluster_address)
                .any(|u| u.starts_with("rediss://"));
        if tls_somewhere {
            // The redis crate builds its TLS configuration from the process-wide provider;
            // make sure there is one (ring, the only one compiled in). Already set: kept.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Roots {
            redis: read_roots("engine.redis.tls_ca_pem_file", &config.tls_ca_pem_file)?,
            sentinel: read_roots(
                "engine.redis.sentinel_tls.server_ca_pem_file",
                &config.sentinel_tls.server_ca_pem_file,
            )?,
            sentinel_tls: config.sentinel_tls.enabled,
        })
    }

    /// The address of a sentinel `host:port` entry: TLS when `sentinel_tls.enabled` (its
    /// roots are applied by the client that dials it).
    pub(crate) fn sentinel_addr(&self, entry: &str) -> Option<ConnectionAddr> {
        let addr = crate::sentinel::sentinel_addr(entry)?;
        Some(match addr {
            ConnectionAddr::Tcp(host, port) if self.sentinel_tls => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            },
            other => other,
        })
    }

    /// A client for one sentinel (`info` built from [`Roots::sentinel_addr`]), verified
    /// with the sentinels' roots.
    pub(crate) fn sentinel_client(
        &self,
        info: redis::ConnectionInfo,
    ) -> redis::RedisResult<redis::Client> {
        match (&self.sentinel, info.addr()) {
            (Some(certs), ConnectionAddr::TcpTls { .. }) => {
                redis::Client::build_with_tls(info, certs.clone())
            }
            _ => redis::Client::open(info),
        }
    }
}

/// Whether `e` (or an error it wraps) is a server certificate the roots do not accept.
pub(crate) fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_))
        ) {
            return true;
        }
        // The redis crate's source is an `Arc` of the error; an `io::Error`'s `source` skips
        // the error it wraps (rustls' is wrapped so): look inside both.
        let shared = e
            .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
            .map(|arc| &**arc as &(dyn std::error::Error + 'static));
        let io = shared
            .unwrap_or(e)
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if shared.or(io).is_some_and(untrusted_certificate) {
            return true;
        }
        next = e.source();
    }
    false
}

impl Roots {
    /// `e` (a failed Sentinel start) naming the key to fix when a certificate was not
    /// trusted: `engine.redis.sentinel_tls.server_ca_pem_file` when a sentinel's is refused
    /// (checked again on the first sentinel to tell), else `engine.redis.tls_ca_pem_file`
    /// (the master's). Any other error is returned as it is.
    pub(crate) async fn name_untrusted(
        &self,
        config: &RedisConfig,
        mut e: StartError,
    ) -> StartError {
        let StartError::Sentinel { key, source, .. } = &mut e else {
            return e;
        };
        if !untrusted_certificate(source) {
            return e;
        }
        let settings = WatchSettings::new(config, self.clone());
        let sentinel_refused = match settings.first_client() {
            Some(Ok(client)) if self.sentinel_tls => matches!(
                tokio::time::timeout(
                    config.connect_timeout,
                    client.get_multiplexed_async_connection()
                )
                .await,
                Ok(Err(ref e)) if untrusted_certificate(e)
            ),
            _ => false,
        };
        *key = if sentinel_refused {
            "engine.redis.sentinel_tls.server_ca_pem_file"
        } else {
            "engine.redis.tls_ca_pem_file"
        };
        e
    }
}

/// Reads `path` (empty: `None`) as PEM root certificates.
fn read_roots(key: &'static str, path: &str) -> Result<Option<TlsCertificates>, StartError> {
    if path.is_empty() {
        return Ok(None);
    }
    let fail = |source: std::io::Error| StartError::TlsCa {
        key,
        path: path.to_owned(),
        source,
    };
    let pem = std::fs::read(path).map_err(fail)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    if certs.is_empty() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no PEM certificate in the file",
        )));
    }
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_tls_needs_sentinels_and_its_ca_needs_enabled() {
        let sentinel = RedisConfig {
            sentinel_address: vec!["127.0.0.1:26391".into()],
            sentinel_master_name: "m".into(),
            sentinel_tls: SentinelTlsConfig {
                enabled: true,
                server_ca_pem_file: "/etc/ca.pem".into(),
            },
            ..Default::default()
        };
        sentinel.validate("engine.redis").unwrap();
        for (bad, key) in [
            (
                RedisConfig {
                    sentinel_address: Vec::new(),
                    sentinel_master_name: String::new(),
                    ..sentinel.clone()
                },
                "engine.redis.sentinel_tls.enabled",
            ),
            (
                RedisConfig {
                    sentinel_tls: SentinelTlsConfig {
                        enabled: false,
                        server_ca_pem_file: "/etc/ca.pem".into(),
                    },
                    ..sentinel
                },
                "engine.redis.sentinel_tls.server_ca_pem_file",
            ),
        ] {
            assert_eq!(bad.validate("engine.redis").unwrap_err().key, key);
        }
    }

    #[test]
    fn a_cluster_takes_a_ca_file_with_rediss_seeds_only() {
        let cluster = RedisConfig {
            address: "rediss://127.0.0.1:6379".into(),
            cluster_address: vec!["127.0.0.1:7001".into(), "rediss://127.0.0.1:7002".into()],
            tls_ca_pem_file: "/etc/ca.pem".into(),
            ..Default::default()
        };
        cluster.validate("engine.redis").unwrap();
        let plain_seed = RedisConfig {
            cluster_address: vec!["redis://127.0.0.1:7001".into()],
            ..cluster.clone()
        };
        assert_eq!(
            plain_seed.validate("engine.redis").unwrap_err().key,
            "engine.redis.cluster_address"
        );
        let plain_address = RedisConfig {
            address: "redis://127.0.0.1:6379".into(),
            ..cluster
        };
        assert_eq!(
            plain_address.validate("engine.redis").unwrap_err().key,
            "engine.redis.tls_ca_pem_file"
        );
    }

    #[test]
    fn sentinel_addresses_use_tls_when_enabled() {
        let plain = Roots::default();
        assert!(matches!(
            plain.sentinel_addr("127.0.0.1:26379"),
            Some(ConnectionAddr::Tcp(..))
        ));
        let tls = Roots {
            sentinel_tls: true,
            ..Default::default()
        };
        assert!(matches!(
            tls.sentinel_addr("127.0.0.1:26379"),
            Some(ConnectionAddr::TcpTls {
                port: 26379,
                insecure: false,
                ..
            })
        ));
    }

    #[test]
    fn a_ca_file_without_a_certificate_names_its_key() {
        let dir = std::env::temp_dir().join(format!("pw-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty.pem");
        std::fs::write(&file, "not a pem").unwrap();
        let e = read_roots("engine.redis.tls_ca_pem_file", file.to_str().unwrap())
            .expect_err("refused");
        assert!(
            e.to_string().starts_with("engine.redis.tls_ca_pem_file"),
            "{e}"
        );
        let e = read_roots(
            "engine.redis.sentinel_tls.server_ca_pem_file",
            "/nonexistent.pem",
        )
        .expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("engine.redis.sentinel_tls.server_ca_pem_file"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
