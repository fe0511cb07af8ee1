//! The store's tables and the operations on them, each inside a transaction the caller owns
//! (the writer thread for writes, a blocking read for history). Nothing here locks or
//! delivers: that is the writer's job.
//!
//! Tables:
//! - `meta`: channel → [`Meta`] (epoch, top offset, meta expiry, version);
//! - `pubs`: (channel, offset) → expiry + publication;
//! - `idem`: (channel, key) → expiry + the position the key's publication got;
//! - `idem_expiry`: (expiry, channel, key) → (), the sweep's index of idempotency records;
//! - `state`: `"open"` → the fsync policy of the process that has the store open (removed at
//!   a clean shutdown, so its presence at start means the last run crashed).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pushwire_core::engine::{
    EngineError, HistoryPage, HistoryQuery, PublishOptions, PublishOutcome,
};
use pushwire_protocol::{Publication, StreamPosition};
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::codec::{self, Meta};
use crate::error::StoreError;

/// Channel → stream meta.
pub(crate) const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// (channel, offset) → stored publication.
pub(crate) const PUBS: TableDefinition<'static, (&str, u64), &[u8]> = TableDefinition::new("pubs");
/// (channel, idempotency key) → idempotency record.
pub(crate) const IDEM: TableDefinition<'static, (&str, &str), &[u8]> = TableDefinition::new("idem");
/// (expiry, channel, key) → (): which idempotency records expire when.
pub(crate) const IDEM_EXPIRY: TableDefinition<'static, (u64, &str, &str), ()> =
    TableDefinition::new("idem_expiry");
/// Engine state (the open marker).
pub(crate) const STATE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("state");

/// The key of the open marker in [`STATE`].
pub(crate) const OPEN_MARKER: &str = "open";

/// Wall-clock Unix milliseconds (expiry survives restarts, so it can not be monotonic).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn plus(now: u64, d: Duration) -> u64 {
    now.saturating_add(d.as_millis().min(u64::MAX as u128) as u64)
}

/// Every table of a write transaction, opened once per transaction.
pub(crate) struct Tables<'txn> {
    meta: Table<'txn, &'static str, &'static [u8]>,
    pubs: Table<'txn, (&'static str, u64), &'static [u8]>,
    idem: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    idem_expiry: Table<'txn, (u64, &'static str, &'static str), ()>,
}

