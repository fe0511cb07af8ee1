use super::*;

/// A client frame: masked with `key`, RSV1 as given.
fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else if payload.len() <= 65535 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Frames as (fin, rsv1, opcode, unmasked payload).
fn parse(mut b: &[u8]) -> Vec<(bool, bool, u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let mut h = [0u8; 14];
        h[..2].copy_from_slice(&b[..2]);
        let hl = header_len(&h);
        h[..hl].copy_from_slice(&b[..hl]);
        let len = match h[1] & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as usize,
            127 => u64::from_be_bytes(h[2..10].try_into().unwrap()) as usize,
            n => n as usize,
        };
        let key: [u8; 4] = if h[1] & 0x80 != 0 {
            h[hl - 4..hl].try_into().unwrap()
        } else {
            [0; 4]
        };
        let payload = b[hl..hl + len]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ key[i % 4])
            .collect();
        out.push((h[0] & 0x80 != 0, h[0] & 0x40 != 0, h[0] & 0x0f, payload));
        b = &b[hl + len..];
    }
    out
}

const LIMITS: Limits = Limits {
    wire: 64 * 1024,
    inflated: 640 * 1024,
};

/// Feeds `input` in reads of `chunk` bytes; returns what a reader would see and the failure.
fn run(input: &[u8], chunk: usize) -> (Vec<u8>, Option<DeflateError>) {
    let mut r = Reader::new(true, LIMITS);
    let mut seen = Vec::new();
    for piece in input.chunks(chunk) {
        let mut data = piece.to_vec();
        let kept = r.process(&mut data);
        seen.extend_from_slice(&data[..kept]);
        seen.extend_from_slice(&r.out[r.out_pos..]);
        r.out.clear();
        r.out_pos = 0;
        if r.failed.is_some() {
            break;
        }
    }
    (seen, r.failed)
}

#[test]
fn compressed_messages_become_plain_frames_whatever_the_read_sizes() {
    let doc = br#"{"publish":{"channel":"c","data":{"text":"hello hello hello"}}}"#.repeat(30);
    let packed = codec::deflate(&doc, 1);
    let (a, b) = packed.split_at(packed.len() / 3);
    let mut input = frame(true, false, 1, b"plain", [1, 2, 3, 4]);
    input.extend(frame(true, true, 1, &packed, [9, 8, 7, 6]));
    input.extend(frame(true, false, 9, b"ping", [5, 5, 5, 5]));
    // Fragmented compressed binary message with a ping between its frames.
    input.extend(frame(false, true, 2, a, [1, 1, 1, 1]));
    input.extend(frame(true, false, 9, b"", [0, 0, 0, 0]));
    input.extend(frame(true, false, 0, b, [2, 2, 2, 2]));
    input.extend(frame(true, false, 2, &[], [3, 3, 3, 3]));
    for chunk in [1, 2, 3, 7, 64, 512, 1 << 20] {
        let (seen, failed) = run(&input, chunk);
        assert_eq!(failed, None, "chunk {chunk}");
        let frames = parse(&seen);
        let expect = vec![
            (true, false, 1, b"plain".to_vec()),
            (true, false, 1, doc.clone()),
            (true, false, 9, b"ping".to_vec()),
            (true, false, 9, vec![]),
            (true, false, 2, doc.clone()),
            (true, false, 2, vec![]),
        ];
        assert_eq!(frames, expect, "chunk {chunk}");
    }
}

#[test]
fn a_bomb_fails_after_the_frames_before_it() {
    let bomb = codec::deflate(&vec![0u8; 10 * 1024 * 1024], 9);
    let mut input = frame(true, false, 1, b"first", [1, 2, 3, 4]);
    input.extend(frame(true, true, 1, &bomb, [1, 2, 3, 4]));
    let (seen, failed) = run(&input, 4096);
    assert_eq!(failed, Some(DeflateError::TooBig));
    assert_eq!(parse(&seen), vec![(true, false, 1, b"first".to_vec())]);
}

#[test]
fn the_wire_bound_is_checked_from_headers() {
    let big = vec![b'a'; LIMITS.wire + 1];
    let (_, failed) = run(&frame(true, false, 1, &big[..200], [0; 4]), 100);
    assert_eq!(failed, None);
    // Declared too long: fails before its payload arrives.
    let mut input = frame(true, false, 1, &big, [0; 4]);
    input.truncate(20);
    assert_eq!(run(&input, 20).1, Some(DeflateError::TooBig));
    // Fragments adding up past the bound.
    let mut input = frame(false, false, 1, &big[..LIMITS.wire / 2 + 1], [0; 4]);
    input.extend(frame(true, false, 0, &big[..LIMITS.wire / 2 + 1], [0; 4]));
    assert_eq!(run(&input, 1000).1, Some(DeflateError::TooBig));
}

#[test]
fn corrupt_and_misframed_messages_fail() {
    assert_eq!(
        run(&frame(true, true, 1, &[0xff; 16], [1, 2, 3, 4]), 64).1,
        Some(DeflateError::Corrupt)
    );
    let packed = codec::deflate(b"hello", 1);
    let mut input = frame(false, true, 1, &packed, [0; 4]);
    input.extend(frame(true, true, 0, b"", [0; 4]));
    assert_eq!(run(&input, 64).1, Some(DeflateError::Protocol));
    let mut input = frame(false, true, 1, &packed, [0; 4]);
    input.extend(frame(true, false, 1, b"new message", [0; 4]));
    assert_eq!(run(&input, 64).1, Some(DeflateError::Protocol));
}

#[tokio::test]
async fn through_a_real_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut peer, ours) = tokio::io::duplex(64);
    let mut s = DeflateStream::negotiated(ours, true, LIMITS);
    assert!(s.is_negotiated());
    let doc = b"abcabcabcabc".repeat(100);
    let input = frame(true, true, 2, &codec::deflate(&doc, 6), [4, 3, 2, 1]);
    let writer = tokio::spawn(async move {
        peer.write_all(&input).await.unwrap();
        peer
    });
    let mut seen = vec![0u8; 2 + 2 + 4 + doc.len()];
    s.read_exact(&mut seen).await.unwrap();
    assert_eq!(parse(&seen), vec![(true, false, 2, doc)]);
    drop(writer.await);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}
