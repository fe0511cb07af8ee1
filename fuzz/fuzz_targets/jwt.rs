//! The JWT path of a connect or subscribe: `jsonwebtoken::decode_header` and the server's
//! verifier (public API only: `JwtVerifier::from_config` + `TokenVerifier`).
//!
//! First byte even: the rest is the token as a client would send it (almost always rejected
//! at the signature, which is the point: nothing before it may panic). Odd: the rest is a
//! claims payload that the target signs with the configured HMAC secret, so the claims parser
//! behind the signature check (`sub`, `info`, `b64info`, `channels`, `subs`, `meta`,
//! `expire_at`, ...) sees arbitrary JSON too.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use pushwire_core::auth::TokenVerifier;
use pushwire_core::config::ClientConfig;
use pushwire_server::auth::JwtVerifier;

const SECRET: &str = "fuzz-secret";

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let mut client = ClientConfig::default();
        client.token.hmac_secret_key = SECRET.into();
        JwtVerifier::from_config(&client)
            .expect("valid config")
            .expect("a key is configured")
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn signed(payload: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
    format!("{message}.{signature}")
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        signed(rest)
    };
    let _ = jsonwebtoken::decode_header(&token);
    let v = verifier();
    runtime().block_on(async {
        let _ = v.verify_connect(&token).await;
        let _ = v.verify_subscribe(&token).await;
    });
});
