//! Model-based test of history and recovery: random interleavings of publish, disconnect,
//! reconnect-with-recovery and reads, checked against a model of what the client must see.
//!
//! Invariants: while connected, a client sees consecutive offsets (no gap, no duplicate); a
//! reconnect recovers exactly the missed publications in order when they are still in history
//! (and within the recovery limit), and says `recovered: false` otherwise; the position it is
//! given then lets it continue without a gap.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use pushwire_core::config::{ChannelOptions, NamespaceConfig, NodeConfig};
use pushwire_core::node::PublishParams;
use pushwire_core::{Client, Node, TransportInfo, TransportKind};
use pushwire_protocol::{Protocol, RawJson};
use serde_json::{json, Value};

const CHANNEL: &str = "chat:model";

#[derive(Debug, Clone)]
enum Op {
    /// Publish this many publications.
    Publish(u8),
    /// Drop the connection.
    Disconnect,
    /// Connect again and resubscribe with recovery from the last seen position.
    Reconnect,
    /// Read what is queued.
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Publish),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Reconnect),
        2 => Just(Op::Read),
    ]
}

fn node(history_size: usize, recovery_limit: usize) -> Arc<Node> {
    let mut config = NodeConfig::default();
    config.client.allow_anonymous_connect_without_token = true;
    config.client.recovery_max_publication_limit = recovery_limit;
    config.channel.namespaces.push(NamespaceConfig {
        name: "chat".into(),
        options: ChannelOptions {
            history_size,
            history_ttl: Duration::from_secs(300),
            force_recovery: true,
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            ..Default::default()
        },
    });
    config.validate().expect("valid");
    Node::new_memory(config, "model", None)
}

/// What the client has seen.
#[derive(Debug, Default)]
struct Seen {
    offset: u64,
    epoch: String,
}

struct Conn {
    client: Arc<Client>,
}

fn transport() -> TransportInfo {
    TransportInfo {
        kind: TransportKind::WebSocket,
        protocol: Protocol::Json,
    }
}

fn messages(client: &Client) -> Vec<Value> {
    client
        .outbox()
        .try_drain()
        .messages
        .iter()
        .map(|m| serde_json::from_slice(m).expect("json"))
        .collect()
}

/// Applies live publication pushes to `seen`, asserting consecutive offsets.
fn read(conn: &Conn, seen: &mut Seen) -> Result<(), TestCaseError> {
    for m in messages(&conn.client) {
        if let Some(p) = m["push"]["pub"].as_object() {
            let offset = p["offset"].as_u64().expect("offset");
            prop_assert_eq!(offset, seen.offset + 1, "gap or duplicate in live delivery");
            seen.offset = offset;
        }
    }
    Ok(())
}

async fn connect(
    node: &Arc<Node>,
    seen: &mut Seen,
    published: u64,
    history: u64,
    limit: u64,
) -> Result<Conn, TestCaseError> {
    let client = Client::new(node.clone(), transport());
    let recover = !seen.epoch.is_empty();
    let frame = format!(
        "{}\n{}",
        json!({"id":1,"connect":{}}),
        json!({"id":2,"subscribe":{"channel":CHANNEL,"recover":recover,"offset":seen.offset,"epoch":seen.epoch}})
    );
    client
        .handle_frame(frame.as_bytes())
        .await
        .expect("no disconnect");
    let msgs = messages(&client);
    prop_assert_eq!(msgs[0]["id"].as_u64(), Some(1));
    let sub = &msgs[1]["subscribe"];
    prop_assert!(sub.is_object(), "subscribe reply: {}", msgs[1]);
    let missed = published - seen.offset;
    if recover {
        prop_assert_eq!(&sub["was_recovering"], &json!(true));
        let expect_recovered = missed <= history && missed <= limit;
        prop_assert_eq!(
            sub["recovered"].as_bool().unwrap_or(false),
            expect_recovered,
            "missed {} history {} limit {}",
            missed,
            history,
            limit
        );
        if expect_recovered {
            let offsets: Vec<u64> = sub["publications"]
                .as_array()
                .map(|a| a.iter().map(|p| p["offset"].as_u64().unwrap()).collect())
                .unwrap_or_default();
            let expected: Vec<u64> = (seen.offset + 1..=published).collect();
            prop_assert_eq!(offsets, expected);
            seen.offset = published;
        } else {
            prop_assert!(sub.get("publications").is_none());
            prop_assert_eq!(sub["offset"].as_u64().unwrap_or(0), published);
            seen.offset = published;
        }
    } else {
        prop_assert_eq!(sub["offset"].as_u64().unwrap_or(0), published);
        seen.offset = published;
    }
    seen.epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    let conn = Conn { client };
    // Publications buffered during the subscribe follow the reply.
    for m in &msgs[2..] {
        if let Some(p) = m["push"]["pub"].as_object() {
            let offset = p["offset"].as_u64().unwrap();
            prop_assert_eq!(offset, seen.offset + 1);
            seen.offset = offset;
        }
    }
    Ok(conn)
}

async fn run(ops: Vec<Op>, history: usize, limit: usize) -> Result<(), TestCaseError> {
    let node = node(history, limit);
    let mut seen = Seen::default();
    let mut published = 0u64;
    let mut conn = Some(connect(&node, &mut seen, 0, history as u64, limit as u64).await?);
    for op in ops {
        match op {
            Op::Publish(n) => {
                for _ in 0..n {
                    published += 1;
                    let data = RawJson::from_json_str(&published.to_string()).unwrap();
                    let out = node
                        .publish(
                            CHANNEL,
                            PublishParams {
                                data,
                                ..Default::default()
                            },
                        )
                        .await
                        .expect("publish");
                    prop_assert_eq!(out.position.expect("history").offset, published);
                }
            }
            Op::Read => {
                if let Some(c) = &conn {
                    read(c, &mut seen)?;
                }
            }
            Op::Disconnect => {
                if let Some(c) = conn.take() {
                    read(&c, &mut seen)?;
                    c.client.cleanup().await;
                }
            }
            Op::Reconnect => {
                if let Some(c) = conn.take() {
                    read(&c, &mut seen)?;
                    c.client.cleanup().await;
                }
                conn =
                    Some(connect(&node, &mut seen, published, history as u64, limit as u64).await?);
            }
        }
    }
    if let Some(c) = &conn {
        read(c, &mut seen)?;
        prop_assert_eq!(seen.offset, published, "a connected client ends up current");
    }
    prop_assert_eq!(node.hub().counts().1, usize::from(conn.is_some()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn recovery_never_loses_or_duplicates(
        ops in proptest::collection::vec(op(), 1..40),
        history in 1usize..12,
        limit in 1usize..12,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops, history, limit))?;
    }
}
