//! The listener: accepts TCP connections and serves HTTP/1.1 and HTTP/2 on them, in plain
//! text or over TLS, with the limits of `http_server.*` applied before any request reaches a
//! handler.
//!
//! - `max_connections`: a semaphore holds one permit per open connection (the permit lives in
//!   the socket, so an upgraded WebSocket keeps it until it closes). A connection beyond it is
//!   answered `503 Service Unavailable` (plain HTTP; over TLS it is just closed) and dropped at
//!   once: nothing is queued and no task is spawned for it.
//! - `handshake_timeout`: the TLS handshake (or, in plain text, the first bytes of the request)
//!   must arrive within it, else the socket is closed silently.
//! - `header_read_timeout` and `max_header_size`: handed to hyper (HTTP/1 closes a connection
//!   whose head is not complete in time, answers 431 to a head too large; HTTP/2 gets
//!   `max_header_list_size` and `http2_max_concurrent_streams`).
//! - `http2_idle_timeout`: an HTTP/2 connection with no request in flight that long gets GOAWAY
//!   ([`idle`]); a peer that keeps the connection open after GOAWAY (ignoring its PING) is cut
//!   `header_read_timeout` later, as is any connection still open that long after the server
//!   began to stop.
//! - `write_timeout`: a peer that reads nothing for that long while the server has bytes for it
//!   loses the connection ([`stream`]).
//! - `body_read_timeout`: a request body must be complete in time, else 408 and the
//!   connection closes ([`body_deadline`]).
//!
//! The protocol is chosen by ALPN over TLS (`h2`, else HTTP/1.1) and by the connection preface
//! in plain text (HTTP/2 with prior knowledge, else HTTP/1.1). Every connection task is owned by
//! the serve task, which stops accepting on cancellation, asks each connection to finish
//! gracefully and waits for them.

pub mod body_deadline;
pub mod idle;
pub mod stream;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpServerConfig;
use crate::limits::client_ip::{ClientIp, TrustedProxies};
use body_deadline::DeadlineBody;
use idle::InFlight;
pub use stream::LimitedStream;

/// What a listener enforces; built once from `http_server.*`.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// Connections open at once.
    pub max_connections: usize,
    /// TLS handshake, or first bytes in plain text.
    pub handshake_timeout: Duration,
    /// Complete HTTP/1 request head (and keep-alive idle time).
    pub header_read_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_size: usize,
    /// Open streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// TLS, when enabled.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Proxies whose `X-Forwarded-For` is believed (each request gets a [`ClientIp`]).
    pub trusted_proxies: TrustedProxies,
    /// An HTTP/2 connection with no request in flight for this long is shut down.
    pub http2_idle_timeout: Duration,
    /// A write refused for this long (the peer does not read) ends the connection.
    pub write_timeout: Duration,
    /// A request body must be complete within this long from its head.
    pub body_read_timeout: Duration,
}

impl ListenSettings {
    /// The settings of `cfg`, with `tls` from [`crate::tls::server_config`].
    pub fn new(cfg: &HttpServerConfig, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        ListenSettings {
            max_connections: cfg.max_connections,
            handshake_timeout: cfg.handshake_timeout,
            header_read_timeout: cfg.header_read_timeout,
            max_header_size: cfg.max_header_size,
            http2_max_concurrent_streams: cfg.http2_max_concurrent_streams,
            tls,
            http2_idle_timeout: cfg.http2_idle_timeout,
            write_timeout: cfg.write_timeout,
            body_read_timeout: cfg.body_read_timeout,
            // Validated with the configuration.
            trusted_proxies: TrustedProxies::parse(&cfg.trusted_proxies).unwrap_or_default(),
        }
    }
}

/// The peer address of a connection, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What a connection beyond `max_connections` reads before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";

/// The HTTP/2 connection preface (prior knowledge, RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Binds a listening TCP socket on `addr` (`host:port`; every address it resolves to is tried
/// in turn) with a listen queue of `backlog` connections (`http_server.listen_backlog`; the
/// kernel caps it at `net.core.somaxconn`). `SO_REUSEADDR` is set, as `TcpListener::bind` does.
pub async fn bind(addr: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(a))
            .and_then(|()| socket.listen(backlog));
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
    }))
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets open connections finish
/// gracefully. The returned task ends when every connection task has ended.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    settings: ListenSettings,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve(listener, router, Arc::new(settings), stop))
}

