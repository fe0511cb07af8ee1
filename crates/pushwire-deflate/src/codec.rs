//! One message at a time: raw DEFLATE as RFC 7692 uses it (each message ends with an empty
//! sync-flush block whose `00 00 ff ff` is dropped on the wire and restored before inflating).
//!
//! No context takeover: the compressor and the inflater are reset for every message, so one of
//! each per thread serves every connection and none lives in an idle connection.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

use crate::DeflateError;

/// The tail of a sync flush, dropped from each compressed message (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    /// This thread's compressor and its level.
    static DEFLATER: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    /// This thread's inflater.
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses one message at `level` (0–9) as a permessage-deflate payload.
pub fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    DEFLATER.with_borrow_mut(|slot| {
        let c = match slot {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            _ => {
                &mut slot
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start = c.total_in();
        loop {
            let used = (c.total_in() - start) as usize;
            // A sync flush cannot fail on valid state; an error would only leave a shorter
            // output, which the peer's inflater rejects. Stop rather than loop.
            if c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let done = (c.total_in() - start) as usize == data.len();
            if done && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        out
    })
}

/// Inflates one compressed message (the payload of all its frames, unmasked) into at most
/// `limit` bytes. The output grows step by step and the bound is checked after each step, so
/// a message that inflates past `limit` fails with [`DeflateError::TooBig`] having allocated
/// no more than about `limit`. Invalid DEFLATE data fails with [`DeflateError::Corrupt`].
pub fn inflate(packed: &[u8], limit: usize) -> Result<Vec<u8>, DeflateError> {
    INFLATER.with_borrow_mut(|slot| {
        let d = match slot {
            Some(d) => {
                d.reset(false);
                d
            }
            None => slot.insert(Decompress::new(false)),
        };
        let mut out = Vec::with_capacity((packed.len() * 4).max(64).min(limit.saturating_add(1)));
        let start = d.total_in();
        for input in [packed, &TAIL[..]] {
            let base = d.total_in();
            loop {
                let used = (d.total_in() - base) as usize;
                let before = (d.total_in(), d.total_out());
                let status = d
                    .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| DeflateError::Corrupt)?;
                if out.len() > limit {
                    return Err(DeflateError::TooBig);
                }
                if status == Status::StreamEnd {
                    // A final block ends the message; anything after it is not DEFLATE.
                    let used = (d.total_in() - start) as usize;
                    return if used >= packed.len() {
                        Ok(out)
                    } else {
                        Err(DeflateError::Corrupt)
                    };
                }
                let consumed = (d.total_in() - base) as usize == input.len();
                if consumed && out.len() < out.capacity() {
                    break;
                }
                if out.len() == out.capacity() {
                    // Grow geometrically, never past one byte over the bound.
                    let room = limit.saturating_add(1) - out.len();
                    out.reserve_exact(out.len().max(1024).min(room));
                } else if (d.total_in(), d.total_out()) == before {
                    return Err(DeflateError::Corrupt);
                }
            }
        }
        Ok(out)
    })
}

/// A complete data frame carrying `compressed` (from [`deflate`]) with RSV1 set: text when
/// `text`, else binary. tungstenite writes a frame given as `Message::Frame` as it is
/// (a client-role socket masks it).
pub fn compressed_frame(compressed: Vec<u8>, text: bool) -> Frame {
    let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
    let mut frame = Frame::message(Bytes::from(compressed), opcode, true);
    frame.header_mut().rsv1 = true;
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_every_level() {
        let doc = br#"{"rows":[{"id":1,"name":"a"},{"id":2,"name":"a"}]}"#.repeat(40);
        for level in 0..=9 {
            let packed = deflate(&doc, level);
            assert!(!packed.ends_with(&TAIL));
            assert_eq!(inflate(&packed, doc.len()).unwrap(), doc, "level {level}");
        }
        assert_eq!(inflate(&deflate(b"", 1), 10).unwrap(), b"");
    }

    #[test]
    fn a_bomb_stops_at_the_bound() {
        let bomb = deflate(&vec![0u8; 10 * 1024 * 1024], 9);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(inflate(&bomb, 640 * 1024), Err(DeflateError::TooBig));
        // Exactly at the bound is fine.
        let exact = deflate(&vec![7u8; 4096], 1);
        assert_eq!(inflate(&exact, 4096).unwrap().len(), 4096);
        assert_eq!(inflate(&exact, 4095), Err(DeflateError::TooBig));
    }

    #[test]
    fn garbage_is_corrupt() {
        assert_eq!(inflate(&[0xff; 32], 1 << 20), Err(DeflateError::Corrupt));
        // Stored block whose length check fails.
        assert_eq!(
            inflate(&[0x00, 0x05, 0x00, 0x00, 0x00], 1 << 20),
            Err(DeflateError::Corrupt)
        );
    }
}
