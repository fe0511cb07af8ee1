//! One proxy: its protection (slot cap, circuit breaker, one deadline for the whole call,
//! metrics) around a call over HTTP (POST a JSON request, read a bounded JSON answer) or gRPC
//! (`grpc://` endpoints, [`super::grpc`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pushwire_core::config::ProxyConfig;
use pushwire_core::proxy::{CallContext, ProxyError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::metrics::{InFlight, ProxyMetrics};
use pushwire_core::breaker::{Breaker, Permit};

/// A configured proxy (HTTP, or gRPC for a `grpc://` endpoint) with its protection and figures.
#[derive(Debug)]
pub struct ProxyClient {
    name: String,
    config: ProxyConfig,
    http: reqwest::Client,
    grpc: Option<super::grpc::GrpcClient>,
    slots: Arc<Semaphore>,
    breaker: Breaker,
    metrics: ProxyMetrics,
}

/// Why building a proxy's client failed.
#[derive(Debug, thiserror::Error)]
#[error("proxy {name}: cannot build its client: {source}")]
pub struct BuildError {
    name: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl ProxyClient {
    /// A proxy named `name` (the label in metrics and logs) from its definition.
    pub fn new(name: String, config: ProxyConfig) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(config.max_in_flight);
        if config.http.tls.enabled {
            let tls = super::tls::client_config("http.tls", &config.http.tls, &[b"http/1.1"])
                .map_err(|source| BuildError {
                    name: name.clone(),
                    source: Box::new(source),
                })?;
            builder = builder.use_preconfigured_tls(Arc::unwrap_or_clone(tls));
        }
        let http = builder.build().map_err(|source| BuildError {
            name: name.clone(),
            source: Box::new(source),
        })?;
        let grpc = if config.endpoint.starts_with("grpc://") {
            Some(
                super::grpc::GrpcClient::new(&config).map_err(|source| BuildError {
                    name: name.clone(),
                    source,
                })?,
            )
        } else {
            None
        };
        Ok(ProxyClient {
            grpc,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            breaker: Breaker::new(
                config.circuit_breaker.failures,
                config.circuit_breaker.open_for,
            ),
            metrics: ProxyMetrics::default(),
            http,
            name,
            config,
        })
    }

    /// Name in metrics and logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Figures.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// Whether the breaker is open now.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The gRPC client, for a `grpc://` endpoint.
    pub fn grpc(&self) -> Option<&super::grpc::GrpcClient> {
        self.grpc.as_ref()
    }

    /// POSTs `body` with the forwarded and static headers and decodes the answer as `R`,
    /// under [`Self::guarded`].
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        ctx: &CallContext<'_>,
        body: &B,
    ) -> Result<R, ProxyError> {
        self.guarded(super::http::post(&self.http, &self.config, ctx, body))
            .await
    }

    /// Runs `call` under the proxy's protection: fails at once while the breaker is open,
    /// waits for a `max_in_flight` slot, bounds everything by `timeout`; counts, logs (once per
    /// interval) and feeds the breaker with the outcome.
    pub async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ProxyError>>,
    ) -> Result<T, ProxyError> {
        let r = self.guarded_inner(call).await;
        if let Err(e) = &r {
            self.metrics.log_failure(&self.name, e);
        }
        r
    }

    async fn guarded_inner<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ProxyError>>,
    ) -> Result<T, ProxyError> {
        let deadline = Instant::now() + self.config.timeout;
        let permit = self.breaker.permit();
        if permit == Permit::Refuse {
            ProxyMetrics::inc(&self.metrics.rejected);
            return Err(ProxyError::CircuitOpen);
        }
        let slot = match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await
        {
            Ok(Ok(slot)) => Slot::new(slot, deadline),
            _ => {
                if permit == Permit::Trial {
                    self.breaker.abandon_trial();
                }
                ProxyMetrics::inc(&self.metrics.rejected);
                return Err(ProxyError::Overloaded);
            }
        };
        ProxyMetrics::inc(&self.metrics.requests);
        let started = Instant::now();
        let r = {
            let _in = InFlight::enter(&self.metrics.in_flight);
            tokio::time::timeout_at(deadline, call)
                .await
                .unwrap_or(Err(ProxyError::Timeout))
        };
        slot.done();
        self.metrics
            .latency
            .observe(started.elapsed().as_nanos() as u64);
        self.breaker.record(r.is_ok());
        if r.is_err() {
            ProxyMetrics::inc(&self.metrics.errors);
        }
        r
    }

    /// Calls in flight now (for tests and the admin view).
    pub fn in_flight(&self) -> i64 {
        self.metrics.in_flight.load(Ordering::Relaxed)
    }
}

/// A `max_in_flight` slot held by one call. A call abandoned before it ends (its client left,
/// so the future was dropped mid-request) keeps the slot until its deadline: the backend may
/// still be working on it, and `max_in_flight` bounds what the backend sees, not what the node
/// still waits for.
struct Slot {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    deadline: Instant,
}

impl Slot {
    fn new(permit: tokio::sync::OwnedSemaphorePermit, deadline: Instant) -> Slot {
        Slot {
            permit: Some(permit),
            deadline,
        }
    }

    /// The call ended (answered, failed or timed out): the slot is free at once.
    fn done(mut self) {
        self.permit = None;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let deadline = self.deadline;
            runtime.spawn(async move {
                tokio::time::sleep_until(deadline).await;
                drop(permit);
            });
        }
    }
}