async fn serve(
    listener: TcpListener,
    router: Router,
    settings: Arc<ListenSettings>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let tasks = TaskTracker::new();
    loop {
        let (tcp, addr) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if settings.tls.is_none() {
                // Best effort, never waits: a full socket buffer just gets the close.
                let _ = tcp.try_write(BUSY);
            }
            tracing::debug!(peer = %addr, "http_server.max_connections reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tasks.spawn(connection(
            tcp,
            addr,
            permit,
            router.clone(),
            settings.clone(),
            stop.clone(),
        ));
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// One connection: handshake (bounded), then HTTP until it ends or the server stops.
async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
    router: Router,
    settings: Arc<ListenSettings>,
    stop: CancellationToken,
) {
    let deadline = settings.handshake_timeout;
    match settings.tls.clone() {
        None => {
            let h2 = tokio::select! {
                detected = tokio::time::timeout(deadline, starts_with_h2_preface(&tcp)) => {
                    match detected {
                        Ok(Ok(h2)) => h2,
                        _ => return,
                    }
                }
                _ = stop.cancelled() => return,
            };
            let io = LimitedStream::new(tcp, permit, settings.write_timeout);
            serve_http(io, h2, addr, router, &settings, stop).await;
        }
        Some(config) => {
            let io = LimitedStream::new(tcp, permit, settings.write_timeout);
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let tls = tokio::select! {
                accepted = tokio::time::timeout(deadline, acceptor.accept(io)) => match accepted {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = stop.cancelled() => return,
            };
            let h2 = crate::tls::negotiated_h2(tls.get_ref().1);
            serve_http(tls, h2, addr, router, &settings, stop).await;
        }
    }
}

/// Waits for the first bytes; true when they are the HTTP/2 preface. Peeks, so hyper reads
/// the same bytes afterwards.
async fn starts_with_h2_preface(tcp: &TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A partial preface: peek returns at once while bytes are buffered, so wait a little.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve_http<I>(
    io: I,
    h2: bool,
    addr: SocketAddr,
    router: Router,
    settings: &ListenSettings,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let proxies = settings.trusted_proxies.clone();
    let in_flight = InFlight::new();
    let requests = in_flight.clone();
    let body_timeout = settings.body_read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (mut parts, body) = req.into_parts();
        let client = ClientIp(proxies.client_ip(addr.ip(), &parts.headers));
        parts.extensions.insert(ConnectInfo(PeerAddr(addr)));
        parts.extensions.insert(client);
        let (body, timed_out) = DeadlineBody::new(body, body_timeout);
        let req = hyper::Request::from_parts(parts, axum::body::Body::new(body));
        let mut router = router.clone();
        let guard = requests.start();
        async move {
            let mut response = tower_service::Service::call(&mut router, req)
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            if timed_out.fired() {
                response = request_timeout();
            }
            Ok::<_, Infallible>(InFlight::hold_until_sent(response, guard))
        }
    });
    // How long a connection may stay after GOAWAY (idle HTTP/2) or after the server began to
    // stop before it is cut: a peer ignoring GOAWAY must not hold its permit for ever.
    let grace = settings.header_read_timeout;
    let result = if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX));
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                finish_within(grace, conn, addr).await
            }
            _ = in_flight.idle_timeout(settings.http2_idle_timeout) => {
                tracing::debug!(peer = %addr, "idle HTTP/2 connection closed");
                conn.as_mut().graceful_shutdown();
                finish_within(grace, conn, addr).await
            }
        }
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_header_size(settings.max_header_size);
        let conn = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                finish_within(grace, conn, addr).await
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
    }
}

/// Awaits a connection asked to shut down gracefully, for at most `grace`; then drops it
/// (closing the socket) whatever the peer does.
async fn finish_within<F, E>(grace: Duration, conn: F, addr: SocketAddr) -> Result<(), E>
where
    F: std::future::Future<Output = Result<(), E>>,
{
    match tokio::time::timeout(grace, conn).await {
        Ok(r) => r,
        Err(_) => {
            tracing::debug!(peer = %addr, "connection still open after GOAWAY: closed");
            Ok(())
        }
    }
}

/// The answer to a request whose body did not arrive in time.
fn request_timeout() -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(
        "request body not complete within http_server.body_read_timeout\n",
    ));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
