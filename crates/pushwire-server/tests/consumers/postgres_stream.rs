//! `postgresql_cdc` read over the replication protocol (`read = "stream"`, the default) and
//! through the SQL interface (`read = "peek"`):
//! - streamed, a commit reaches the subscriber at once while `poll_interval` is a minute, over
//!   a walsender (`pg_stat_replication`);
//! - an idle stream outlives a 1 s `wal_sender_timeout` (the keepalives are answered: the same
//!   walsender serves throughout), and the slot's confirmed position follows WAL written to
//!   tables outside the publication;
//! - over TLS (`sslmode=require`, the server verified against `tls_ca_pem_file`) the walsender's
//!   session is encrypted;
//! - a role without the REPLICATION attribute is named (`postgresql_cdc.dsn`) on `/health`
//!   and retried until it has it;
//! - `peek` reads with no replication connection and confirms the slot;
//! - on a private PostgreSQL (password authentication): SCRAM-SHA-256 and MD5 both stream, and
//!   a stream cut by PostgreSQL restarting resumes with every change once, in commit order.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres, database test, wal_level =
//! logical: scripts/start-postgresql-logical.sh).

use crate::consumers_common;

use std::time::{Duration, Instant};

use consumers_common::*;
use pushwire_consumers::postgresql_cdc::{PostgresCdcSettings, ReadMode};
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;
use tokio_postgres::{Client, NoTls};

const PG_ADDR: &str = "127.0.0.1:5432";

async fn pg() -> Client {
    require_service(PG_ADDR, "PostgreSQL").await;
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", NoTls)
            .await
            .expect("connect to PostgreSQL (user postgres, db test)");
    tokio::spawn(connection);
    client
}

/// One table `s_<id>` in publication and slot `s_<id>`, and a consumer routing its changes to
/// `chat:s-<id>-<row.id>` that connects as `application_name` `pws-<id>`.
struct Fixture {
    id: String,
    table: String,
    app: String,
}

impl Fixture {
    async fn new(pg: &Client) -> Fixture {
        let id = unique();
        let table = format!("s_{id}");
        pg.batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, status text)"
        ))
        .await
        .expect("create table");
        Fixture {
            app: format!("pws-{id}"),
            id,
            table,
        }
    }

    fn slot(&self) -> String {
        format!("s_{}", self.id)
    }

    fn channel(&self, row: u64) -> String {
        format!("chat:s-{}-{row}", self.id)
    }

    /// The consumer; `dsn_extra` is appended to the DSN.
    fn consumer(
        &self,
        dsn_extra: &str,
        edit: impl FnOnce(&mut PostgresCdcSettings),
    ) -> ConsumerConfig {
        let mut c = ConsumerConfig::new("cdc", ConsumerType::PostgresqlCdc);
        c.mode = Mode::Route;
        c.route = RouteConfig {
            channel: format!("chat:s-{}-{{row.id}}", self.id),
            tag_field: "op".into(),
            skip_history: false,
        };
        c.retry_backoff_min = Duration::from_millis(50);
        c.retry_backoff_max = Duration::from_millis(300);
        let mut s = PostgresCdcSettings {
            dsn: format!(
                "host=127.0.0.1 port=5432 user=postgres dbname=test application_name={} {dsn_extra}",
                self.app
            ),
            slot: self.slot(),
            publication: self.slot(),
            tables: vec![self.table.clone()],
            ..Default::default()
        };
        edit(&mut s);
        c.postgresql_cdc = Some(s);
        c
    }

    /// The pid of the walsender serving the consumer, if one does.
    async fn walsender(&self, pg: &Client) -> Option<i32> {
        pg.query_opt(
            "SELECT pid FROM pg_stat_replication WHERE application_name = $1",
            &[&self.app],
        )
        .await
        .expect("read pg_stat_replication")
        .map(|r| r.get(0))
    }

    async fn wait_walsender(&self, pg: &Client) -> i32 {
        wait_until(
            "the consumer streams the slot",
            Duration::from_secs(20),
            || async { self.walsender(pg).await.is_some() },
        )
        .await;
        self.walsender(pg).await.expect("walsender")
    }

    async fn confirmed_flush_lsn(&self, pg: &Client) -> Option<String> {
        pg.query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&self.slot()],
        )
        .await
        .expect("read slots")
        .and_then(|r| r.get(0))
    }

    /// Whether the slot is confirmed at or past `lsn`.
    async fn confirmed_past(&self, pg: &Client, lsn: &str) -> bool {
        let Some(confirmed) = self.confirmed_flush_lsn(pg).await else {
            return false;
        };
        pg.query_one(
            "SELECT $1::text::pg_lsn >= $2::text::pg_lsn",
            &[&confirmed, &lsn],
        )
        .await
        .expect("compare LSNs")
        .get(0)
    }

    async fn cleanup(&self, pg: &Client) {
        for _ in 0..50 {
            let dropped = pg
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.slot()],
                )
                .await;
            if dropped.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = pg
            .batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {}; DROP TABLE IF EXISTS {}",
                self.slot(),
                self.table
            ))
            .await;
    }
}