impl<'txn> Tables<'txn> {
    /// Opens (creating when missing) every table in `txn`.
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META).map_err(StoreError::redb)?,
            pubs: txn.open_table(PUBS).map_err(StoreError::redb)?,
            idem: txn.open_table(IDEM).map_err(StoreError::redb)?,
            idem_expiry: txn.open_table(IDEM_EXPIRY).map_err(StoreError::redb)?,
        })
    }

    fn meta(&self, channel: &str) -> Result<Option<Meta>, StoreError> {
        match self.meta.get(channel).map_err(StoreError::redb)? {
            Some(v) => Meta::decode(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn put_meta(&mut self, channel: &str, meta: &Meta) -> Result<(), StoreError> {
        self.meta
            .insert(channel, meta.encode().as_slice())
            .map_err(StoreError::redb)?;
        Ok(())
    }

    /// Checks the idempotency key and the version, appends (with history), trims to the
    /// history size, records the key. Returns the outcome and, unless suppressed, the
    /// publication to deliver (with its offset).
    pub(crate) fn publish(
        &mut self,
        channel: &str,
        mut publication: Publication,
        options: &PublishOptions,
        idempotency_window: Duration,
        now: u64,
    ) -> Result<(PublishOutcome, Option<Publication>), StoreError> {
        let existing = self.meta(channel)?;
        let created = existing.is_none();
        let mut meta = existing.unwrap_or_else(|| Meta::new(plus(now, options.history_meta_ttl)));
        if let Some(key) = &options.idempotency_key
            && let Some(v) = self
                .idem
                .get((channel, key.as_str()))
                .map_err(StoreError::redb)?
        {
            let (expires, position) = codec::decode_idempotency(v.value())?;
            if expires > now {
                return Ok((
                    PublishOutcome {
                        position,
                        suppressed: true,
                    },
                    None,
                ));
            }
        }
        let history = options.history();
        if history && meta.stale_version(options.version, &options.version_epoch) {
            return Ok((
                PublishOutcome {
                    position: Some(meta.position()),
                    suppressed: true,
                },
                None,
            ));
        }
        let position = if history {
            meta.top += 1;
            publication.offset = meta.top;
            let stored = codec::encode_publication(&publication, plus(now, options.history_ttl));
            self.pubs
                .insert((channel, meta.top), stored.as_slice())
                .map_err(StoreError::redb)?;
            let size = options.history_size as u64;
            if meta.top > size {
                let last = meta.top - size;
                self.pubs
                    .retain_in((channel, 0u64)..=(channel, last), |_, _| false)
                    .map_err(StoreError::redb)?;
            }
            meta.meta_expires = meta.meta_expires.max(plus(now, options.history_meta_ttl));
            Some(meta.position())
        } else {
            publication.offset = 0;
            None
        };
        if history || created {
            self.put_meta(channel, &meta)?;
        }
        if let Some(key) = &options.idempotency_key {
            let expires = plus(now, idempotency_window);
            let record = codec::encode_idempotency(expires, position.as_ref());
            self.idem
                .insert((channel, key.as_str()), record.as_slice())
                .map_err(StoreError::redb)?;
            self.idem_expiry
                .insert((expires, channel, key.as_str()), ())
                .map_err(StoreError::redb)?;
        }
        Ok((
            PublishOutcome {
                position,
                suppressed: false,
            },
            Some(publication),
        ))
    }

    /// Creates the channel's stream (new epoch, alive for `meta_ttl`) unless it exists.
    pub(crate) fn ensure(
        &mut self,
        channel: &str,
        meta_ttl: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
        if self.meta(channel)?.is_none() {
            self.put_meta(channel, &Meta::new(plus(now, meta_ttl)))?;
        }
        Ok(())
    }

    /// Removes the channel's publications, keeping its position and epoch.
    pub(crate) fn remove_history(&mut self, channel: &str) -> Result<(), StoreError> {
        self.pubs
            .retain_in((channel, 0u64)..=(channel, u64::MAX), |_, _| false)
            .map_err(StoreError::redb)
    }

    /// Gives every stream a new epoch (after a crash under a policy that may have lost
    /// delivered publications, so no client recovers across reused offsets). Returns how many.
    pub(crate) fn rotate_epochs(&mut self) -> Result<usize, StoreError> {
        let mut metas = Vec::new();
        for entry in self.meta.iter().map_err(StoreError::redb)? {
            let (k, v) = entry.map_err(StoreError::redb)?;
            metas.push((k.value().to_owned(), Meta::decode(v.value())?));
        }
        for (channel, meta) in &mut metas {
            meta.epoch = codec::new_epoch();
            self.put_meta(channel, meta)?;
        }
        Ok(metas.len())
    }

    /// Drops expired publications and idempotency records, and streams that hold nothing and
    /// whose meta TTL is over. Returns the number of streams left.
    pub(crate) fn sweep(&mut self, now: u64) -> Result<u64, StoreError> {
        let mut expired_keys = Vec::new();
        for entry in self
            .idem_expiry
            .range(..(now.saturating_add(1), "", ""))
            .map_err(StoreError::redb)?
        {
            let (k, _) = entry.map_err(StoreError::redb)?;
            let (expires, channel, key) = k.value();
            expired_keys.push((expires, channel.to_owned(), key.to_owned()));
        }
        for (expires, channel, key) in &expired_keys {
            self.idem_expiry
                .remove((*expires, channel.as_str(), key.as_str()))
                .map_err(StoreError::redb)?;
            let still = match self
                .idem
                .get((channel.as_str(), key.as_str()))
                .map_err(StoreError::redb)?
            {
                Some(v) => codec::decode_idempotency(v.value())?.0 > now,
                None => true,
            };
            if !still {
                self.idem
                    .remove((channel.as_str(), key.as_str()))
                    .map_err(StoreError::redb)?;
            }
        }
        let mut metas = Vec::new();
        for entry in self.meta.iter().map_err(StoreError::redb)? {
            let (k, v) = entry.map_err(StoreError::redb)?;
            metas.push((k.value().to_owned(), Meta::decode(v.value())?.meta_expires));
        }
        let mut left = 0;
        for (channel, meta_expires) in metas {
            let ch = channel.as_str();
            let mut expired_upto = None;
            let mut holds = false;
            for entry in self
                .pubs
                .range((ch, 0u64)..=(ch, u64::MAX))
                .map_err(StoreError::redb)?
            {
                let (k, v) = entry.map_err(StoreError::redb)?;
                if codec::publication_expires(v.value())? > now {
                    holds = true;
                    break;
                }
                expired_upto = Some(k.value().1);
            }
            if let Some(last) = expired_upto {
                self.pubs
                    .retain_in((ch, 0u64)..=(ch, last), |_, _| false)
                    .map_err(StoreError::redb)?;
            }
            let keys_left = self
                .idem
                .range((ch, "")..)
                .map_err(StoreError::redb)?
                .next()
                .transpose()
                .map_err(StoreError::redb)?
                .is_some_and(|(k, _)| k.value().0 == ch);
            if !holds && !keys_left && meta_expires <= now {
                self.meta.remove(ch).map_err(StoreError::redb)?;
            } else {
                left += 1;
            }
        }
        Ok(left)
    }
}

/// One row of [`PUBS`] as a range yields it.
type PubEntry<'a> = redb::Result<(
    redb::AccessGuard<'a, (&'static str, u64)>,
    redb::AccessGuard<'a, &'static [u8]>,
)>;

