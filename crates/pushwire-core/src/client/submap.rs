//! A connection's subscriptions: channel → state, in a vector.
//!
//! Connections hold few subscriptions (at most `client.channel_limit`), so a linear scan is as
//! fast as hashing and the map costs one entry of memory for one subscription, where a hash
//! map reserves four buckets and control bytes in every idle connection.

use std::sync::Arc;

use super::SubState;

/// Channel → subscription state.
#[derive(Debug, Default)]
pub(crate) struct SubMap(Vec<(Arc<str>, SubState)>);

impl SubMap {
    fn position(&self, channel: &str) -> Option<usize> {
        self.0.iter().position(|(c, _)| &**c == channel)
    }

    pub(crate) fn get(&self, channel: impl AsRef<str>) -> Option<&SubState> {
        self.position(channel.as_ref()).map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, channel: impl AsRef<str>) -> Option<&mut SubState> {
        self.position(channel.as_ref()).map(|i| &mut self.0[i].1)
    }

    pub(crate) fn contains_key(&self, channel: impl AsRef<str>) -> bool {
        self.position(channel.as_ref()).is_some()
    }

    /// Inserts or replaces.
    pub(crate) fn insert(&mut self, channel: Arc<str>, state: SubState) {
        match self.position(&channel) {
            Some(i) => self.0[i].1 = state,
            None => {
                if self.0.capacity() == 0 {
                    self.0.reserve_exact(1);
                }
                self.0.push((channel, state));
            }
        }
    }

    pub(crate) fn remove(&mut self, channel: impl AsRef<str>) -> Option<SubState> {
        let i = self.position(channel.as_ref())?;
        let (_, state) = self.0.swap_remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(state)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter().map(|(c, _)| c)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &SubState> {
        self.0.iter().map(|(_, s)| s)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &SubState)> {
        self.0.iter().map(|(c, s)| (c, s))
    }
}

impl IntoIterator for SubMap {
    type Item = (Arc<str>, SubState);
    type IntoIter = std::vec::IntoIter<(Arc<str>, SubState)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_semantics_and_one_slot_for_one_subscription() {
        let mut m = SubMap::default();
        m.insert(Arc::from("a"), SubState::default());
        assert_eq!(m.0.capacity(), 1);
        m.insert(Arc::from("b"), SubState::default());
        assert!(m.contains_key("a") && m.contains_key("b"));
        m.get_mut("b").unwrap().presence = true;
        assert!(m.get("b").unwrap().presence);
        assert!(m.remove("a").is_some());
        assert!(m.remove("a").is_none());
        assert_eq!(m.len(), 1);
        assert_eq!(m.keys().map(|k| &**k).collect::<Vec<_>>(), vec!["b"]);
    }
}

#[cfg(test)]
mod sizes {
    /// Prints the sizes of what every idle connection holds (`cargo test -p pushwire-core
    /// --lib print_sizes -- --nocapture`); docs/architecture.md's memory budget quotes them.
    #[test]
    fn print_sizes() {
        use std::mem::size_of;
        println!("Client {}", size_of::<super::super::Client>());
        println!("client::State {}", size_of::<super::super::State>());
        println!("SubState {}", size_of::<super::SubState>());
        println!("Timers {}", size_of::<super::super::timers::Timers>());
        println!("Outbox {}", size_of::<crate::outbox::Outbox>());
        println!("RawJson {}", size_of::<pushwire_protocol::RawJson>());
        println!("TransportInfo {}", size_of::<super::super::TransportInfo>());
        println!("Notify {}", size_of::<tokio::sync::Notify>());
        // `Arc<Client>` is one allocation of 16 + size_of::<Client>() bytes: at most 256
        // keeps it in the 256-byte size class (the next one is 320).
        assert!(
            size_of::<super::super::Client>() <= 240,
            "Client grew past 240 bytes"
        );
        // `Arc<Outbox>` likewise: at most 176 bytes keeps it in the 192-byte class (then 224).
        assert!(
            size_of::<crate::outbox::Outbox>() <= 176,
            "Outbox grew past 176 bytes"
        );
    }
}
