//! Limits that keep one client from hurting the others: request-head deadline (slow-loris),
//! body size, request time, and a per-client upload rate.
//!
//! - [`HeaderDeadline`] wraps the listener: a connection must deliver each request's head
//!   within the deadline or it is closed, however slowly it trickles bytes.
//! - [`body_limit`] answers 413 at once for a declared `Content-Length` over the limit, and
//!   cuts an undeclared (chunked) body that grows past it.
//! - [`time_limit`] answers 408 when a handler takes too long to produce its response head
//!   (streamed bodies — downloads, event streams — are not cut once started).
//! - [`UploadRate`] is a token bucket per client address for `POST /exports`; over it, 429
//!   with `Retry-After`.

use std::collections::HashMap;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use poem::http::{StatusCode, header};
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Body, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::api::errors::{ApiErrorCode, ErrorBody};

/// Marks the I/O error of a body cut at its limit, so the error boundary can answer 413.
pub const BODY_TOO_LARGE: &str = "request body larger than allowed";

fn json_error(status: StatusCode, code: ApiErrorCode, message: String) -> Response {
    poem_openapi::payload::Json(ErrorBody { code, message })
        .with_status(status)
        .into_response()
}

/// Enforces a body limit of `limit` bytes on `req`; `Err` is the 413 to send instead.
pub fn body_limit(req: &mut Request, limit: u64) -> Result<(), Box<Response>> {
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(Box::new(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiErrorCode::TooLarge,
            format!(
                "body: {} bytes is over this endpoint's limit of {limit} bytes",
                declared.unwrap_or(0)
            ),
        )));
    }
    if declared.is_none() {
        let mut seen = 0u64;
        let limited = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(std::io::Error::other(BODY_TOO_LARGE));
            }
            Ok(chunk)
        });
        req.set_body(Body::from_bytes_stream(limited));
    }
    Ok(())
}

/// The 408 for a handler that ran out of time.
pub fn timed_out(limit: Duration) -> Response {
    json_error(
        StatusCode::REQUEST_TIMEOUT,
        ApiErrorCode::RequestTimeout,
        format!("the request took longer than {}s", limit.as_secs()),
    )
}

/// A token bucket per client address.
pub struct UploadRate {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl UploadRate {
    /// `per_minute == 0` disables the limit.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; `Err(seconds)` to wait when there is none.
    pub fn take(&self, client: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() > 10_000 {
            // Forget clients whose buckets have long been full again.
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(600));
        }
        let (tokens, at) = buckets.entry(client).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_sec).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }

    /// The 429 for a client over its rate.
    pub fn refusal(&self, wait: u64) -> Response {
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorCode::Overloaded,
            format!(
                "more than {} uploads a minute from this client; retry in {wait}s",
                self.per_minute
            ),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
        resp
    }
}

/// The per-request limits of the API listener, from the settings.
pub struct Guards {
    pub uploads: UploadRate,
    pub max_queued_jobs: u64,
    pub request_timeout: Duration,
    pub upload_timeout: Duration,
    pub max_json_bytes: u64,
    pub max_upload_bytes: u64,
    /// Queued-job count and when it was read: submits check it at most every 250 ms.
    queued: tokio::sync::Mutex<(Option<Instant>, i64)>,
}

impl Guards {
    pub fn from_settings(s: &crate::settings::Settings) -> Self {
        Self {
            uploads: UploadRate::new(s.uploads_per_minute),
            max_queued_jobs: s.max_queued_jobs,
            request_timeout: Duration::from_secs(s.request_timeout_secs),
            upload_timeout: Duration::from_secs(s.upload_timeout_secs),
            max_json_bytes: s.max_json_bytes,
            max_upload_bytes: s.max_upload_bytes,
            queued: tokio::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(response)` (429) when the queue already holds `MAX_QUEUED_JOBS`.
    pub async fn queue_full(&self, queue: &crate::queue::Queue) -> Option<Response> {
        if self.max_queued_jobs == 0 {
            return None;
        }
        let mut cached = self.queued.lock().await;
        if cached
            .0
            .is_none_or(|at| at.elapsed() > Duration::from_millis(250))
        {
            // A failing count must not block submits; the queue itself reports the outage.
            let count = queue.queued_count().await.unwrap_or(0);
            *cached = (Some(Instant::now()), count);
        }
        let queued = u64::try_from(cached.1).unwrap_or(0);
        if queued < self.max_queued_jobs {
            // Count the admitted submit until the next read, so a burst within the cache
            // window cannot overshoot the cap (a refused or batch submit is corrected then).
            cached.1 += 1;
            return None;
        }
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorCode::Overloaded,
            format!(
                "{queued} jobs are waiting (the limit is {}); retry shortly",
                self.max_queued_jobs
            ),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, 5.into());
        Some(resp)
    }
}

/// The client address of a request, for rate limiting.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let rate = UploadRate::new(60);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..60 {
            rate.take(ip).unwrap();
        }
        assert_eq!(rate.take(ip), Err(1), "empty: wait about a second");
        assert!(
            rate.take("192.0.2.2".parse().unwrap()).is_ok(),
            "buckets are per client"
        );
        assert!(UploadRate::new(0).take(ip).is_ok(), "0 disables the limit");
    }
}
