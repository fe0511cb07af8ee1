//! The gRPC side of a proxy: unary calls to Centrifugo's `CentrifugoProxy` service over a
//! lazily connected HTTP/2 channel (`grpc://host:port`; plain text, or TLS with `grpc.tls`
//! through [`super::tls::TlsConnector`]), with the forwarded client headers and
//! `grpc.static_metadata` as metadata.

use pushwire_core::config::ProxyConfig;
use pushwire_core::proxy::{CallContext, ProxyError};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// A gRPC client for one proxy definition.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    channel: Channel,
    http_headers: Vec<String>,
    emulated_headers: Vec<String>,
    static_metadata: Vec<(String, String)>,
}

impl GrpcClient {
    /// A client for `config.endpoint` (`grpc://host:port`); connects on first use.
    pub fn new(config: &ProxyConfig) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let uri = config.endpoint.replacen("grpc://", "http://", 1);
        let endpoint = Endpoint::from_shared(uri)?
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        let channel = if config.grpc.tls.enabled {
            endpoint.connect_with_connector_lazy(super::tls::TlsConnector::new(&config.grpc.tls)?)
        } else {
            endpoint.connect_lazy()
        };
        Ok(GrpcClient {
            channel,
            http_headers: config
                .http_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            emulated_headers: config
                .emulated_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            static_metadata: config
                .grpc
                .static_metadata
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
        })
    }

    /// Calls `method` (`Connect`, `Subscribe`, …) with `req`.
    pub async fn unary<Req, Resp>(
        &self,
        ctx: &CallContext<'_>,
        method: &'static str,
        req: Req,
    ) -> Result<Resp, ProxyError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| ProxyError::Request(Box::new(e)))?;
        let mut request = tonic::Request::new(req);
        let md = request.metadata_mut();
        let mut put = |k: &str, v: &str| {
            if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(k.as_bytes()),
                MetadataValue::try_from(v),
            ) {
                md.insert(k, v);
            }
        };
        for (k, v) in &self.static_metadata {
            put(k, v);
        }
        for (k, v) in ctx.emulated {
            if self.emulated_headers.iter().any(|h| h == &**k) {
                put(k, v);
            }
        }
        for (k, v) in ctx.headers {
            if self.http_headers.iter().any(|h| h == &**k) {
                put(k, v);
            }
        }
        let path = PathAndQuery::from_static(method);
        grpc.unary(request, path, tonic_prost::ProstCodec::default())
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| match status.code() {
                tonic::Code::DeadlineExceeded => ProxyError::Timeout,
                _ => ProxyError::Request(Box::new(status)),
            })
    }
}
