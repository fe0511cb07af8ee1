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
    notify: Notify,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    closed: Option<Disconnect>,
}

/// What one drain returned.
#[derive(Debug, Default)]
pub struct Drained {
    /// Messages in queue order.
    pub messages: Vec<Bytes>,
    /// Set once the connection must close; messages before it are still to be written.
    pub disconnect: Option<Disconnect>,
}

impl Outbox {
    /// An empty outbox that holds at most `max_bytes` of queued messages.
    pub fn new(max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            max_bytes,
        }
    }

    /// Queues one message. Returns false if the outbox is closed; if the message does not fit,
    /// the outbox closes with 3008 (slow) and false is returned.
    pub fn push(&self, message: Bytes) -> bool {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return false;
        }
        if st.bytes + message.len() > self.max_bytes {
            st.closed = Some(Disconnect::SLOW);
            st.queue.clear();
            st.bytes = 0;
            drop(st);
            self.notify.notify_one();
            return false;
        }
        st.bytes += message.len();
        st.queue.push_back(message);
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Queues several messages atomically (all or none), in order.
    pub fn push_all(&self, messages: impl IntoIterator<Item = Bytes>) -> bool {
        let messages: Vec<Bytes> = messages.into_iter().collect();
        let total: usize = messages.iter().map(Bytes::len).sum();
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return false;
        }
        if st.bytes + total > self.max_bytes {
            st.closed = Some(Disconnect::SLOW);
            st.queue.clear();
            st.bytes = 0;
            drop(st);
            self.notify.notify_one();
            return false;
        }
        st.bytes += total;
        st.queue.extend(messages);
        drop(st);
        self.notify.notify_one();
        true
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
    }

    /// The disconnect recorded by [`Outbox::close`], if any.
    pub fn closed(&self) -> Option<Disconnect> {
        self.state.lock().closed.clone()
    }

    /// Takes everything queued without waiting.
    pub fn try_drain(&self) -> Drained {
        let mut st = self.state.lock();
        st.bytes = 0;
        Drained {
            messages: st.queue.drain(..).collect(),
            disconnect: st.closed.clone(),
        }
    }

    /// Waits until something is queued or the outbox is closed, then takes everything.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn drain(&self) -> Drained {
        loop {
            let notified = self.notify.notified();
            let drained = self.try_drain();
            if !drained.messages.is_empty() || drained.disconnect.is_some() {
                return drained;
            }
            notified.await;
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

    #[tokio::test]
    async fn drains_in_order() {
        let o = Outbox::new(100);
        assert!(o.push(Bytes::from_static(b"a")));
        assert!(o.push(Bytes::from_static(b"b")));
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
        assert!(o.push(Bytes::from(vec![0u8; 8])));
        assert!(!o.push(Bytes::from(vec![0u8; 8])));
        let d = o.drain().await;
        assert_eq!(d.disconnect, Some(Disconnect::SLOW));
        assert!(!o.push(Bytes::from_static(b"x")));
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
