//! The hub: which connections of this node subscribe to which channel, and fan-out.
//!
//! Channels live in shards (a `RwLock`ed map each), and each channel's subscriber set has its
//! own mutex, so fan-out on one channel never blocks lookups on others. A publication is
//! encoded at most once per protocol and the same `Bytes` is queued to every subscriber.
//! A subscriber that is still recovering buffers live publications; [`Hub::finish_recovery`]
//! merges the buffer by offset after the subscribe reply went out, so nothing is lost or
//! duplicated and the reply always precedes live publications.
//!
//! Subscribers that negotiated delta compression ([`Subscriber::delta`]) get each publication
//! in full or as a Fossil delta against the channel's previous payload, which the channel
//! keeps while it has such subscribers; the delta is computed once per publication
//! ([`crate::delta::DeltaOnce`]). A delta goes only to a subscriber known to hold that
//! previous payload (it received it live, or it was the last one of its recovery).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use pushwire_protocol::{Disconnect, FilterNode, JoinLeave, Publication, Push};

use crate::batch::{Account, BatchPolicy, Flusher};
use crate::delta::DeltaOnce;
use crate::encoding::{EncodeOnce, Encoding};

use crate::filter;
use crate::outbox::{Outbox, Pushed, ShedTag, Shedding};

const SHARDS: usize = 64;

/// Identifies a connection inside this node.
pub type ClientKey = u64;

/// One connection's subscription as the hub sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Where to queue messages.
    pub outbox: Arc<Outbox>,
    /// How the connection wants its messages.
    pub encoding: Encoding,
    /// Only publications whose tags match are delivered.
    pub filter: Option<Arc<FilterNode>>,
    /// Deliver join/leave pushes.
    pub push_join_leave: bool,
    /// The connection's transport as a metrics label index ([`pushwire_protocol::TransportKind::index`]).
    pub transport: u8,
    /// How this subscription is shed when its connection falls behind (`None`: the
    /// connection closes with 3008), from the namespace's `slow_subscriber_policy`.
    pub shedding: Option<Shedding>,
    /// Fossil delta compression was negotiated for this subscription.
    pub delta: bool,
}

/// Which payload a delta subscriber holds as its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The payload of the channel's publication number `n` on this hub.
    Seq(u64),
    /// The payload at this stream offset (the last publication of its recovery).
    Offset(u64),
}

/// The channel's previous payload, kept while it has delta subscribers.
#[derive(Debug)]
struct Prev {
    seq: u64,
    offset: u64,
    data: Bytes,
}

impl Prev {
    fn held_by(&self, held: Option<&Held>) -> bool {
        match held {
            Some(Held::Seq(n)) => *n == self.seq,
            Some(Held::Offset(o)) => *o != 0 && *o == self.offset,
            None => false,
        }
    }
}

/// One channel's state on this node. An idle channel with one subscriber (a user's personal
/// channel) is the subscriber inline and a counter: 64 bytes, one allocation with its lock and
/// `Arc` header (80-byte class), plus the name and its slot in the shard. Everything only some
/// channels need lives in [`Extra`], allocated when first needed and freed when it is empty
/// again (see docs/architecture.md, "Memory budget").
#[derive(Debug, Default)]
struct Channel {
    subscribers: Subscribers,
    /// Publications this hub delivered on the channel (numbers them for [`Held::Seq`]).
    seq: u64,
    /// Recovery, delta and batching state, `None` while the channel needs none.
    extra: Option<Box<Extra>>,
}

/// The parts of a channel's state that an idle channel does not need.
#[derive(Debug, Default)]
struct Extra {
    /// Live publications held back while a subscriber recovers: (offset, encoded, number
    /// of the publication on this hub).
    recovering: HashMap<ClientKey, Vec<(u64, Bytes, u64)>>,
    /// Subscribers that just recovered up to an offset the broker had not delivered here yet
    /// (a shared engine's stream top can be ahead of its PUB/SUB delivery): live publications
    /// at or below the offset were already sent and are skipped. An entry goes with the first
    /// publication above it.
    delivered: HashMap<ClientKey, u64>,
    /// Subscribers with [`Subscriber::delta`].
    delta_subs: usize,
    /// The previous payload, while `delta_subs > 0`.
    prev: Option<Prev>,
    /// The base each delta subscriber holds.
    held: HashMap<ClientKey, Held>,
    /// Publications held by namespace batching ([`crate::batch`]).
    batch: Vec<Publication>,
    /// Of the held batch only the newest goes out.
    batch_latest: bool,
}

