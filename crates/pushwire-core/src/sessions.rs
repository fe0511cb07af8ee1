//! Emulation sessions: `session` id → client, so `/emulation` bodies reach their connection,
//! whether they arrived at this node or were forwarded by another over the control plane.

use std::collections::HashMap;
use std::sync::Arc;

use crate::client::Client;
use parking_lot::Mutex;

/// Live emulated sessions of this node.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Arc<Client>>>,
}

impl Sessions {
    /// Registers a client under its session id.
    pub fn insert(&self, client: Arc<Client>) {
        self.inner
            .lock()
            .insert(client.session().to_owned(), client);
    }

    /// Removes a session.
    pub fn remove(&self, session: &str) {
        self.inner.lock().remove(session);
    }

    /// The client of a session.
    pub fn get(&self, session: &str) -> Option<Arc<Client>> {
        self.inner.lock().get(session).cloned()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().is_empty()
    }
}
