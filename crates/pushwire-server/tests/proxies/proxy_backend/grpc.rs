//! The same backend over gRPC: Centrifugo's `CentrifugoProxy` service (Connect, Subscribe,
//! Publish, RPC, Refresh, SubRefresh) served by tonic on 127.0.0.1:0, answering exactly as the
//! HTTP routes do, so the same SDK scenario runs against either.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pushwire_server::proxy::grpc_wire as w;
use serde_json::{json, Value};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::Backend;

/// A running gRPC backend.
pub struct RunningGrpcBackend {
    /// Its state (requests recorded under `grpc/<Method>`).
    pub state: Arc<Backend>,
    /// `grpc://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningGrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Svc(Arc<Backend>);

impl NamedService for Svc {
    const NAME: &'static str = "centrifugal.centrifugo.proxy.CentrifugoProxy";
}

/// The `session` cookie, else the `x-session` metadata (an emulated header).
fn cookie_user<T>(req: &Request<T>) -> Option<String> {
    let md = req.metadata();
    let from_cookie = || {
        let cookie = md.get("cookie")?.to_str().ok()?;
        cookie.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == "session").then(|| v.to_owned())
        })
    };
    from_cookie().or_else(|| {
        md.get("x-session")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
)]
fn bytes(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("json")
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

fn bool_value(value: bool) -> Option<w::BoolValue> {
    Some(w::BoolValue { value })
}

fn error(code: u32, message: &str) -> Option<w::Error> {
    Some(w::Error {
        code,
        message: message.into(),
        temporary: false,
    })
}

impl Svc {
    fn record(&self, method: &str, body: Value, cookie: Option<String>) {
        self.0
            .requests
            .lock()
            .push((format!("grpc/{method}"), body, cookie));
    }

    fn connect(&self, req: Request<w::ConnectRequest>) -> w::ConnectResponse {
        let user = cookie_user(&req);
        let cookie = req
            .metadata()
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let r = req.into_inner();
        self.record(
            "Connect",
            json!({"client": r.client, "transport": r.transport, "protocol": r.protocol,
                   "encoding": r.encoding, "name": r.name, "data": parse(&r.data)}),
            cookie,
        );
        let Some(user) = user else {
            return w::ConnectResponse {
                disconnect: Some(w::Disconnect {
                    code: 4501,
                    reason: "no session".into(),
                }),
                ..Default::default()
            };
        };
        w::ConnectResponse {
            result: Some(w::ConnectResult {
                info: bytes(json!({"name": format!("User {user}")})),
                data: bytes(json!({"hello": user})),
                meta: bytes(json!({"session": user})),
                user,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn subscribe(&self, req: Request<w::SubscribeRequest>) -> w::SubscribeResponse {
        let r = req.into_inner();
        self.record(
            "Subscribe",
            json!({"channel": r.channel, "user": r.user}),
            None,
        );
        if r.channel.starts_with("denied:") {
            return w::SubscribeResponse {
                error: error(103, "permission denied"),
                ..Default::default()
            };
        }
        w::SubscribeResponse {
            result: Some(w::SubscribeResult {
                info: bytes(json!({"via": "proxy"})),
                data: bytes(json!({"welcome": r.channel})),
                r#override: Some(w::SubscribeOptionOverride {
                    presence: bool_value(!r.channel.starts_with("pres:hidden")),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn publish(&self, req: Request<w::PublishRequest>) -> w::PublishResponse {
        let r = req.into_inner();
        let data = parse(&r.data);
        self.record("Publish", json!({"channel": r.channel, "data": data}), None);
        let text = data["text"].as_str().unwrap_or_default();
        if text == "forbidden" {
            return w::PublishResponse {
                error: error(1001, "forbidden word"),
                ..Default::default()
            };
        }
        w::PublishResponse {
            result: Some(w::PublishResult {
                data: bytes(json!({"text": text.to_uppercase(), "by": r.user})),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rpc(&self, req: Request<w::RpcRequest>) -> w::RpcResponse {
        let r = req.into_inner();
        let data = parse(&r.data);
        self.record("RPC", json!({"method": r.method, "data": data}), None);
        if r.method != "echo" {
            return w::RpcResponse {
                error: error(1002, "rpc failed"),
                ..Default::default()
            };
        }
        w::RpcResponse {
            result: Some(w::RpcResult {
                data: bytes(json!({"echo": data, "user": r.user})),
            }),
            ..Default::default()
        }
    }
}

type BoxFut = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

/// Serves one unary method with `f`.
fn unary<Req, Resp>(
    req: http::Request<Body>,
    f: impl Fn(Request<Req>) -> Resp + Send + Sync + Clone + 'static,
) -> BoxFut
where
    Req: prost::Message + Default + Send + Sync + 'static,
    Resp: prost::Message + Send + Sync + 'static,
{
    Box::pin(async move {
        let svc = tower::service_fn(move |r: Request<Req>| {
            let f = f.clone();
            async move { Ok::<_, Status>(Response::new(f(r))) }
        });
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default());
        Ok(grpc.unary(svc, req).await)
    })
}

impl tower_service::Service<http::Request<Body>> for Svc {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> BoxFut {
        let s = self.clone();
        match req.uri().path() {
            w::path::CONNECT => unary(req, move |r| s.connect(r)),
            w::path::SUBSCRIBE => unary(req, move |r| s.subscribe(r)),
            w::path::PUBLISH => unary(req, move |r| s.publish(r)),
            w::path::RPC => unary(req, move |r| s.rpc(r)),
            _ => Box::pin(async {
                Ok(Status::unimplemented("not served by the test backend").into_http())
            }),
        }
    }
}

/// Starts the gRPC backend over TLS with `cert` (for `localhost`) on 127.0.0.1:0, served by
/// pushwire's listener (HTTP/2 by ALPN).
pub async fn start_tls(cert: &pushwire_test_support::cert::TestCert) -> RunningGrpcBackend {
    let state = Arc::new(Backend::default());
    let app = tonic::service::Routes::new(Svc(state.clone())).into_axum_router();
    let (addr, task) = super::serve_tls(app, cert).await;
    RunningGrpcBackend {
        state,
        url: format!("grpc://{addr}"),
        task,
    }
}

/// Starts the gRPC backend on loopback.
pub async fn start() -> RunningGrpcBackend {
    let state = Arc::new(Backend::default());
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind gRPC backend");
    let addr: SocketAddr = incoming.local_addr().expect("addr");
    let svc = Svc(state.clone());
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
            .expect("gRPC backend serves");
    });
    RunningGrpcBackend {
        state,
        url: format!("grpc://{addr}"),
        task,
    }
}
