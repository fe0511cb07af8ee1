//! The application: shared state, the router, and a running server's lifecycle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::Router;
use pushwire_core::Node;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::JwtVerifier;
use crate::config::ServerConfig;
use crate::limits::admission::{self, Admission};
use crate::limits::connect_rate::{self, ConnectRate};
use crate::listener::ListenSettings;
use crate::state::AppState;
use crate::transport::origin::OriginPolicy;
use crate::{api, observe, transport};

/// Builds the router.
pub fn router(state: AppState) -> Router {
    use transport::{emulation, http_stream, long_poll, sse, uni, websocket};
    let connect_rate = Arc::new(ConnectRate::new(&state.config.http_server));
    let connections = Router::new()
        .route("/connection/websocket", get(websocket::handler))
        .route("/connection/uni_websocket", get(websocket::uni_handler))
        .route(
            "/connection/http_stream",
            post(http_stream::handler).options(http_stream::options),
        )
        .route(
            "/connection/sse",
            get(sse::handler).post(sse::handler).options(sse::options),
        )
        .route(
            "/connection/uni_http_stream",
            post(uni::http_stream).options(http_stream::options),
        )
        .route(
            "/connection/uni_sse",
            get(uni::sse).post(uni::sse).options(sse::options),
        )
        // Apply to the routes above: the ones that open a connection. The per-IP rate runs
        // first, so one address flooding cannot spend the node's tokens.
        .layer(axum::middleware::from_fn_with_state(
            state.admission.clone(),
            admission::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            connect_rate,
            connect_rate::middleware,
        ))
        .route(
            "/emulation",
            post(emulation::handler).options(emulation::options),
        )
        .route(
            "/connection/long_poll",
            get(long_poll::long_poll)
                .post(long_poll::long_poll)
                .options(sse::options),
        )
        .route(
            "/connection/poll",
            get(long_poll::poll)
                .post(long_poll::poll)
                .options(sse::options),
        )
        .layer(DefaultBodyLimit::max(
            state.config.http_server.connection_body_size_limit,
        ));
    let mut router = Router::new()
        .merge(connections)
        .route("/health", any(observe::health))
        .route("/metrics", get(observe::metrics))
        .merge(crate::admin::routes(&state));
    if state.config.http_api.address.is_empty() {
        router = router.merge(api::routes(&state));
    }
    router.with_state(state)
}

/// The router of the separate API listener (`http_api.address`): the server API and
/// `/health`.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/health", any(observe::health))
        .merge(api::routes(&state))
        .with_state(state)
}

/// A server bound to its address and serving.
#[derive(Debug)]
pub struct RunningServer {
    /// Bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Address serving the server API: `addr` unless `http_api.address` is set.
    pub api_addr: SocketAddr,
    /// Address serving the gRPC API, when `grpc_api.enabled`.
    pub grpc_api_addr: Option<SocketAddr>,
    /// The node.
    pub node: Arc<Node>,
    state: AppState,
    stop_accepting: CancellationToken,
    serve: tokio::task::JoinHandle<()>,
    serve_api: Option<tokio::task::JoinHandle<()>>,
    serve_grpc_api: Option<tokio::task::JoinHandle<()>>,
    cluster: tokio::task::JoinHandle<()>,
    lifecycle_stop: CancellationToken,
    consumers: pushwire_consumers::Consumers,
    admission_sampler: tokio::task::JoinHandle<()>,
}

/// What a graceful stop did.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownReport {
    /// Clients told 3001 (shutdown).
    pub clients_notified: usize,
    /// Whether every connection task finished within `shutdown.timeout`.
    pub drained: bool,
}

