//! `pushwire gentoken`: a development token signed with the configured HMAC secret, like
//! Centrifugo's `gentoken` (and `gensubtoken` with `--channel`).
//!
//! The token goes alone to standard output so scripts can capture it; what it is goes to
//! standard error.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::config::{self, Overrides};

/// `gentoken` options.
#[derive(Debug, clap::Args)]
pub struct GentokenArgs {
    /// Configuration file (TOML or JSON) holding the HMAC secret; the environment applies too.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// User id (`sub` claim); empty is anonymous.
    #[arg(short, long, default_value = "")]
    pub user: String,
    /// Lifetime (`1h`, `30m`, `7d`); `0s` makes a token without `exp`.
    #[arg(short, long, default_value = "168h", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub ttl: Duration,
    /// Make a subscription token for this channel (signed with `client.subscription_token`'s
    /// secret when that is enabled).
    #[arg(short = 's', long)]
    pub channel: Option<String>,
}

/// The claims `args` ask for, `now` being the current Unix time.
pub fn claims(args: &GentokenArgs, now: i64) -> Value {
    let mut claims = json!({ "sub": args.user });
    if !args.ttl.is_zero() {
        claims["exp"] = json!(now + args.ttl.as_secs() as i64);
    }
    if let Some(ch) = &args.channel {
        claims["channel"] = json!(ch);
    }
    claims
}

/// Signs the token `args` describe with the configured HMAC secret (HS256).
pub fn generate(args: &GentokenArgs) -> anyhow::Result<String> {
    let config = config::load(args.config.as_deref(), &Overrides::default())?;
    let (key, secret) = match &args.channel {
        Some(_) if config.client.subscription_token.enabled => (
            "client.subscription_token.hmac_secret_key",
            config.client.subscription_token.hmac_secret_key,
        ),
        _ => (
            "client.token.hmac_secret_key",
            config.client.token.hmac_secret_key,
        ),
    };
    if secret.is_empty() {
        anyhow::bail!("{key} is not set: gentoken signs with the HMAC secret");
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims(args, pushwire_core::auth::unix_now()),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing the token")
}

/// Runs `gentoken`: prints the token.
pub fn run(args: &GentokenArgs) -> anyhow::Result<()> {
    let token = generate(args)?;
    let what = match &args.channel {
        Some(ch) => format!("subscription token for channel {ch:?}"),
        None => "connection token".into(),
    };
    let ttl = if args.ttl.is_zero() {
        "no expiry".to_owned()
    } else {
        format!(
            "expires in {}",
            humantime_serde::re::humantime::format_duration(args.ttl)
        )
    };
    eprintln!("HS256 {what} for user {:?}, {ttl}:", args.user);
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_flags() {
        let args = GentokenArgs {
            config: None,
            user: "42".into(),
            ttl: Duration::from_secs(3600),
            channel: Some("$gossips".into()),
        };
        assert_eq!(
            claims(&args, 1000),
            json!({"sub": "42", "exp": 4600, "channel": "$gossips"})
        );
        let args = GentokenArgs {
            ttl: Duration::ZERO,
            channel: None,
            ..args
        };
        assert_eq!(claims(&args, 1000), json!({"sub": "42"}));
    }
}
