//! Fossil delta encoding (the format of fossil-scm's `delta.c`, which centrifuge-js and
//! Centrifugo use for delta-compressed publications).
//!
//! A delta is text: the target length in base-64 digits and `\n`, then commands
//! `N@O,` (copy `N` bytes from offset `O` of the source), `N:bytes` (insert `N` literal
//! bytes), and the final `C;` with a 32-bit checksum of the target. Literal bytes are copied
//! from the target unchanged, so a delta of UTF-8 text can cut a multi-byte character in two
//! (callers that ship deltas inside JSON strings must check [`std::str::from_utf8`]).
//!
//! [`create`] finds matches with a rolling hash over 16-byte blocks of the source;
//! [`apply`] mirrors the checks of the centrifuge-js decoder.

/// Block size of the rolling hash.
const NHASH: usize = 16;

/// The base-64 digits of integers in a delta.
const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/// Why a delta could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The delta does not follow the format.
    #[error("malformed delta: {0}")]
    Malformed(&'static str),
    /// A copy command reads past the end of the source.
    #[error("copy extends past end of source")]
    CopyOutOfRange,
    /// The output would not have the announced size.
    #[error("output size does not match the delta's header")]
    Size,
    /// The output's checksum is not the delta's.
    #[error("bad checksum")]
    Checksum,
}

/// Rolling hash over a window of [`NHASH`] bytes (Adler-like, as in `delta.c`).
struct Hash {
    a: u16,
    b: u16,
    i: usize,
    z: [u8; NHASH],
}

impl Hash {
    fn new(window: &[u8]) -> Self {
        let mut a: u16 = 0;
        let mut b: u16 = 0;
        let mut z = [0u8; NHASH];
        for (i, &c) in window[..NHASH].iter().enumerate() {
            a = a.wrapping_add(u16::from(c));
            b = b.wrapping_add(((NHASH - i) as u16).wrapping_mul(u16::from(c)));
            z[i] = c;
        }
        Hash { a, b, i: 0, z }
    }

    fn next(&mut self, c: u8) {
        let old = u16::from(self.z[self.i]);
        self.z[self.i] = c;
        self.i = (self.i + 1) & (NHASH - 1);
        self.a = self.a.wrapping_sub(old).wrapping_add(u16::from(c));
        self.b = self
            .b
            .wrapping_sub((NHASH as u16).wrapping_mul(old))
            .wrapping_add(self.a);
    }

    fn value(&self) -> u32 {
        u32::from(self.a) | (u32::from(self.b) << 16)
    }
}

fn put_int(out: &mut Vec<u8>, mut v: u64) {
    if v == 0 {
        out.push(b'0');
        return;
    }
    let mut buf = [0u8; 12];
    let mut n = 0;
    while v > 0 {
        buf[n] = DIGITS[(v & 0x3f) as usize];
        v >>= 6;
        n += 1;
    }
    out.extend(buf[..n].iter().rev());
}

/// Number of base-64 digits of `v`.
fn digit_count(v: u64) -> u64 {
    let mut i = 1;
    let mut x: u64 = 64;
    while v >= x {
        i += 1;
        x <<= 6;
    }
    i
}

/// The 32-bit checksum of `delta.c` (four interleaved byte sums).
pub fn checksum(data: &[u8]) -> u32 {
    let mut sums = [0u32; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        for (s, &b) in sums.iter_mut().zip(c) {
            *s = s.wrapping_add(u32::from(b));
        }
    }
    let [s0, s1, s2, s3] = sums;
    let mut sum = s3
        .wrapping_add(s2 << 8)
        .wrapping_add(s1 << 16)
        .wrapping_add(s0 << 24);
    let rest = chunks.remainder();
    for (i, &b) in rest.iter().enumerate() {
        sum = sum.wrapping_add(u32::from(b) << (24 - 8 * i));
    }
    sum
}

fn put_literal(delta: &mut Vec<u8>, bytes: &[u8]) {
    put_int(delta, bytes.len() as u64);
    delta.push(b':');
    delta.extend_from_slice(bytes);
}

