//! A redis-server serving TLS only (`--tls-port`), started for one test with a self-signed
//! certificate for `localhost`, and stopped (and its files removed) when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A running TLS-only redis-server.
pub struct TlsRedis {
    /// Its TLS port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: tokio::process::Child,
}

impl TlsRedis {
    /// Generates the certificate, starts `redis-server` on a free port and waits until it
    /// listens. Panics when redis-server is missing (scripts/services.sh installs it).
    pub async fn start() -> TlsRedis {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pushwire-tls-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("write key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--tls-auth-clients", "no"])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("key.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return TlsRedis { port, dir, child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server --tls-port {port} did not listen within 5 s");
    }

    /// `rediss://localhost:<port>` (the certificate is for `localhost`).
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    /// The PEM file of the server's (self-signed) certificate, to trust as a root.
    pub fn ca_file(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
