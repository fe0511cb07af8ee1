//! Bytes kept in the store. Times are Unix milliseconds (wall clock), so expiry survives a
//! restart; integers are little-endian.
//!
//! - stream meta: `1 | top u64 | meta_expires u64 | version u64 | len u8 | epoch |
//!   version_epoch`;
//! - publication: `expires u64 | protobuf Publication without the offset` (the key holds it);
//! - idempotency record: `expires u64 | offset u64 | epoch` (empty epoch: no position).

use pushwire_protocol::prost::Message as _;
use pushwire_protocol::{pb, Publication, StreamPosition};

use crate::error::StoreError;

const META_FORMAT: u8 = 1;

/// A channel stream's position and version bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The stream's epoch (8 letters).
    pub epoch: String,
    /// Offset of the last publication appended (0: none yet).
    pub top: u64,
    /// When the stream may be forgotten if it holds nothing else (Unix ms).
    pub meta_expires: u64,
    /// Last accepted version in `version_epoch`.
    pub version: u64,
    /// Epoch of the version tracking.
    pub version_epoch: String,
}

impl Meta {
    /// A fresh stream with a new random epoch.
    pub fn new(meta_expires: u64) -> Meta {
        Meta {
            epoch: new_epoch(),
            top: 0,
            meta_expires,
            version: 0,
            version_epoch: String::new(),
        }
    }

    /// The current top position.
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.top,
            epoch: self.epoch.clone(),
        }
    }

    /// Whether a publication with `version` is stale; records it otherwise (same rule as the
    /// memory engine).
    pub fn stale_version(&mut self, version: u64, version_epoch: &str) -> bool {
        if version == 0 {
            return false;
        }
        if version_epoch != self.version_epoch {
            self.version_epoch = version_epoch.to_owned();
            self.version = version;
            return false;
        }
        if version <= self.version {
            return true;
        }
        self.version = version;
        false
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let epoch = &self.epoch.as_bytes()[..self.epoch.len().min(255)];
        let mut b = Vec::with_capacity(26 + epoch.len() + self.version_epoch.len());
        b.push(META_FORMAT);
        b.extend_from_slice(&self.top.to_le_bytes());
        b.extend_from_slice(&self.meta_expires.to_le_bytes());
        b.extend_from_slice(&self.version.to_le_bytes());
        b.push(epoch.len() as u8);
        b.extend_from_slice(epoch);
        b.extend_from_slice(self.version_epoch.as_bytes());
        b
    }

    /// Reads stored bytes.
    pub fn decode(b: &[u8]) -> Result<Meta, StoreError> {
        let bad = StoreError::Malformed("stream meta");
        if b.len() < 26 || b[0] != META_FORMAT {
            return Err(bad);
        }
        let epoch_len = b[25] as usize;
        let epoch = b
            .get(26..26 + epoch_len)
            .ok_or(StoreError::Malformed("stream meta"))?;
        let text = |s: &[u8]| String::from_utf8(s.to_vec()).map_err(|_| bad_meta());
        Ok(Meta {
            top: u64_at(b, 1),
            meta_expires: u64_at(b, 9),
            version: u64_at(b, 17),
            epoch: text(epoch)?,
            version_epoch: text(&b[26 + epoch_len..])?,
        })
    }
}

fn bad_meta() -> StoreError {
    StoreError::Malformed("stream meta")
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A new random epoch: 8 ASCII letters, as the other engines make them.
pub fn new_epoch() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| {
            let n = rng.random_range(0..52u8);
            (if n < 26 { b'a' + n } else { b'A' + n - 26 }) as char
        })
        .collect()
}

/// A publication as stored: its expiry, then protobuf without the offset.
pub fn encode_publication(publication: &Publication, expires: u64) -> Vec<u8> {
    let mut p = pb::Publication::from(publication);
    p.offset = 0;
    let mut b = Vec::with_capacity(8 + p.encoded_len());
    b.extend_from_slice(&expires.to_le_bytes());
    p.encode(&mut b).expect("a Vec grows as needed");
    b
}

/// The expiry of a stored publication.
pub fn publication_expires(b: &[u8]) -> Result<u64, StoreError> {
    if b.len() < 8 {
        return Err(StoreError::Malformed("publication"));
    }
    Ok(u64_at(b, 0))
}

/// Reads a stored publication and gives it `offset`.
pub fn decode_publication(b: &[u8], offset: u64) -> Result<Publication, StoreError> {
    if b.len() < 8 {
        return Err(StoreError::Malformed("publication"));
    }
    let p = pb::Publication::decode(&b[8..]).map_err(|_| StoreError::Malformed("publication"))?;
    let mut p = Publication::from(p);
    p.offset = offset;
    Ok(p)
}

/// An idempotency record: when it expires and the position its publication got.
pub fn encode_idempotency(expires: u64, position: Option<&StreamPosition>) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&expires.to_le_bytes());
    match position {
        Some(p) => {
            b.extend_from_slice(&p.offset.to_le_bytes());
            b.extend_from_slice(p.epoch.as_bytes());
        }
        None => b.extend_from_slice(&0u64.to_le_bytes()),
    }
    b
}

/// Reads an idempotency record: `(expires, position)`.
pub fn decode_idempotency(b: &[u8]) -> Result<(u64, Option<StreamPosition>), StoreError> {
    let bad = || StoreError::Malformed("idempotency record");
    if b.len() < 16 {
        return Err(bad());
    }
    let epoch = String::from_utf8(b[16..].to_vec()).map_err(|_| bad())?;
    let position = (!epoch.is_empty()).then(|| StreamPosition {
        offset: u64_at(b, 8),
        epoch,
    });
    Ok((u64_at(b, 0), position))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwire_protocol::RawJson;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut m = Meta::new(77);
        m.top = 9;
        m.version = 3;
        m.version_epoch = "ve".into();
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
        assert!(Meta::decode(b"\x01short").is_err());
        assert!(Meta::decode(&[0u8; 40]).is_err(), "unknown format");

        let p = Publication {
            data: RawJson::from_bytes(&b"\x00\xffbinary"[..]),
            tags: [("type".to_owned(), "order".to_owned())].into(),
            offset: 5,
            ..Default::default()
        };
        let stored = encode_publication(&p, 1234);
        assert_eq!(publication_expires(&stored).unwrap(), 1234);
        let got = decode_publication(&stored, 42).unwrap();
        assert_eq!(got.offset, 42);
        assert_eq!(got.data.as_bytes(), p.data.as_bytes());
        assert_eq!(got.tags, p.tags);

        let pos = StreamPosition {
            offset: 3,
            epoch: "abc".into(),
        };
        assert_eq!(
            decode_idempotency(&encode_idempotency(5, Some(&pos))).unwrap(),
            (5, Some(pos))
        );
        assert_eq!(
            decode_idempotency(&encode_idempotency(5, None)).unwrap(),
            (5, None)
        );
    }
}
