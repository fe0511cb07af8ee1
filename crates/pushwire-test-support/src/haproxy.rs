//! A real HAProxy (Debian `haproxy`, run as `/usr/sbin/haproxy -f CFG -db`) in front of a set
//! of pushwire nodes, the way a cluster is deployed: `mode http`, `balance roundrobin`, no
//! stickiness. Every HTTP request is balanced on its own, so two requests on one keep-alive
//! client connection may reach two different nodes (an `/emulation` POST lands on another node
//! than the stream it belongs to). WebSocket upgrades become tunnels (`timeout tunnel 1h`);
//! streaming responses (HTTP-stream, SSE) are forwarded as they are written, never buffered.
//!
//! Dead nodes: a health check (`GET /health` every 500 ms) takes a node out after two misses
//! and back in after one success, and a refused connection is retried on another node
//! (`retries 3`, `option redispatch 1`), so a reconnecting client is not sent to a killed node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::node_process::free_port;

/// The HAProxy binary (Debian package `haproxy`; `scripts/services.sh` installs it).
pub const HAPROXY_BIN: &str = "/usr/sbin/haproxy";

/// How long HAProxy may take to accept connections on its frontend.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running HAProxy on a free 127.0.0.1 port. Killed (and its files removed) when dropped.
#[derive(Debug)]
pub struct HaProxy {
    addr: SocketAddr,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Child,
}

impl HaProxy {
    /// Writes a configuration balancing over `backends` (round robin, per request, health
    /// checked, see the module documentation) to a temporary file, starts HAProxy on it and
    /// returns once the frontend accepts TCP connections. Panics with HAProxy's output when it
    /// is missing, exits, or does not listen within 10 s. `backends` must not be empty.
    pub async fn start(backends: &[SocketAddr]) -> HaProxy {
        assert!(!backends.is_empty(), "HaProxy::start needs a backend");
        assert!(
            std::path::Path::new(HAPROXY_BIN).exists(),
            "{HAPROXY_BIN} is missing: run scripts/services.sh (it installs haproxy)"
        );
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let stem = format!(
            "pushwire-haproxy-{}-{}-{}",
            std::process::id(),
            addr.port(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir();
        let config_path = dir.join(format!("{stem}.cfg"));
        let log_path = dir.join(format!("{stem}.log"));
        std::fs::write(&config_path, config(addr, backends)).expect("write haproxy config");
        let log = std::fs::File::create(&log_path).expect("create haproxy log");
        let child = Command::new(HAPROXY_BIN)
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {HAPROXY_BIN}: {e}"));
        let mut proxy = HaProxy {
            addr,
            config_path,
            log_path,
            child,
        };
        proxy.wait_listening().await;
        proxy
    }

    async fn wait_listening(&mut self) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("haproxy exited at start ({status})\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "haproxy not listening on {} after {START_TIMEOUT:?}\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The frontend address clients and API callers use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` of the frontend.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/connection/websocket` of the frontend.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// Everything HAProxy printed (warnings, alerts) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.config_path);
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// The configuration text: one frontend on `addr`, one backend with `backends`.
fn config(addr: SocketAddr, backends: &[SocketAddr]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("    server node{i} {b}\n"))
        .collect();
    format!(
        "\
global
    # Above ~9,000 HAProxy tries to raise the open-file limit past what these machines allow.
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    # WebSocket connections once upgraded.
    timeout tunnel 1h
    timeout check 1s
    # Forward request bodies as they come (the default, stated on purpose).
    no option http-buffer-request
    # A refused connection is retried on another server.
    retries 3
    option redispatch 1

frontend cluster
    bind {addr}
    default_backend nodes

backend nodes
    # Per request, no stickiness, no preference for the client's last server.
    balance roundrobin
    http-reuse never
    option httpchk GET /health
    default-server check inter 500ms fall 2 rise 1
{servers}"
    )
}
