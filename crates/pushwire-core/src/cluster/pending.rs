//! Requests this node sent and whose answers it awaits, by request id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pushwire_protocol::control::response::Kind;
use tokio::sync::mpsc;

/// An answer: the answering node's uid and what it said.
pub type Answer = (String, Kind);

/// In-flight requests. Each registered request gets a bounded queue of answers; answers to an
/// unknown id (late, after a timeout) are dropped.
#[derive(Debug, Default)]
pub struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, mpsc::Sender<Answer>>>,
}

/// A registered request; dropping it unregisters the id.
#[derive(Debug)]
pub struct Awaiting<'a> {
    pending: &'a Pending,
    /// The request id to send.
    pub id: u64,
    /// Answers as they arrive.
    pub answers: mpsc::Receiver<Answer>,
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.pending.waiting.lock().remove(&self.id);
    }
}

impl Pending {
    /// Registers a request expecting at most `expected` answers.
    pub fn register(&self, expected: usize) -> Awaiting<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(expected.max(1));
        self.waiting.lock().insert(id, tx);
        Awaiting {
            pending: self,
            id,
            answers: rx,
        }
    }

    /// Hands an answer to its request; false when no request waits for `id` (or its queue is
    /// full: more answers than expected).
    pub fn complete(&self, id: u64, from: String, kind: Kind) -> bool {
        let tx = self.waiting.lock().get(&id).cloned();
        tx.is_some_and(|tx| tx.try_send((from, kind)).is_ok())
    }

    /// Requests waiting for answers.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