impl Extra {
    /// Nothing left that a publication or a later call would need.
    fn is_empty(&self) -> bool {
        self.recovering.is_empty()
            && self.delivered.is_empty()
            && self.delta_subs == 0
            && self.prev.is_none()
            && self.held.is_empty()
            && self.batch.is_empty()
    }
}

impl Channel {
    /// The extra state, allocated on first use.
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Frees the extra state once nothing in it is needed any more.
    fn tidy(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }
}

/// A channel's subscribers on this node: one inline (personal channels, the common case),
/// or a map.
#[derive(Debug, Default)]
enum Subscribers {
    #[default]
    Empty,
    One(ClientKey, Subscriber),
    // Boxed: inline the map (48 bytes) would make every channel's state bigger.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<ClientKey, Subscriber>>),
}

impl Subscribers {
    /// Inserts or replaces; returns the replaced subscriber.
    fn insert(&mut self, key: ClientKey, sub: Subscriber) -> Option<Subscriber> {
        match self {
            Subscribers::Empty => {
                *self = Subscribers::One(key, sub);
                None
            }
            Subscribers::One(k, s) if *k == key => Some(std::mem::replace(s, sub)),
            Subscribers::One(..) => {
                let Subscribers::One(k, s) = std::mem::take(self) else {
                    unreachable!()
                };
                let mut map = HashMap::with_capacity(2);
                map.insert(k, s);
                map.insert(key, sub);
                *self = Subscribers::Many(Box::new(map));
                None
            }
            Subscribers::Many(m) => m.insert(key, sub),
        }
    }

    /// Removes `key`. A map left with one subscriber goes back inline.
    fn remove(&mut self, key: &ClientKey) -> Option<Subscriber> {
        match self {
            Subscribers::Empty => None,
            Subscribers::One(k, _) if k == key => {
                let Subscribers::One(_, s) = std::mem::take(self) else {
                    unreachable!()
                };
                Some(s)
            }
            Subscribers::One(..) => None,
            Subscribers::Many(m) => {
                let removed = m.remove(key);
                if m.len() <= 1 {
                    let last = m.drain().next();
                    *self = match last {
                        Some((k, s)) => Subscribers::One(k, s),
                        None => Subscribers::Empty,
                    };
                }
                removed
            }
        }
    }

    fn get(&self, key: &ClientKey) -> Option<&Subscriber> {
        match self {
            Subscribers::One(k, s) if k == key => Some(s),
            Subscribers::Many(m) => m.get(key),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            Subscribers::Empty => 0,
            Subscribers::One(..) => 1,
            Subscribers::Many(m) => m.len(),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Subscribers::Empty)
    }

