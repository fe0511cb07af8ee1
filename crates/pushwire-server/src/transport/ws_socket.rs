//! The server end of one WebSocket connection: tungstenite's protocol state machine
//! ([`WebSocketContext`]) driven directly from the connection task, and data frames written
//! straight to the socket.
//!
//! Why not `tokio_tungstenite::WebSocketStream`: it lets a reader and a writer live on two
//! tasks, so it allocates two waker proxies per connection (64 bytes each) and keeps
//! tungstenite's write buffer, which holds the capacity of the largest frame it ever wrote
//! (the connect reply, at least) for the connection's life. pushwire drives each connection
//! from one task, so the task's own waker serves reads and writes; and a data frame is built
//! once per write (header in front of the payload) and written from that buffer, which is
//! freed when the write completes. An idle connection keeps neither.
//!
//! tungstenite still reads and parses every incoming frame (masking, fragmentation, UTF-8,
//! size limits, ping → pong, the close handshake) and writes the control frames it owes the
//! peer (pong, close). Frames never interleave: [`WsSocket::poll_write_frames`] first flushes
//! whatever tungstenite has pending, and the connection task does not read while one of its
//! writes is in progress.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The largest data frame header the server writes: 2 bytes, 8 more for a 64-bit length
/// (server frames are not masked).
pub(crate) const MAX_HEADER: usize = 10;

/// One WebSocket connection, server role, over `S`.
#[derive(Debug)]
pub(crate) struct WsSocket<S> {
    io: S,
    ctx: WebSocketContext,
    /// The peer closed or reading failed: every later read ends at once.
    ended: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsSocket<S> {
    /// A socket whose opening handshake is done (answered 101), with tungstenite's `config`.
    pub(crate) fn new(io: S, config: WebSocketConfig) -> Self {
        WsSocket {
            io,
            ctx: WebSocketContext::new(Role::Server, Some(config)),
            ended: false,
        }
    }

    /// The stream beneath.
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The next message from the peer (pings are answered and closes acknowledged inside),
    /// `None` once the connection is closed; an error ends reading too.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let read = self.ctx.read(&mut SyncIo::new(&mut self.io, cx));
        match would_block(read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(m)) => Poll::Ready(Some(Ok(m))),
            Poll::Ready(Err(e)) => {
                self.ended = true;
                if matches!(e, WsError::AlreadyClosed | WsError::ConnectionClosed) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(e)))
                }
            }
        }
    }

    /// [`WsSocket::poll_next`] as a future.
    pub(crate) async fn next(&mut self) -> Option<Result<Message, WsError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Writes what tungstenite has pending (a pong, a close) and flushes the stream.
    fn poll_flush_control(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let flushed = self.ctx.flush(&mut SyncIo::new(&mut self.io, cx));
        match ready!(would_block(flushed)) {
            // The close handshake just completed: nothing left to flush.
            Err(WsError::ConnectionClosed) | Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Writes `buf[*written..]`, complete data frames made with [`data_header`], then
    /// flushes. `written` advances as bytes go out, so a write that returned `Pending` is
    /// resumed by calling again with the same buffer. Fails once the connection is closing
    /// (no data frame may follow a close).
    pub(crate) fn poll_write_frames(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        written: &mut usize,
    ) -> Poll<Result<(), WsError>> {
        if !self.ctx.can_write() {
            return Poll::Ready(Err(WsError::AlreadyClosed));
        }
        if *written == 0 {
            ready!(self.poll_flush_control(cx))?;
        }
        while *written < buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &buf[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(WsError::Io(io::ErrorKind::WriteZero.into())));
            }
            *written += n;
        }
        Poll::Ready(ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(WsError::Io))
    }

    /// Sends one message through tungstenite (used for the close frame) and flushes.
    pub(crate) async fn send(&mut self, message: Message) -> Result<(), WsError> {
        let mut message = Some(message);
        poll_fn(|cx| {
            if let Some(m) = message.take() {
                match self.ctx.write(&mut SyncIo::new(&mut self.io, cx), m) {
                    // Queued in tungstenite's buffer: the flush below writes it.
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(WsError::ConnectionClosed) | Ok(()) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            self.poll_flush_control(cx)
        })
        .await
    }
}

/// The header of an unmasked, final data frame of `len` payload bytes: text or binary, RSV1
/// set when the payload is permessage-deflate compressed. Returns the bytes and how many of
/// them are used.
pub(crate) fn data_header(text: bool, compressed: bool, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut h = [0u8; MAX_HEADER];
    let rsv1 = if compressed { 0x40 } else { 0 };
    let opcode = if text { 0x1 } else { 0x2 };
    h[0] = 0x80 | rsv1 | opcode;
    let used = if len < 126 {
        h[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, used)
}

/// `Poll::Pending` for tungstenite's `WouldBlock` (the waker is registered beneath).
fn would_block<T>(r: Result<T, WsError>) -> Poll<Result<T, WsError>> {
    match r {
        Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

/// The async stream seen as a blocking one for the length of one call into tungstenite:
/// `Pending` becomes `WouldBlock`, with the task's waker registered.
struct SyncIo<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<'a, 'b, S> SyncIo<'a, 'b, S> {
    fn new(io: &'a mut S, cx: &'a mut Context<'b>) -> Self {
        SyncIo { io, cx }
    }
}

impl<S: AsyncRead + Unpin> Read for SyncIo<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut rb) {
            Poll::Ready(Ok(())) => Ok(rb.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S: AsyncWrite + Unpin> Write for SyncIo<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_at_each_boundary() {
        assert_eq!(
            data_header(true, false, 125),
            ([0x81, 125, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        let (h, n) = data_header(false, true, 126);
        assert_eq!((&h[..n], n), (&[0xC2, 126, 0, 126][..], 4));
        let (h, n) = data_header(true, false, 65_535);
        assert_eq!(&h[..n], &[0x81, 126, 0xFF, 0xFF]);
        let (h, n) = data_header(true, false, 65_536);
        assert_eq!(&h[..n], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
