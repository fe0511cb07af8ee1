//! The Redis engine's families (`pushwire_redis_*`), rendered only when the node runs on the
//! Redis engine. Names and meanings are listed in docs/observability.md; every value is one
//! atomic read of [`RedisMetrics`].

use pushwire_engine_redis::RedisMetrics;

use super::text::Exposition;

/// Appends the `pushwire_redis_*` families of `m` to `out`.
pub fn render(out: &mut String, m: &RedisMetrics) {
    let get = RedisMetrics::get;
    let mut e = Exposition::default();
    e.counter(
        "pushwire_redis_publications_total",
        "Publications Redis accepted and sent over PUB/SUB (duplicates and stale versions excluded).",
        get(&m.publications),
    );
    e.counter(
        "pushwire_redis_publish_errors_total",
        "Publications that failed in Redis (connection, timeout, script error).",
        get(&m.publish_errors),
    );
    e.counter(
        "pushwire_redis_history_reads_total",
        "History reads (API, client history, subscribe with recovery or positioning).",
        get(&m.history_reads),
    );
    e.counter(
        "pushwire_redis_history_errors_total",
        "History reads that failed in Redis (an epoch mismatch is not an error).",
        get(&m.history_errors),
    );
    e.counter(
        "pushwire_redis_presence_errors_total",
        "Presence operations that failed in Redis (add, remove, read, periodic refresh).",
        get(&m.presence_errors),
    );
    e.counter(
        "pushwire_redis_pubsub_messages_total",
        "Messages received on the node's PUB/SUB connection (publications, joins, leaves).",
        get(&m.pubsub_messages),
    );
    e.counter(
        "pushwire_redis_pubsub_reconnects_total",
        "Times the PUB/SUB connection was lost and re-established (subscribers told 3010).",
        get(&m.pubsub_reconnects),
    );
    e.gauge(
        "pushwire_redis_pubsub_connected",
        "1 while the node's PUB/SUB connection is up, 0 while it reconnects.",
        get(&m.pubsub_connected),
    );
    out.push_str(&e.finish());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_value() {
        let m = RedisMetrics::default();
        RedisMetrics::inc(&m.publications);
        m.set_pubsub_connected(true);
        let mut out = String::new();
        render(&mut out, &m);
        assert!(
            out.contains("\npushwire_redis_publications_total 1\n"),
            "{out}"
        );
        assert!(
            out.contains("\npushwire_redis_pubsub_connected 1\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE pushwire_redis_pubsub_connected gauge\n"),
            "{out}"
        );
        assert_eq!(out.matches("# TYPE pushwire_redis_").count(), 8, "{out}");
    }
}
