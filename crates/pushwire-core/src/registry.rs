//! Live connections of this node, by client key and by user.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::client::Client;
use crate::hub::ClientKey;

/// Connected clients, indexed for the server API (`disconnect`, `subscribe`, ... by user).
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<ClientKey, Arc<Client>>,
    users: HashMap<String, HashSet<ClientKey>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("clients", &self.inner.lock().clients.len())
            .finish()
    }
}

impl Registry {
    /// Adds a connected client. Returns false if `limit > 0` and the user already holds
    /// `limit` connections (anonymous users are not limited).
    pub fn add(&self, client: Arc<Client>, user: &str, limit: usize) -> bool {
        let mut inner = self.inner.lock();
        let keys = inner.users.entry(user.to_owned()).or_default();
        if limit > 0 && !user.is_empty() && keys.len() >= limit {
            if keys.is_empty() {
                inner.users.remove(user);
            }
            return false;
        }
        keys.insert(client.key());
        inner.clients.insert(client.key(), client);
        true
    }

    /// Removes a client.
    pub fn remove(&self, key: ClientKey, user: &str) {
        let mut inner = self.inner.lock();
        inner.clients.remove(&key);
        if let Some(keys) = inner.users.get_mut(user) {
            keys.remove(&key);
            if keys.is_empty() {
                inner.users.remove(user);
            }
        }
    }

    /// The connections of `user`.
    pub fn user_clients(&self, user: &str) -> Vec<Arc<Client>> {
        let inner = self.inner.lock();
        inner
            .users
            .get(user)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| inner.clients.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every connection.
    pub fn all(&self) -> Vec<Arc<Client>> {
        self.inner.lock().clients.values().cloned().collect()
    }

    /// Number of connections and of distinct users.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.clients.len(), inner.users.len())
    }
}
