//! API method names: the `/api/<method>` paths, batch keys and legacy method ids.

/// A server API method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `publish`.
    Publish,
    /// `broadcast`.
    Broadcast,
    /// `unsubscribe`.
    Unsubscribe,
    /// `disconnect`.
    Disconnect,
    /// `presence`.
    Presence,
    /// `presence_stats`.
    PresenceStats,
    /// `history`.
    History,
    /// `history_remove`.
    HistoryRemove,
    /// `channels`.
    Channels,
    /// `info`.
    Info,
    /// `rpc`.
    Rpc,
    /// `subscribe`.
    Subscribe,
    /// `refresh`.
    Refresh,
    /// `batch` (not available inside a batch nor on the legacy route).
    Batch,
}

impl Method {
    /// Every method, each routed at `/api/<name>`. The order is the legacy route's method
    /// numbers (`0` = publish … `12` = refresh); `batch` has none.
    pub const ALL: [Method; 14] = [
        Method::Publish,
        Method::Broadcast,
        Method::Unsubscribe,
        Method::Disconnect,
        Method::Presence,
        Method::PresenceStats,
        Method::History,
        Method::HistoryRemove,
        Method::Channels,
        Method::Info,
        Method::Rpc,
        Method::Subscribe,
        Method::Refresh,
        Method::Batch,
    ];

    /// The lowercase name: path segment and batch reply key.
    pub fn name(self) -> &'static str {
        match self {
            Method::Publish => "publish",
            Method::Broadcast => "broadcast",
            Method::Unsubscribe => "unsubscribe",
            Method::Disconnect => "disconnect",
            Method::Presence => "presence",
            Method::PresenceStats => "presence_stats",
            Method::History => "history",
            Method::HistoryRemove => "history_remove",
            Method::Channels => "channels",
            Method::Info => "info",
            Method::Rpc => "rpc",
            Method::Subscribe => "subscribe",
            Method::Refresh => "refresh",
            Method::Batch => "batch",
        }
    }

    /// Position in [`Method::ALL`]: the method's label index in the API metrics.
    pub fn index(self) -> usize {
        Method::ALL.iter().position(|m| *m == self).unwrap_or(0)
    }

    /// The method with this exact lowercase name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The methods of the legacy route, indexed by their number: all but `batch`.
    const LEGACY: &'static [Method] = Self::ALL.split_last().expect("non-empty").1;

    /// A legacy method name, matched case-insensitively (`PUBLISH`, `presence_stats`, ...).
    pub fn from_legacy_name(name: &str) -> Option<Method> {
        Self::LEGACY
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// A legacy method number (`0..=12`).
    pub fn from_legacy_number(number: i64) -> Option<Method> {
        usize::try_from(number)
            .ok()
            .and_then(|i| Self::LEGACY.get(i).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        assert_eq!(Method::from_name("PUBLISH"), None);
        assert_eq!(Method::from_name("connections"), None);
    }

    #[test]
    fn legacy_names_and_numbers() {
        assert_eq!(Method::from_legacy_name("PUBLISH"), Some(Method::Publish));
        assert_eq!(
            Method::from_legacy_name("Presence_Stats"),
            Some(Method::PresenceStats)
        );
        assert_eq!(Method::from_legacy_name("batch"), None);
        assert_eq!(Method::from_legacy_number(0), Some(Method::Publish));
        assert_eq!(Method::from_legacy_number(9), Some(Method::Info));
        assert_eq!(Method::from_legacy_number(12), Some(Method::Refresh));
        assert_eq!(Method::from_legacy_number(13), None);
        assert_eq!(Method::from_legacy_number(-1), None);
    }
}
