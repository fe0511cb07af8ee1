//! The HTTP side of a proxy: POST the JSON request with the forwarded and static headers,
//! check status and content type, read a body bounded by `max_response_size`, decode it.

use pushwire_core::config::ProxyConfig;
use pushwire_core::proxy::{CallContext, ProxyError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// POSTs `body` to `config.endpoint` and decodes the answer as `R` (an empty 200 body is
/// `{}`). Every failure is a [`ProxyError`]; the caller bounds the time.
pub async fn post<B: Serialize, R: DeserializeOwned>(
    http: &reqwest::Client,
    config: &ProxyConfig,
    ctx: &CallContext<'_>,
    body: &B,
) -> Result<R, ProxyError> {
    let body = serde_json::to_vec(body).map_err(|e| ProxyError::Request(Box::new(e)))?;
    let mut req = http.post(&config.endpoint);
    for (k, v) in &config.http.static_headers {
        let forwarded = ctx.headers.iter().chain(ctx.emulated);
        if !forwarded
            .into_iter()
            .any(|(h, _)| h.eq_ignore_ascii_case(k))
        {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    for (k, v) in ctx.emulated {
        let real = ctx.headers.iter().any(|(h, _)| h == k)
            && config
                .http_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(k));
        if !real
            && config
                .emulated_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(k))
        {
            req = req.header(&**k, &**v);
        }
    }
    for (k, v) in ctx.headers {
        if config
            .http_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(k))
        {
            req = req.header(&**k, &**v);
        }
    }
    let mut resp = req
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                ProxyError::Timeout
            } else {
                ProxyError::Request(Box::new(e))
            }
        })?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        return match transformed(config, status.as_u16()) {
            Some(answer) => {
                serde_json::from_value(answer).map_err(|e| ProxyError::Invalid(e.to_string()))
            }
            None => Err(ProxyError::Status(status.as_u16())),
        };
    }
    if let Some(ct) = resp.headers().get(reqwest::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ProxyError::ContentType(ct.to_owned()));
        }
    }
    let limit = config.max_response_size;
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(ProxyError::TooLarge(limit));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ProxyError::Request(Box::new(e)))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(ProxyError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        // An empty 200 is an answer without result.
        buf = b"{}".to_vec();
    }
    serde_json::from_slice(&buf).map_err(|e| ProxyError::Invalid(e.to_string()))
}

/// The answer `http.status_to_code_transforms` gives a non-200 `status`, as the JSON the backend
/// would have sent (`{"error": …}` or `{"disconnect": …}`).
fn transformed(config: &ProxyConfig, status: u16) -> Option<serde_json::Value> {
    let t = config
        .http
        .status_to_code_transforms
        .iter()
        .find(|t| t.status_code == status)?;
    if t.to_error.code > 0 {
        let e = &t.to_error;
        return Some(serde_json::json!({"error": {
            "code": e.code, "message": e.message, "temporary": e.temporary,
        }}));
    }
    let d = &t.to_disconnect;
    (d.code > 0).then(|| serde_json::json!({"disconnect": {"code": d.code, "reason": d.reason}}))
}
