//! How a connection wants its messages: protocol (JSON or protobuf) and envelope (pushes
//! wrapped in a `Reply` on bidirectional transports, bare `Push` on unidirectional ones).

use bytes::Bytes;
use pushwire_protocol::{encode_push, encode_reply, EncodeError, Protocol, Push, Reply};

use crate::memo::Memo;

/// A connection's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Pushes travel bare (unidirectional transports).
    pub bare_push: bool,
}

impl Encoding {
    /// Number of distinct encodings; sizes per-encoding caches.
    pub const COUNT: usize = Protocol::COUNT * 2;

    /// Dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        self.protocol.index() * 2 + usize::from(self.bare_push)
    }

    /// Encodes a push in this encoding.
    pub fn push(self, push: &Push) -> Result<Bytes, EncodeError> {
        if self.bare_push {
            encode_push(self.protocol, push)
        } else {
            encode_reply(self.protocol, &Reply::push(push.clone()))
        }
    }
}

/// Encodes one push lazily, at most once per encoding, and shares the bytes.
#[derive(Debug)]
pub struct EncodeOnce<'a> {
    push: &'a Push,
    cache: [Memo<Bytes>; Encoding::COUNT],
}

impl<'a> EncodeOnce<'a> {
    /// A cache for `push`.
    pub fn new(push: &'a Push) -> Self {
        EncodeOnce {
            push,
            cache: Default::default(),
        }
    }

    /// The push in `encoding`; `None` if it can not be encoded there (non-JSON payload for a
    /// JSON connection).
    pub fn get(&mut self, encoding: Encoding) -> Option<Bytes> {
        let push = self.push;
        self.cache[encoding.index()]
            .get_or_compute(|| encoding.push(push).ok())
            .cloned()
    }
}
