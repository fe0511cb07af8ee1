//! One channel's stream in memory: bounded publications with offsets inside an epoch, plus
//! the idempotency and version bookkeeping of the channel.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use pushwire_protocol::{Publication, StreamPosition};
use rand::Rng;
use tokio::time::Instant;

use super::broker::{EngineError, HistoryPage, HistoryQuery};

/// How long an idempotency key suppresses duplicates.
pub(super) const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

/// A new random epoch: 8 ASCII letters.
pub(super) fn new_epoch() -> String {
    let mut rng = rand::rng();
    (0..8)
        .map(|_| {
            let n = rng.random_range(0..52u8);
            (if n < 26 { b'a' + n } else { b'A' + n - 26 }) as char
        })
        .collect()
}

#[derive(Debug)]
struct Item {
    expires: Instant,
    publication: Publication,
}

/// An earlier publication with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Duplicate {
    /// The position the earlier publication got; `None` when it was published without history.
    pub position: Option<StreamPosition>,
}

/// A channel's state in the memory broker.
#[derive(Debug)]
pub(super) struct Stream {
    epoch: String,
    top: u64,
    items: VecDeque<Item>,
    meta_expires: Instant,
    idempotency: HashMap<String, (Instant, Option<StreamPosition>)>,
    version: u64,
    version_epoch: String,
}

impl Stream {
    /// A fresh stream with a new epoch, alive until `now + meta_ttl`.
    pub(super) fn new(now: Instant, meta_ttl: Duration) -> Self {
        Stream {
            epoch: new_epoch(),
            top: 0,
            items: VecDeque::new(),
            meta_expires: now + meta_ttl,
            idempotency: HashMap::new(),
            version: 0,
            version_epoch: String::new(),
        }
    }

    /// The current top position.
    pub(super) fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.top,
            epoch: self.epoch.clone(),
        }
    }

    /// The earlier publication with `key`, if `key` was seen recently.
    pub(super) fn duplicate(&self, key: &str, now: Instant) -> Option<Duplicate> {
        self.idempotency
            .get(key)
            .filter(|(exp, _)| *exp > now)
            .map(|(_, pos)| Duplicate {
                position: pos.clone(),
            })
    }

    /// Remembers `key` for the idempotency window.
    pub(super) fn remember(&mut self, key: String, position: Option<StreamPosition>, now: Instant) {
        self.idempotency
            .insert(key, (now + IDEMPOTENCY_WINDOW, position));
    }

    /// Whether a publication with `version` is stale; records it otherwise.
    pub(super) fn stale_version(&mut self, version: u64, version_epoch: &str) -> bool {
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

    /// Appends a publication: assigns the next offset, trims to `size`, extends the meta TTL.
    /// Returns the publication as stored (with its offset).
    pub(super) fn append(
        &mut self,
        mut publication: Publication,
        size: usize,
        ttl: Duration,
        meta_ttl: Duration,
        now: Instant,
    ) -> Publication {
        self.top += 1;
        publication.offset = self.top;
        self.items.push_back(Item {
            expires: now + ttl,
            publication: publication.clone(),
        });
        while self.items.len() > size {
            self.items.pop_front();
        }
        self.meta_expires = self.meta_expires.max(now + meta_ttl);
        publication
    }

    /// Drops expired publications and idempotency keys. Returns true if the whole stream has
    /// expired (no publications, meta TTL over, nothing to remember) and can be removed.
    pub(super) fn sweep(&mut self, now: Instant) -> bool {
        while self.items.front().is_some_and(|i| i.expires <= now) {
            self.items.pop_front();
        }
        self.idempotency.retain(|_, (exp, _)| *exp > now);
        self.items.is_empty() && self.meta_expires <= now && self.idempotency.is_empty()
    }

    /// Removes every publication, keeping position and epoch.
    pub(super) fn clear(&mut self) {
        self.items.clear();
    }

    /// Reads publications as the query asks. `now` hides expired items not swept yet.
    pub(super) fn read(
        &self,
        query: &HistoryQuery,
        now: Instant,
    ) -> Result<HistoryPage, EngineError> {
        if let Some(since) = &query.since
            && !since.epoch.is_empty()
            && since.epoch != self.epoch
        {
            return Err(EngineError::EpochMismatch);
        }
        let live = self.items.iter().filter(|i| i.expires > now);
        let publications: Vec<Publication> = if query.limit == 0 {
            Vec::new()
        } else if query.reverse {
            let before = query.since.as_ref().map(|s| s.offset).unwrap_or(u64::MAX);
            live.rev()
                .filter(|i| i.publication.offset < before)
                .take(query.limit)
                .map(|i| i.publication.clone())
                .collect()
        } else {
            let after = query.since.as_ref().map(|s| s.offset).unwrap_or(0);
            live.filter(|i| i.publication.offset > after)
                .take(query.limit)
                .map(|i| i.publication.clone())
                .collect()
        };
        Ok(HistoryPage {
            publications,
            position: self.position(),
        })
    }

    /// Number of publications held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no publication is held.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn publication(n: u64) -> Publication {
        Publication {
            data: pushwire_protocol::RawJson::from_json_str(&n.to_string()).unwrap(),
            ..Default::default()
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    proptest! {
        /// Offsets grow by one, the stream never holds more than `size`, and a read after any
        /// offset returns exactly the held publications above it, in order.
        #[test]
        fn bounded_and_ordered(size in 1usize..20, n in 0u64..60, since in 0u64..70, limit in 1usize..80) {
            let now = Instant::now();
            let mut s = Stream::new(now, TTL);
            for i in 0..n {
                let p = s.append(publication(i), size, TTL, TTL, now);
                prop_assert_eq!(p.offset, i + 1);
                prop_assert!(s.len() <= size);
            }
            let page = s.read(&HistoryQuery { since: Some(StreamPosition { offset: since, epoch: s.epoch.clone() }), limit, ..Default::default() }, now).unwrap();
            let oldest = n.saturating_sub(size as u64) + 1;
            let expected: Vec<u64> = (since.max(oldest - 1) + 1..=n).take(limit).collect();
            let got: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(page.position.offset, n);
        }
    }

    #[test]
    fn ttl_and_epoch() {
        let now = Instant::now();
        let mut s = Stream::new(now, TTL);
        s.append(publication(1), 10, Duration::from_secs(1), TTL, now);
        let later = now + Duration::from_secs(2);
        let q = HistoryQuery {
            limit: 10,
            ..Default::default()
        };
        assert!(s.read(&q, later).unwrap().publications.is_empty());
        assert!(!s.sweep(later));
        assert!(s.is_empty());
        assert!(s.sweep(now + TTL + Duration::from_secs(1)));
        let bad = HistoryQuery {
            since: Some(StreamPosition {
                offset: 0,
                epoch: "other".into(),
            }),
            ..q
        };
        assert_eq!(s.read(&bad, now).unwrap_err(), EngineError::EpochMismatch);
    }

    #[test]
    fn versions() {
        let mut s = Stream::new(Instant::now(), TTL);
        assert!(!s.stale_version(2, ""));
        assert!(s.stale_version(2, ""));
        assert!(s.stale_version(1, ""));
        assert!(!s.stale_version(3, ""));
        assert!(!s.stale_version(1, "new"));
    }
}