/// Reads a page of the channel's stream in a read transaction. `Ok(None)`: the stream does
/// not exist yet (the caller creates it through the writer and reads again).
pub(crate) fn read_history(
    txn: &ReadTransaction,
    channel: &str,
    query: &HistoryQuery,
    now: u64,
) -> Result<Option<HistoryPage>, EngineError> {
    let meta_table = txn.open_table(META).map_err(store)?;
    let Some(meta) = meta_table.get(channel).map_err(store)? else {
        return Ok(None);
    };
    let meta = Meta::decode(meta.value())?;
    if let Some(since) = &query.since
        && !since.epoch.is_empty()
        && since.epoch != meta.epoch
    {
        return Err(EngineError::EpochMismatch);
    }
    let mut publications = Vec::new();
    if query.limit > 0 {
        let pubs = txn.open_table(PUBS).map_err(store)?;
        let since = query.since.as_ref().map(|s| s.offset);
        let range = if query.reverse {
            match since {
                Some(0) => None,
                Some(before) => Some(pubs.range((channel, 0u64)..(channel, before))),
                None => Some(pubs.range((channel, 0u64)..=(channel, u64::MAX))),
            }
        } else {
            let after = since.unwrap_or(0);
            match after.checked_add(1) {
                Some(from) => Some(pubs.range((channel, from)..=(channel, u64::MAX))),
                None => None,
            }
        };
        if let Some(range) = range {
            let range = range.map_err(store)?;
            let mut take = |entry: PubEntry<'_>| -> Result<bool, EngineError> {
                let (k, v) = entry.map_err(store)?;
                let v = v.value();
                if codec::publication_expires(v)? > now {
                    publications.push(codec::decode_publication(v, k.value().1)?);
                }
                Ok(publications.len() >= query.limit)
            };
            if query.reverse {
                for entry in range.rev() {
                    if take(entry)? {
                        break;
                    }
                }
            } else {
                for entry in range {
                    if take(entry)? {
                        break;
                    }
                }
            }
        }
    }
    Ok(Some(HistoryPage {
        publications,
        position: StreamPosition {
            offset: meta.top,
            epoch: meta.epoch,
        },
    }))
}

fn store(e: impl Into<redb::Error>) -> EngineError {
    StoreError::redb(e).into()
}
