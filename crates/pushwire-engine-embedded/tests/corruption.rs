//! A damaged data file is found at start and reported with its path, never a panic; a second
//! opener of the same data directory is refused, naming it.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::*;
use pushwire_core::engine::Broker;
use pushwire_engine_embedded::{EmbeddedBroker, OpenError};

/// A store with some streams in it, closed.
async fn filled(dir: &TempDir) -> u64 {
    let (broker, _rec) = open(&dir.config());
    for c in 0..20 {
        for n in 1..=20 {
            broker
                .publish(&format!("ch{c}"), publication(n), &history(100))
                .await
                .unwrap();
        }
    }
    drop(broker);
    std::fs::metadata(dir.file()).unwrap().len()
}

fn open_err(dir: &TempDir) -> OpenError {
    match EmbeddedBroker::open(&dir.config()) {
        Ok(_) => panic!("a damaged store opened"),
        Err(e) => e,
    }
}

fn names_the_file(e: &OpenError, dir: &TempDir) {
    let msg = e.to_string();
    eprintln!("start error: {msg}");
    assert!(
        msg.contains(&dir.file().display().to_string()),
        "the error names the data file: {msg}"
    );
    assert!(msg.contains("engine.embedded.path"), "and the key: {msg}");
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_reported_with_its_path() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.file(), vec![0x5au8; 64 * 1024]).unwrap();
    let e = open_err(&dir);
    names_the_file(&e, &dir);
}

#[tokio::test]
async fn a_truncated_file_is_reported_with_its_path() {
    let dir = TempDir::new();
    let len = filled(&dir).await;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file())
        .unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let e = open_err(&dir);
    names_the_file(&e, &dir);
    assert!(matches!(e, OpenError::Corrupted { .. }), "{e}");
}

#[tokio::test]
async fn overwritten_pages_are_detected_by_their_checksums() {
    let dir = TempDir::new();
    let len = filled(&dir).await;
    // Scribble over the middle of the file, where the B-tree pages are.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file())
        .unwrap();
    for at in [len / 4, len / 2, 3 * len / 4] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[0xa5u8; 4096]).unwrap();
    }
    drop(f);
    match EmbeddedBroker::open(&dir.config()) {
        // redb repaired it by rolling back to an intact commit: what is left reads cleanly.
        Ok(broker) => {
            let rec = std::sync::Arc::new(Recorder::default());
            broker.set_handler("n", rec);
            for c in 0..20 {
                let page = read(&broker, &format!("ch{c}"), None).await;
                assert!(page.publications.iter().all(|p| p.offset > 0));
            }
        }
        Err(e) => names_the_file(&e, &dir),
    }
}

#[tokio::test]
async fn a_second_opener_is_refused_naming_the_path() {
    let dir = TempDir::new();
    let (_broker, _rec) = open(&dir.config());
    let e = open_err(&dir);
    assert!(matches!(e, OpenError::Locked { .. }), "{e}");
    names_the_file(&e, &dir);
}

#[tokio::test]
async fn move_aside_keeps_the_damaged_file_and_starts_empty() {
    let dir = TempDir::new();
    let len = filled(&dir).await;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file())
        .unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let config = pushwire_engine_embedded::EmbeddedConfig {
        on_corruption: pushwire_engine_embedded::OnCorruption::MoveAside,
        ..dir.config()
    };
    let (broker, _rec) = open(&config);
    let aside = broker.moved_aside().expect("moved aside").to_owned();
    assert_eq!(
        std::fs::metadata(&aside).unwrap().len(),
        len / 3,
        "kept as it was"
    );
    assert!(aside.starts_with(&dir.0));
    let page = read(&broker, "ch0", None).await;
    assert_eq!(page.position.offset, 0, "an empty store");
    broker
        .publish("ch0", publication(1), &history(10))
        .await
        .unwrap();
}
