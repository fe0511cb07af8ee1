//! A stable content hash for idempotency keys of messages that carry no id of their own.

/// FNV-1a 64 over `parts` (each followed by a 0xff separator), as 16 hex digits. Stable across
/// processes and releases (unlike `std`'s hasher), so a redelivery hashes the same.
pub fn fnv1a_hex(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_separated() {
        assert_eq!(fnv1a_hex(&[b"a", b"bc"]), fnv1a_hex(&[b"a", b"bc"]));
        assert_ne!(fnv1a_hex(&[b"ab", b"c"]), fnv1a_hex(&[b"a", b"bc"]));
        assert_eq!(fnv1a_hex(&[]).len(), 16);
    }
}