/// The delta that turns `source` into `target`.
pub fn create(source: &[u8], target: &[u8]) -> Vec<u8> {
    let mut delta = Vec::with_capacity(target.len() / 4 + 32);
    put_int(&mut delta, target.len() as u64);
    delta.push(b'\n');
    if source.len() <= NHASH {
        put_literal(&mut delta, target);
        put_int(&mut delta, u64::from(checksum(target)));
        delta.push(b';');
        return delta;
    }
    // Index the source by the hash of each aligned block: landmark[h] is the last block
    // with hash h, collide[b] the previous block with the same hash as b.
    let n_hash = source.len() / NHASH;
    let mut collide = vec![usize::MAX; n_hash];
    let mut landmark = vec![usize::MAX; n_hash];
    let mut i = 0;
    while i + NHASH < source.len() {
        let h = Hash::new(&source[i..]).value() as usize % n_hash;
        collide[i / NHASH] = landmark[h];
        landmark[h] = i / NHASH;
        i += NHASH;
    }

    let mut base = 0usize;
    while base + NHASH < target.len() {
        let mut hash = Hash::new(&target[base..]);
        let mut i = 0usize;
        loop {
            let (mut best_cnt, mut best_ofst, mut best_lit) = (0usize, 0usize, 0usize);
            let mut block = landmark[hash.value() as usize % n_hash];
            let mut limit = 250;
            while block != usize::MAX && limit > 0 {
                limit -= 1;
                let src = block * NHASH;
                // Bytes matching forward from src / base+i.
                let fwd = source[src..]
                    .iter()
                    .zip(&target[base + i..])
                    .take_while(|(a, b)| a == b)
                    .count();
                // And backward, into the literal run before base+i.
                let mut back = 0;
                while back < src
                    && back < i
                    && source[src - back - 1] == target[base + i - back - 1]
                {
                    back += 1;
                }
                let ofst = src - back;
                let cnt = fwd + back;
                let lit = i - back;
                let cost = digit_count(lit as u64)
                    + digit_count(cnt as u64)
                    + digit_count(ofst as u64)
                    + 3;
                if cnt as u64 >= cost && cnt > best_cnt {
                    best_cnt = cnt;
                    best_ofst = ofst;
                    best_lit = lit;
                }
                block = collide[block];
            }
            if best_cnt > 0 {
                if best_lit > 0 {
                    put_literal(&mut delta, &target[base..base + best_lit]);
                    base += best_lit;
                }
                base += best_cnt;
                put_int(&mut delta, best_cnt as u64);
                delta.push(b'@');
                put_int(&mut delta, best_ofst as u64);
                delta.push(b',');
                break;
            }
            if base + i + NHASH >= target.len() {
                put_literal(&mut delta, &target[base..]);
                base = target.len();
                break;
            }
            hash.next(target[base + i + NHASH]);
            i += 1;
        }
    }
    if base < target.len() {
        put_literal(&mut delta, &target[base..]);
    }
    put_int(&mut delta, u64::from(checksum(target)));
    delta.push(b';');
    delta
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn int(&mut self) -> Result<u64, ApplyError> {
        let mut v: u64 = 0;
        let start = self.pos;
        while let Some(&c) = self.data.get(self.pos) {
            let Some(d) = DIGITS.iter().position(|&x| x == c) else {
                break;
            };
            v = v
                .checked_mul(64)
                .and_then(|v| v.checked_add(d as u64))
                .ok_or(ApplyError::Malformed("integer overflow"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(ApplyError::Malformed("integer expected"));
        }
        Ok(v)
    }

    fn char(&mut self) -> Result<u8, ApplyError> {
        let c = *self
            .data
            .get(self.pos)
            .ok_or(ApplyError::Malformed("unterminated delta"))?;
        self.pos += 1;
        Ok(c)
    }
}

/// Applies `delta` to `source`; the checks match the centrifuge-js decoder.
pub fn apply(source: &[u8], delta: &[u8]) -> Result<Vec<u8>, ApplyError> {
    let mut r = Reader {
        data: delta,
        pos: 0,
    };
    let limit = r.int()?;
    if r.char()? != b'\n' {
        return Err(ApplyError::Malformed("size not terminated by newline"));
    }
    let mut out = Vec::with_capacity(limit.min(1 << 24) as usize);
    while r.pos < delta.len() {
        let cnt = r.int()?;
        match r.char()? {
            b'@' => {
                let ofst = r.int()?;
                if r.pos < delta.len() && r.char()? != b',' {
                    return Err(ApplyError::Malformed("copy not terminated by comma"));
                }
                if out.len() as u64 + cnt > limit {
                    return Err(ApplyError::Size);
                }
                let end = ofst
                    .checked_add(cnt)
                    .filter(|&e| e <= source.len() as u64)
                    .ok_or(ApplyError::CopyOutOfRange)?;
                out.extend_from_slice(&source[ofst as usize..end as usize]);
            }
            b':' => {
                if out.len() as u64 + cnt > limit {
                    return Err(ApplyError::Size);
                }
                let end = (r.pos as u64)
                    .checked_add(cnt)
                    .filter(|&e| e <= delta.len() as u64)
                    .ok_or(ApplyError::Malformed("insert past end of delta"))?;
                out.extend_from_slice(&delta[r.pos..end as usize]);
                r.pos = end as usize;
            }
            b';' => {
                if u64::from(checksum(&out)) != cnt {
                    return Err(ApplyError::Checksum);
                }
                if out.len() as u64 != limit {
                    return Err(ApplyError::Size);
                }
                return Ok(out);
            }
            _ => return Err(ApplyError::Malformed("unknown operator")),
        }
    }
    Err(ApplyError::Malformed("unterminated delta"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
        let d = create(source, target);
        assert_eq!(apply(source, &d).unwrap(), target);
        d
    }

    #[test]
    fn integers_in_base_64() {
        let mut v = Vec::new();
        for n in [0u64, 1, 63, 64, 4095, 4096, 1 << 40] {
            v.clear();
            put_int(&mut v, n);
            assert_eq!(v.len() as u64, digit_count(n));
            let mut r = Reader { data: &v, pos: 0 };
            assert_eq!(r.int().unwrap(), n);
        }
        v.clear();
        put_int(&mut v, 100);
        assert_eq!(v, b"1_");
    }

    /// Values computed by fossil's `delta.c` checksum (and centrifuge-js's).
    #[test]
    fn checksum_matches_delta_c() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(b"a"), 0x6100_0000);
        assert_eq!(checksum(b"abcd"), 0x6162_6364);
        assert_eq!(checksum(b"abcdabcd"), 0xC2C4_C6C8);
        assert_eq!(
            checksum(b"abcdefg"),
            0x6162_6364u32.wrapping_add(0x6566_6700)
        );
    }

    /// A hand-checked delta: the header, one copy of the shared prefix, a literal tail.
    #[test]
    fn small_edit_is_a_copy_and_a_literal() {
        let source = b"{\"price\":100,\"name\":\"widget-widget-widget\",\"qty\":1}";
        let target = b"{\"price\":100,\"name\":\"widget-widget-widget\",\"qty\":2}";
        let d = round_trip(source, target);
        let text = String::from_utf8(d.clone()).unwrap();
        assert_eq!(target.len(), 51);
        assert!(text.starts_with("o\n"), "{text}"); // 51 = 'o'
        assert!(text.contains('@'), "{text}");
        assert!(d.len() < 20, "{text}");
    }

    #[test]
    fn short_source_is_all_literal() {
        let d = round_trip(b"abc", b"hello world");
        assert_eq!(&d[..4], b"B\nB:");
    }

    #[test]
    fn empty_target_and_source() {
        round_trip(b"", b"");
        round_trip(b"0123456789abcdefghijk", b"");
        round_trip(b"", b"0123456789abcdefghijk");
    }

    #[test]
    fn a_realistic_document_shrinks_tenfold() {
        let doc = |n: u32| {
            let mut s = String::from("{");
            for i in 0..60 {
                s.push_str(&format!(
                    "\"field_{i}\":\"value number {i} of the document\","
                ));
            }
            s.push_str(&format!("\"seq\":{n},\"price\":{}}}", 1000 + n * 7));
            s
        };
        let (a, b) = (doc(1), doc(2));
        let d = round_trip(a.as_bytes(), b.as_bytes());
        assert!(d.len() * 10 < b.len(), "{} vs {}", d.len(), b.len());
    }

    #[test]
    fn corrupt_deltas_are_refused() {
        let source = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let target = b"0123456789abcdefghijklmnopqrstuvwxyz!";
        let d = create(source, target);
        let mut bad = d.clone();
        let n = bad.len();
        bad[n - 2] = if bad[n - 2] == b'0' { b'1' } else { b'0' };
        assert!(apply(source, &bad).is_err());
        assert_eq!(apply(source, b"5\n5@40,"), Err(ApplyError::CopyOutOfRange));
        assert!(apply(source, &d[..n - 1]).is_err());
        assert!(apply(&source[..20], &d).is_err());
        assert!(apply(source, b"").is_err());
        assert!(apply(source, b"1\n2:ab0;").is_err());
    }

    proptest! {
        #[test]
        fn any_pair_round_trips(
            source in proptest::collection::vec(any::<u8>(), 0..600),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut target = source.clone();
            for (at, b) in edits {
                if !target.is_empty() {
                    let i = at as usize % target.len();
                    target[i] = b;
                }
            }
            target.extend(tail);
            let d = create(&source, &target);
            prop_assert_eq!(apply(&source, &d).unwrap(), target);
        }

        #[test]
        fn unrelated_bytes_round_trip(
            source in proptest::collection::vec(any::<u8>(), 0..300),
            target in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let d = create(&source, &target);
            prop_assert_eq!(apply(&source, &d).unwrap(), target);
        }
    }
}
