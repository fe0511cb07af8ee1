//! The per-connection outgoing queue, bounded in bytes.
//!
//! Producers (the hub, command handlers, timers) push already-encoded messages; the one writer
//! of the connection drains everything queued at once and writes it as one frame. The outbox is
//! also the connection's control channel: [`Outbox::close`] records why the connection must end
//! and wakes the writer. Overflowing `client.queue_max_size` closes it with 3008 (slow), so a
//! slow reader never grows memory and never loses messages silently — unless publications of
//! a namespace with a `slow_subscriber_policy` other than `disconnect` are queued: then the
//! busiest such subscription is shed first ([`ShedTag`]): its backlog is dropped and the
//! subscription is handed to the client to unsubscribe with 2500 (`resubscribe`: the SDK
//! recovers it from history), or its backlog is conflated to the newest publication
//! (`latest`). The connection and its other subscriptions keep flowing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// The bound, the write delay and the node-wide gauge, shared by the node's outboxes.
    shared: Arc<Outboxes>,
}

/// What every outbox of a node shares: the bound (`client.queue_max_size`), the write delay
/// (`client.write_delay`), and the gauge of bytes queued across all of them, kept exactly by
/// the outboxes as they queue, drain, shed and drop (read by consumer back-pressure and
/// `/metrics` without walking the connections).
#[derive(Debug)]
pub struct Outboxes {
    max_bytes: usize,
    write_delay: std::time::Duration,
    queued: AtomicUsize,
}

impl Outboxes {
    /// Outboxes that hold at most `max_bytes` each and delay writes by `write_delay`.
    pub fn new(max_bytes: usize, write_delay: std::time::Duration) -> Arc<Outboxes> {
        Arc::new(Outboxes {
            max_bytes,
            write_delay,
            queued: AtomicUsize::new(0),
        })
    }

    /// Bytes queued across every outbox made with these settings (replies outside the bound
    /// not included).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Moves the gauge from `before` to `after` bytes for one outbox.
    fn settle(&self, before: usize, after: usize) {
        if after > before {
            self.queued.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.queued.fetch_sub(before - after, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// Why the connection must close; boxed (set once per connection, at its end) so an open
    /// outbox pays one word: `Arc<Outbox>` stays in the 192-byte size class.
    closed: Option<Box<Disconnect>>,
    /// Stamp of the oldest queued publication ([`crate::metrics::stamp_now`]); 0 = none.
    stamp: u64,
    /// With a write delay: when the oldest queued message was queued.
    since: Option<tokio::time::Instant>,
    /// Bytes of the one reply queued outside the bound ([`Outbox::push_reply`]); 0 = none.
    uncounted: usize,
    /// Shedding state; allocated at the first publication of a shedding namespace, so an
    /// outbox that never sees one pays a pointer.
    slow: Option<Box<Slow>>,
}

/// How a subscription is shed when its connection falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shedding {
    /// Drop its backlog and unsubscribe it with 2500 (the SDK resubscribes and recovers).
    Resubscribe,
    /// Keep only its newest queued publication.
    Latest,
}

/// The subscription a queued publication belongs to, for shedding.
#[derive(Debug, Clone)]
pub struct ShedTag {
    /// The channel.
    pub channel: Arc<str>,
    /// What shedding does to it.
    pub policy: Shedding,
}

#[derive(Debug, Default)]
struct Slow {
    /// The tag of each queued message (parallel to `queue`).
    tags: VecDeque<Option<ShedTag>>,
    /// Subscriptions shed with [`Shedding::Resubscribe`] and not released yet by the client;
    /// `true` once reported by a drain.
    shed: Vec<(Arc<str>, bool)>,
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
    /// Dropped: its subscription was shed ([`Shedding::Resubscribe`]) and will be recovered.
    Shed,
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
    /// Subscriptions shed since the last drain: the client must unsubscribe them with 2500
    /// and then call [`Outbox::release_shed`].
    pub shed: Vec<Arc<str>>,
}

impl Outbox {
    /// An empty outbox that holds at most `max_bytes` of queued messages, on its own (not
    /// counted in any node's gauge).
    pub fn new(max_bytes: usize) -> Self {
        Self::of(Outboxes::new(max_bytes, std::time::Duration::ZERO))
    }

    /// An empty outbox with the node's shared settings and gauge. With a write delay, queued
    /// messages wait up to it before [`Outbox::drain`] takes them, to gather more into one
    /// write (`client.write_delay`); a close is never delayed.
    pub fn of(shared: Arc<Outboxes>) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            closed_notify: Notify::new(),
            shared,
        }
    }

