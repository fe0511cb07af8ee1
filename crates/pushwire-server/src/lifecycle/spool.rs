//! A sink's spool: events waiting for delivery, bounded; beyond the bound the oldest go.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pushwire_core::lifecycle::Event;
use tokio::sync::Notify;

/// Events waiting for one sink (shared as JSON bytes), at most `capacity`; pushing into a
/// full spool drops the oldest event and counts it.
#[derive(Debug)]
pub struct Spool {
    capacity: usize,
    queue: Mutex<VecDeque<Arc<Event>>>,
    notify: Notify,
    /// Events dropped because the spool was full.
    pub dropped: AtomicU64,
}

impl Spool {
    /// An empty spool of `capacity` events.
    pub fn new(capacity: usize) -> Spool {
        Spool {
            capacity,
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds an event, dropping the oldest when full; wakes the sink.
    pub fn push(&self, event: Arc<Event>) {
        let mut q = self.queue.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(event);
        drop(q);
        self.notify.notify_one();
    }

    /// Copies up to `n` events from the front, without removing them (a delivery removes
    /// them with [`Spool::ack`] once acknowledged).
    pub fn peek(&self, n: usize) -> Vec<Arc<Event>> {
        self.queue.lock().iter().take(n).cloned().collect()
    }

    /// Removes the delivered events: those of `batch` still at the front (events dropped by
    /// an overflow meanwhile are not removed twice).
    pub fn ack(&self, batch: &[Arc<Event>]) {
        let mut q = self.queue.lock();
        for e in batch {
            if q.front().is_some_and(|f| Arc::ptr_eq(f, e)) {
                q.pop_front();
            }
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when an event was pushed since the last wait.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwire_core::lifecycle::EventKind;

    fn event(seq: u64) -> Arc<Event> {
        Arc::new(Event {
            id: seq.to_string(),
            kind: EventKind::Connect,
            node: "n".into(),
            seq,
            time: 0,
            client: None,
            user: None,
            channel: None,
            code: None,
            reason: None,
            lost_node: None,
            connections: None,
        })
    }

    #[test]
    fn overflow_drops_the_oldest_and_ack_removes_what_was_delivered() {
        let s = Spool::new(3);
        for i in 1..=4 {
            s.push(event(i));
        }
        assert_eq!(s.dropped.load(Ordering::Relaxed), 1);
        let batch = s.peek(2);
        assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        s.push(event(5)); // drops 2 (full), which the batch holds
        s.ack(&batch);
        assert_eq!(
            s.peek(10).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }
}