async fn subscribed(server: &TestServer, channel: &str) -> WsClient {
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    ws
}

async fn health(server: &TestServer) -> String {
    reqwest::get(format!("{}/health", server.http_url()))
        .await
        .expect("GET /health")
        .text()
        .await
        .expect("health body")
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_streams_a_commit_at_once_while_poll_interval_is_a_minute() {
    let pg = pg().await;
    let f = Fixture::new(&pg).await;
    let c = f.consumer("", |s| s.poll_interval = Duration::from_secs(60));
    let server = TestServer::start_with(|conf| conf.consumers = vec![c]).await;
    f.wait_walsender(&pg).await;
    let mut ws = subscribed(&server, &f.channel(1)).await;
    // Past the first read: a poll would now sleep for a minute.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut waits = Vec::new();
    for (n, status) in ["new", "paid", "sent"].iter().enumerate() {
        let committed = Instant::now();
        if n == 0 {
            pg.execute(
                &format!("INSERT INTO {} VALUES (1, $1)", f.table),
                &[status],
            )
            .await
            .expect("insert");
        } else {
            pg.execute(
                &format!("UPDATE {} SET status = $1 WHERE id = 1", f.table),
                &[status],
            )
            .await
            .expect("update");
        }
        let p = tokio::time::timeout(Duration::from_secs(5), ws.next_publication(&f.channel(1)))
            .await
            .expect("the change streamed, not polled a minute later");
        waits.push(committed.elapsed());
        assert_eq!(p["data"]["row"], json!({"id": 1, "status": status}), "{p}");
    }
    println!("commit → subscriber while poll_interval = 60s: {waits:?}");
    server.stop().await;
    f.cleanup(&pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_idle_stream_outlives_a_short_wal_sender_timeout() {
    let pg = pg().await;
    let f = Fixture::new(&pg).await;
    let other = format!("s_other_{}", f.id);
    pg.batch_execute(&format!("CREATE TABLE {other} (n bigint)"))
        .await
        .expect("create unpublished table");
    // The walsender drops a client silent for 1 s; status updates alone come every minute.
    let c = f.consumer("options='-c wal_sender_timeout=1000'", |s| {
        s.status_interval = Duration::from_secs(60)
    });
    let server = TestServer::start_with(|conf| conf.consumers = vec![c]).await;
    let pid = f.wait_walsender(&pg).await;

    // WAL the publication does not carry: once caught up, the slot is confirmed past it.
    pg.execute(&format!("INSERT INTO {other} VALUES (1)"), &[])
        .await
        .expect("unpublished insert");
    let lsn: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("current lsn")
        .get(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        f.walsender(&pg).await,
        Some(pid),
        "the same walsender serves after 4 idle seconds (keepalives answered)"
    );
    wait_until(
        "the idle slot confirmed past unpublished WAL",
        Duration::from_secs(10),
        || f.confirmed_past(&pg, &lsn),
    )
    .await;

    let mut ws = subscribed(&server, &f.channel(5)).await;
    pg.execute(&format!("INSERT INTO {} VALUES (5, 'late')", f.table), &[])
        .await
        .expect("insert");
    let p = ws.next_publication(&f.channel(5)).await;
    assert_eq!(p["data"]["row"], json!({"id": 5, "status": "late"}), "{p}");
    assert_eq!(f.walsender(&pg).await, Some(pid), "never reconnected");
    server.stop().await;
    let _ = pg.batch_execute(&format!("DROP TABLE {other}")).await;
    f.cleanup(&pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_stream_over_tls_verifies_the_server() {
    let pg = pg().await;
    let ssl: String = pg.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "PostgreSQL must serve TLS (ssl = on, Debian's default)"
    );
    // The server's own certificate (Debian: the snakeoil one, for `localhost`) as the root.
    let cert: String = pg
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let f = Fixture::new(&pg).await;
    let mut c = f.consumer("sslmode=require", |s| s.tls_ca_pem_file = cert);
    if let Some(s) = c.postgresql_cdc.as_mut() {
        s.dsn = s.dsn.replace("host=127.0.0.1", "host=localhost");
    }
    let server = TestServer::start_with(|conf| conf.consumers = vec![c]).await;
    let pid = f.wait_walsender(&pg).await;
    let mut ws = subscribed(&server, &f.channel(3)).await;
    pg.execute(&format!("INSERT INTO {} VALUES (3, 'tls')", f.table), &[])
        .await
        .expect("insert");
    let p = ws.next_publication(&f.channel(3)).await;
    assert_eq!(p["data"]["row"], json!({"id": 3, "status": "tls"}), "{p}");
    let encrypted: bool = pg
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&pid])
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted, "the walsender's session is encrypted");
    server.stop().await;
    f.cleanup(&pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_role_without_replication_is_named_and_retried() {
    let pg = pg().await;
    let f = Fixture::new(&pg).await;
    let role = format!("norep_{}", f.id);
    pg.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN NOREPLICATION; CREATE PUBLICATION {slot} FOR TABLE {table}",
        slot = f.slot(),
        table = f.table
    ))
    .await
    .expect("role and publication");
    pg.query_one(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')::text",
        &[&f.slot()],
    )
    .await
    .expect("slot");
    let mut c = f.consumer("", |s| s.create_slot = false);
    if let Some(s) = c.postgresql_cdc.as_mut() {
        s.dsn = s.dsn.replace("user=postgres", &format!("user={role}"));
    }
    let server = TestServer::start_with(|conf| conf.consumers = vec![c]).await;
    wait_until(
        "/health names the missing REPLICATION attribute",
        Duration::from_secs(20),
        || async {
            let h = health(&server).await;
            h.contains("postgresql_cdc.dsn") && h.contains("REPLICATION")
        },
    )
    .await;
    println!("/health: {}", health(&server).await);
    let mut ws = subscribed(&server, &f.channel(9)).await;
    pg.batch_execute(&format!("ALTER ROLE {role} REPLICATION"))
        .await
        .expect("grant REPLICATION");
    f.wait_walsender(&pg).await;
    pg.execute(
        &format!("INSERT INTO {} VALUES (9, 'granted')", f.table),
        &[],
    )
    .await
    .expect("insert");
    let p = ws.next_publication(&f.channel(9)).await;
    assert_eq!(
        p["data"]["row"],
        json!({"id": 9, "status": "granted"}),
        "{p}"
    );
    wait_until("/health clears", Duration::from_secs(10), || async {
        !health(&server).await.contains("postgresql_cdc.dsn")
    })
    .await;
    server.stop().await;
    f.cleanup(&pg).await;
    let _ = pg
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_peek_fallback_reads_without_a_replication_connection() {
    let pg = pg().await;
    let f = Fixture::new(&pg).await;
    let c = f.consumer("", |s| {
        s.read = ReadMode::Peek;
        s.poll_interval = Duration::from_millis(20);
    });
    let server = TestServer::start_with(|conf| conf.consumers = vec![c]).await;
    wait_until("the slot exists", Duration::from_secs(20), || async {
        f.confirmed_flush_lsn(&pg).await.is_some()
    })
    .await;
    let mut ws = subscribed(&server, &f.channel(4)).await;
    // Before the changes: once they are confirmed, the slot is past it.
    let lsn: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("current lsn")
        .get(0);
    pg.batch_execute(&format!(
        "INSERT INTO {t} VALUES (4, 'new'); UPDATE {t} SET status = 'paid' WHERE id = 4; \
         DELETE FROM {t} WHERE id = 4",
        t = f.table
    ))
    .await
    .expect("changes");
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = ws.next_publication(&f.channel(4)).await;
        got.push(p["data"]["op"].clone());
    }
    assert_eq!(got, vec![json!("insert"), json!("update"), json!("delete")]);
    assert_eq!(
        f.walsender(&pg).await,
        None,
        "peek opens no replication connection"
    );
    wait_until("peek confirmed the slot", Duration::from_secs(10), || {
        f.confirmed_past(&pg, &lsn)
    })
    .await;
    server.stop().await;
    f.cleanup(&pg).await;
}

/// A private PostgreSQL 15 (`initdb` as user postgres, `md5` in pg_hba.conf, logical WAL) on a
/// free port: role `postgres` has a SCRAM-SHA-256 password (the server then asks for SCRAM),
/// role `md5_user` an MD5 one (the server asks for MD5). Stopped (immediate) on drop.
struct PasswordPostgres {
    dir: std::path::PathBuf,
    port: u16,
    server: std::process::Child,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const PASSWORD: &str = "s3cret-pw";

impl PasswordPostgres {
    async fn start() -> PasswordPostgres {
        let dir = std::env::temp_dir().join(format!("pushwire-pgauth-{}", unique()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("password file");
        let data = dir.join("data");
        let as_postgres = |program: &str| {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &format!("{PG_BIN}/{program}")]);
            c
        };
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(chown.success());
        let init = as_postgres("initdb")
            .args(["-A", "md5", "-U", "postgres", "--no-sync", "--pwfile"])
            .arg(&pwfile)
            .arg("-D")
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(init.status.success(), "initdb: {init:?}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let server = as_postgres("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "wal_level=logical", "-c", "fsync=off"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres");
        let pg = PasswordPostgres { dir, port, server };
        wait_until(
            "the private PostgreSQL accepts",
            Duration::from_secs(30),
            || async { pg.client("postgres").await.is_some() },
        )
        .await;
        let c = pg.client("postgres").await.expect("connect");
        c.batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '{PASSWORD}'; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5_user LOGIN REPLICATION SUPERUSER PASSWORD '{PASSWORD}'"
        ))
        .await
        .expect("md5 role");
        pg
    }

    fn dsn(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={PASSWORD} dbname=postgres",
            self.port
        )
    }

    async fn client(&self, user: &str) -> Option<Client> {
        let (client, connection) = tokio_postgres::connect(&self.dsn(user), NoTls).await.ok()?;
        tokio::spawn(connection);
        Some(client)
    }
}

