//! `pgoutput` messages to applied changes, the same for both ways of reading the slot.
//!
//! [`Transactions::apply`] takes the messages of a decoding session in order: it keeps the
//! relation descriptions and the transaction being read, turns each routed row change into a
//! change event with its idempotency key (`pgcdc:<slot>:<commit LSN>:<n-th change>`) and hands
//! it to the processor until it is done or dead-lettered; a commit returns the position the
//! slot may be confirmed to.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::change::{Change, Op};
use super::pgoutput::{decode, Lsn, PgOutput, Relation};
use super::settings::PostgresCdcSettings;
use crate::error::ConsumerError;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};

/// The transaction being read.
struct Txn {
    final_lsn: Lsn,
    commit_time: i64,
    changes: u32,
}

/// What one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing to confirm yet.
    Read,
    /// A transaction ended with every change of it applied: the slot may be confirmed to
    /// this position (the end of its commit record).
    Committed(Lsn),
    /// Shut down before the change was applied.
    ShutDown,
}

/// The decoding session's state (see the module docs).
pub(super) struct Transactions<'a> {
    settings: &'a PostgresCdcSettings,
    relations: HashMap<u32, Relation>,
    txn: Option<Txn>,
}

impl<'a> Transactions<'a> {
    /// A new decoding session.
    pub(super) fn new(settings: &'a PostgresCdcSettings) -> Self {
        Transactions {
            settings,
            relations: HashMap::new(),
            txn: None,
        }
    }

    /// Forgets the relations and any partly read transaction: a new decoding session sends
    /// the descriptions again before their first use.
    pub(super) fn restart(&mut self) {
        self.relations.clear();
        self.txn = None;
    }

    /// Whether a transaction has begun and not yet committed.
    pub(super) fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Applies one `pgoutput` message whose record is at `lsn`.
    pub(super) async fn apply(
        &mut self,
        lsn: Lsn,
        data: &[u8],
        processor: &Processor,
        shutdown: &CancellationToken,
    ) -> Result<Step, ConsumerError> {
        let s = self.settings;
        let message = decode(data).map_err(|e| ConsumerError::Broker(e.to_string()))?;
        let (op, rel, new, old) = match message {
            PgOutput::Begin {
                final_lsn,
                commit_time,
                ..
            } => {
                self.txn = Some(Txn {
                    final_lsn,
                    commit_time,
                    changes: 0,
                });
                return Ok(Step::Read);
            }
            PgOutput::Commit { end_lsn, .. } => {
                self.txn = None;
                return Ok(Step::Committed(end_lsn));
            }
            PgOutput::Relation(r) => {
                self.relations.insert(r.id, r);
                return Ok(Step::Read);
            }
            PgOutput::Insert { rel, new } => (Op::Insert, rel, new, None),
            PgOutput::Update { rel, old, new } => (Op::Update, rel, new, old),
            PgOutput::Delete { rel, old } => (Op::Delete, rel, old, None),
            PgOutput::Truncate { rels } => {
                tracing::info!(relations = ?rels, "postgresql cdc: TRUNCATE is not routed");
                return Ok(Step::Read);
            }
            PgOutput::Other(_) => return Ok(Step::Read),
        };
        let t = self
            .txn
            .as_mut()
            .ok_or_else(|| ConsumerError::Broker("change outside a transaction".into()))?;
        t.changes += 1;
        let relation = self.relations.get(&rel).ok_or_else(|| {
            ConsumerError::Broker(format!("change of relation {rel} before its description"))
        })?;
        let table = format!("{}.{}", relation.schema, relation.table);
        if !s.routes(&table) {
            return Ok(Step::Read);
        }
        let change = Change {
            op,
            relation,
            row: &new,
            old: old.as_ref(),
            lsn,
            commit_time: t.commit_time,
        };
        let msg = Message {
            id: format!("pgcdc:{}:{}:{}", s.slot, t.final_lsn, t.changes),
            subject: table.clone(),
            headers: vec![
                ("op".into(), op.as_str().into()),
                ("schema".into(), relation.schema.clone()),
                ("table".into(), relation.table.clone()),
            ],
            body: change
                .event(s.filter(&table))
                .to_string()
                .into_bytes()
                .into(),
        };
        Ok(if deliver(processor, &msg, shutdown).await {
            Step::Read
        } else {
            Step::ShutDown
        })
    }
}

/// Applies one change until it is done or dead-lettered (retrying transient failures with
/// backoff); false when shut down first.
async fn deliver(processor: &Processor, msg: &Message, shutdown: &CancellationToken) -> bool {
    let mut retry = processor.backoff();
    loop {
        match processor.process(msg).await {
            Outcome::Done => return true,
            Outcome::Poison(why) => {
                ConsumerMetrics::inc(&processor.metrics().dead_lettered);
                tracing::warn!(consumer = %processor.name(), id = %msg.id, reason = %why, "change dead-lettered (logged and skipped)");
                return true;
            }
            Outcome::Retry(_) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(retry.next_delay()) => {}
                }
            }
        }
    }
}
