//! The webhook sink: a batch is one `POST` of a JSON array of events, signed with
//! HMAC-SHA256 over the body in `X-Pushwire-Signature: sha256=<hex>`.

use std::time::Duration;

use ring::hmac;

use super::Delivery;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Pushwire-Signature";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

/// Posts signed batches to one URL.
#[derive(Debug, Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl Webhook {
    /// A webhook to `url` signing with `secret`; each request is bounded by `timeout`, and
    /// redirects are not followed.
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Webhook {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Webhook {
            http,
            url: url.to_owned(),
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// Delivers one batch: 2xx acknowledges; 4xx is refused for good (not retried); 5xx,
    /// timeouts and connection errors are retried.
    pub async fn deliver(&self, body: Vec<u8>) -> Delivery {
        let sig = signature(&self.secret, &body);
        let result = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => Delivery::Acknowledged,
            Ok(r) if r.status().is_client_error() => {
                Delivery::Refused(format!("webhook answered {}", r.status()))
            }
            Ok(r) => Delivery::Failed(format!("webhook answered {}", r.status())),
            Err(e) => Delivery::Failed(format!("webhook request failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
