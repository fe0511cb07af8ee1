//! A real SDK script (`sdk-tests/…`, Node or the Python venv) run in the background while the
//! test acts: the test waits for lines the script prints (`READY`, one JSON event per line…),
//! then for its exit and its `RESULT <json>` line.
//!
//! The script finds the server through the same environment as the [`crate::sdk`] runners,
//! pointed at any base URL (a node, or an [`crate::haproxy::HaProxy`] frontend):
//! `PUSHWIRE_HTTP_URL=<base>`, `PUSHWIRE_WS_URL=<ws base>/connection/websocket`,
//! `PUSHWIRE_API_KEY` ([`API_KEY`]) and `PUSHWIRE_SECRET` ([`SECRET`]).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::sdk::{require, sdk_dir, SdkRun};
use crate::{API_KEY, SECRET};

/// A running SDK script whose standard output is read line by line. Killed when dropped.
#[derive(Debug)]
pub struct LiveScript {
    script: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stdout: Vec<String>,
    stderr_chunks: mpsc::UnboundedReceiver<String>,
    stderr: String,
}

impl LiveScript {
    /// Starts `node <args…>` in `sdk-tests/` (e.g. `["js/chaos.mjs", "chat:x", "999"]`)
    /// against `base_url` (`http://127.0.0.1:PORT`). Panics when centrifuge-js is not installed.
    pub fn node(args: &[&str], base_url: &str) -> LiveScript {
        let dir = sdk_dir();
        require(
            &dir.join("node_modules/centrifuge/package.json"),
            "centrifuge-js",
            "scripts/setup-sdks.sh",
        );
        Self::spawn(Path::new("node"), args, base_url)
    }

    /// Starts `sdk-tests/.venv/bin/python <args…>` in `sdk-tests/` (e.g.
    /// `["python/cluster_user.py", ws_url, token, channel]`) against `base_url`. Panics when
    /// the venv is not installed.
    pub fn python(args: &[&str], base_url: &str) -> LiveScript {
        let python = sdk_dir().join(".venv/bin/python");
        require(&python, "the Python venv", "scripts/setup-sdks.sh");
        Self::spawn(&python, args, base_url)
    }

    /// Starts `program <args…>` in `sdk-tests/` with the environment described in the module
    /// documentation. Panics when it cannot be started.
    pub fn spawn(program: &Path, args: &[&str], base_url: &str) -> LiveScript {
        let script = args.join(" ");
        let base = base_url.trim_end_matches('/');
        let ws_base = base
            .strip_prefix("http")
            .map(|rest| format!("ws{rest}"))
            .unwrap_or_else(|| panic!("base URL {base} is not http(s)://"));
        let mut child = Command::new(program)
            .args(args)
            .current_dir(sdk_dir())
            .env("PUSHWIRE_HTTP_URL", base)
            .env("PUSHWIRE_WS_URL", format!("{ws_base}/connection/websocket"))
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
            .unwrap_or_else(|e| panic!("cannot start {} {script}: {e}", program.display()));
        let (tx, lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (sink, stderr_chunks) = mpsc::unbounded_channel();
        let mut err = child.stderr.take().expect("piped");
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf).await {
                if sink
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        LiveScript {
            script,
            child,
            lines,
            stdout: Vec::new(),
            stderr_chunks,
            stderr: String::new(),
        }
    }

    /// Reads lines until one satisfies `pred` and returns it; the lines before it are kept
    /// (see [`LiveScript::report`]) but not returned. Panics, naming `what` and showing the
    /// output so far, after `timeout` or when the script closes its output first.
    pub async fn line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.stdout.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Ok(None) => {
                    let report = self.report();
                    panic!("output ended before {what}\n{report}")
                }
                Err(_) => {
                    let report = self.report();
                    panic!("no line for {what} within {timeout:?}\n{report}")
                }
            }
        }
    }

    /// Like [`LiveScript::line`] for lines that are JSON values: returns the first one that
    /// satisfies `pred` (lines that are not JSON are skipped).
    pub async fn json(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut found = Value::Null;
        self.line(what, timeout, |line| {
            match serde_json::from_str::<Value>(line) {
                Ok(v) if pred(&v) => found = v,
                _ => return false,
            }
            true
        })
        .await;
        found
    }

    /// Waits for the script to exit and returns everything it printed. Panics with the whole
    /// output when it exits non-zero or is still running after `timeout` (then it is killed).
    pub async fn finish(mut self, timeout: Duration) -> SdkRun {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for the script"),
            Err(_) => {
                let _ = self.child.kill().await;
                self.drain().await;
                let report = self.report();
                panic!("still running after {timeout:?}, killed\n{report}");
            }
        };
        self.drain().await;
        let report = self.report();
        assert!(status.success(), "failed ({status})\n{report}");
        // Shown by the test harness when the test fails later on.
        println!("{report}");
        SdkRun {
            script: self.script.clone(),
            stdout: self.stdout.join("\n"),
            stderr: self.stderr.clone(),
        }
    }

    /// Kills the script (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Every stdout line read so far, then the stderr so far, as a printable report headed by
    /// the script and its arguments.
    pub fn report(&mut self) -> String {
        while let Ok(chunk) = self.stderr_chunks.try_recv() {
            self.stderr.push_str(&chunk);
        }
        format!(
            "---- {0} stdout ----\n{1}\n---- {0} stderr ----\n{2}",
            self.script,
            self.stdout.join("\n"),
            self.stderr
        )
    }

    // Reads the rest of stdout once the process is gone (the pipe closes with it).
    async fn drain(&mut self) {
        let end = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(line)) = tokio::time::timeout_at(end, self.lines.recv()).await {
            self.stdout.push(line);
        }
        // Let the stderr reader catch up with what was written before the exit.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
