//! The PostgreSQL outbox source against a real PostgreSQL (127.0.0.1:5432, user postgres,
//! database test) and an in-memory node: route mode (`{subject}` is the `method` column, the
//! payload is the data), several partitions, rows deleted after processing.

mod common;

use std::time::Duration;

use common::{node, unique};
use pushwire_consumers::postgresql_outbox::{self, PostgresOutboxSettings};
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, Processor, RouteConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const DSN: &str = "host=127.0.0.1 user=postgres dbname=test";

#[tokio::test(flavor = "multi_thread")]
async fn route_mode_over_partitions_deletes_processed_rows() {
    common::logs();
    let (pg, connection) = tokio_postgres::connect(DSN, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, db test): start it");
    tokio::spawn(connection);
    let table = format!("outbox_route_{}", unique());
    let node = node();
    let mut config = ConsumerConfig::new("pg", ConsumerType::PostgresqlOutbox);
    config.mode = Mode::Route;
    config.route = RouteConfig {
        channel: "ev:{subject}".into(),
        tag_field: "type".into(),
        skip_history: false,
    };
    let settings = PostgresOutboxSettings {
        dsn: DSN.into(),
        table: table.clone(),
        num_partitions: 2,
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let processor = Processor::new(node.clone(), std::sync::Arc::new(common::NoApi), &config)
        .expect("processor");
    let stop = CancellationToken::new();
    let task = tokio::spawn(postgresql_outbox::run(
        "pg".into(),
        settings,
        processor,
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pg
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .is_ok_and(|r| r.get::<_, bool>(0))
    {
        assert!(tokio::time::Instant::now() < deadline, "table not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 1..=6i32 {
        let kind = if n % 2 == 0 { "paid" } else { "created" };
        pg.execute(
            &format!("INSERT INTO {table} (method, payload, partition) VALUES ('orders', $1::text::jsonb, $2)"),
            &[&json!({"type": kind, "n": n}).to_string(), &(n % 2)],
        )
        .await
        .expect("insert");
    }
    while node
        .history("ev:orders", -1, None, false)
        .await
        .map(|h| h.publications.len())
        .unwrap_or(0)
        < 6
    {
        assert!(tokio::time::Instant::now() < deadline, "rows not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = node
        .history("ev:orders", -1, None, false)
        .await
        .expect("history");
    // Per partition in id order: odd rows (partition 1) and even rows (partition 0) each ascend.
    let ns: Vec<(i64, String)> = h
        .publications
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(p.data.as_bytes()).expect("json");
            (v["n"].as_i64().expect("n"), p.tags["type"].clone())
        })
        .collect();
    for parity in [0, 1] {
        let part: Vec<i64> = ns
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n % 2 == parity)
            .collect();
        assert!(
            part.windows(2).all(|w| w[0] < w[1]),
            "order within a partition: {ns:?}"
        );
        assert_eq!(part.len(), 3);
    }
    assert!(
        ns.iter().all(|(n, t)| (t == "paid") == (n % 2 == 0)),
        "{ns:?}"
    );
    let left: i64 = pg
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "processed rows deleted");
    stop.cancel();
    task.await.expect("source task");
    pg.batch_execute(&format!(
        "DROP TABLE {table}; DROP TABLE {table}_dead_letter; DROP FUNCTION {table}_notify();"
    ))
    .await
    .expect("cleanup");
}