impl RunningServer {
    /// Binds `http_server.address:port` and starts serving.
    pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
        let addr = format!("{}:{}", config.http_server.address, config.http_server.port);
        let backlog = config.http_server.listen_backlog;
        let listener = crate::listener::bind(&addr, backlog)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let api_listener = if config.http_api.address.is_empty() {
            None
        } else {
            let addr = format!("{}:{}", config.http_api.address, config.http_api.port);
            let l = crate::listener::bind(&addr, backlog)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind http_api {addr}: {e}"))?;
            Some(l)
        };
        let grpc_api_listener = if config.grpc_api.enabled {
            let host = if config.grpc_api.address.is_empty() {
                &config.http_server.address
            } else {
                &config.grpc_api.address
            };
            let addr = format!("{host}:{}", config.grpc_api.port);
            let l = crate::listener::bind(&addr, backlog)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind grpc_api {addr}: {e}"))?;
            Some(l)
        } else {
            None
        };
        let tls = crate::tls::server_config(&config.http_server.tls)?;
        let grpc_api_tls = crate::tls::server_config_for("grpc_api.tls", &config.grpc_api.tls)?;
        let verifier = JwtVerifier::from_config(&config.client)?
            .map(|v| Arc::new(v) as Arc<dyn pushwire_core::auth::TokenVerifier>);
        let name = if config.node.name.is_empty() {
            std::env::var("HOSTNAME").unwrap_or_else(|_| "pushwire".into())
        } else {
            config.node.name.clone()
        };
        let node = crate::engine::build_node(&config, name, verifier).await?;
        let proxies = crate::proxy::Proxies::from_config(node.config())?;
        if let Some(p) = &proxies {
            node.set_proxy(p.clone());
        }
        let consumers = pushwire_consumers::start(
            node.clone(),
            crate::api::consumer::ConsumerApi::shared(node.clone()),
            &config.consumers,
            CancellationToken::new(),
        );
        let lifecycle_stop = CancellationToken::new();
        let lifecycle = Arc::new(crate::lifecycle::Sinks::start(
            &node,
            &config.lifecycle,
            &lifecycle_stop,
        ));
        let state = AppState {
            lifecycle,
            consumers: consumers.registry(),
            origins: Arc::new(OriginPolicy::new(&config.client.allowed_origins)),
            node: node.clone(),
            tracker: TaskTracker::new(),
            polls: Default::default(),
            proxies,
            admission: Arc::new(Admission::new(
                config.node.memory_budget,
                config.http_server.connect_rate_per_node,
                config.http_server.connect_burst_per_node,
            )),
            config: Arc::new(config),
        };
        let stop_accepting = CancellationToken::new();
        let settings = ListenSettings::new(&state.config.http_server, tls);
        let mut api_addr = local;
        let serve_api = match api_listener {
            Some(l) => {
                api_addr = l.local_addr()?;
                let app = api_router(state.clone());
                Some(crate::listener::spawn(
                    l,
                    app,
                    settings.clone(),
                    stop_accepting.clone(),
                ))
            }
            None => None,
        };
        let mut grpc_api_addr = None;
        let serve_grpc_api = match grpc_api_listener {
            Some(l) => {
                grpc_api_addr = Some(l.local_addr()?);
                let app = crate::grpc_api::router(node.clone(), &state.config.grpc_api);
                let settings = ListenSettings::new(&state.config.http_server, grpc_api_tls);
                tracing::info!(addr = ?grpc_api_addr, "gRPC API serving");
                Some(crate::listener::spawn(
                    l,
                    app,
                    settings,
                    stop_accepting.clone(),
                ))
            }
            None => None,
        };
        let app = router(state.clone());
        let serve = crate::listener::spawn(listener, app, settings, stop_accepting.clone());
        let cluster = tokio::spawn(node.clone().run_cluster(stop_accepting.clone()));
        let admission_sampler =
            tokio::spawn(state.admission.clone().run_sampler(lifecycle_stop.clone()));
        tracing::info!(addr = %local, version = pushwire_core::node::VERSION, "pushwire serving");
        Ok(RunningServer {
            addr: local,
            api_addr,
            grpc_api_addr,
            node,
            state,
            stop_accepting,
            serve,
            serve_api,
            serve_grpc_api,
            cluster,
            lifecycle_stop,
            consumers,
            admission_sampler,
        })
    }

    /// Stops gracefully: stop accepting, tell every client 3001 (reconnect; spread over
    /// `shutdown.drain_period` when set), let writers drain, and wait at most
    /// `shutdown.timeout` in all for connection tasks to end.
    pub async fn shutdown(self) -> ShutdownReport {
        let timeout = self.state.config.shutdown.timeout;
        self.stop_accepting.cancel();
        self.node.leave_cluster().await;
        self.consumers.stop().await;
        let started = tokio::time::Instant::now();
        let drain = self.state.config.shutdown.drain_period;
        let clients_notified = if drain.is_zero() {
            self.node.shutdown()
        } else {
            self.node.shutdown_paced(drain).await
        };
        self.state.tracker.close();
        let left = timeout.saturating_sub(started.elapsed());
        let drained = tokio::time::timeout(left, self.state.tracker.wait())
            .await
            .is_ok();
        // What the clients left behind (subscription releases, proxy refreshes) finishes
        // within what is left of the timeout.
        self.node.tasks().close();
        let left = timeout.saturating_sub(started.elapsed());
        let drained = drained
            && tokio::time::timeout(left, self.node.tasks().wait())
                .await
                .is_ok();
        // HTTP requests in flight (API calls, streams) get the remaining time.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.serve).await;
        for api in [self.serve_api, self.serve_grpc_api].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(1), api).await;
        }
        self.cluster.abort();
        // Give the sinks a moment for the disconnect events of the clients just closed.
        let flush_until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < flush_until
            && self
                .state
                .lifecycle
                .sinks()
                .iter()
                .any(|s| !s.spool.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.lifecycle_stop.cancel();
        self.state.lifecycle.abort();
        self.admission_sampler.abort();
        tracing::info!(clients_notified, drained, "pushwire stopped");
        ShutdownReport {
            clients_notified,
            drained,
        }
    }
}