impl Drop for PasswordPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"])
            .output();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_stream_authenticates_with_scram_and_md5() {
    let private = PasswordPostgres::start().await;
    let admin = private.client("postgres").await.expect("connect");
    let methods: Vec<String> = admin
        .query(
            "SELECT rolname || ':' || left(rolpassword, 3) FROM pg_authid \
             WHERE rolname IN ('postgres', 'md5_user') ORDER BY rolname",
            &[],
        )
        .await
        .expect("read pg_authid")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        methods,
        ["md5_user:md5", "postgres:SCR"],
        "one password of each kind"
    );
    admin
        .batch_execute("CREATE TABLE orders (id bigint PRIMARY KEY, status text)")
        .await
        .expect("table");
    let server = TestServer::start().await;
    for (n, user) in [(1u64, "postgres"), (2, "md5_user")] {
        let slot = format!("auth_{user}");
        let app = format!("pwauth-{user}");
        let mut c = ConsumerConfig::new(format!("cdc-{user}"), ConsumerType::PostgresqlCdc);
        c.mode = Mode::Route;
        c.route = RouteConfig {
            channel: format!("chat:auth-{user}-{{row.id}}"),
            tag_field: "op".into(),
            skip_history: false,
        };
        c.postgresql_cdc = Some(PostgresCdcSettings {
            dsn: format!("{} application_name={app}", private.dsn(user)),
            slot: slot.clone(),
            publication: slot.clone(),
            tables: vec!["orders".into()],
            ..Default::default()
        });
        let stop = tokio_util::sync::CancellationToken::new();
        let consumers = pushwire_consumers::start(
            server.node().clone(),
            pushwire_server::api::consumer::ConsumerApi::shared(server.node().clone()),
            &[c],
            stop,
        );
        wait_until(
            &format!("{user} streams"),
            Duration::from_secs(20),
            || async {
                admin
                    .query_opt(
                        "SELECT 1 FROM pg_stat_replication WHERE application_name = $1",
                        &[&app],
                    )
                    .await
                    .expect("pg_stat_replication")
                    .is_some()
            },
        )
        .await;
        let channel = format!("chat:auth-{user}-{n}");
        let mut ws = subscribed(&server, &channel).await;
        admin
            .execute("INSERT INTO orders VALUES ($1, $2)", &[&(n as i64), &user])
            .await
            .expect("insert");
        let p = ws.next_publication(&channel).await;
        assert_eq!(p["data"]["row"], json!({"id": n, "status": user}), "{p}");
        consumers.stop().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_stream_resumes_after_postgresql_restarts() {
    let private = PasswordPostgres::start().await;
    let admin = private.client("postgres").await.expect("connect");
    admin
        .batch_execute("CREATE TABLE orders (id bigint PRIMARY KEY, status text)")
        .await
        .expect("table");
    let mut c = ConsumerConfig::new("cdc-restart", ConsumerType::PostgresqlCdc);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: "chat:restart".into(),
        tag_field: "op".into(),
        skip_history: false,
    };
    c.retry_backoff_min = Duration::from_millis(50);
    c.retry_backoff_max = Duration::from_millis(300);
    c.postgresql_cdc = Some(PostgresCdcSettings {
        dsn: private.dsn("postgres"),
        slot: "restart".into(),
        publication: "restart".into(),
        tables: vec!["orders".into()],
        ..Default::default()
    });
    let server = TestServer::start_with(|conf| conf.consumers = vec![c]).await;
    let mut ws = subscribed(&server, "chat:restart").await;
    wait_until("the slot exists", Duration::from_secs(20), || async {
        admin
            .query_opt("SELECT 1 FROM pg_replication_slots WHERE active", &[])
            .await
            .is_ok_and(|r| r.is_some())
    })
    .await;
    let mut ids = Vec::new();
    for id in 1..=20i64 {
        admin
            .execute("INSERT INTO orders VALUES ($1, 'before')", &[&id])
            .await
            .expect("insert");
    }
    for _ in 1..=10 {
        ids.push(ws.next_publication("chat:restart").await["data"]["row"]["id"].clone());
    }
    // Restarted under the stream (fast shutdown: sessions cut); some changes still in flight.
    let restart = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
        .arg("-D")
        .arg(private.dir.join("data"))
        .args(["restart", "-m", "fast", "-w", "-l"])
        .arg(private.dir.join("restart.log"))
        .output()
        .expect("pg_ctl restart");
    assert!(restart.status.success(), "pg_ctl restart: {restart:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        if let Some(client) = private.client("postgres").await {
            break client;
        }
        assert!(Instant::now() < deadline, "PostgreSQL never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in 21..=30i64 {
        admin
            .execute("INSERT INTO orders VALUES ($1, 'after')", &[&id])
            .await
            .expect("insert after the restart");
    }
    while ids.len() < 30 {
        ids.push(ws.next_publication("chat:restart").await["data"]["row"]["id"].clone());
    }
    assert_eq!(
        ids,
        (1..=30).map(|i| json!(i)).collect::<Vec<_>>(),
        "every change once, in commit order, across the restart"
    );
    assert!(
        ws.silent_for(Duration::from_millis(500)).await,
        "no change twice"
    );
    server.stop().await;
}
