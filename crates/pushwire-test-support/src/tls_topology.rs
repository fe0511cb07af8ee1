//! TLS-only Redis topologies started for one test: a Sentinel deployment (master, replica
//! and sentinels, every link TLS) and a Redis Cluster (`--tls-cluster yes`). All servers
//! share one self-signed certificate for `localhost` and `127.0.0.1` (Sentinel and Cluster
//! announce IP addresses, which the client then verifies), listen on free 127.0.0.1 ports and
//! are killed (their files removed) when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::cert::TestCert;

/// One TLS-only redis-server (or sentinel) process.
#[derive(Debug)]
pub struct TlsNode {
    /// Its TLS port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl TlsNode {
    /// Kills the process now (a crash, for failover tests).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Runs `redis-cli` over TLS against `port` and returns its output (`""` when it fails).
pub async fn cli(cert: &TestCert, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(cert.cert_file())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("redis-cli is installed (scripts/services.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free port `p` on 127.0.0.1 (and `p + 10000` too, the cluster bus, when `bus`).
fn free_port(bus: bool) -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if !bus {
            return port;
        }
        if port < 55000 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pushwire-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The TLS arguments every server gets: TLS port only, this certificate, TLS to its peers.
fn tls_args(cert: &TestCert, port: u16) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        "--port".into(),
        "0".into(),
        "--tls-port".into(),
        port.to_string(),
        "--tls-cert-file".into(),
        path(&cert.cert_file()),
        "--tls-key-file".into(),
        path(&cert.key_file()),
        "--tls-ca-cert-file".into(),
        path(&cert.cert_file()),
        "--tls-auth-clients".into(),
        "no".into(),
        "--tls-replication".into(),
        "yes".into(),
    ]
}

/// Spawns `redis-server <args>` and waits until `port` accepts TCP connections.
async fn spawn(args: Vec<String>, port: u16, dir: &Path) -> TlsNode {
    let child = Command::new("redis-server")
        .args(&args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/services.sh)");
    let node = TlsNode { port, child };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server {args:?} did not listen on {port} within 10 s");
}

/// Polls `check` every 100 ms for up to `limit`; panics naming `what` when it never holds.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} within {limit:?}");
}

/// A TLS-only Sentinel deployment: one master, one replica, `n` sentinels monitoring the
/// master as [`TlsSentinels::MASTER_NAME`] (quorum: a majority), every link over TLS.
#[derive(Debug)]
pub struct TlsSentinels {
    /// The initial master.
    pub master: TlsNode,
    /// The replica (promoted by a failover).
    pub replica: TlsNode,
    /// The sentinels.
    pub sentinels: Vec<TlsNode>,
    cert: TestCert,
    dir: PathBuf,
}

impl TlsSentinels {
    /// The name the sentinels monitor the master under.
    pub const MASTER_NAME: &'static str = "pwtls";