    fn iter(&self) -> impl Iterator<Item = (&ClientKey, &Subscriber)> {
        let (one, many) = match self {
            Subscribers::Empty => (None, None),
            Subscribers::One(k, s) => (Some((k, s)), None),
            Subscribers::Many(m) => (None, Some(m.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn values(&self) -> impl Iterator<Item = &Subscriber> {
        self.iter().map(|(_, s)| s)
    }
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Mutex<Channel>>>>;

/// Channel → subscribers of this node.
#[derive(Debug)]
pub struct Hub {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    gauges: crate::metrics::HubGauges,
    flusher: Flusher,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// Outcome of one delivery to the subscribers of a channel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Subscribers the message was queued to.
    pub queued: usize,
    /// Subscribers that could not take it (closed, slow, inappropriate protocol).
    pub dropped: usize,
    /// Subscribers this delivery closed as slow (3008).
    pub overflowed: usize,
    /// Subscriptions shed instead (see [`Shedding`]): the publication is dropped for them and
    /// they recover it after resubscribing.
    pub shed: usize,
}

impl Delivery {
    fn count(&mut self, pushed: Pushed) {
        match pushed {
            Pushed::Queued => self.queued += 1,
            Pushed::Closed => self.dropped += 1,
            Pushed::Overflowed => {
                self.dropped += 1;
                self.overflowed += 1;
            }
            Pushed::Shed => {
                self.dropped += 1;
                self.shed += 1;
            }
        }
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: Default::default(),
            gauges: Default::default(),
            flusher: Flusher::default(),
        }
    }

    /// Channel and subscription gauges, read without locking the hub.
    pub fn gauges(&self) -> &crate::metrics::HubGauges {
        &self.gauges
    }

    fn shard(&self, channel: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(channel) as usize) % SHARDS]
    }

    fn channel(&self, channel: &str) -> Option<Arc<Mutex<Channel>>> {
        self.shard(channel).read().get(channel).cloned()
    }

    /// The channel's name as this hub stores it, when the channel has subscribers here, else
    /// a new one: a subscription keeps this `Arc` so that the name is allocated once per
    /// channel, not once per subscription.
    pub fn name(&self, channel: &str) -> Arc<str> {
        match self.shard(channel).read().get_key_value(channel) {
            Some((name, _)) => name.clone(),
            None => Arc::from(channel),
        }
    }

    /// Adds a subscriber. With `recovering`, live publications are buffered until
    /// [`Hub::finish_recovery`]. Returns true if this is the channel's first subscriber.
    ///
    /// `channel` becomes the channel's key when the channel is new: pass the `Arc<str>` the
    /// caller keeps (from [`Hub::name`]) so that the name is stored once.
    pub fn subscribe(
        &self,
        channel: impl AsRef<str> + Into<Arc<str>>,
        key: ClientKey,
        sub: Subscriber,
        recovering: bool,
    ) -> bool {
        let mut shard = self.shard(channel.as_ref()).write();
        let (ch, first) = match shard.get(channel.as_ref()) {
            Some(ch) => (ch.clone(), false),
            None => {
                let ch = Arc::new(Mutex::new(Channel::default()));
                shard.insert(channel.into(), ch.clone());
                (ch, true)
            }
        };
        let mut ch = ch.lock();
        drop(shard);
        let transport = sub.transport;
        let delta = sub.delta;
        if ch.subscribers.insert(key, sub).is_none() {
            self.gauges.subscription(transport, 1);
            if delta {
                ch.extra().delta_subs += 1;
            }
        }
        if first {
            self.gauges.channel(1);
        }
        if recovering {
            ch.extra().recovering.insert(key, Vec::new());
        }
        first
    }

    /// Ends recovery of `key`: queues the buffered live publications with an offset above
    /// `delivered_offset`, in order, then delivers live. `holds_offset` is the offset of the
    /// last publication the subscribe result carried (0: none), the delta base of a delta
    /// subscriber when nothing buffered follows it. Returns false if the outbox refused.
    pub fn finish_recovery(
        &self,
        channel: &str,
        key: ClientKey,
        delivered_offset: u64,
        holds_offset: u64,
    ) -> bool {
        let Some(ch) = self.channel(channel) else {
            return true;
        };
        let mut guard = ch.lock();
        let ch = &mut *guard;
        let Some(extra) = ch.extra.as_deref_mut() else {
            return true;
        };
        let Some(mut buffered) = extra.recovering.remove(&key) else {
            return true;
        };
        let Some(sub) = ch.subscribers.get(&key) else {
            ch.tidy();
            return true;
        };
        buffered.sort_by_key(|(offset, _, _)| *offset);
        let mut last = delivered_offset;
        let mut out = Vec::with_capacity(buffered.len());
        let mut held = Held::Offset(holds_offset);
        for (offset, bytes, seq) in buffered {
            // Offset 0: channel without history, no dedupe possible or needed.
            if offset == 0 || offset > last {
                if offset != 0 {
                    last = offset;
                }
                out.push(bytes);
                held = Held::Seq(seq);
            }
        }
        if sub.delta {
            extra.held.insert(key, held);
        }
        let queued = sub.outbox.push_all(out).queued();
        if last > 0 {
            extra.delivered.insert(key, last);
        }
        ch.tidy();
        queued
    }

    /// Whether `key` already got the publication at `offset` through its recovery; forgets the
    /// subscriber's mark at the first publication above it.
    fn already_delivered(
        delivered: &mut HashMap<ClientKey, u64>,
        key: ClientKey,
        offset: u64,
    ) -> bool {
        match delivered.get(&key) {
            Some(&mark) if offset != 0 && offset <= mark => true,
            Some(_) => {
                delivered.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Removes a subscriber. Returns true if the channel has no subscriber left on this node.
    pub fn unsubscribe(&self, channel: &str, key: ClientKey) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(ch) = shard.get(channel).cloned() else {
            return true;
        };
        let mut ch = ch.lock();
        let removed = ch.subscribers.remove(&key);
        if let Some(s) = &removed {
            self.gauges.subscription(s.transport, -1);
        }
        if let Some(extra) = ch.extra.as_deref_mut() {
            if removed.is_some_and(|s| s.delta) {
                extra.delta_subs -= 1;
                if extra.delta_subs == 0 {
                    extra.prev = None;
                }
            }
            extra.recovering.remove(&key);
            extra.delivered.remove(&key);
            extra.held.remove(&key);
            ch.tidy();
        }
        if ch.subscribers.is_empty() {
            shard.remove(channel);
            self.gauges.channel(-1);
            true
        } else {
            false
        }
    }

    /// Queues `publication` to every matching subscriber now, encoding it once per protocol
    /// (and, for delta subscribers, once per protocol and form). `publication.delta` says
    /// whether it may go as a delta.
    pub fn publish(&self, channel: &str, publication: &Publication) -> Delivery {
        let Some(ch) = self.channel(channel) else {
            return Delivery::default();
        };
        let stamp = crate::metrics::stamp_now();
        let mut ch = ch.lock();
        Self::deliver(channel, &mut ch, publication, stamp, None)
    }

    /// Holds `publication` in the channel's batch (namespace batching, see [`crate::batch`]);
    /// the batch goes out when it is full or its first publication is `policy.max_delay`
    /// old. Returns what was delivered now; `account` counts what is delivered later.
    pub fn publish_batched(
        self: &Arc<Self>,
        channel: &str,
        publication: &Publication,
        policy: BatchPolicy,
        account: &Account,
    ) -> Delivery {
        let Some(ch) = self.channel(channel) else {
            return Delivery::default();
        };
        let mut guard = ch.lock();
        let c = &mut *guard;
        let extra = c.extra();
        extra.batch.push(publication.clone());
        extra.batch_latest = policy.flush_latest;
        let held = extra.batch.len();
        if policy.max_size > 0 && held >= policy.max_size {
            return Self::flush_locked(channel, c);
        }
        if held == 1 {
            let at = tokio::time::Instant::now() + policy.max_delay;
            if !self.flusher.schedule(self, account, Arc::from(channel), at) {
                return Self::flush_locked(channel, c);
            }
        }
        Delivery::default()
    }

    /// Delivers the channel's held batch now (the flusher calls it at the deadline).
    pub fn flush_batch(&self, channel: &str) -> Delivery {
        match self.channel(channel) {
            Some(ch) => Self::flush_locked(channel, &mut ch.lock()),
            None => Delivery::default(),
        }
    }

    /// Delivers the held batch: each subscriber's share in one outbox push.
    fn flush_locked(channel: &str, ch: &mut Channel) -> Delivery {
        let Some(extra) = ch.extra.as_deref_mut() else {
            return Delivery::default();
        };
        let mut batch = std::mem::take(&mut extra.batch);
        if extra.batch_latest && batch.len() > 1 {
            batch.drain(..batch.len() - 1);
        }
        if batch.is_empty() {
            ch.tidy();
            return Delivery::default();
        }
        let stamp = crate::metrics::stamp_now();
        let mut groups: HashMap<ClientKey, Vec<Bytes>> = HashMap::new();
        let mut delivery = Delivery::default();
        for p in &batch {
            let d = Self::deliver(channel, ch, p, stamp, Some(&mut groups));
            delivery.queued += d.queued;
            delivery.dropped += d.dropped;
        }
        // The channel's name for shed tags, made once if a shedding subscriber needs it.
        let mut shed_name: Option<Arc<str>> = None;
        for (key, messages) in groups {
            let Some(sub) = ch.subscribers.get(&key) else {
                continue;
            };
            let n = messages.len();
            let tag = sub.shedding.map(|policy| ShedTag {
                channel: shed_name.get_or_insert_with(|| Arc::from(channel)).clone(),
                policy,
            });
            match sub.outbox.push_publications(messages, stamp, tag.as_ref()) {
                Pushed::Queued => delivery.queued += n,
                Pushed::Closed => delivery.dropped += n,
                Pushed::Overflowed => {
                    delivery.dropped += n;
                    delivery.overflowed += 1;
                }
                Pushed::Shed => {
                    delivery.dropped += n;
                    delivery.shed += 1;
                }
            }
        }
        ch.tidy();
        delivery
    }

    /// Queues `publication` to every matching subscriber of the locked channel `ch`, encoding
    /// it once per protocol (and, for delta subscribers, once per protocol and form), or adds
    /// it to `groups` (per subscriber) when given. `publication.delta` says whether it may go
    /// as a delta.
    fn deliver(
        channel: &str,
        ch: &mut Channel,
        publication: &Publication,
        stamp: u64,
        mut groups: Option<&mut HashMap<ClientKey, Vec<Bytes>>>,
    ) -> Delivery {
        let push = Push {
            channel: channel.to_owned(),
            publication: Some(Publication {
                delta: false,
                ..publication.clone()
            }),
            ..Default::default()
        };
        let mut encoded = EncodeOnce::new(&push);
        let Channel {
            subscribers,
            seq,
            extra,
        } = ch;
        *seq += 1;
        let seq = *seq;
        let mut extra = extra.as_deref_mut();
        // Disjoint borrows of the extra state's parts (all empty without it).
        let (mut recovering_subs, mut delivered, mut held, prev) = match extra.as_deref_mut() {
            Some(Extra {
                recovering,
                delivered,
                held,
                prev,
                ..
            }) => (Some(recovering), Some(delivered), Some(held), prev.as_ref()),
            None => (None, None, None, None),
        };
        let mut deltas = DeltaOnce::new(channel, publication, prev.map(|p| &p.data[..]));
        let mut delivery = Delivery::default();
        // The channel's name for shed tags, made once if a shedding subscriber needs it.
        let mut shed_name: Option<Arc<str>> = None;
        for (key, sub) in subscribers.iter() {
            if let Some(f) = &sub.filter
                && !filter::matches(f, &publication.tags)
            {
                continue;
            }
            let recovering = recovering_subs
                .as_ref()
                .is_some_and(|r| r.contains_key(key));
            if let Some(d) = delivered.as_deref_mut()
                && !recovering
                && !d.is_empty()
                && Self::already_delivered(d, *key, publication.offset)
            {
                continue;
            }
            let bytes = if sub.delta {
                // A recovering subscriber's base is settled by finish_recovery: full payload.
                let holds = !recovering
                    && prev.is_some_and(|p| p.held_by(held.as_ref().and_then(|h| h.get(key))));
                let bytes = deltas.get(sub.encoding, holds);
                if bytes.is_some()
                    && !recovering
                    && let Some(h) = held.as_deref_mut()
                {
                    h.insert(*key, Held::Seq(seq));
                }
                bytes
            } else {
                encoded.get(sub.encoding)
            };
            let Some(bytes) = bytes else {
                sub.outbox
                    .close(pushwire_protocol::Disconnect::INAPPROPRIATE_PROTOCOL);
                delivery.dropped += 1;
                continue;
            };
            if let Some(buf) = recovering_subs.as_deref_mut().and_then(|r| r.get_mut(key)) {
                buf.push((publication.offset, bytes, seq));
                delivery.queued += 1;
            } else if let Some(g) = groups.as_deref_mut() {
                g.entry(*key).or_default().push(bytes);
            } else if let Some(policy) = sub.shedding {
                let tag = ShedTag {
                    channel: shed_name.get_or_insert_with(|| Arc::from(channel)).clone(),
                    policy,
                };
                delivery.count(sub.outbox.push_shedding(bytes, stamp, &tag));
            } else {
                delivery.count(sub.outbox.push_publication(bytes, stamp));
            }
        }
        drop(deltas);
        if let Some(e) = extra
            && e.delta_subs > 0
        {
            e.prev = Some(Prev {
                seq,
                offset: publication.offset,
                data: publication.data.0.clone(),
            });
        }
        ch.tidy();
        delivery
    }

    /// Queues a join or leave push to the subscribers that asked for them.
    pub fn join_leave(&self, channel: &str, info: JoinLeave, join: bool) -> Delivery {
        let Some(ch) = self.channel(channel) else {
            return Delivery::default();
        };
        let mut push = Push {
            channel: channel.to_owned(),
            ..Default::default()
        };
        if join {
            push.join = Some(info);
        } else {
            push.leave = Some(info);
        }
        let mut encoded = EncodeOnce::new(&push);
        let ch = ch.lock();
        let mut delivery = Delivery::default();
        for sub in ch.subscribers.values().filter(|s| s.push_join_leave) {
            match encoded.get(sub.encoding) {
                Some(b) => delivery.count(sub.outbox.push(b)),
                None => delivery.dropped += 1,
            }
        }
        delivery
    }

    /// Closes (with `disconnect`) the connections of this node subscribed to any of
    /// `channels`, e.g. 3010 after the broker lost continuity, so their SDKs reconnect and
    /// recover from history. Returns the number of subscriptions closed.
    pub fn close_subscribers(&self, channels: &[String], disconnect: &Disconnect) -> usize {
        let mut n = 0;
        for name in channels {
            if let Some(ch) = self.channel(name) {
                for sub in ch.lock().subscribers.values() {
                    sub.outbox.close(disconnect.clone());
                    n += 1;
                }
            }
        }
        n
    }

    /// Number of subscribers of `channel` on this node.
    pub fn num_subscribers(&self, channel: &str) -> usize {
        self.channel(channel)
            .map(|c| c.lock().subscribers.len())
            .unwrap_or(0)
    }

    /// Channels with at least one subscriber on this node, with their subscriber counts.
    pub fn channels(&self) -> Vec<(Arc<str>, usize)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (name, ch) in shard.read().iter() {
                out.push((name.clone(), ch.lock().subscribers.len()));
            }
        }
        out
    }

    /// Number of channels and of subscriptions on this node.
    pub fn counts(&self) -> (usize, usize) {
        let mut channels = 0;
        let mut subs = 0;
        for shard in self.shards.iter() {
            let shard = shard.read();
            channels += shard.len();
            subs += shard
                .values()
                .map(|c| c.lock().subscribers.len())
                .sum::<usize>();
        }
        (channels, subs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwire_protocol::{Protocol, RawJson};

    fn sub(outbox: &Arc<Outbox>) -> Subscriber {
        Subscriber {
            outbox: outbox.clone(),
            encoding: Encoding {
                protocol: Protocol::Json,
                bare_push: false,
            },
            filter: None,
            push_join_leave: false,
            transport: 0,
            shedding: None,
            delta: false,
        }
    }

    fn publication(offset: u64) -> Publication {
        Publication {
            data: RawJson::from_json_str(&format!("{{\"n\":{offset}}}")).unwrap(),
            offset,
            ..Default::default()
        }
    }

    #[test]
    fn encodes_once_and_shares_bytes() {
        let hub = Hub::new();
        let a = Arc::new(Outbox::new(1 << 20));
        let b = Arc::new(Outbox::new(1 << 20));
        assert!(hub.subscribe("ch", 1, sub(&a), false));
        assert!(!hub.subscribe("ch", 2, sub(&b), false));
        let d = hub.publish("ch", &publication(1));
        assert_eq!(d.queued, 2);
        let ma = a.try_drain().messages;
        let mb = b.try_drain().messages;
        assert_eq!(ma[0].as_ptr(), mb[0].as_ptr(), "same allocation shared");
        assert_eq!(
            &ma[0][..],
            br#"{"push":{"channel":"ch","pub":{"data":{"n":1},"offset":1}}}"#
        );
    }

    #[test]
    fn recovery_buffer_merges_without_duplicates() {
        let hub = Hub::new();
        let a = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 1, sub(&a), true);
        hub.publish("ch", &publication(5));
        hub.publish("ch", &publication(6));
        assert!(
            a.try_drain().messages.is_empty(),
            "buffered while recovering"
        );
        // Recovery read delivered up to offset 5 already.
        assert!(hub.finish_recovery("ch", 1, 5, 0));
        hub.publish("ch", &publication(7));
        let got: Vec<String> = a
            .try_drain()
            .messages
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("\"offset\":6"));
        assert!(got[1].contains("\"offset\":7"));
    }

    /// A shared engine's stream top can be ahead of what its PUB/SUB delivered here: the
    /// recovery read already sent offsets 5 and 6, which arrive live only afterwards.
    #[test]
    fn publications_the_recovery_read_already_sent_are_not_sent_again() {
        let hub = Hub::new();
        let a = Arc::new(Outbox::new(1 << 20));
        let b = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 1, sub(&a), true);
        hub.subscribe("ch", 2, sub(&b), false);
        assert!(hub.finish_recovery("ch", 1, 6, 0));
        for offset in [5, 6, 7, 8] {
            hub.publish("ch", &publication(offset));
        }
        let offsets = |o: &Outbox| -> Vec<String> {
            o.try_drain()
                .messages
                .iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect()
        };
        let got = offsets(&a);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("\"offset\":7") && got[1].contains("\"offset\":8"));
        assert_eq!(offsets(&b).len(), 4, "other subscribers get everything");
    }

