//! Layered loading: defaults → file → environment → flags.

use std::path::Path;

use figment::providers::{Env, Format, Json, Serialized, Toml};
use figment::Figment;

use super::ServerConfig;

/// Values given on the command line; `None` leaves the lower layers in place.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--address`.
    pub address: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
}

/// Loads and validates the configuration. `path` may be TOML or JSON (by extension; TOML
/// otherwise). Errors name the key at fault.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<ServerConfig> {
    let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
    if let Some(path) = path {
        if !path.exists() {
            anyhow::bail!("configuration file {} does not exist", path.display());
        }
        fig = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => fig.merge(Json::file_exact(path)),
            _ => fig.merge(Toml::file_exact(path)),
        };
    }
    fig = fig.merge(Env::prefixed("PUSHWIRE_").split("__"));
    if let Some(a) = &overrides.address {
        fig = fig.merge(Serialized::default("http_server.address", a));
    }
    if let Some(p) = overrides.port {
        fig = fig.merge(Serialized::default("http_server.port", p));
    }
    if let Some(l) = &overrides.log_level {
        fig = fig.merge(Serialized::default("log.level", l));
    }
    if let Some(f) = &overrides.log_format {
        fig = fig.merge(Serialized::default("log.format", f));
    }
    let config: ServerConfig = fig.extract().map_err(|e| {
        let errors: Vec<String> = e.into_iter().map(describe).collect();
        anyhow::anyhow!("invalid configuration: {}", errors.join("; "))
    })?;
    config.validate()?;
    Ok(config)
}

fn describe(e: figment::Error) -> String {
    let key = e.path.join(".");
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", e.kind)
    } else {
        format!("{key}: {}{source}", e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(ext: &str, text: &str) -> tempfile_lite::TempPath {
        let p = tempfile_lite::TempPath::new(ext);
        std::fs::File::create(&p.0)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    mod tempfile_lite {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(ext: &str) -> Self {
                let n: u64 = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64;
                TempPath(std::env::temp_dir().join(format!("pushwire-cfg-{n}.{ext}")))
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = load(None, &Overrides::default()).unwrap();
        assert_eq!(c.http_server.address, "127.0.0.1");
        assert_eq!(c.http_server.port, 8000);
    }

    #[test]
    fn file_values_and_flags() {
        let f = file(
            "toml",
            r#"
            [client]
            ping_interval = "10s"
            pong_timeout = "4s"
            [[channel.namespaces]]
            name = "chat"
            presence = true
            history_size = 10
            history_ttl = "60s"
            "#,
        );
        let c = load(
            Some(&f.0),
            &Overrides {
                port: Some(9100),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.client.ping_interval.as_secs(), 10);
        assert_eq!(c.channel.namespaces[0].name, "chat");
        assert!(c.channel.namespaces[0].options.presence);
        assert_eq!(c.http_server.port, 9100);
    }

    #[test]
    fn unknown_key_named() {
        let f = file("toml", "[client]\nping_intervall = \"10s\"\n");
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ping_intervall"), "{e}");
        let f = file(
            "json",
            r#"{"channel":{"namespaces":[{"name":"chat","presense":true}]}}"#,
        );
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("presense"), "{e}");
    }

    #[test]
    fn bad_value_named() {
        let f = file("toml", "[client]\nping_interval = \"soon\"\n");
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("client.ping_interval"), "{e}");
        let f = file("toml", "[channel.without_namespace]\nhistory_size = 5\n");
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("channel.without_namespace.history_size"), "{e}");
    }
}
