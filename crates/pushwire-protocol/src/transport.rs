//! The transports a client can connect over, by the names the protocol uses for them
//! (proxy requests' `transport` field, metrics labels, logs).
//!
//! One enum instead of a name plus flags: an impossible combination (an emulated
//! unidirectional transport) cannot be written, and the label index is the discriminant.

/// A client transport. Its [`name`](TransportKind::name) is the Centrifugo name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransportKind {
    /// Bidirectional WebSocket (`/connection/websocket`).
    WebSocket = 0,
    /// Unidirectional WebSocket (`/connection/uni_websocket`).
    UniWebSocket = 1,
    /// HTTP-streaming emulation (`/connection/http_stream` + `/emulation`).
    HttpStream = 2,
    /// SSE emulation (`/connection/sse` + `/emulation`).
    Sse = 3,
    /// Unidirectional HTTP-streaming (`/connection/uni_http_stream`).
    UniHttpStream = 4,
    /// Unidirectional SSE (`/connection/uni_sse`).
    UniSse = 5,
    /// Unidirectional long-poll (`/connection/long_poll`).
    LongPoll = 6,
}

impl TransportKind {
    /// Every kind, in [`index`](TransportKind::index) order.
    pub const ALL: [TransportKind; 7] = [
        TransportKind::WebSocket,
        TransportKind::UniWebSocket,
        TransportKind::HttpStream,
        TransportKind::Sse,
        TransportKind::UniHttpStream,
        TransportKind::UniSse,
        TransportKind::LongPoll,
    ];

    /// The protocol's name: `websocket`, `uni_websocket`, `http_stream`, `sse`,
    /// `uni_http_stream`, `uni_sse`, `long_poll`.
    pub const fn name(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::UniWebSocket => "uni_websocket",
            TransportKind::HttpStream => "http_stream",
            TransportKind::Sse => "sse",
            TransportKind::UniHttpStream => "uni_http_stream",
            TransportKind::UniSse => "uni_sse",
            TransportKind::LongPoll => "long_poll",
        }
    }

    /// Position in [`ALL`](TransportKind::ALL): the index of per-transport metric tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Server-to-client only: pushes go out bare, the client sends nothing after connecting
    /// and pings need no pong.
    pub const fn is_unidirectional(self) -> bool {
        matches!(
            self,
            TransportKind::UniWebSocket
                | TransportKind::UniHttpStream
                | TransportKind::UniSse
                | TransportKind::LongPoll
        )
    }

    /// Bidirectional emulation over HTTP: commands after connect arrive through
    /// `/emulation`, so the connect result carries `session` and `node`.
    pub const fn is_emulated(self) -> bool {
        matches!(self, TransportKind::HttpStream | TransportKind::Sse)
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::TransportKind;

    #[test]
    fn index_is_the_position_in_all_and_names_are_unique() {
        for (i, kind) in TransportKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(
                TransportKind::ALL
                    .iter()
                    .filter(|k| k.name() == kind.name())
                    .count(),
                1
            );
        }
    }

    #[test]
    fn no_kind_is_both_emulated_and_unidirectional() {
        for kind in TransportKind::ALL {
            assert!(!(kind.is_emulated() && kind.is_unidirectional()), "{kind}");
        }
        assert!(TransportKind::LongPoll.is_unidirectional());
        assert!(TransportKind::Sse.is_emulated());
        assert!(
            !TransportKind::WebSocket.is_emulated()
                && !TransportKind::WebSocket.is_unidirectional()
        );
    }
}
