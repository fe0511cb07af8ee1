//! A dependency in a separate process that a test can make *hang* (SIGSTOP) and resume
//! (SIGCONT): the process keeps its listening socket, so the kernel still accepts connections
//! and buffers requests, but nothing answers — the failure a timeout and a circuit breaker
//! exist for, unlike a dead process whose port refuses at once.
//!
//! [`StoppableProcess::python`] runs a small Python 3 script (standard library only) that the
//! test writes to a temporary directory; [`StoppableProcess::redis`] a private `redis-server`.
//! The guard sends SIGCONT and SIGKILL when dropped, on every path (a failed assertion
//! included), so a stopped process never outlives its test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a script may take to print `READY <port>`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A process listening on a loopback port. Resumed and killed when dropped.
#[derive(Debug)]
pub struct StoppableProcess {
    child: Child,
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl StoppableProcess {
    /// Writes `source` to a fresh temporary directory, runs `python3 <script> <args…>` there
    /// and waits for its `READY <port>` line. Panics when python3 is missing or the script
    /// does not get ready within 20 s. The script's standard error is the test's.
    pub async fn python(source: &str, args: &[&str]) -> StoppableProcess {
        let dir = std::env::temp_dir().join(crate::unique("pushwire-hang-peer-"));
        std::fs::create_dir_all(&dir).expect("create the script's directory");
        let script = dir.join("peer.py");
        std::fs::write(&script, source).expect("write the script");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(args)
            .current_dir(&dir)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start python3");
        let pid = child.id().expect("a running child has an id");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = tokio::time::timeout(READY_WITHIN, lines.next_line())
            .await
            .expect("the script prints READY in time")
            .expect("read the script's output")
            .expect("a READY line before the script ended");
        let port = ready
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected `READY <port>`, got {ready:?}"));
        // Keep reading, so a script that prints more never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        StoppableProcess {
            child,
            pid,
            port,
            dir,
        }
    }

    /// A private `redis-server` (no persistence) on a free loopback port, its working
    /// directory a fresh temporary one; returns once it accepts connections. Panics when
    /// redis-server is missing or does not listen within 20 s.
    pub async fn redis() -> StoppableProcess {
        let dir = std::env::temp_dir().join(crate::unique("pushwire-hang-redis-"));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let port = crate::node_process::free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        let pid = child.id().expect("a running child has an id");
        // Owned from here: resumed and killed on every path.
        let redis = StoppableProcess {
            child,
            pid,
            port,
            dir,
        };
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis
    }

    /// The port the process listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`, for [`Self::redis`].
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The directory the process runs in (files it writes are there).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// SIGSTOP: the process stops answering (its socket stays open).
    pub fn stop(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: the process answers again, starting with what the kernel buffered meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.pid);
    }
}

impl Drop for StoppableProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status();
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