    fn delta_sub(outbox: &Arc<Outbox>) -> Subscriber {
        Subscriber {
            delta: true,
            ..sub(outbox)
        }
    }

    fn doc(offset: u64) -> Publication {
        let body: String = (0..30).map(|i| format!("\"k{i}\":\"v{i}\",")).collect();
        Publication {
            data: RawJson::from_json_str(&format!("{{{body}\"n\":{offset}}}")).unwrap(),
            offset,
            delta: true,
            ..Default::default()
        }
    }

    /// (is a delta, data string) of each queued publication.
    fn pubs(o: &Outbox) -> Vec<(bool, String)> {
        o.try_drain()
            .messages
            .iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_slice(m).unwrap();
                let p = &v["push"]["pub"];
                (
                    p["delta"].as_bool().unwrap_or(false),
                    p["data"].as_str().expect("a JSON string").to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn delta_subscribers_get_deltas_against_what_they_hold() {
        let hub = Hub::new();
        let (a, b, plain) = (
            Arc::new(Outbox::new(1 << 20)),
            Arc::new(Outbox::new(1 << 20)),
            Arc::new(Outbox::new(1 << 20)),
        );
        hub.subscribe("ch", 1, delta_sub(&a), false);
        hub.subscribe("ch", 3, sub(&plain), false);
        hub.publish("ch", &doc(1));
        hub.publish("ch", &doc(2));
        // b recovers: its result carried offset 2, a live publication arrives meanwhile.
        hub.subscribe("ch", 2, delta_sub(&b), true);
        hub.publish("ch", &doc(3));
        assert!(hub.finish_recovery("ch", 2, 2, 2));
        hub.publish("ch", &doc(4));
        let mut no_delta = doc(5);
        no_delta.delta = false;
        hub.publish("ch", &no_delta);
        hub.publish("ch", &doc(6));

        let got = pubs(&a);
        let kinds: Vec<bool> = got.iter().map(|(d, _)| *d).collect();
        assert_eq!(kinds, [false, true, true, true, false, true]);
        let mut base = Vec::new();
        for (n, (delta, data)) in got.iter().enumerate() {
            base = if *delta {
                pushwire_protocol::fossil::apply(&base, data.as_bytes()).unwrap()
            } else {
                data.as_bytes().to_vec()
            };
            let want = if n == 4 {
                no_delta.data.clone()
            } else {
                doc(n as u64 + 1).data
            };
            assert_eq!(base, want.as_bytes(), "publication {}", n + 1);
        }
        // The buffered publication is full; the next is a delta against it.
        let kinds: Vec<bool> = pubs(&b).iter().map(|(d, _)| *d).collect();
        assert_eq!(kinds, [false, true, false, true]);
        // Plain subscribers see plain JSON, never the mark.
        for m in plain.try_drain().messages {
            let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
            assert!(v["push"]["pub"]["data"].is_object());
            assert!(v["push"]["pub"].get("delta").is_none());
        }
    }

    #[test]
    fn a_recovered_base_is_used_and_a_filtered_publication_breaks_the_chain() {
        let hub = Hub::new();
        let a = Arc::new(Outbox::new(1 << 20));
        let b = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 9, sub(&b), false);
        hub.publish("ch", &doc(1));
        // Nothing is kept without delta subscribers: a's first publication is full.
        hub.subscribe("ch", 1, delta_sub(&a), true);
        assert!(hub.finish_recovery("ch", 1, 1, 1));
        hub.publish("ch", &doc(2));
        hub.publish("ch", &doc(3));
        let kinds: Vec<bool> = pubs(&a).iter().map(|(d, _)| *d).collect();
        assert_eq!(kinds, [false, true]);

        // Subscribed at a position only (no publication in the result): full first.
        let c = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 2, delta_sub(&c), true);
        assert!(hub.finish_recovery("ch", 2, 3, 0));
        hub.publish("ch", &doc(4));
        let kinds: Vec<bool> = pubs(&c).iter().map(|(d, _)| *d).collect();
        assert_eq!(kinds, [false]);
        // Recovered up to offset 4 (the channel's previous payload): a delta at once.
        let d = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 4, delta_sub(&d), true);
        assert!(hub.finish_recovery("ch", 4, 4, 4));
        hub.publish("ch", &doc(5));
        let kinds: Vec<bool> = pubs(&d).iter().map(|(d, _)| *d).collect();
        assert_eq!(kinds, [true]);

