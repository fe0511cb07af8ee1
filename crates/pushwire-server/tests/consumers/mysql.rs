//! The MySQL / MariaDB CDC consumer end to end against MariaDB (row-based binlog:
//! `scripts/start-mariadb-binlog.sh`): 10,000 INSERT / UPDATE / DELETE row changes over 3
//! tables in transactions reach one centrifuge-python subscriber per table channel once each,
//! in commit order, with the node SIGKILLed in the middle of a big transaction and restarted
//! (the binlog position file was not advanced past it, so it is read again and its changes
//! are suppressed by their idempotency keys).
//!
//! Needs MariaDB on 127.0.0.1:3306 (root without password, database `test`), Redis on
//! 127.0.0.1:6379 and the SDKs.

use crate::consumers_common;

use std::time::Duration;

use consumers_common::cdc::ChangeSource;
use consumers_common::*;
use mysql_async::prelude::Queryable;
use pushwire_consumers::mysql_cdc::MysqlCdcSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};

const MARIADB_ADDR: &str = "127.0.0.1:3306";
const URL: &str = "mysql://root@127.0.0.1:3306/test";

async fn db() -> mysql_async::Conn {
    require_service(MARIADB_ADDR, "MariaDB").await;
    mysql_async::Conn::new(mysql_async::Opts::from_url(URL).expect("url"))
        .await
        .expect("connect to MariaDB (root, database test)")
}

/// Three tables, a binlog position file and a `mysql_cdc` consumer over them.
struct Binlog {
    tables: Vec<String>,
    dir: std::path::PathBuf,
    db: tokio::sync::Mutex<mysql_async::Conn>,
}

impl Binlog {
    /// The tables, created.
    async fn new() -> Binlog {
        let id = unique();
        let mut db = db().await;
        let tables: Vec<String> = (1..=3).map(|t| format!("cdc_t{t}_{id}")).collect();
        for t in &tables {
            db.query_drop(format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, n bigint NOT NULL, note text) ENGINE=InnoDB"
            ))
            .await
            .expect("create table");
        }
        let dir = std::env::temp_dir().join(format!("pushwire-mycdc-{id}"));
        std::fs::create_dir_all(&dir).expect("dir");
        Binlog {
            tables,
            dir,
            db: tokio::sync::Mutex::new(db),
        }
    }

    fn position_file(&self) -> std::path::PathBuf {
        self.dir.join("position")
    }
}

impl ChangeSource for Binlog {
    const NAME: &'static str = "MYSQL CDC";
    const FULL_DELETES: bool = true;
    const SDK_TIMEOUT_S: &'static str = "45";

    fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Route `big:mycdc-{table}`, tagged with the op; position in a file of the test's own.
    fn consumer(&self) -> ConsumerConfig {
        let mut c = ConsumerConfig::new("mycdc", ConsumerType::MysqlCdc);
        c.mode = Mode::Route;
        c.route = RouteConfig {
            channel: "big:mycdc-{table}".into(),
            tag_field: "op".into(),
            skip_history: false,
        };
        c.mysql_cdc = Some(MysqlCdcSettings {
            url: URL.into(),
            server_id: 60_000 + (std::process::id() % 5000),
            position_file: self.position_file().display().to_string(),
            tables: self.tables.iter().map(|t| format!("test.{t}")).collect(),
            ..Default::default()
        });
        c
    }

    fn channel(&self, table: &str) -> String {
        format!("big:mycdc-{table}")
    }

    /// Until the binlog position is kept, and a moment more.
    async fn wait_ready(&self) {
        let position_file = self.position_file();
        wait_until("the binlog position kept", Duration::from_secs(20), || {
            let exists = position_file.exists();
            async move { exists }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    async fn execute(&self, sql: &str) {
        self.db
            .lock()
            .await
            .query_drop(sql)
            .await
            .expect("transaction");
    }

    async fn cleanup(&self) {
        let mut db = self.db.lock().await;
        for t in &self.tables {
            let _ = db.query_drop(format!("DROP TABLE {t}")).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_cdc_routes_every_change_once_in_commit_order_across_a_sigkill() {
    let source = Binlog::new().await;
    cdc::every_change_once_in_commit_order_across_a_sigkill(&source).await;
}
