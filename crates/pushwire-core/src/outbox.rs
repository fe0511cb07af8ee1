//! The per-connection outgoing queue, bounded in bytes.
//!
//! Producers (the hub, command handlers, timers) push already-encoded messages; the one writer
//! of the connection drains everything queued at once and writes it as one frame. The outbox is
//! also the connection's control channel: [`Outbox::close`] records why the connection must end
//! and wakes the writer. Overflowing `client.queue_max_size` closes it with 3008 (slow), so a
//! slow reader never grows memory and never loses messages silently.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use pushwire_protocol::Disconnect;
use tokio::sync::Notify;

/// A bounded queue of encoded messages for one connection.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the one writer (pushes and closes).
    notify: Notify,
    /// Wakes every task waiting for the close (see [`Outbox::wait_closed`]).
    closed_notify: Notify,
    max_bytes: usize,
    /// `client.write_delay`: how long queued messages wait for more before a drain takes them.
    write_delay: std::time::Duration,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    closed: Option<Disconnect>,
    /// Stamp of the oldest queued publication ([`crate::metrics::stamp_now`]); 0 = none.
    stamp: u64,
    /// With a write delay: when the oldest queued message was queued.
    since: Option<tokio::time::Instant>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Dropped: the outbox was already closed.
    Closed,
    /// Dropped, and this push overflowed the outbox: it is now closed with 3008 (slow).
    Overflowed,
}

impl Pushed {
    /// Whether the message was queued.
    pub fn queued(self) -> bool {
        self == Pushed::Queued
    }
}

/// What one drain returned.
#[derive(Debug, Default)]
pub struct Drained {
    /// Messages in queue order.
    pub messages: Vec<Bytes>,
    /// Set once the connection must close; messages before it are still to be written.
    pub disconnect: Option<Disconnect>,
    /// Stamp of the oldest publication among `messages` (see [`crate::metrics`]); 0 = none.
    pub stamp: u64,
}

