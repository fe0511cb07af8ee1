//! Request bodies must arrive in full within `http_server.body_read_timeout`.
//!
//! Every request body is wrapped in a [`DeadlineBody`] whose clock starts when the request head
//! has been read. A body still incomplete at the deadline fails the read with
//! [`io::ErrorKind::TimedOut`]; the listener then answers `408 Request Timeout` with
//! `Connection: close` whatever the handler made of the error, so a client that announces a
//! large `Content-Length` and sends nothing holds its connection (and its `max_connections`
//! permit) no longer than the timeout. Requests without a body never start the timer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Set by a [`DeadlineBody`] whose deadline passed; read by the listener after the handler.
#[derive(Debug, Clone, Default)]
pub struct TimedOut(Arc<AtomicBool>);

impl TimedOut {
    /// Whether the body's deadline passed before it was complete.
    pub fn fired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body that fails when not complete by its deadline.
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    /// Created at the first read that has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: TimedOut,
}

impl<B> DeadlineBody<B> {
    /// Wraps `inner`; it must be read in full within `timeout` from now. The returned flag
    /// tells whether that failed.
    pub fn new(inner: B, timeout: Duration) -> (Self, TimedOut) {
        let timed_out = TimedOut::default();
        let body = DeadlineBody {
            inner,
            deadline: Instant::now() + timeout,
            timer: None,
            timed_out: timed_out.clone(),
        };
        (body, timed_out)
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            this.timed_out.0.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                "request body not complete within http_server.body_read_timeout",
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that never yields.
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_fails_at_its_deadline() {
        let (body, timed_out) = DeadlineBody::new(Silent, Duration::from_secs(10));
        let started = Instant::now();
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("body_read_timeout"));
        assert!(timed_out.fired());
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_is_untouched() {
        let inner = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let (body, timed_out) = DeadlineBody::new(inner, Duration::from_secs(1));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(!timed_out.fired());
    }
}
