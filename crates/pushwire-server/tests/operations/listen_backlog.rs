//! `http_server.listen_backlog`: the listening sockets (main and `http_api` listener) are
//! created with the configured listen queue, read back from the kernel with `ss`, and still
//! serve requests.

use std::net::SocketAddr;
use std::process::Command;

use pushwire_server::RunningServer;
use pushwire_test_support::test_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The listen queue length the kernel reports for the listening socket on `addr` (`ss`
/// shows it as Send-Q of a LISTEN socket).
fn kernel_backlog(addr: SocketAddr) -> u32 {
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", addr.port())])
        .output()
        .expect("ss (iproute2) must be installed to read the listen queue");
    assert!(out.status.success(), "ss failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!(":{}", addr.port())))
        .unwrap_or_else(|| panic!("no LISTEN socket on {addr} in ss output: {text:?}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // State Recv-Q Send-Q Local Peer
    cols[2]
        .parse()
        .unwrap_or_else(|_| panic!("Send-Q not a number in {line:?}"))
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("read net.core.somaxconn")
        .trim()
        .parse()
        .expect("somaxconn is a number")
}

async fn health(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn listeners_use_the_configured_backlog() {
    let mut c = test_config();
    c.http_server.address = "127.0.0.1".into();
    c.http_server.listen_backlog = 123;
    c.http_api.address = "127.0.0.1".into();
    c.http_api.port = 0;
    c.validate().expect("config valid");
    let server = RunningServer::start(c).await.expect("server starts");
    assert_ne!(server.addr, server.api_addr);
    assert_eq!(kernel_backlog(server.addr), 123);
    assert_eq!(kernel_backlog(server.api_addr), 123);
    assert!(health(server.addr).await.starts_with("HTTP/1.1 200"));
    assert!(health(server.api_addr).await.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}

#[tokio::test]
async fn default_backlog_is_4096_capped_by_somaxconn() {
    let c = test_config();
    assert_eq!(c.http_server.listen_backlog, 4096);
    let server = RunningServer::start(c).await.expect("server starts");
    // tokio's own default (1024) would show here without the setting.
    assert_eq!(kernel_backlog(server.addr), 4096.min(somaxconn()));
    assert!(health(server.addr).await.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}