impl Outbox {
    /// An empty outbox that holds at most `max_bytes` of queued messages.
    pub fn new(max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            closed_notify: Notify::new(),
            max_bytes,
            write_delay: std::time::Duration::ZERO,
        }
    }

    /// Holds queued messages up to `delay` before [`Outbox::drain`] takes them, to gather
    /// more into one write (`client.write_delay`). A close is never delayed.
    pub fn with_write_delay(mut self, delay: std::time::Duration) -> Self {
        self.write_delay = delay;
        self
    }

    /// Queues publications fanned out at `stamp` atomically (all or none), in order.
    pub fn push_publications(
        &self,
        messages: impl IntoIterator<Item = Bytes>,
        stamp: u64,
    ) -> Pushed {
        self.push_stamped(messages, stamp)
    }

    /// Queues one message. If it does not fit, the outbox closes with 3008 (slow), drops what
    /// it held, and the push reports [`Pushed::Overflowed`].
    pub fn push(&self, message: Bytes) -> Pushed {
        self.push_all(std::iter::once(message))
    }

    /// Queues a publication fanned out at `stamp` ([`crate::metrics::stamp_now`]), so the
    /// writer can report its delivery latency. Otherwise like [`Outbox::push`].
    pub fn push_publication(&self, message: Bytes, stamp: u64) -> Pushed {
        self.push_stamped(std::iter::once(message), stamp)
    }

    /// Queues several messages atomically (all or none), in order.
    pub fn push_all(&self, messages: impl IntoIterator<Item = Bytes>) -> Pushed {
        self.push_stamped(messages, 0)
    }

    fn push_stamped(&self, messages: impl IntoIterator<Item = Bytes>, stamp: u64) -> Pushed {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return Pushed::Closed;
        }
        let before = st.queue.len();
        let mut total = 0;
        for m in messages {
            total += m.len();
            st.queue.push_back(m);
        }
        if st.bytes + total > self.max_bytes {
            st.closed = Some(Disconnect::SLOW);
            st.queue.clear();
            st.bytes = 0;
            st.stamp = 0;
            drop(st);
            self.notify.notify_one();
            self.closed_notify.notify_waiters();
            return Pushed::Overflowed;
        }
        st.bytes += total;
        if st.stamp == 0 {
            st.stamp = stamp;
        }
        if !self.write_delay.is_zero() && st.since.is_none() {
            st.since = Some(tokio::time::Instant::now());
        }
        let added = st.queue.len() > before;
        drop(st);
        if added {
            self.notify.notify_one();
        }
        Pushed::Queued
    }

    /// Resolves when something changed (a push or a close). Lets a writer that is blocked on
    /// a slow socket notice that its connection was closed meanwhile.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Marks the connection for closing with `disconnect` (the first reason wins) and wakes
    /// the writer. Messages queued before stay queued.
    pub fn close(&self, disconnect: Disconnect) {
        let mut st = self.state.lock();
        if st.closed.is_none() {
            st.closed = Some(disconnect);
        }
        drop(st);
        self.notify.notify_one();
        self.closed_notify.notify_waiters();
    }

    /// Resolves once the outbox is closed, with the reason. Any number of tasks may wait.
    pub async fn wait_closed(&self) -> Disconnect {
        loop {
            let notified = self.closed_notify.notified();
            if let Some(d) = self.closed() {
                return d;
            }
            notified.await;
        }
    }

    /// The disconnect recorded by [`Outbox::close`], if any.
    pub fn closed(&self) -> Option<Disconnect> {
        self.state.lock().closed.clone()
    }

    /// Takes everything queued without waiting.
    pub fn try_drain(&self) -> Drained {
        let mut st = self.state.lock();
        st.bytes = 0;
        st.since = None;
        Drained {
            messages: st.queue.drain(..).collect(),
            disconnect: st.closed.clone(),
            stamp: std::mem::take(&mut st.stamp),
        }
    }

    /// Waits until something is queued or the outbox is closed, then takes everything.
    /// Cancel-safe: dropping the future loses nothing. The future is small (the outbox
    /// reference and the notification): an idle WebSocket connection holds one all the time.
    pub async fn drain(&self) -> Drained {
        if !self.write_delay.is_zero() {
            // Boxed: every idle connection holds a drain future; the delayed one (a timer and
            // a close wait) must not make it bigger for connections without a delay.
            return Box::pin(self.drain_delayed()).await;
        }
        loop {
            let notified = self.notify.notified();
            // Scoped, so the (empty) result is not kept in the future across the wait.
            {
                let drained = self.try_drain();
                if !drained.messages.is_empty() || drained.disconnect.is_some() {
                    return drained;
                }
            }
            notified.await;
        }
    }

    /// [`Outbox::drain`] with a write delay: waits until the oldest queued message is
    /// `write_delay` old (or a close), then takes everything. Cancel-safe too: the deadline
    /// is kept in the state, so a drain started again keeps it.
    async fn drain_delayed(&self) -> Drained {
        loop {
            let notified = self.notify.notified();
            let since = {
                let st = self.state.lock();
                if st.closed.is_some() {
                    drop(st);
                    return self.try_drain();
                }
                st.since
            };
            match since {
                None => notified.await,
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at + self.write_delay) => {
                            return self.try_drain();
                        }
                        // A close cuts the delay short; a push just waits on.
                        _ = self.wait_closed() => return self.try_drain(),
                    }
                }
            }
        }
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn drains_in_order() {
        let o = Outbox::new(100);
        assert!(o.push(Bytes::from_static(b"a")).queued());
        assert!(o.push(Bytes::from_static(b"b")).queued());
        let d = o.drain().await;
        assert_eq!(
            d.messages,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert!(d.disconnect.is_none());
        assert_eq!(o.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_closes_slow() {
        let o = Outbox::new(10);
        assert_eq!(o.push(Bytes::from(vec![0u8; 8])), Pushed::Queued);
        assert_eq!(o.push(Bytes::from(vec![0u8; 8])), Pushed::Overflowed);
        let d = o.drain().await;
        assert_eq!(d.disconnect, Some(Disconnect::SLOW));
        assert!(d.messages.is_empty(), "overflow frees what was queued");
        assert_eq!(o.push(Bytes::from_static(b"x")), Pushed::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn write_delay_gathers_messages() {
        let o = std::sync::Arc::new(Outbox::new(100).with_write_delay(Duration::from_millis(20)));
        let o2 = o.clone();
        let h = tokio::spawn(async move { o2.drain().await });
        o.push(Bytes::from_static(b"a"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!h.is_finished(), "held for the delay");
        o.push(Bytes::from_static(b"b"));
        let d = h.await.unwrap();
        assert_eq!(d.messages.len(), 2, "both in one drain");
        // A close is not delayed.
        o.push(Bytes::from_static(b"c"));
        o.close(Disconnect::SHUTDOWN);
        let start = tokio::time::Instant::now();
        let d = o.drain().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(
            (d.messages.len(), d.disconnect),
            (1, Some(Disconnect::SHUTDOWN))
        );
    }

    #[tokio::test]
    async fn close_wakes_writer() {
        let o = std::sync::Arc::new(Outbox::new(10));
        let o2 = o.clone();
        let h = tokio::spawn(async move { o2.drain().await });
        tokio::task::yield_now().await;
        o.close(Disconnect::SHUTDOWN);
        assert_eq!(h.await.unwrap().disconnect, Some(Disconnect::SHUTDOWN));
    }
}
