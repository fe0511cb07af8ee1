//! A redis-server serving TLS only (`--tls-port`), started for one test with a self-signed
//! certificate for `localhost`, and stopped (and its files removed) when dropped.

use std::process::Stdio;
use std::time::Duration;

use crate::cert::TestCert;

/// A running TLS-only redis-server (its certificate files live as long as it).
#[derive(Debug)]
pub struct TlsRedis {
    /// Its TLS port on 127.0.0.1.
    pub port: u16,
    cert: TestCert,
    child: tokio::process::Child,
}

impl TlsRedis {
    /// Generates the certificate, starts `redis-server` on a free port and waits until it
    /// listens. Panics when redis-server is missing (scripts/services.sh installs it).
    pub async fn start() -> TlsRedis {
        let cert = TestCert::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--tls-auth-clients", "no"])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(cert.cert_file())
            .arg("--tls-key-file")
            .arg(cert.key_file())
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
                return TlsRedis { port, cert, child };
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
        self.cert.cert_file().display().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
