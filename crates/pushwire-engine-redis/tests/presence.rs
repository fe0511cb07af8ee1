//! Redis presence: shared between nodes, removed at once, expiring when not refreshed.

mod common;

use std::time::Duration;

use common::*;
use pushwire_core::engine::{PresenceManager, PresenceStats};

#[tokio::test]
async fn add_remove_and_stats_across_nodes() {
    let cfg = config();
    let (a, _ea) = presence(&cfg).await;
    let (b, _eb) = presence(&cfg).await;
    a.add("room", info("alice", "c1")).await.unwrap();
    a.add("room", info("alice", "c2")).await.unwrap();
    b.add("room", info("bob", "c3")).await.unwrap();
    b.add("other", info("bob", "c4")).await.unwrap();

    let seen = a.presence("room").await.unwrap();
    let mut clients: Vec<&str> = seen.keys().map(String::as_str).collect();
    clients.sort();
    assert_eq!(clients, ["c1", "c2", "c3"]);
    assert_eq!(seen["c3"].user, "bob");
    assert_eq!(
        b.stats("room").await.unwrap(),
        PresenceStats {
            num_clients: 3,
            num_users: 2
        }
    );

    // Each node removes the entries of its own connections; the others see it at once.
    a.remove("room", "c1").await.unwrap();
    b.remove("room", "c3").await.unwrap();
    assert_eq!(
        a.stats("room").await.unwrap(),
        PresenceStats {
            num_clients: 1,
            num_users: 1
        }
    );
    a.remove("room", "c2").await.unwrap();
    assert!(b.presence("room").await.unwrap().is_empty());
    assert_eq!(b.stats("empty").await.unwrap(), PresenceStats::default());
    assert_eq!(a.num_local_entries(), 0);
    assert_eq!(b.num_local_entries(), 1);
    cleanup(&cfg).await;
}

#[tokio::test]
async fn entries_are_refreshed_while_the_node_lives_and_expire_after_it_dies() {
    let cfg = pushwire_engine_redis::RedisConfig {
        presence_ttl: Duration::from_secs(3),
        ..config()
    };
    let (live, _el) = presence(&cfg).await;
    let (dying, engine) = presence(&cfg).await;
    let (observer, _eo) = presence(&cfg).await;
    live.add("room", info("alice", "live")).await.unwrap();
    dying.add("room", info("bob", "crashed")).await.unwrap();
    assert_eq!(observer.presence("room").await.unwrap().len(), 2);

    // The "crashed" node stops refreshing.
    engine.stop(Duration::from_secs(1)).await;
    drop(dying);

    // Past the TTL the live node's entry is still there (refreshed every second), the dead
    // node's is gone.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let seen = observer.presence("room").await.unwrap();
    let clients: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(clients, ["live"]);
    cleanup(&cfg).await;
}

#[tokio::test]
async fn a_refresh_restores_entries_lost_in_redis() {
    let cfg = config();
    let (p, _e) = presence(&cfg).await;
    p.add("room", info("alice", "c1")).await.unwrap();
    // Redis lost the data (flush, failover without persistence).
    cleanup(&cfg).await;
    assert!(p.presence("room").await.unwrap().is_empty());
    p.refresh().await.unwrap();
    assert_eq!(p.presence("room").await.unwrap().len(), 1);
    p.remove("room", "c1").await.unwrap();
    p.refresh().await.unwrap();
    assert!(p.presence("room").await.unwrap().is_empty());
    assert!(keys(&cfg).await.is_empty(), "nothing left behind");
    cleanup(&cfg).await;
}
