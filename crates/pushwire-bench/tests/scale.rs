//! `pushwire bench scale` at small scale against a real server: two receivers, both
//! publishing phases, and the merge of their parts must add up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use pushwire_bench::{run_scale, BenchArgs, EXIT_OK};
use pushwire_test_support::{TestServer, API_KEY};
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(server: &TestServer, extra: &[&str]) -> BenchArgs {
    let url = server.http_url();
    let base = [
        "bench",
        "scale",
        "--url",
        &url,
        "--api-key",
        API_KEY,
        "--warmup",
        "0",
        "--channel",
        "scl",
    ];
    Cli::parse_from(base.iter().chain(extra)).bench
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bench-scale-{}-{name}", std::process::id()))
}

/// Waits (bounded) until `path` exists.
async fn wait_for(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_publishers_and_merge_add_up() {
    let server = TestServer::start().await;
    let mut receivers = Vec::new();
    let mut ready = Vec::new();
    for (i, first) in ["0", "20"].into_iter().enumerate() {
        let file = temp(&format!("ready-{i}"));
        let _ = std::fs::remove_file(&file);
        // Held for 10 s: long enough for both phases, however slow the machine.
        let a = args(
            &server,
            &[
                "--first-index",
                first,
                "--connections",
                "20",
                "--duration",
                "10",
                "--ready-file",
                file.to_str().unwrap(),
            ],
        );
        ready.push(file);
        receivers.push(tokio::spawn(run_scale(a)));
    }
    for file in &ready {
        wait_for(file).await;
        let r: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(r["established"], 20, "{r}");
    }

    let broadcast = args(
        &server,
        &[
            "--role",
            "publish",
            "--phase",
            "broadcast",
            "--broadcasts",
            "3",
            "--broadcast-interval-ms",
            "100",
        ],
    );
    let (code, broadcast) = run_scale(broadcast).await.expect("broadcast phase");
    assert_eq!(code, EXIT_OK, "{broadcast}");
    let personal = args(
        &server,
        &[
            "--role",
            "publish",
            "--phase",
            "personal",
            "--connections",
            "40",
            "--rate",
            "200",
            "--duration",
            "1",
        ],
    );
    let (code, personal) = run_scale(personal).await.expect("personal phase");
    assert_eq!(code, EXIT_OK, "{personal}");
    let p: Value = serde_json::from_str(&personal).unwrap();
    assert_eq!(
        (&p["role"], &p["phase"]),
        (&"publish".into(), &"personal".into())
    );
    assert_eq!(
        (&p["planned"], &p["sent"]),
        (&200.into(), &200.into()),
        "{p}"
    );

    let mut inputs = Vec::new();
    for (i, receiver) in receivers.into_iter().enumerate() {
        let (code, part) = receiver.await.unwrap().expect("receiver");
        assert_eq!(code, EXIT_OK, "{part}");
        let file = temp(&format!("receiver-{i}.json"));
        std::fs::write(&file, part).unwrap();
        inputs.push(file);
    }
    for (name, part) in [("broadcast", &broadcast), ("personal", &personal)] {
        let file = temp(&format!("publish-{name}.json"));
        std::fs::write(&file, part).unwrap();
        inputs.push(file);
    }
    let mut merge = vec!["--role", "merge", "--json", "--inputs"];
    merge.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let (code, merged) = run_scale(args(&server, &merge)).await.expect("merge");
    let m: Value = serde_json::from_str(&merged).unwrap();
    assert_eq!(code, EXIT_OK, "{m}");
    assert_eq!(
        (&m["receivers"], &m["established"]),
        (&2.into(), &40.into())
    );
    // Every connection got every broadcast once: 3 × 40.
    let b = &m["broadcast"];
    assert_eq!(
        (&b["sent"], &b["expected"], &b["delivered"], &b["lost"]),
        (&3.into(), &120.into(), &120.into(), &0.into()),
        "{b}"
    );
    assert_eq!(b["latency"]["samples"], 120);
    // Each personal publication reached its one subscriber, counted apart from the broadcasts.
    let p = &m["personal"];
    assert_eq!(
        (
            &p["sent"],
            &p["expected"],
            &p["delivered"],
            &p["duplicates"]
        ),
        (&200.into(), &200.into(), &200.into(), &0.into()),
        "{p}"
    );
    assert_eq!(p["latency"]["samples"], 200);
    assert!(p["latency"]["p99_us"].as_u64().unwrap() < 5_000_000, "{p}");
    assert_eq!(m["connect_latency"]["samples"], 40);

    merge.retain(|a| *a != "--json");
    let (_, text) = run_scale(args(&server, &merge))
        .await
        .expect("merge as text");
    assert!(
        text.contains("connections: 40 of 40 established by 2 receivers"),
        "{text}"
    );
    for file in ready.iter().chain(&inputs) {
        let _ = std::fs::remove_file(file);
    }
}
