//! A self-signed certificate for `localhost` (or other names), written to a fresh temporary directory (removed
//! on drop): the server's TLS files in tests, and the root a test client trusts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use pushwire_server::config::TlsConfig;

/// A certificate and its key, on disk.
#[derive(Debug)]
pub struct TestCert {
    /// The certificate, PEM.
    pub pem: String,
    dir: PathBuf,
}

impl TestCert {
    /// Generates the certificate and writes `cert.pem` and `key.pem`.
    pub fn new() -> TestCert {
        TestCert::for_names(&["localhost"])
    }

    /// Like [`TestCert::new`], for these subject alternative names (an IP address such as
    /// `127.0.0.1` becomes an IP SAN: what Sentinel and Cluster announce).
    pub fn for_names(names: &[&str]) -> TestCert {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pushwire-cert-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("cert");
        let pem = ck.cert.pem();
        std::fs::write(dir.join("cert.pem"), &pem).expect("write cert");
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("write key");
        TestCert { pem, dir }
    }

    /// The certificate file.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The private key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// `http_server.tls` serving this certificate.
    pub fn server_tls(&self) -> TlsConfig {
        TlsConfig {
            enabled: true,
            cert_pem_file: self.cert_file(),
            key_pem_file: self.key_file(),
        }
    }
}

impl Default for TestCert {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
