//! Signed tokens for tests.

/// `claims` signed with HS256 and `secret`.
pub fn hs256_token(secret: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode an HS256 token")
}
