//! The HTTP/1.1 connections of `tidegate serve`: the accept loop with a cap on open
//! connections, a header timeout (from the connection's opening, or from the first byte
//! of a later request), an idle timeout between the requests of a kept-alive connection,
//! and a shutdown that drops every connection without a request in progress at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use crate::config::ServerSettings;
use crate::log_every::LogEvery;

/// The answer to a connection over `max_connections`, written once and closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 94\r\n\r\n\
{\"error\":\"Service Unavailable\",\"message\":\"too many open connections; try again in a moment\"}";

/// Connections over the cap answered at once (each for at most 250 ms).
const REFUSING: usize = 64;

/// What one connection's task shares with its requests and its socket.
#[derive(Debug)]
struct ConnState {
    epoch: Instant,
    /// Requests received (headers complete) and not answered yet.
    in_flight: AtomicUsize,
    /// Requests answered.
    served: AtomicU64,
    /// Requests handed to the router (each gets one final response head).
    dispatched: AtomicU64,
    /// When the last request ended (ms since `epoch`).
    last_active_ms: AtomicU64,
    /// When the first byte of the next request arrived (ms since `epoch`, +1; 0: none).
    next_request_ms: AtomicU64,
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a connection without a request in progress has waited too long: for the
    /// headers of its first request or of one that started arriving (`header_timeout`),
    /// or, between requests, for the next one to start (`idle_timeout`).
    fn timed_out(&self, s: &ServerSettings) -> bool {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        let now = self.now_ms();
        let started = self.next_request_ms.load(Ordering::Relaxed);
        let (since, limit) = if started != 0 {
            (started - 1, s.header_timeout)
        } else if self.served.load(Ordering::Relaxed) == 0 {
            (0, s.header_timeout)
        } else {
            (self.last_active_ms.load(Ordering::Relaxed), s.idle_timeout)
        };
        Duration::from_millis(now.saturating_sub(since)) >= limit
    }
}

/// Ends a request's share of `in_flight` however the request ends.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.dispatched.fetch_add(1, Ordering::AcqRel);
        state.next_request_ms.store(0, Ordering::Relaxed);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.last_active_ms.store(s.now_ms(), Ordering::Relaxed);
        s.served.fetch_add(1, Ordering::Relaxed);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting when a new request starts arriving, and giving the error answers
/// hyper writes itself (a request it could not parse: `400`, `414`, `431`, ...) the JSON
/// body every other answer has.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
    /// Final response heads written.
    answered: u64,
    /// A JSON answer written in place of hyper's: (bytes, written so far).
    replacing: Option<(Vec<u8>, usize)>,
}

