//! Channel batching (namespace `batch_max_size` / `batch_max_delay` / `batch_flush_latest`):
//! the hub holds a channel's publications and delivers them together, so each subscriber gets
//! the batch in one outbox push (one frame, one write) instead of one per publication.
//!
//! A channel's batch goes out when it holds `max_size` publications or when its first one is
//! `max_delay` old. The deadlines live in one task per hub ([`Flusher`]), started on the first
//! batched publication and stopped with the hub; its queue is bounded, and a batch whose
//! deadline can not be queued is delivered at once instead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::hub::{Delivery, Hub};

/// Deadlines that may wait in the flusher's queue; beyond it batches are delivered at once.
const QUEUE: usize = 4096;

/// How one namespace batches its publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Deliver once this many are held (0 = only by time).
    pub max_size: usize,
    /// Deliver once the first held publication is this old (> 0).
    pub max_delay: Duration,
    /// Deliver only the newest publication of the batch.
    pub flush_latest: bool,
}

/// Counts what the flusher delivered (the node's metrics).
pub type Account = Arc<dyn Fn(Delivery) + Send + Sync>;

/// A channel whose batch is due at a time.
type Due = (Instant, Arc<str>);

/// The task that delivers channel batches at their deadline.
#[derive(Default)]
pub(crate) struct Flusher {
    tx: OnceLock<mpsc::Sender<Due>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

impl Flusher {
    /// Asks for `channel`'s batch to be delivered at `at`. False when that can not be
    /// promised (queue full, no runtime): the caller delivers it now.
    pub(crate) fn schedule(
        &self,
        hub: &Arc<Hub>,
        account: &Account,
        channel: Arc<str>,
        at: Instant,
    ) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let task = runtime.spawn(run(Arc::downgrade(hub), account.clone(), rx));
            *self.task.lock() = Some(task);
            tx
        });
        tx.try_send((at, channel)).is_ok()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

/// Delivers each batch at its deadline, earliest first. Ends with the hub.
async fn run(hub: Weak<Hub>, account: Account, mut rx: mpsc::Receiver<Due>) {
    let mut due: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    loop {
        let next = due.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            got = rx.recv() => match got {
                Some(d) => due.push(Reverse(d)),
                None => return,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                let Some(hub) = hub.upgrade() else { return };
                while let Some(Reverse((at, _))) = due.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((_, channel))) = due.pop() else { break };
                    account(hub.flush_batch(&channel));
                }
            }
        }
    }
}

/// The batching policy of each namespace that batches: a lookup by channel name cheaper than
/// a full [`crate::namespace::Namespaces::resolve`], and absent when nothing batches.
#[derive(Debug)]
pub struct BatchPolicies {
    without: Option<BatchPolicy>,
    by_name: std::collections::HashMap<String, BatchPolicy>,
    private_prefix: String,
    namespace_boundary: String,
}

impl BatchPolicies {
    /// The policies of `config`; `None` when no namespace batches.
    pub fn new(config: &crate::config::ChannelConfig) -> Option<Self> {
        let by_name: std::collections::HashMap<String, BatchPolicy> = config
            .namespaces
            .iter()
            .filter_map(|n| n.options.batch_policy().map(|p| (n.name.clone(), p)))
            .collect();
        let without = config.without_namespace.batch_policy();
        (without.is_some() || !by_name.is_empty()).then(|| BatchPolicies {
            without,
            by_name,
            private_prefix: config.private_prefix.clone(),
            namespace_boundary: config.namespace_boundary.clone(),
        })
    }

    /// The policy of `channel`'s namespace, if it batches.
    pub fn for_channel(&self, channel: &str) -> Option<BatchPolicy> {
        let rest = channel
            .strip_prefix(self.private_prefix.as_str())
            .unwrap_or(channel);
        match rest.split_once(self.namespace_boundary.as_str()) {
            Some((ns, _)) => self.by_name.get(ns).copied(),
            None => self.without,
        }
    }
}