        let f = Arc::new(Outbox::new(1 << 20));
        let mut filtered = delta_sub(&f);
        filtered.filter = Some(Arc::new(FilterNode {
            key: "k".into(),
            cmp: "eq".into(),
            val: "x".into(),
            ..Default::default()
        }));
        hub.subscribe("ch", 5, filtered, false);
        let tagged = |n| Publication {
            tags: [("k".to_string(), "x".to_string())].into(),
            ..doc(n)
        };
        hub.publish("ch", &tagged(6));
        hub.publish("ch", &tagged(7));
        hub.publish("ch", &doc(8));
        hub.publish("ch", &tagged(9));
        let kinds: Vec<bool> = pubs(&f).iter().map(|(d, _)| *d).collect();
        assert_eq!(
            kinds,
            [false, true, false],
            "no delta after a skipped publication"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn batches_go_out_by_size_by_time_and_latest_only() {
        let hub = Arc::new(Hub::new());
        let a = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 1, sub(&a), false);
        let flushed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let f = flushed.clone();
        let account: Account = Arc::new(move |d: Delivery| {
            f.fetch_add(d.queued, std::sync::atomic::Ordering::SeqCst);
        });
        let policy = BatchPolicy {
            max_size: 3,
            max_delay: std::time::Duration::from_millis(10),
            flush_latest: false,
        };
        assert_eq!(
            hub.publish_batched("ch", &publication(1), policy, &account)
                .queued,
            0
        );
        assert_eq!(
            hub.publish_batched("ch", &publication(2), policy, &account)
                .queued,
            0
        );
        assert!(a.try_drain().messages.is_empty(), "held");
        assert_eq!(
            hub.publish_batched("ch", &publication(3), policy, &account)
                .queued,
            3
        );
        assert_eq!(a.try_drain().messages.len(), 3, "full batch at once");

        hub.publish_batched("ch", &publication(4), policy, &account);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(a.try_drain().messages.is_empty(), "held until the deadline");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(a.try_drain().messages.len(), 1, "delivered at the deadline");
        assert_eq!(flushed.load(std::sync::atomic::Ordering::SeqCst), 1);

        let latest = BatchPolicy {
            max_size: 0,
            flush_latest: true,
            ..policy
        };
        for n in 5..=9 {
            hub.publish_batched("ch", &publication(n), latest, &account);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let got = a.try_drain().messages;
        assert_eq!(got.len(), 1, "only the newest");
        assert!(String::from_utf8_lossy(&got[0]).contains("\"offset\":9"));
    }

    /// A batched channel's subscription that sheds is shed when its batch overflows the
    /// outbox, like an unbatched one: the connection stays open and its other subscriber
    /// gets the whole batch.
    #[tokio::test(start_paused = true)]
    async fn an_overflowing_batch_sheds_a_shedding_subscription_instead_of_closing() {
        let hub = Arc::new(Hub::new());
        let small = Arc::new(Outbox::new(100));
        let roomy = Arc::new(Outbox::new(1 << 20));
        hub.subscribe(
            "ch",
            1,
            Subscriber {
                shedding: Some(Shedding::Resubscribe),
                ..sub(&small)
            },
            false,
        );
        hub.subscribe("ch", 2, sub(&roomy), false);
        let account: Account = Arc::new(|_| {});
        let policy = BatchPolicy {
            max_size: 5,
            max_delay: std::time::Duration::from_millis(10),
            flush_latest: false,
        };
        let mut last = Delivery::default();
        for n in 1..=5 {
            last = hub.publish_batched("ch", &publication(n), policy, &account);
        }
        assert_eq!(last.shed, 1, "the shedding subscription is shed");
        assert_eq!(last.overflowed, 0, "no connection overflowed");
        let drained = small.try_drain();
        assert_eq!(drained.disconnect, None, "the connection stays open");
        assert_eq!(drained.shed.len(), 1);
        assert_eq!(&*drained.shed[0], "ch");
        assert_eq!(
            roomy.try_drain().messages.len(),
            5,
            "the other gets the batch"
        );
    }

    /// An idle channel keeps only its subscribers and counter: the recovery buffer of the
    /// subscribe is freed when recovery ends, one subscriber is held inline, and the name is
    /// the caller's allocation.
    #[test]
    fn an_idle_channel_holds_no_extra_state() {
        assert!(
            std::mem::size_of::<Channel>() <= 64,
            "Channel is {} bytes: keep rarely used state in Extra",
            std::mem::size_of::<Channel>()
        );
        let hub = Hub::new();
        let a = Arc::new(Outbox::new(1 << 20));
        let b = Arc::new(Outbox::new(1 << 20));
        let name: Arc<str> = hub.name("personal:1");
        hub.subscribe(name.clone(), 1, sub(&a), true);
        assert!(Arc::ptr_eq(&name, &hub.name("personal:1")), "stored once");
        let state = |hub: &Hub| {
            let ch = hub.channel("personal:1").unwrap();
            let ch = ch.lock();
            (
                matches!(ch.subscribers, Subscribers::One(..)),
                ch.extra.is_some(),
            )
        };
        assert_eq!(state(&hub), (true, true), "recovering");
        hub.publish("personal:1", &publication(0));
        assert!(hub.finish_recovery("personal:1", 1, 0, 0));
        assert_eq!(state(&hub), (true, false), "recovered: nothing extra");
        assert_eq!(a.try_drain().messages.len(), 1, "the buffered publication");
        hub.subscribe("personal:1", 2, delta_sub(&b), false);
        assert_eq!(
            state(&hub),
            (false, true),
            "two subscribers, one with delta"
        );
        hub.publish("personal:1", &doc(1));
        assert_eq!(hub.publish("personal:1", &doc(2)).queued, 2);
        assert!(!hub.unsubscribe("personal:1", 2));
        assert_eq!(state(&hub), (true, false), "back inline, delta state gone");
        assert_eq!(hub.publish("personal:1", &publication(3)).queued, 1);
        assert_eq!(hub.counts(), (1, 1));
        assert!(hub.unsubscribe("personal:1", 1));
        assert_eq!(hub.counts(), (0, 0));
    }

    #[test]
    fn last_unsubscribe_removes_channel() {
        let hub = Hub::new();
        let a = Arc::new(Outbox::new(1 << 20));
        hub.subscribe("ch", 1, sub(&a), false);
        assert_eq!(hub.counts(), (1, 1));
        assert!(hub.unsubscribe("ch", 1));
        assert_eq!(hub.counts(), (0, 0));
    }
}
