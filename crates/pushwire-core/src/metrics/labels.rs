//! The fixed label values of the node's metrics: transports and client command methods.
//! Labels never carry channel names or user ids, so the number of series stays bounded.

use pushwire_protocol::{Request, TransportKind};

/// Transport label values, indexed by [`TransportKind::index`].
pub const TRANSPORTS: [&str; TransportKind::ALL.len()] = {
    let mut names = [""; TransportKind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = TransportKind::ALL[i].name();
        i += 1;
    }
    names
};

/// Client command `method` label values.
pub const COMMANDS: [&str; 14] = [
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "ping",
    "rpc",
    "send",
    "refresh",
    "sub_refresh",
    "pong",
    "unknown",
];

/// Index of the request's method in [`COMMANDS`].
pub fn command_index(request: &Request) -> usize {
    match request {
        Request::Connect(_) => 0,
        Request::Subscribe(_) => 1,
        Request::Unsubscribe(_) => 2,
        Request::Publish(_) => 3,
        Request::Presence(_) => 4,
        Request::PresenceStats(_) => 5,
        Request::History(_) => 6,
        Request::Ping => 7,
        Request::Rpc(_) => 8,
        Request::Send(_) => 9,
        Request::Refresh(_) => 10,
        Request::SubRefresh(_) => 11,
        Request::Pong => 12,
        Request::Unknown => 13,
    }
}

/// Why a server API request was refused before any method ran (`api_refused` metric).
pub const API_REFUSALS: [&str; 4] = ["unauthorized", "bad_request", "unknown_method", "too_large"];

/// Most server API methods the `api` table distinguishes (the server crate maps its method
/// list onto indexes below this).
pub const API_METHODS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_and_commands() {
        assert_eq!(TRANSPORTS[TransportKind::WebSocket.index()], "websocket");
        assert_eq!(TRANSPORTS[TransportKind::UniSse.index()], "uni_sse");
        assert_eq!(TRANSPORTS[TransportKind::LongPoll.index()], "long_poll");
        assert_eq!(COMMANDS[command_index(&Request::Pong)], "pong");
        assert_eq!(COMMANDS[command_index(&Request::Unknown)], "unknown");
    }
}