    /// Queues publications fanned out at `stamp` atomically (all or none), in order. With
    /// `tag`, they belong to a shedding subscription (like [`Outbox::push_shedding`]): on
    /// overflow that subscription is shed rather than the connection closed.
    pub fn push_publications(
        &self,
        messages: impl IntoIterator<Item = Bytes>,
        stamp: u64,
        tag: Option<&ShedTag>,
    ) -> Pushed {
        self.push_tagged(messages, stamp, tag)
    }

    /// Queues one message. If it does not fit, the outbox closes with 3008 (slow), drops what
    /// it held, and the push reports [`Pushed::Overflowed`].
    pub fn push(&self, message: Bytes) -> Pushed {
        self.push_all(std::iter::once(message))
    }

    /// Queues a reply (or a push of the connection's own): like [`Outbox::push`], except that
    /// one such message at a time is not counted against the bound (when the queue is within
    /// it) — a single reply never makes a connection slow. Replies are bounded by
    /// `client.reply_max_size` where they are built, so the outbox holds at most
    /// `max_bytes` plus one reply.
    pub fn push_reply(&self, message: Bytes) -> Pushed {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return Pushed::Closed;
        }
        if st.uncounted == 0 && st.bytes <= self.shared.max_bytes {
            // Not counted against the bound: publications keep their full room while it waits.
            st.uncounted = message.len().max(1);
            st.queue.push_back(message);
            if let Some(slow) = st.slow.as_mut() {
                slow.tags.push_back(None);
            }
            if !self.shared.write_delay.is_zero() && st.since.is_none() {
                st.since = Some(tokio::time::Instant::now());
            }
            drop(st);
            self.notify.notify_one();
            return Pushed::Queued;
        }
        drop(st);
        self.push(message)
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

    /// Queues a publication of a subscription that is shed rather than closing the
    /// connection when the outbox would overflow (see the module doc). A publication of an
    /// already shed subscription is dropped ([`Pushed::Shed`]) until it is released.
    pub fn push_shedding(&self, message: Bytes, stamp: u64, tag: &ShedTag) -> Pushed {
        self.push_tagged(std::iter::once(message), stamp, Some(tag))
    }

    fn push_stamped(&self, messages: impl IntoIterator<Item = Bytes>, stamp: u64) -> Pushed {
        self.push_tagged(messages, stamp, None)
    }

