//! `admin.*`: the admin web page at `/admin` and its JSON endpoints.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

/// `admin.*`. Off by default: every `/admin` path answers 404 until `enabled`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the admin page and its endpoints.
    pub enabled: bool,
    /// Password of the login form. Required when enabled (unless `insecure`).
    pub password: String,
    /// HMAC key signing admin session tokens (cookie and bearer token). Required when enabled
    /// (unless `insecure`); changing it ends every session.
    pub secret: String,
    /// No login at all (development behind a trusted network only).
    pub insecure: bool,
    /// Failed logins allowed per client address per minute; further attempts get 429 until
    /// the minute has passed.
    pub login_attempts_per_minute: u32,
    /// Lifetime of a session (cookie and token).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            password: String::new(),
            secret: String::new(),
            insecure: false,
            login_attempts_per_minute: 5,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl AdminConfig {
    /// Checks the section; names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.login_attempts_per_minute == 0 {
            return Err(ConfigError::new(
                "admin.login_attempts_per_minute",
                "must be > 0",
            ));
        }
        if self.session_ttl < Duration::from_secs(60) {
            return Err(ConfigError::new(
                "admin.session_ttl",
                "must be at least 1 minute",
            ));
        }
        if !self.enabled || self.insecure {
            return Ok(());
        }
        if self.password.is_empty() {
            return Err(ConfigError::new(
                "admin.password",
                "must be set when admin.enabled is true (or set admin.insecure)",
            ));
        }
        if self.secret.len() < 16 {
            return Err(ConfigError::new(
                "admin.secret",
                "must be at least 16 bytes when admin.enabled is true (or set admin.insecure)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_checked_when_on() {
        assert!(AdminConfig::default().validate().is_ok());
        let mut c = AdminConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("admin.password"));
        c.password = "pw".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("admin.secret"));
        c.secret = "0123456789abcdef".into();
        assert!(c.validate().is_ok());
        c.login_attempts_per_minute = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("admin.login_attempts_per_minute"));
        let insecure = AdminConfig {
            enabled: true,
            insecure: true,
            ..Default::default()
        };
        assert!(insecure.validate().is_ok());
    }
}
