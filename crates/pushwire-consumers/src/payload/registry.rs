//! A Confluent-compatible schema registry client: `GET <url>/schemas/ids/<id>` answers
//! `{"schema": "<schema text>", "schemaType": "AVRO"}` (`schemaType` absent for Avro).

use std::time::Duration;

use super::decoder::DecodeError;
use super::PayloadSettings;

/// First pause between attempts of one lookup (doubled each time).
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The largest schema answer read.
const MAX_ANSWER: usize = 4 << 20;

/// A registry at one URL.
pub(crate) struct Registry {
    url: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
    retries: u32,
}

impl Registry {
    /// The client of `s.schema_registry_url`; the error says what is wrong with it.
    pub(crate) fn new(s: &PayloadSettings) -> Result<Registry, String> {
        let http = reqwest::Client::builder()
            .timeout(s.schema_registry_timeout)
            .connect_timeout(s.schema_registry_timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Registry {
            url: s
                .schema_registry_url
                .trim()
                .trim_end_matches('/')
                .to_owned(),
            http,
            auth: (!s.schema_registry_username.is_empty()).then(|| {
                (
                    s.schema_registry_username.clone(),
                    s.schema_registry_password.clone(),
                )
            }),
            retries: s.schema_registry_retries,
        })
    }

    /// The schema text of `id`. An id the registry does not know (404) is poison; an
    /// unreachable registry (connection refused, timeout, 5xx, 429) is retried `retries` times
    /// with a doubling pause from 100 ms, then unavailable; refused credentials (401, 403) are
    /// unavailable at once.
    pub(crate) async fn schema(&self, id: u32) -> Result<String, DecodeError> {
        let url = format!("{}/schemas/ids/{id}", self.url);
        let mut pause = FIRST_PAUSE;
        let mut attempt = 0;
        loop {
            match self.fetch(&url, id).await {
                Err(Fetch::Temporary(why)) if attempt < self.retries => {
                    tracing::debug!(%url, attempt, reason = %why, "schema registry lookup failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(Fetch::Temporary(why)) => {
                    return Err(DecodeError::Unavailable(format!(
                        "schema registry {}: {why} ({} attempts)",
                        self.url,
                        attempt + 1
                    )))
                }
                Err(Fetch::Final(e)) => return Err(e),
                Ok(text) => return Ok(text),
            }
        }
    }

    async fn fetch(&self, url: &str, id: u32) -> Result<String, Fetch> {
        let mut request = self.http.get(url).header(
            "accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| Fetch::Temporary(error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Fetch::Temporary(error_chain(&e)))?;
        let detail = || {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(text)
        };
        match status.as_u16() {
            200 => {}
            404 => {
                return Err(Fetch::Final(DecodeError::Poison(format!(
                    "avro: unknown schema id {id} (schema registry {}: {})",
                    self.url,
                    detail()
                ))))
            }
            401 | 403 => {
                return Err(Fetch::Final(DecodeError::Unavailable(format!(
                    "schema registry {}: HTTP {status}: {} (check schema_registry_username / schema_registry_password)",
                    self.url,
                    detail()
                ))))
            }
            429 | 500..=599 => return Err(Fetch::Temporary(format!("HTTP {status}: {}", detail()))),
            _ => {
                return Err(Fetch::Final(DecodeError::Poison(format!(
                    "avro: schema id {id}: schema registry {} answered HTTP {status}: {}",
                    self.url,
                    detail()
                ))))
            }
        }
        if body.len() > MAX_ANSWER {
            return Err(Fetch::Final(DecodeError::Poison(format!(
                "avro: schema id {id}: the registry's answer is larger than {MAX_ANSWER} bytes"
            ))));
        }
        parse_answer(&body, id).map_err(|e| Fetch::Final(DecodeError::Poison(e)))
    }
}

enum Fetch {
    /// Worth another attempt.
    Temporary(String),
    /// The answer, as bad as it is.
    Final(DecodeError),
}

/// The schema text of a `/schemas/ids/<id>` answer; only Avro schemas without references.
fn parse_answer(body: &[u8], id: u32) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("avro: schema id {id}: the registry's answer is not JSON: {e}"))?;
    if let Some(t) = v["schemaType"].as_str()
        && !t.eq_ignore_ascii_case("AVRO")
    {
        return Err(format!(
            "avro: schema id {id} is a {t} schema in the registry, not Avro"
        ));
    }
    if v["references"].as_array().is_some_and(|r| !r.is_empty()) {
        return Err(format!(
            "avro: schema id {id} has schema references (not supported: register it self-contained)"
        ));
    }
    v["schema"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("avro: schema id {id}: the registry's answer has no \"schema\""))
}

/// An error with its sources (reqwest's own message hides "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = br#"{"schema":"{\"type\":\"string\"}"}"#;
        assert_eq!(parse_answer(ok, 1).expect("schema"), r#"{"type":"string"}"#);
        let typed = br#"{"schema":"x","schemaType":"AVRO","references":[]}"#;
        assert_eq!(parse_answer(typed, 1).expect("schema"), "x");
        let proto = br#"{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}"#;
        assert!(parse_answer(proto, 3).unwrap_err().contains("PROTOBUF"));
        let refs = br#"{"schema":"x","references":[{"name":"a","subject":"s","version":1}]}"#;
        assert!(parse_answer(refs, 4).unwrap_err().contains("references"));
        assert!(parse_answer(b"<html>", 5).unwrap_err().contains("not JSON"));
    }

    /// A registry that answers one request per accepted connection with `status` and `body`.
    async fn serve(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<u32>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let mut served = 0;
            while let Ok(Ok((mut s, _))) =
                tokio::time::timeout(Duration::from_millis(1500), l.accept()).await
            {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                served += 1;
            }
            served
        });
        (url, task)
    }

    fn registry(url: &str, retries: u32) -> Registry {
        Registry::new(&PayloadSettings {
            schema_registry_url: url.into(),
            schema_registry_timeout: Duration::from_secs(2),
            schema_registry_retries: retries,
            ..Default::default()
        })
        .expect("registry")
    }

    #[tokio::test]
    async fn unknown_ids_are_poison_and_an_unreachable_registry_is_unavailable_after_retries() {
        let (url, task) = serve(404, r#"{"error_code":40403,"message":"Schema not found"}"#).await;
        match registry(&url, 2).schema(9).await {
            Err(DecodeError::Poison(r)) => {
                assert!(
                    r.contains("unknown schema id 9") && r.contains("Schema not found"),
                    "{r}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(task.await.expect("server"), 1, "a 404 is not retried");

        let (url, task) = serve(503, r#"{"message":"busy"}"#).await;
        match registry(&url, 2).schema(1).await {
            Err(DecodeError::Unavailable(r)) => assert!(r.contains("3 attempts"), "{r}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(task.await.expect("server"), 3, "1 attempt + 2 retries");

        // Nothing listens: connection refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        match registry(&format!("http://127.0.0.1:{port}"), 0)
            .schema(1)
            .await
        {
            Err(DecodeError::Unavailable(r)) => assert!(r.contains("schema registry"), "{r}"),
            other => panic!("{other:?}"),
        }

        let (url, _task) = serve(200, r#"{"schema":"{\"type\":\"long\"}"}"#).await;
        assert_eq!(
            registry(&format!("{url}/"), 0)
                .schema(1)
                .await
                .expect("schema"),
            r#"{"type":"long"}"#
        );
    }
}
