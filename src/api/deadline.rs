//! The slow-loris guard: an acceptor whose connections must deliver each request head within
//! a deadline, however slowly they trickle bytes, or be closed.
//!
//! Hand-written because no crate does it for poem: hyper has `header_read_timeout`, but poem's
//! server builds hyper's connection itself and does not expose the setting, so the deadline is
//! enforced on the byte stream under it.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An acceptor whose connections must deliver each request head within `deadline`.
pub struct HeaderDeadline<A> {
    inner: A,
    deadline: Duration,
}

impl<A> HeaderDeadline<A> {
    pub fn new(inner: A, deadline: Duration) -> Self {
        Self { inner, deadline }
    }
}

impl<A: Acceptor> Acceptor for HeaderDeadline<A> {
    type Io = DeadlineIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let io = DeadlineIo {
            io,
            deadline: self.deadline,
            head_started: Some(Instant::now()),
            between_requests: false,
            tail: [0; 3],
            timer: None,
        };
        Ok((io, local, remote, scheme))
    }
}

/// Tracks whether a request head is being read and since when; a head still incomplete past
/// the deadline fails the read, which closes the connection. The clock starts when the
/// connection opens and, on a kept-alive connection, at the first byte of the next request —
/// not when a response starts, so a long download or event stream is never cut (an idle
/// connection is the idle timeout's business).
pub struct DeadlineIo<T> {
    io: T,
    deadline: Duration,
    /// When the current request head began (or the connection opened); `None` once complete.
    head_started: Option<Instant>,
    /// A response went out since the last head: the next bytes start a new head.
    between_requests: bool,
    /// The last bytes read, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> DeadlineIo<T> {
    fn saw(&mut self, bytes: &[u8]) {
        if self.between_requests && !bytes.is_empty() {
            self.between_requests = false;
            self.head_started = Some(Instant::now());
            self.tail = [0; 3];
            self.timer = None;
        }
        if self.head_started.is_none() {
            return;
        }
        let mut window: Vec<u8> = self.tail.to_vec();
        window.extend_from_slice(bytes);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            self.head_started = None;
            self.timer = None;
        }
        let n = window.len();
        self.tail.copy_from_slice(&window[n - 3..]);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = buf.filled()[before..].to_vec();
                this.saw(&fresh);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(started) = this.head_started else {
                    return Poll::Pending;
                };
                let due = tokio::time::Instant::from_std(started + this.deadline);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request head took too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        // A response is going out: the next bytes in begin the next request's head.
        if this.head_started.is_none() {
            this.between_requests = true;
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
