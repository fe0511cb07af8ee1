//! What a transport's writer does with a batch it took from the outbox, so the writers of
//! every transport account for deliveries the same way, and the one operation a transport
//! needs to hand out publications without looking at channels itself (long-poll).

use pushwire_protocol::{Publication, Push};

use super::Client;
use crate::metrics::Delivered;
use crate::outbox::Drained;

/// The publications of one subscription taken from the outbox ([`Client::next_publications`]).
#[derive(Debug, Default)]
pub struct Polled {
    /// Publications of the channel, in queue order.
    pub publications: Vec<Publication>,
    /// The connection must close (a disconnect was queued): poll no more.
    pub closed: bool,
}

impl Client {
    /// Books what the writer took from the outbox: counts `sent` as delivered over this
    /// client's transport. Every transport's drain loop calls it once per drain; subscriptions
    /// the drain reported shed go to [`Client::release_shed`] (rare, so not boxed here on
    /// the hot path).
    pub fn delivered(&self, sent: Delivered) {
        self.node.metrics().delivered(self.transport.kind, sent);
    }

    /// Waits for the next drain of the outbox and returns the publications of `channel` in
    /// it, already accounted for ([`Client::delivered`]). For transports that answer with
    /// publications rather than frames (long-poll): pushes of other channels and other
    /// pushes are not theirs and are dropped. Needs the JSON protocol (unidirectional pushes
    /// are bare JSON `Push`es); other pushes are skipped.
    pub async fn next_publications(&self, channel: &str) -> Polled {
        let Drained {
            messages,
            disconnect,
            stamp,
            shed,
        } = self.outbox.drain().await;
        self.delivered(Delivered::of(&messages, stamp));
        if !shed.is_empty() {
            Box::pin(self.release_shed(&shed)).await;
        }
        let publications = messages
            .iter()
            .filter_map(|m| serde_json::from_slice::<Push>(m).ok())
            .filter(|push| push.channel == channel)
            .filter_map(|push| push.publication)
            .collect();
        Polled {
            publications,
            closed: disconnect.is_some(),
        }
    }
}