/// The JSON answer standing for hyper's own bodiless error answer `head`, if it is one.
fn json_error_for(head: &[u8]) -> Option<Vec<u8>> {
    let code: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    if code < 400 {
        return None;
    }
    let status = axum::http::StatusCode::from_u16(code).ok()?;
    let message = match code {
        400 => "the request is not valid HTTP/1.1".to_string(),
        414 => "the request target (path and query) is too long".to_string(),
        431 => "the request headers are too large".to_string(),
        505 => "only HTTP/1.0 and HTTP/1.1 are served".to_string(),
        _ => format!("the request could not be read ({code})"),
    };
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = serde_json::json!({ "error": reason, "message": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let s = &self.state;
        if buf.filled().len() > before
            && s.in_flight.load(Ordering::Acquire) == 0
            && s.next_request_ms.load(Ordering::Relaxed) == 0
        {
            s.next_request_ms.store(s.now_ms() + 1, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() && buf.starts_with(b"HTTP/1.1 ") && !buf[9..].starts_with(b"1")
        {
            // A final response head: the router's (one per request it was handed), or
            // hyper's own error answer when every request already has its answer.
            if this.answered >= this.state.dispatched.load(Ordering::Acquire)
                && let Some(json) = json_error_for(buf)
            {
                this.replacing = Some((json, 0));
            }
            this.answered += 1;
        }
        if let Some((json, written)) = &mut this.replacing {
            while *written < json.len() {
                match Pin::new(&mut this.stream).poll_write(cx, &json[*written..]) {
                    Poll::Ready(Ok(n)) => *written += n,
                    other => return other,
                }
            }
            // Hyper's answer (and anything after it) is not sent: the connection closes.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each response head at the start of one buffer,
    // which is where `poll_write` looks for it.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// The connection cap actually applied: `max_connections`, lowered to fit the process's
/// open-file limit (leaving room for the store, the sink and log files).
pub(crate) fn effective_max_connections(configured: usize) -> usize {
    match open_file_limit() {
        Some(limit) if limit < configured as u64 + 128 => {
            let fit = limit.saturating_sub(128).max(16) as usize;
            tracing::warn!(
                configured,
                open_file_limit = limit,
                applied = fit,
                "server.max_connections lowered to fit the open-file limit (ulimit -n)"
            );
            fit
        }
        _ => configured,
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `router` on `listener` until `stop` turns true, then lets the requests in
/// progress finish (at most `shutdown_timeout`); connections without one are dropped at
/// once. Returns whether every connection closed within the timeout.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) -> bool {
    let permits = Arc::new(Semaphore::new(max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let refused_log = LogEvery::new(Duration::from_secs(10));
    let accept_log = LogEvery::new(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: wait a moment rather than spin.
                if accept_log.ready() {
                    tracing::warn!(error = %e, "cannot accept a connection");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics::counter!("tidegate_connections_refused_total").increment(1);
            if let Some(skipped) = refused_log.ready_with_count() {
                tracing::warn!(
                    max_connections,
                    refused_since_last_line = skipped,
                    "server.max_connections reached: refusing new connections with 503"
                );
            }
            // At most REFUSING answers at once; beyond, the connection is just closed.
            if let Ok(slot) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(refuse(stream, slot));
            }
            continue;
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            settings.clone(),
            stop.clone(),
            permit,
            (Arc::clone(&permits), max_connections),
        ));
    }
    drop(listener);
    // Every connection task holds a permit until it ends.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    tokio::time::timeout(shutdown_timeout, permits.acquire_many(all))
        .await
        .is_ok()
}

/// Answers `503` to a connection over the cap and closes it, reading (and discarding)
/// what the client sent for at most 250 ms so that the close does not reset the
/// connection before the client has read the answer.
async fn refuse(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(Duration::from_millis(250), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    _peer: SocketAddr,
    router: Router,
    settings: ServerSettings,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    (permits, max): (Arc<Semaphore>, usize),
) {
    metrics::gauge!("tidegate_connections_open").set((max - permits.available_permits()) as f64);
    let state = Arc::new(ConnState {
        epoch: Instant::now(),
        in_flight: AtomicUsize::new(0),
        served: AtomicU64::new(0),
        dispatched: AtomicU64::new(0),
        last_active_ms: AtomicU64::new(0),
        next_request_ms: AtomicU64::new(0),
    });
    let shared = Arc::clone(&state);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = InFlight::start(&shared);
        let router = router.clone();
        async move {
            let resp = router
                .oneshot(req.map(Body::new))
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            drop(guard);
            Ok::<_, Infallible>(resp)
        }
    });
    let io = Watched {
        stream,
        state: Arc::clone(&state),
        answered: 0,
        replacing: None,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header and idle timeouts are this loop's (hyper's header timer would also run
    // while a kept-alive connection waits for its next request).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // A head over `max_header_bytes` gets 431 however its bytes arrive (hyper's own
        // bound, its read buffer, is checked only on an incomplete head, so a longer one
        // read in one go would pass).
        .max_header_size(settings.max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let check_every = (settings.header_timeout.min(settings.idle_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_millis(500));
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop.wait_for(|s| *s), if !draining => {
                if state.in_flight.load(Ordering::Acquire) == 0 {
                    // No request in progress (idle, or its headers not complete): drop it.
                    break;
                }
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(check_every) => {
                if state.timed_out(&settings) {
                    break;
                }
            }
        }
    }
    let open = max.saturating_sub(permits.available_permits() + 1);
    metrics::gauge!("tidegate_connections_open").set(open as f64);
}