    /// Starts everything and returns once the replica is in sync and every sentinel knows
    /// the replica (and, with several, the other sentinels).
    pub async fn start(n: usize) -> TlsSentinels {
        let cert = TestCert::for_names(&["localhost", "127.0.0.1"]);
        let dir = temp_dir("tls-sentinels");
        let save = ["--save", "", "--appendonly", "no"].map(String::from);
        let master_port = free_port(false);
        let mut args = tls_args(&cert, master_port);
        args.extend(save.clone());
        let master = spawn(args, master_port, &dir).await;
        let replica_port = free_port(false);
        let mut args = tls_args(&cert, replica_port);
        args.extend(save);
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ]);
        let replica = spawn(args, replica_port, &dir).await;
        wait_for("the TLS replica syncs", Duration::from_secs(20), || async {
            cli(&cert, replica_port, &["INFO", "replication"])
                .await
                .contains("master_link_status:up")
        })
        .await;
        let mut sentinels = Vec::new();
        for i in 0..n {
            let port = free_port(false);
            let conf = dir.join(format!("sentinel-{i}.conf"));
            let tls = tls_args(&cert, port);
            let mut text = String::new();
            for pair in tls[..].chunks(2) {
                text.push_str(&format!("{} {}\n", &pair[0][2..], pair[1]));
            }
            text.push_str(&format!(
                "sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n\
                 sentinel parallel-syncs {name} 1\n",
                name = Self::MASTER_NAME,
                quorum = n / 2 + 1,
            ));
            std::fs::write(&conf, text).expect("sentinel config");
            let args = vec![conf.display().to_string(), "--sentinel".into()];
            sentinels.push(spawn(args, port, &dir).await);
        }
        for s in &sentinels {
            let port = s.port;
            wait_for(
                "every TLS sentinel sees the replica and the other sentinels",
                Duration::from_secs(30),
                || async {
                    let info = cli(&cert, port, &["SENTINEL", "MASTER", Self::MASTER_NAME]).await;
                    let field = |name: &str| {
                        let lines: Vec<&str> = info.lines().collect();
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1))
                            .and_then(|v| v.parse::<usize>().ok())
                    };
                    field("num-slaves") == Some(1) && field("num-other-sentinels") == Some(n - 1)
                },
            )
            .await;
        }
        TlsSentinels {
            master,
            replica,
            sentinels,
            cert,
            dir,
        }
    }

    /// `host:port` of every sentinel (for `engine.redis.sentinel_address`).
    pub fn sentinel_addresses(&self) -> Vec<String> {
        self.sentinels.iter().map(TlsNode::addr).collect()
    }

    /// The PEM file of the certificate every server presents (trust it as a root).
    pub fn ca_file(&self) -> String {
        self.cert.cert_file().display().to_string()
    }

    /// The certificate (for [`cli`]).
    pub fn cert(&self) -> &TestCert {
        &self.cert
    }
}

impl Drop for TlsSentinels {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS-only Redis Cluster (`--tls-cluster yes`) of `n` masters without replicas.
#[derive(Debug)]
pub struct TlsCluster {
    /// The masters.
    pub nodes: Vec<TlsNode>,
    cert: TestCert,
    dir: PathBuf,
}

impl TlsCluster {
    /// Starts `n` (≥ 3) nodes, creates the cluster with `redis-cli --cluster create` over TLS
    /// and returns once every node reports `cluster_state:ok`.
    pub async fn start(n: usize) -> TlsCluster {
        let cert = TestCert::for_names(&["localhost", "127.0.0.1"]);
        let dir = temp_dir("tls-cluster");
        let mut nodes = Vec::new();
        for _ in 0..n {
            let port = free_port(true);
            let mut args = tls_args(&cert, port);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--tls-cluster",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-node-timeout",
                    "2000",
                ]
                .map(String::from),
            );
            args.extend([
                "--cluster-config-file".into(),
                dir.join(format!("nodes-{port}.conf")).display().to_string(),
            ]);
            nodes.push(spawn(args, port, &dir).await);
        }
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(TlsNode::addr));
        args.push("--cluster-yes".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli(&cert, nodes[0].port, &args).await;
        assert!(
            out.contains("All 16384 slots covered"),
            "cluster create: {out}"
        );
        for node in &nodes {
            let port = node.port;
            wait_for(
                "every TLS cluster node is ok",
                Duration::from_secs(30),
                || async {
                    cli(&cert, port, &["CLUSTER", "INFO"])
                        .await
                        .contains("cluster_state:ok")
                },
            )
            .await;
        }
        TlsCluster { nodes, cert, dir }
    }

    /// `host:port` of every node (for `engine.redis.cluster_address`).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(TlsNode::addr).collect()
    }

    /// The PEM file of the certificate every node presents (trust it as a root).
    pub fn ca_file(&self) -> String {
        self.cert.cert_file().display().to_string()
    }

    /// The certificate (for [`cli`]).
    pub fn cert(&self) -> &TestCert {
        &self.cert
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
