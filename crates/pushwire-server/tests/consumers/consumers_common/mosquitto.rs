//! A Mosquitto of the test's own for the MQTT suites (`mqtt.rs`, `mqtt5.rs`), killed on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pushwire_test_support::cert::TestCert;
use pushwire_test_support::node_process::free_port;

use super::{unique, wait_until};

/// `/usr/sbin/mosquitto` (Debian `mosquitto`, 2.x: MQTT 3.1.1 and 5) on a free port. With a
/// certificate: TLS and user `dev` / `secret`; without: plain and anonymous with room for
/// 100,000 queued messages per session (the Debian default, 1000, drops messages for a node
/// that falls behind a burst).
#[derive(Debug)]
pub struct Mosquitto {
    child: std::process::Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    /// Starts one and waits until it listens.
    pub async fn start(cert: Option<&TestCert>) -> Mosquitto {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("pushwire-mosq-{}", unique()));
        std::fs::create_dir_all(&dir).expect("dir");
        let conf = dir.join("mosquitto.conf");
        let Some(cert) = cert else {
            std::fs::write(
                &conf,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n"),
            )
            .expect("conf");
            return Self::spawn(port, dir, &conf).await;
        };
        let passwd = dir.join("passwd");
        let ok = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args(["dev", "secret"])
            .status()
            .expect("mosquitto_passwd (Debian mosquitto)");
        assert!(ok.success(), "mosquitto_passwd");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\ncertfile {}\nkeyfile {}\npersistence false\n",
                passwd.display(),
                cert.cert_file().display(),
                cert.key_file().display()
            ),
        )
        .expect("conf");
        Self::spawn(port, dir, &conf).await
    }

    /// `mqtt://127.0.0.1:<port>` (the plain listener).
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    async fn spawn(port: u16, dir: PathBuf, conf: &Path) -> Mosquitto {
        let child = std::process::Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto (Debian mosquitto; scripts/start-mosquitto.sh installs it)");
        let addr = format!("127.0.0.1:{port}");
        wait_until(
            "the test's mosquitto listens",
            Duration::from_secs(10),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
            },
        )
        .await;
        Mosquitto { child, port, dir }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
