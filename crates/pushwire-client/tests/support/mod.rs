//! Shared by the client tests: waiting for events, and a TCP proxy that can stall or drop.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushwire_client::{Event, EventStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long a test waits for one expected event.
pub const WAIT: Duration = Duration::from_secs(10);

/// Waits for the first event matching `pred` (others are collected into `seen`).
pub async fn wait_for(
    events: &mut EventStream,
    seen: &mut Vec<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for {what}; seen: {seen:#?}"),
            Ok(None) => panic!("event stream ended waiting for {what}; seen: {seen:#?}"),
            Ok(Some(e)) => {
                if pred(&e) {
                    return e;
                }
                seen.push(e);
            }
        }
    }
}

/// Collects events for `d`.
pub async fn collect_for(events: &mut EventStream, d: Duration) -> Vec<Event> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        out.push(e);
    }
    out
}

/// The data of a publication event as text.
pub fn pub_text(e: &Event) -> Option<(String, u64, String)> {
    match e {
        Event::Publication {
            channel,
            publication,
        } => Some((
            channel.clone(),
            publication.offset,
            String::from_utf8_lossy(publication.data.as_bytes()).into_owned(),
        )),
        _ => None,
    }
}

/// A TCP proxy in front of `upstream`. `stall()` stops forwarding server → client bytes
/// (connections stay open: a dead link the client can only detect by missing pings);
/// `drop_all()` closes every proxied connection.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    stalled: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port.
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        Self::start_on("127.0.0.1:0", upstream).await
    }

    /// Starts a proxy on `bind`.
    pub async fn start_on(bind: &str, upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind(bind).await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        let stalled = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let st = stalled.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            while st.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if st.load(Ordering::SeqCst) {
                                // Swallow what arrived while stalled: the link is dead.
                                continue;
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            stalled,
            tasks,
        }
    }

    /// Stops forwarding server → client.
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }

    /// Stops the proxy: the listener and every connection.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}
