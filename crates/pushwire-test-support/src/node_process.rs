//! A pushwire node run as a child process (the real `pushwire serve` binary), so a test can
//! kill it like a crash (SIGKILL: nothing is flushed, acknowledged or closed) and start it
//! again with the same configuration on the same port, and SDK scripts run against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pushwire_server::ServerConfig;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::sdk::{sdk_dir, SdkRun, SCRIPT_TIMEOUT};
use crate::{API_KEY, SECRET};

/// How long a started node may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A `pushwire serve` child process on 127.0.0.1. Killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    binary: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
    /// Environment given to the child (besides the inherited one).
    env: Vec<(String, String)>,
    /// Whether `config_path` is a temporary file of ours (removed on drop).
    owns_config: bool,
}

impl NodeProcess {
    /// Writes `config` (port 0 replaced by a free port, address 127.0.0.1) to a temporary
    /// JSON file and starts `binary serve --config <file>`; returns once `/health` answers
    /// (panics with the node's log otherwise). `binary` is the test's
    /// `env!("CARGO_BIN_EXE_pushwire")`.
    pub async fn start(binary: impl AsRef<Path>, mut config: ServerConfig) -> NodeProcess {
        if config.http_server.port == 0 {
            config.http_server.port = free_port();
        }
        config.http_server.address = "127.0.0.1".into();
        let addr: SocketAddr = ([127, 0, 0, 1], config.http_server.port).into();
        let dir = std::env::temp_dir();
        let stem = format!("pushwire-node-{}-{}", std::process::id(), addr.port());
        let config_path = dir.join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&config).expect("config serializes");
        std::fs::write(&config_path, text).expect("write node config");
        let mut node = NodeProcess {
            addr,
            binary: binary.as_ref().to_path_buf(),
            config_path,
            log_path: dir.join(format!("{stem}.log")),
            child: None,
            http: reqwest::Client::new(),
            env: Vec::new(),
            owns_config: true,
        };
        node.spawn().await;
        node
    }

    /// Starts `binary serve --config <file>` on an existing configuration file, left as it
    /// is: the port comes from `CENTRIFUGO_HTTP_SERVER_PORT` (a free one), the address from
    /// `CENTRIFUGO_HTTP_SERVER_ADDRESS=127.0.0.1`, and `env` is added to the child's
    /// environment.
    pub async fn start_file(
        binary: impl AsRef<Path>,
        file: &Path,
        env: &[(&str, &str)],
    ) -> NodeProcess {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stem = format!("pushwire-node-{}-{port}", std::process::id());
        let mut all: Vec<(String, String)> = vec![
            ("CENTRIFUGO_HTTP_SERVER_PORT".into(), port.to_string()),
            ("CENTRIFUGO_HTTP_SERVER_ADDRESS".into(), "127.0.0.1".into()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut node = NodeProcess {
            addr,
            binary: binary.as_ref().to_path_buf(),
            config_path: file.to_path_buf(),
            log_path: std::env::temp_dir().join(format!("{stem}.log")),
            child: None,
            http: reqwest::Client::new(),
            env: all,
            owns_config: false,
        };
        node.spawn().await;
        node
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let health = self
                .http
                .get(format!("{}/health", self.http_url()))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if matches!(&health, Ok(r) if r.status().is_success()) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("node exited at start ({status})\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node not healthy after {START_TIMEOUT:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the node with SIGKILL (a crash) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the node again with the same configuration, on the same port.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Everything the node (all its runs) logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `ws://127.0.0.1:PORT/connection/websocket`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls `POST /api/<method>` with the API key; status and parsed body (`Null` if none).
    pub async fn api(&self, method: &str, body: Value) -> (u16, Value) {
        match self
            .http
            .post(format!("{}/api/{method}", self.http_url()))
            .header("X-API-Key", API_KEY)
            .timeout(Duration::from_secs(5))
            .json(&body)
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if self.owns_config {
            let _ = std::fs::remove_file(&self.config_path);
        }
    }
}

/// Runs `sdk-tests/.venv/bin/python args…` in `sdk-tests/` against the node at `ws_url` /
/// `http_url` (same environment as [`crate::sdk::run_python`]); panics with the whole output
/// on a non-zero exit or after [`SCRIPT_TIMEOUT`].
pub async fn run_python_at(args: &[&str], ws_url: &str, http_url: &str) -> SdkRun {
    let dir = sdk_dir();
    let python = dir.join(".venv/bin/python");
    crate::sdk::require(&python, "the Python venv", "scripts/setup-sdks.sh");
    let script = args.join(" ");
    let mut child = Command::new(&python)
        .args(args)
        .current_dir(&dir)
        .env("PUSHWIRE_WS_URL", ws_url)
        .env("PUSHWIRE_HTTP_URL", http_url)
        .env("PUSHWIRE_API_KEY", API_KEY)
        .env("PUSHWIRE_SECRET", SECRET)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python {script}: {e}"));
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, async {
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        use tokio::io::AsyncReadExt;
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        let status = child.wait().await.expect("wait for the script");
        (status, out, err)
    })
    .await;
    let Ok((status, out, err)) = output else {
        panic!("{script} timed out after {SCRIPT_TIMEOUT:?}");
    };
    let run = SdkRun {
        script: script.clone(),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    };
    let report = format!(
        "---- {script} stdout ----\n{}\n---- {script} stderr ----\n{}",
        run.stdout, run.stderr
    );
    assert!(status.success(), "{script} failed ({status})\n{report}");
    println!("{report}");
    run
}
