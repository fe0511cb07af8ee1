//! The connection token: given, signed here, or none (anonymous).

use crate::args::BenchArgs;
use crate::error::BenchError;

/// Lifetime of a signed token, seconds: longer than any run.
const TOKEN_TTL_SECS: u64 = 24 * 3600;

/// The token every connection sends: `--token`, or an HS256 token for `--user` signed with
/// `--token-hmac-secret`, or `None`.
pub(crate) fn connection_token(args: &BenchArgs) -> Result<Option<String>, BenchError> {
    if let Some(token) = &args.token {
        return Ok(Some(token.clone()));
    }
    let Some(secret) = &args.token_hmac_secret else {
        return Ok(None);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({"sub": args.user, "exp": now + TOKEN_TTL_SECS});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map(Some)
    .map_err(|e| BenchError::Setup(format!("signing the token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        Cli::parse_from(std::iter::once("bench").chain(extra.iter().copied())).bench
    }

    #[test]
    fn given_signed_or_none() {
        assert_eq!(connection_token(&args(&[])).unwrap(), None);
        assert_eq!(
            connection_token(&args(&["--token", "t"]))
                .unwrap()
                .as_deref(),
            Some("t")
        );
        let signed = connection_token(&args(&["--token-hmac-secret", "s", "--user", "u"]))
            .unwrap()
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &signed,
            &jsonwebtoken::DecodingKey::from_secret(b"s"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "u");
    }
}