    fn push_tagged(
        &self,
        messages: impl IntoIterator<Item = Bytes>,
        stamp: u64,
        tag: Option<&ShedTag>,
    ) -> Pushed {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return Pushed::Closed;
        }
        let start = st.bytes;
        if let (Some(t), Some(slow)) = (tag, st.slow.as_ref())
            && slow.shed.iter().any(|(c, _)| *c == t.channel)
        {
            return Pushed::Shed;
        }
        if tag.is_some() && st.slow.is_none() {
            let len = st.queue.len();
            st.slow = Some(Box::new(Slow {
                tags: std::iter::repeat_n(None, len).collect(),
                shed: Vec::new(),
            }));
        }
        let before = st.queue.len();
        let mut total = 0;
        for m in messages {
            total += m.len();
            st.queue.push_back(m);
        }
        let added = st.queue.len() - before;
        if added > 0 && st.bytes + total > self.shared.max_bytes {
            // Rare: take the new messages back and make room by shedding, or close.
            let incoming: Vec<Bytes> = st.queue.drain(before..).collect();
            match shed_until_fits(&mut st, total, tag, self.shared.max_bytes) {
                Room::Fits => {
                    st.queue.extend(incoming);
                }
                Room::IncomingShed => {
                    self.shared.settle(start, st.bytes);
                    drop(st);
                    self.notify.notify_one();
                    return Pushed::Shed;
                }
                Room::None => {
                    st.closed = Some(Box::new(Disconnect::SLOW));
                    st.queue.clear();
                    st.bytes = 0;
                    st.stamp = 0;
                    if let Some(slow) = st.slow.as_mut() {
                        slow.tags.clear();
                    }
                    self.shared.settle(start, 0);
                    drop(st);
                    self.notify.notify_one();
                    self.closed_notify.notify_waiters();
                    return Pushed::Overflowed;
                }
            }
        }
        st.bytes += total;
        self.shared.settle(start, st.bytes);
        if let Some(slow) = st.slow.as_mut() {
            slow.tags.extend(std::iter::repeat_n(tag.cloned(), added));
        }
        if st.stamp == 0 {
            st.stamp = stamp;
        }
        if !self.shared.write_delay.is_zero() && st.since.is_none() {
            st.since = Some(tokio::time::Instant::now());
        }
        drop(st);
        if added > 0 {
            self.notify.notify_one();
        }
        Pushed::Queued
    }

    /// Forgets a shed subscription once the client has unsubscribed it (its publications are
    /// queued again from then on, e.g. after the SDK resubscribed).
    pub fn release_shed(&self, channel: &str) {
        if let Some(slow) = self.state.lock().slow.as_mut() {
            slow.shed.retain(|(c, _)| &**c != channel);
        }
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
            st.closed = Some(Box::new(disconnect));
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
        self.state.lock().closed.as_deref().cloned()
    }

    /// Takes everything queued without waiting.
    pub fn try_drain(&self) -> Drained {
        let mut st = self.state.lock();
        self.shared.settle(st.bytes, 0);
        st.bytes = 0;
        st.uncounted = 0;
        let mut shed = Vec::new();
        if let Some(slow) = st.slow.as_mut() {
            slow.tags.clear();
            for (channel, reported) in &mut slow.shed {
                if !*reported {
                    *reported = true;
                    shed.push(channel.clone());
                }
            }
        }
        st.since = None;
        // The queue's allocation goes with the messages: an idle outbox holds none.
        let queue = std::mem::take(&mut st.queue);
        Drained {
            messages: Vec::from(queue),
            disconnect: st.closed.as_deref().cloned(),
            stamp: std::mem::take(&mut st.stamp),
            shed,
        }
    }

    /// Waits until something is queued or the outbox is closed, then takes everything.
    /// Cancel-safe: dropping the future loses nothing. The future is small (the outbox
    /// reference and the notification): an idle WebSocket connection holds one all the time.
    pub async fn drain(&self) -> Drained {
        if !self.shared.write_delay.is_zero() {
            // Boxed: every idle connection holds a drain future; the delayed one (a timer and
            // a close wait) must not make it bigger for connections without a delay.
            return Box::pin(self.drain_delayed()).await;
        }
        // One notification, pinned in place and awaited by reference: awaiting it by value
        // would keep a second copy of it (64 bytes) in the future of every idle connection.
        let mut notified = std::pin::pin!(self.notify.notified());
        loop {
            // Scoped, so the (empty) result is not kept in the future across the wait.
            {
                let drained = self.try_drain();
                if !drained.messages.is_empty()
                    || drained.disconnect.is_some()
                    || !drained.shed.is_empty()
                {
                    return drained;
                }
            }
            notified.as_mut().await;
            notified.set(self.notify.notified());
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
                let unreported = st
                    .slow
                    .as_ref()
                    .is_some_and(|s| s.shed.iter().any(|(_, reported)| !reported));
                if st.closed.is_some() || unreported {
                    drop(st);
                    return self.try_drain();
                }
                st.since
            };
            match since {
                None => notified.await,
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at + self.shared.write_delay) => {
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

impl Drop for Outbox {
    /// What was never drained leaves the node's gauge with the outbox.
    fn drop(&mut self) {
        self.shared.settle(self.state.get_mut().bytes, 0);
    }
}

/// What making room did.
enum Room {
    /// The incoming messages fit now.
    Fits,
    /// The incoming message's own subscription was shed with it.
    IncomingShed,
    /// Nothing left to shed: the connection must close.
    None,
}

/// Sheds the busiest shedding subscriptions until `incoming` bytes fit in `max`.
fn shed_until_fits(st: &mut State, incoming: usize, tag: Option<&ShedTag>, max: usize) -> Room {
    loop {
        if st.bytes + incoming <= max {
            return Room::Fits;
        }
        let Some(victim) = busiest(st) else {
            // Nothing queued can be shed; the incoming publication's own subscription can.
            return match tag {
                Some(t) if t.policy == Shedding::Resubscribe => {
                    mark_shed(st, &t.channel);
                    Room::IncomingShed
                }
                _ => Room::None,
            };
        };
        let incoming_is_victim = tag.is_some_and(|t| t.channel == victim.channel);
        // `latest` keeps the newest queued one unless the incoming one replaces it.
        let keep_last = victim.policy == Shedding::Latest && !incoming_is_victim;
        drop_backlog(st, &victim.channel, keep_last);
        if victim.policy == Shedding::Resubscribe {
            mark_shed(st, &victim.channel);
            if incoming_is_victim {
                return Room::IncomingShed;
            }
        } else if keep_last && st.bytes + incoming > max {
            // Conflated and still no room: shed no further on this subscription.
            return if busiest(st).is_some_and(|b| b.channel != victim.channel) {
                continue;
            } else {
                Room::None
            };
        }
    }
}

/// The shedding subscription with the most queued bytes (more than one message for
/// `latest`, which already holds only its newest otherwise).
fn busiest(st: &State) -> Option<ShedTag> {
    let slow = st.slow.as_ref()?;
    let mut per: HashMap<&str, (usize, usize, &ShedTag)> = HashMap::new();
    for (bytes, tag) in st.queue.iter().zip(slow.tags.iter()) {
        if let Some(t) = tag {
            let e = per.entry(&t.channel).or_insert((0, 0, t));
            e.0 += bytes.len();
            e.1 += 1;
        }
    }
    per.into_values()
        .filter(|(_, n, t)| t.policy == Shedding::Resubscribe || *n > 1)
        .max_by_key(|(b, _, _)| *b)
        .map(|(_, _, t)| t.clone())
}

/// Removes the queued messages of `channel` (all but its newest with `keep_last`).
fn drop_backlog(st: &mut State, channel: &str, keep_last: bool) {
    let Some(slow) = st.slow.as_mut() else {
        return;
    };
    let last = if keep_last {
        slow.tags
            .iter()
            .rposition(|t| t.as_ref().is_some_and(|t| &*t.channel == channel))
    } else {
        None
    };
    let mut kept_queue = VecDeque::with_capacity(st.queue.len());
    let mut kept_tags = VecDeque::with_capacity(st.queue.len());
    let mut bytes = 0;
    for (i, (m, t)) in st.queue.drain(..).zip(slow.tags.drain(..)).enumerate() {
        let mine = t.as_ref().is_some_and(|t| &*t.channel == channel);
        if !mine || Some(i) == last {
            bytes += m.len();
            kept_queue.push_back(m);
            kept_tags.push_back(t);
        }
    }
    st.queue = kept_queue;
    slow.tags = kept_tags;
    st.bytes = bytes;
}

fn mark_shed(st: &mut State, channel: &Arc<str>) {
    if let Some(slow) = st.slow.as_mut()
        && !slow.shed.iter().any(|(c, _)| c == channel)
    {
        slow.shed.push((channel.clone(), false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_gauge_follows_queue_drain_overflow_and_drop() {
        let shared = Outboxes::new(10, Duration::ZERO);
        let a = Outbox::of(shared.clone());
        let b = Outbox::of(shared.clone());
        a.push(Bytes::from_static(b"abcd"));
        b.push(Bytes::from_static(b"efg"));
        assert_eq!(shared.queued_bytes(), 7);
        assert_eq!(a.try_drain().messages.len(), 1);
        assert_eq!(shared.queued_bytes(), 3);
        // Overflow closes b and forgets what it held.
        assert_eq!(
            b.push(Bytes::from_static(b"0123456789")),
            Pushed::Overflowed
        );
        assert_eq!(shared.queued_bytes(), 0);
        a.push(Bytes::from_static(b"xy"));
        assert_eq!(shared.queued_bytes(), 2);
        drop(a);
        assert_eq!(
            shared.queued_bytes(),
            0,
            "a dropped outbox leaves the gauge"
        );
    }
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
        let o = std::sync::Arc::new(Outbox::of(Outboxes::new(100, Duration::from_millis(20))));
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

    fn tag(channel: &str, policy: Shedding) -> ShedTag {
        ShedTag {
            channel: Arc::from(channel),
            policy,
        }
    }

    #[tokio::test]
    async fn resubscribe_sheds_the_busiest_subscription_and_keeps_the_rest() {
        let o = Outbox::new(100);
        let busy = tag("busy", Shedding::Resubscribe);
        let calm = tag("calm", Shedding::Resubscribe);
        assert!(o
            .push_shedding(Bytes::from(vec![1u8; 10]), 0, &calm)
            .queued());
        for _ in 0..8 {
            assert!(o
                .push_shedding(Bytes::from(vec![2u8; 10]), 0, &busy)
                .queued());
        }
        // 90 queued; one more of `busy` overflows: busy's backlog goes, with the new one.
        assert_eq!(
            o.push_shedding(Bytes::from(vec![2u8; 20]), 0, &busy),
            Pushed::Shed
        );
        // Further `busy` publications are dropped until released; `calm` flows.
        assert_eq!(
            o.push_shedding(Bytes::from(vec![2u8; 5]), 0, &busy),
            Pushed::Shed
        );
        assert!(o
            .push_shedding(Bytes::from(vec![3u8; 10]), 0, &calm)
            .queued());
        assert!(o.push(Bytes::from_static(b"reply")).queued());
        let d = o.drain().await;
        assert!(d.disconnect.is_none());
        assert_eq!(d.shed, vec![Arc::<str>::from("busy")]);
        assert_eq!(d.messages.len(), 3, "calm, calm, reply");
        assert!(d.messages.iter().all(|m| m[0] != 2));
        // Reported once; released, then queued again.
        assert!(o.try_drain().shed.is_empty());
        o.release_shed("busy");
        assert!(o
            .push_shedding(Bytes::from(vec![2u8; 5]), 0, &busy)
            .queued());
    }

    #[tokio::test]
    async fn latest_conflates_to_the_newest_publication() {
        let o = Outbox::new(50);
        let cache = tag("cache", Shedding::Latest);
        for i in 0..5u8 {
            assert!(o
                .push_shedding(Bytes::from(vec![i; 10]), 0, &cache)
                .queued());
        }
        assert!(o
            .push_shedding(Bytes::from(vec![9u8; 10]), 0, &cache)
            .queued());
        let d = o.drain().await;
        assert!(d.disconnect.is_none() && d.shed.is_empty());
        assert_eq!(
            d.messages,
            vec![Bytes::from(vec![9u8; 10])],
            "only the newest"
        );
    }

    #[tokio::test]
    async fn untagged_overflow_sheds_a_tagged_subscription_before_closing() {
        let o = Outbox::new(50);
        let busy = tag("busy", Shedding::Resubscribe);
        for _ in 0..4 {
            assert!(o
                .push_shedding(Bytes::from(vec![2u8; 10]), 0, &busy)
                .queued());
        }
        // A reply that does not fit: busy is shed, the reply is queued.
        assert!(o.push(Bytes::from(vec![7u8; 30])).queued());
        let d = o.drain().await;
        assert_eq!(d.messages, vec![Bytes::from(vec![7u8; 30])]);
        assert_eq!(d.shed.len(), 1);
        // Without anything to shed, overflow still closes with 3008.
        assert!(o.push(Bytes::from(vec![0u8; 40])).queued());
        assert_eq!(o.push(Bytes::from(vec![0u8; 40])), Pushed::Overflowed);
    }

    #[tokio::test]
    async fn one_reply_is_outside_the_bound_a_second_is_not() {
        let o = Outbox::new(100);
        assert!(o.push(Bytes::from(vec![0u8; 60])).queued());
        assert!(o.push_reply(Bytes::from(vec![1u8; 500])).queued());
        // Publications keep their room while the big reply waits.
        assert!(o.push(Bytes::from(vec![2u8; 30])).queued());
        // A second reply counts: 60 + 30 + 20 > 100 overflows as usual.
        assert_eq!(o.push_reply(Bytes::from(vec![3u8; 20])), Pushed::Overflowed);
    }
}
