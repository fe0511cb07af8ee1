//! The socket under every served connection: it holds the `max_connections` permit for as long
//! as the socket lives (an upgraded WebSocket included) and ends a connection whose peer stops
//! reading (`http_server.write_timeout`).
//!
//! A write that the kernel refuses (the socket's send buffer is full because the peer does not
//! read) arms a timer; any accepted byte disarms it. When the timer fires the pending write
//! fails with [`io::ErrorKind::TimedOut`], so hyper ends the connection, its response body is
//! dropped, and the client behind it is closed and released. Without it, an HTTP-streaming or
//! SSE response to a peer that never reads stays open until the *peer* closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// A TCP stream that releases its `max_connections` permit when dropped and fails writes that
/// make no progress for its write timeout.
#[derive(Debug)]
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    write_timeout: Duration,
    /// Armed while a write is refused; boxed so an idle connection pays one pointer.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl LimitedStream {
    /// Wraps `stream`, holding `permit` until dropped; writes stalled for `write_timeout` fail.
    pub fn new(stream: TcpStream, permit: OwnedSemaphorePermit, write_timeout: Duration) -> Self {
        LimitedStream {
            stream,
            _permit: permit,
            write_timeout,
            stalled: None,
        }
    }

    /// Arms (or checks) the stall timer on a refused write; disarms it on progress.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.write_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer did not read for http_server.write_timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
