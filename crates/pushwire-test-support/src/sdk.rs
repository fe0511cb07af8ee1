//! Runners for the real SDK scenarios under `sdk-tests/`: centrifuge-js and cent.js on Node
//! (`sdk-tests/js/`), centrifuge-python and cent in the venv `sdk-tests/.venv`
//! (`sdk-tests/python/`). `scripts/setup-sdks.sh` installs them.
//!
//! A script finds the server in its environment (`PUSHWIRE_WS_URL`, `PUSHWIRE_HTTP_URL`,
//! `PUSHWIRE_API_KEY`, `PUSHWIRE_SECRET`), prints what it observes, ends with a line
//! `RESULT <json>` and exits 0, or exits non-zero on a failed check. The runners panic with the
//! script's whole output on a non-zero exit, on a timeout, and when the SDKs are not installed:
//! an SDK test never skips.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::{TestServer, API_KEY, SECRET};

/// How long one scenario script may run before it is killed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished script printed.
#[derive(Debug)]
pub struct SdkRun {
    /// The script, relative to `sdk-tests/`.
    pub script: String,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl SdkRun {
    /// The JSON of the script's last `RESULT <json>` line (panics when there is none).
    pub fn result(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("{} printed no RESULT line", self.script));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: RESULT is not JSON ({e}): {line}", self.script))
    }
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate sits at crates/<name>")
        .to_path_buf()
}

/// `sdk-tests/` in the repository.
pub fn sdk_dir() -> PathBuf {
    repo_root().join("sdk-tests")
}

/// Runs `sdk-tests/<script>` with `node` from `PATH` against `server`.
pub async fn run_node(script: &str, server: &TestServer) -> SdkRun {
    let dir = sdk_dir();
    require_installed(
        &dir.join("node_modules/centrifuge/package.json"),
        "centrifuge-js",
    );
    require_installed(&dir.join("node_modules/cent.js/package.json"), "cent.js");
    run(Path::new("node"), script, server).await
}

/// Runs `sdk-tests/<script>` with `sdk-tests/.venv/bin/python` against `server`.
pub async fn run_python(script: &str, server: &TestServer) -> SdkRun {
    run_python_with(script, server, &[]).await
}

/// [`run_python`] with extra environment variables.
pub async fn run_python_with(script: &str, server: &TestServer, env: &[(&str, &str)]) -> SdkRun {
    let python = sdk_dir().join(".venv/bin/python");
    require_installed(&python, "the Python venv");
    let dir = sdk_dir();
    assert!(
        dir.join(script).is_file(),
        "no SDK script at {}",
        dir.join(script).display()
    );
    run_in_env(&python, &dir, &[script], server, env).await
}

/// Checks the synchronous `cond` until it holds; panics naming `what` after 5 s
/// ([`pushwire_testkit::eventually`] for a plain condition).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    pushwire_testkit::eventually(what, Duration::from_secs(5), || std::future::ready(cond())).await;
}

/// Panics, naming the setup script to run, when `path` (an installed SDK, browser or venv) is
/// missing: an SDK test never skips.
pub fn require(path: &Path, what: &str, setup: &str) {
    assert!(
        path.exists(),
        "{what} is not installed ({} is missing): run {setup} first",
        path.display()
    );
}

fn require_installed(path: &Path, what: &str) {
    require(path, what, "scripts/setup-sdks.sh");
}

async fn run(program: &Path, script: &str, server: &TestServer) -> SdkRun {
    let dir = sdk_dir();
    assert!(
        dir.join(script).is_file(),
        "no SDK script at {}",
        dir.join(script).display()
    );
    run_in(program, &dir, &[script], server).await
}

/// Runs `program args…` in `dir` with the server's location in its environment; panics with
/// the whole output on a non-zero exit or after [`SCRIPT_TIMEOUT`].
pub async fn run_in(program: &Path, dir: &Path, args: &[&str], server: &TestServer) -> SdkRun {
    run_in_env(program, dir, args, server, &[]).await
}

async fn run_in_env(
    program: &Path,
    dir: &Path,
    args: &[&str],
    server: &TestServer,
    env: &[(&str, &str)],
) -> SdkRun {
    let script = args.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("PUSHWIRE_WS_URL", server.ws_url())
        .env("PUSHWIRE_HTTP_URL", server.http_url())
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
    let stdout = tokio::spawn(read_all(child.stdout.take().expect("piped")));
    let stderr = tokio::spawn(read_all(child.stderr.take().expect("piped")));
    let status: Option<ExitStatus> = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await
    {
        Ok(status) => Some(status.expect("wait for the script")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let run = SdkRun {
        script: script.clone(),
        stdout: stdout.await.expect("stdout reader"),
        stderr: stderr.await.expect("stderr reader"),
    };
    let report = format!(
        "---- {script} stdout ----\n{}\n---- {script} stderr ----\n{}",
        run.stdout, run.stderr
    );
    match status {
        None => panic!("{script} timed out after {SCRIPT_TIMEOUT:?}\n{report}"),
        Some(s) if !s.success() => panic!("{script} failed ({s})\n{report}"),
        Some(_) => {
            // Shown by the test harness when the test fails later on.
            println!("{report}");
            run
        }
    }
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Asserts that the server keeps exactly `offsets` in the history of the scenario's channel
/// (`RESULT.channel`), with the stream top at the last of them and the epoch the SDK saw
/// (`RESULT.epoch`).
pub async fn assert_history(server: &TestServer, result: &Value, offsets: &[u64]) {
    let channel = result["channel"]
        .as_str()
        .expect("RESULT names the channel");
    let history = server
        .node()
        .history(channel, -1, None, false)
        .await
        .expect("history");
    assert_eq!(
        Value::from(history.epoch.as_str()),
        result["epoch"],
        "epoch seen by the SDK"
    );
    assert_eq!(Some(&history.offset), offsets.last(), "stream top offset");
    let kept: Vec<u64> = history.publications.iter().map(|p| p.offset).collect();
    assert_eq!(kept, offsets, "offsets kept in history");
}
