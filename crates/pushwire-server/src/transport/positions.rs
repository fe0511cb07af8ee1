//! Stream positions seen on a unidirectional SSE connection, written as the SSE `id:` so that
//! a plain `EventSource` that reconnects sends them back in `Last-Event-ID` and recovers
//! every missed publication without any SDK.
//!
//! The id is a JSON object `{"<channel>":[<offset>,"<epoch>"],...}`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize)]
struct PushHead {
    #[serde(default)]
    channel: String,
    #[serde(default, rename = "pub")]
    publication: Option<PubHead>,
    #[serde(default)]
    connect: Option<ConnectHead>,
    #[serde(default)]
    subscribe: Option<Position>,
}

#[derive(Deserialize, Clone)]
struct PubHead {
    #[serde(default)]
    offset: u64,
}

#[derive(Deserialize)]
struct ConnectHead {
    #[serde(default)]
    subs: BTreeMap<String, Position>,
}

#[derive(Deserialize, Clone)]
struct Position {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    epoch: String,
    /// Recovered publications: the position is the last of them.
    #[serde(default)]
    publications: Vec<PubHead>,
}

impl Position {
    fn top(&self) -> u64 {
        self.publications
            .iter()
            .map(|p| p.offset)
            .max()
            .unwrap_or(0)
            .max(self.offset)
    }
}

/// Positions per channel of one connection.
#[derive(Debug, Default)]
pub struct Positions {
    by_channel: BTreeMap<String, (u64, String)>,
}

impl Positions {
    /// Updates positions from one encoded bare push. Returns the SSE id to write when the
    /// push moved a position.
    pub fn observe(&mut self, push: &[u8]) -> Option<String> {
        let head: PushHead = serde_json::from_slice(push).ok()?;
        let mut changed = false;
        if let Some(c) = head.connect {
            for (ch, p) in c.subs {
                if !p.epoch.is_empty() {
                    self.by_channel.insert(ch, (p.top(), p.epoch.clone()));
                    changed = true;
                }
            }
        }
        if let Some(p) = head.subscribe
            && !p.epoch.is_empty()
        {
            self.by_channel
                .insert(head.channel.clone(), (p.top(), p.epoch));
            changed = true;
        }
        if let Some(p) = head.publication
            && let Some(pos) = self.by_channel.get_mut(&head.channel)
            && p.offset > pos.0
        {
            pos.0 = p.offset;
            changed = true;
        }
        changed.then(|| self.id())
    }

    fn id(&self) -> String {
        let map: BTreeMap<&str, (u64, &str)> = self
            .by_channel
            .iter()
            .map(|(c, (o, e))| (c.as_str(), (*o, e.as_str())))
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    }

    /// Parses a `Last-Event-ID` written by [`Positions`]: channel → (offset, epoch).
    pub fn parse_last_event_id(id: &str) -> BTreeMap<String, (u64, String)> {
        serde_json::from_str(id).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_connect_subs_and_publications() {
        let mut p = Positions::default();
        let id = p
            .observe(br#"{"connect":{"client":"c","subs":{"chat:a":{"recoverable":true,"epoch":"EP","offset":3}}}}"#)
            .unwrap();
        assert_eq!(id, r#"{"chat:a":[3,"EP"]}"#);
        let id = p
            .observe(br#"{"channel":"chat:a","pub":{"data":{"x":1},"offset":4}}"#)
            .unwrap();
        assert_eq!(
            Positions::parse_last_event_id(&id)["chat:a"],
            (4, "EP".to_string())
        );
        assert!(p.observe(b"{}").is_none());
    }

    #[test]
    fn recovered_publications_move_the_position() {
        let mut p = Positions::default();
        let id = p
            .observe(br#"{"connect":{"subs":{"c":{"epoch":"E","offset":0,"recovered":true,"publications":[{"offset":1},{"offset":2}]}}}}"#)
            .unwrap();
        assert_eq!(
            Positions::parse_last_event_id(&id)["c"],
            (2, "E".to_string())
        );
    }
}
