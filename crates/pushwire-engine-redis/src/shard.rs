//! Client-side sharding: which Redis (of `engine.redis.address`) holds a channel.
//!
//! Every channel's keys and PUB/SUB traffic live on one shard, chosen by
//! [`consistent_index`]: FNV-1a (64 bit) of the channel name fed to the jump consistent hash
//! of Lamping and Veach, the mapping centrifugal/centrifuge uses, so a channel lands on the
//! same shard index as in Centrifugo with the same list. Adding a shard at the end moves only
//! about 1/N of the channels. The first shard also carries what is not per channel: the
//! control plane between nodes, channel occupancy and per-user connection counts.

use crate::conn::RedisConn;

use crate::pubsub::PubSubHandle;

/// The shard index in `0..buckets` for `channel` (`buckets` ≥ 1).
pub fn consistent_index(channel: &str, buckets: usize) -> usize {
    // FNV-1a, 64 bit.
    let mut key: u64 = 0xcbf2_9ce4_8422_2325;
    for b in channel.as_bytes() {
        key ^= u64::from(*b);
        key = key.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Jump consistent hash.
    let buckets = buckets as i64;
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// One Redis: its command connection (reconnects by itself) and its PUB/SUB controller.
#[derive(Clone)]
pub(crate) struct Shard {
    /// Commands (scripts, PUBLISH, reads).
    pub conn: RedisConn,
    /// Subscriptions on this Redis.
    pub pubsub: PubSubHandle,
}

/// Every shard, in configured order.
#[derive(Clone)]
pub(crate) struct Shards(Vec<Shard>);

impl Shards {
    /// `shards` must not be empty.
    pub(crate) fn new(shards: Vec<Shard>) -> Shards {
        assert!(!shards.is_empty(), "at least one Redis shard");
        Shards(shards)
    }

    /// The shard that holds `channel`.
    pub(crate) fn of(&self, channel: &str) -> &Shard {
        if self.0.len() == 1 {
            return &self.0[0];
        }
        &self.0[consistent_index(channel, self.0.len())]
    }

    /// The first shard: control plane, occupancy, per-user connection counts.
    pub(crate) fn first(&self) -> &Shard {
        &self.0[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_is_always_zero_and_indexes_stay_in_range() {
        for c in ["", "a", "chat:1", "news"] {
            assert_eq!(consistent_index(c, 1), 0);
            assert!(consistent_index(c, 3) < 3);
        }
    }

    #[test]
    fn spreads_and_moves_few_channels_when_a_shard_is_added() {
        let names: Vec<String> = (0..3000).map(|i| format!("ch{i}")).collect();
        let mut counts = [0usize; 3];
        for n in &names {
            counts[consistent_index(n, 3)] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
        let moved = names
            .iter()
            .filter(|n| consistent_index(n, 3) != consistent_index(n, 4))
            .count();
        // Jump hash moves about a quarter of the keys to the new bucket, none elsewhere.
        assert!((500..1000).contains(&moved), "{moved}");
        assert!(names
            .iter()
            .filter(|n| consistent_index(n, 3) != consistent_index(n, 4))
            .all(|n| consistent_index(n, 4) == 3));
    }
}
