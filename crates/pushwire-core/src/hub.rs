//! The hub: which connections of this node subscribe to which channel, and fan-out.
//!
//! Channels live in shards (a `RwLock`ed map each), and each channel's subscriber set has its
//! own mutex, so fan-out on one channel never blocks lookups on others. A publication is
//! encoded at most once per protocol and the same `Bytes` is queued to every subscriber.
//! A subscriber that is still recovering buffers live publications; [`Hub::finish_recovery`]
//! merges the buffer by offset after the subscribe reply went out, so nothing is lost or
//! duplicated and the reply always precedes live publications.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use pushwire_protocol::{Disconnect, FilterNode, JoinLeave, Publication, Push};

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
    /// The connection's transport as a metrics label index ([`crate::metrics::transport_index`]).
    pub transport: u8,
    /// How this subscription is shed when its connection falls behind (`None`: the
    /// connection closes with 3008), from the namespace's `slow_subscriber_policy`.
    pub shedding: Option<Shedding>,
}

#[derive(Debug, Default)]
struct Channel {
    subscribers: HashMap<ClientKey, Subscriber>,
    /// Live publications held back while a subscriber recovers: (offset, encoded).
    recovering: HashMap<ClientKey, Vec<(u64, Bytes)>>,
    /// Subscribers that just recovered up to an offset the broker had not delivered here yet
    /// (a shared engine's stream top can be ahead of its PUB/SUB delivery): live publications
    /// at or below the offset were already sent and are skipped. An entry goes with the first
    /// publication above it.
    delivered: HashMap<ClientKey, u64>,
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Mutex<Channel>>>>;

/// Channel → subscribers of this node.
#[derive(Debug)]
pub struct Hub {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    gauges: crate::metrics::HubGauges,
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

    /// Adds a subscriber. With `recovering`, live publications are buffered until
    /// [`Hub::finish_recovery`]. Returns true if this is the channel's first subscriber.
    pub fn subscribe(
        &self,
        channel: &str,
        key: ClientKey,
        sub: Subscriber,
        recovering: bool,
    ) -> bool {
        let mut shard = self.shard(channel).write();
        let first = !shard.contains_key(channel);
        let ch = shard.entry(Arc::from(channel)).or_default().clone();
        let mut ch = ch.lock();
        drop(shard);
        let transport = sub.transport;
        if ch.subscribers.insert(key, sub).is_none() {
            self.gauges.subscription(transport, 1);
        }
        if first {
            self.gauges.channel(1);
        }
        if recovering {
            ch.recovering.insert(key, Vec::new());
        }
        first
    }

    /// Ends recovery of `key`: queues the buffered live publications with an offset above
    /// `delivered_offset`, in order, then delivers live. Returns false if the outbox refused.
    pub fn finish_recovery(&self, channel: &str, key: ClientKey, delivered_offset: u64) -> bool {
        let Some(ch) = self.channel(channel) else {
            return true;
        };
        let mut ch = ch.lock();
        let ch = &mut *ch;
        let Some(mut buffered) = ch.recovering.remove(&key) else {
            return true;
        };
        let Some(sub) = ch.subscribers.get(&key) else {
            return true;
        };
        buffered.sort_by_key(|(offset, _)| *offset);
        let mut last = delivered_offset;
        let mut out = Vec::with_capacity(buffered.len());
        for (offset, bytes) in buffered {
            // Offset 0: channel without history, no dedupe possible or needed.
            if offset == 0 || offset > last {
                if offset != 0 {
                    last = offset;
                }
                out.push(bytes);
            }
        }
        let queued = sub.outbox.push_all(out).queued();
        if last > 0 {
            ch.delivered.insert(key, last);
        }
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
        if let Some(s) = ch.subscribers.remove(&key) {
            self.gauges.subscription(s.transport, -1);
        }
        ch.recovering.remove(&key);
        ch.delivered.remove(&key);
        if ch.subscribers.is_empty() {
            shard.remove(channel);
            self.gauges.channel(-1);
            true
        } else {
            false
        }
    }

    /// Queues `publication` to every matching subscriber, encoding it once per protocol.
    pub fn publish(&self, channel: &str, publication: &Publication) -> Delivery {
        let Some((name, ch)) = self
            .shard(channel)
            .read()
            .get_key_value(channel)
            .map(|(k, v)| (k.clone(), v.clone()))
        else {
            return Delivery::default();
        };
        let push = Push {
            channel: channel.to_owned(),
            publication: Some(publication.clone()),
            ..Default::default()
        };
        let mut encoded = EncodeOnce::new(&push);
        let stamp = crate::metrics::stamp_now();
        let mut ch = ch.lock();
        let ch = &mut *ch;
        let mut delivery = Delivery::default();
        for (key, sub) in &ch.subscribers {
            if let Some(f) = &sub.filter {
                if !filter::matches(f, &publication.tags) {
                    continue;
                }
            }
            let Some(bytes) = encoded.get(sub.encoding) else {
                sub.outbox
                    .close(pushwire_protocol::Disconnect::INAPPROPRIATE_PROTOCOL);
                delivery.dropped += 1;
                continue;
            };
            if let Some(buf) = ch.recovering.get_mut(key) {
                buf.push((publication.offset, bytes));
                delivery.queued += 1;
            } else if !ch.delivered.is_empty()
                && Self::already_delivered(&mut ch.delivered, *key, publication.offset)
            {
                continue;
            } else if let Some(policy) = sub.shedding {
                let tag = ShedTag {
                    channel: name.clone(),
                    policy,
                };
                delivery.count(sub.outbox.push_shedding(bytes, stamp, &tag));
            } else {
                delivery.count(sub.outbox.push_publication(bytes, stamp));
            }
        }
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
    pub fn close_subscribers(&self, channels: &[String], disconnect: Disconnect) -> usize {
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
        assert!(hub.finish_recovery("ch", 1, 5));
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
        assert!(hub.finish_recovery("ch", 1, 6));
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
