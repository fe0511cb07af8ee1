//! What can go wrong with a compressed message from the peer.

use std::io;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A compressed message the peer sent could not be accepted. Travels to the reader inside an
/// [`io::Error`] (see [`DeflateError::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeflateError {
    /// The message inflates past the decompressed size bound, or its compressed bytes pass
    /// the wire bound: close 1009.
    TooBig,
    /// The compressed data is not valid DEFLATE: close 1007.
    Corrupt,
    /// Frames break RFC 7692's rules (RSV1 on a continuation frame, a new message while a
    /// compressed one is unfinished): close 1002.
    Protocol,
}

impl DeflateError {
    /// The WebSocket close code for this failure (RFC 6455 section 7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            DeflateError::TooBig => CloseCode::Size.into(),
            DeflateError::Corrupt => CloseCode::Invalid.into(),
            DeflateError::Protocol => CloseCode::Protocol.into(),
        }
    }

    /// The close reason sent with [`close_code`](Self::close_code).
    pub fn reason(self) -> &'static str {
        match self {
            DeflateError::TooBig => "message size limit exceeded",
            DeflateError::Corrupt => "invalid compressed data",
            DeflateError::Protocol => "permessage-deflate protocol error",
        }
    }

    /// The `DeflateError` inside an I/O error returned by [`crate::DeflateStream`], if any.
    pub fn of(e: &io::Error) -> Option<DeflateError> {
        e.get_ref()?.downcast_ref::<DeflateError>().copied()
    }
}

impl std::fmt::Display for DeflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for DeflateError {}

impl From<DeflateError> for io::Error {
    fn from(e: DeflateError) -> io::Error {
        let kind = match e {
            DeflateError::TooBig => io::ErrorKind::InvalidInput,
            DeflateError::Corrupt | DeflateError::Protocol => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
