//! Space bounds: above `max_size` publishes fail (the node answers internal error 100), reads
//! keep working, and publishing resumes once trimming or removal frees space.

mod common;

use std::time::Duration;

use common::*;
use pushwire_core::engine::{Broker, EngineError};
use pushwire_engine_embedded::{EmbeddedConfig, EmbeddedMetrics};
use pushwire_protocol::{Publication, RawJson};

fn big(n: u64) -> Publication {
    let filler = "x".repeat(16 * 1024);
    Publication {
        data: RawJson::from_json_str(&format!("{{\"n\":{n},\"filler\":\"{filler}\"}}")).unwrap(),
        ..Default::default()
    }
}

#[tokio::test]
async fn above_max_size_publishes_fail_reads_work_and_freed_space_is_used_again() {
    let dir = TempDir::new();
    let config = EmbeddedConfig {
        max_size: 1 << 20,
        ..dir.config()
    };
    let (broker, _rec) = open(&config);
    let mut refused = None;
    for n in 1..=400 {
        match broker.publish("big", big(n), &history(10_000)).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some((n, e));
                break;
            }
        }
    }
    let (n, e) = refused.expect("the cap stops publishing");
    let EngineError::Backend { .. } = &e else {
        panic!("a backend error: {e:?}")
    };
    let msg = e.to_string();
    assert!(msg.contains("max_size"), "{msg}");
    assert!(n > 20, "about 1 MiB was accepted first (stopped at {n})");
    let metrics = broker.metrics_handle();
    assert!(EmbeddedMetrics::get(&metrics.full_rejections) >= 1);
    assert!(EmbeddedMetrics::get(&metrics.publish_errors) >= 1);

    // Reads keep working.
    let page = read(&broker, "big", None).await;
    assert_eq!(page.publications.len() as u64, n - 1);

    // Removing the history frees the pages; once measured again, publishing resumes.
    broker.remove_history("big").await.unwrap();
    broker.sweep().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = broker
        .publish("big", big(n), &history(10_000))
        .await
        .unwrap();
    assert_eq!(
        out.position.unwrap().offset,
        n,
        "the stream goes on where it was"
    );
}

/// A small tmpfs mounted for the test (needs root, as in CI), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("pw-disk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_fails_publishes_keeps_reads_and_recovers_when_space_returns() {
    let Some(disk) = SmallDisk::mount(8 << 20) else {
        panic!("this test mounts a small tmpfs and needs root (CI runs as root)");
    };
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 5 << 20]).unwrap();
    let config = EmbeddedConfig::at(disk.0.join("data").to_string_lossy());
    let (broker, _rec) = open(&config);
    let mut failed = None;
    for n in 1..=400 {
        if let Err(e) = broker.publish("big", big(n), &history(10_000)).await {
            failed = Some((n, e));
            break;
        }
    }
    let (n, e) = failed.expect("the disk fills up");
    println!("disk full after {n} publications: {e}");
    let page = read(&broker, "big", None).await;
    assert_eq!(
        page.publications.len() as u64,
        n - 1,
        "reads keep working, nothing half-written"
    );

    std::fs::remove_file(&filler).unwrap();
    let mut resumed = None;
    for _ in 0..50 {
        match broker.publish("big", big(n), &history(10_000)).await {
            Ok(out) => {
                resumed = Some(out);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let out = resumed.expect("publishing resumes once space returns");
    assert_eq!(out.position.unwrap().offset, n);
    drop(broker);
    let (broker, _rec) = open(&config);
    assert_eq!(
        read(&broker, "big", None).await.publications.len() as u64,
        n
    );
}
