//! Redis Cluster hash slots: which slot a key lives in, and the hash tags of the sharded
//! PUB/SUB partitions.
//!
//! On a cluster, every channel belongs to one of `engine.redis.sharded_pub_sub_partitions`
//! partitions ([`crate::keys::Keys::partition`]); all keys and the shard channel of a channel
//! carry its partition's hash tag, so they share one slot. Bare indexes as tags (`{0}`,
//! `{1}`, …) hash to arbitrary slots and can leave a master without any partition;
//! [`partition_tags`] instead picks, for partition `i` of `n`, the first tag `p<k>` whose slot
//! falls in the `i`-th of `n` equal slot ranges, so partitions spread over the masters in
//! proportion to the slots they serve (the idea of Centrifugo PRO's precomputed partition
//! tags; computed here at start-up instead of shipped as a table).

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in data {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`, honouring a hash tag (`{…}`: the first `{` and the first `}` after
/// it, when not empty) as Redis does.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|b| *b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16(hashed) % SLOTS
}

/// Hash tags (without braces) for `n` partitions (`1..=SLOTS`): tag `i` hashes into the
/// `i`-th of `n` equal slot ranges.
pub fn partition_tags(n: usize) -> Vec<String> {
    let n = n.clamp(1, SLOTS as usize);
    let mut tags: Vec<Option<String>> = vec![None; n];
    let mut missing = n;
    let mut k: u64 = 0;
    while missing > 0 {
        let tag = format!("p{k}");
        let range = key_slot(&tag) as usize * n / SLOTS as usize;
        if tags[range].is_none() {
            tags[range] = Some(tag);
            missing -= 1;
        }
        k += 1;
    }
    tags.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli cluster keyslot`.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("123456789"), 12739);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    }

    #[test]
    fn partition_tags_cover_equal_slot_ranges() {
        for n in [1, 3, 16, 64] {
            let tags = partition_tags(n);
            assert_eq!(tags.len(), n);
            for (i, t) in tags.iter().enumerate() {
                assert_eq!(key_slot(t) as usize * n / SLOTS as usize, i, "{t}");
            }
        }
    }
}
