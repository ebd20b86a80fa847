//! The HTTP scrape endpoint (issue 13): `GET /metrics` answers the Prometheus text that
//! `chartd metrics` prints, from the latest snapshot, on `metrics.listen` or on a TCP socket
//! systemd passes in (`chartd-metrics.socket`, socket activation).
//!
//! Read-only and bounded: `GET`/`HEAD /metrics` → 200; another method → 405 with
//! `Allow: GET, HEAD`; another path → 404. At most [`MAX_CONNECTIONS`] connections are served at
//! once (a further one gets a 503 and is closed); a request head larger than [`MAX_HEAD_BYTES`]
//! is refused (431) and one not complete within [`HEADER_TIMEOUT`] is dropped; a connection lives
//! at most [`CONNECTION_LIFETIME`]. Request bodies are never read.
//!
//! # What the daemon calls
//!
//! ```ignore
//! if let Some(l) = metrics_http::listener(&cfg.metrics)? { // Err(String): log it, exit 1
//!     tokio::spawn(metrics_http::serve(l, ctx.clone(), stop_rx.clone())); // the control Context
//! }
//! ```
//!
//! May touch: its TCP listener (bound from `metrics.listen`, or adopted from systemd's
//! `LISTEN_FDS`), its connections, and the metrics text of the latest snapshot (through
//! `control::Context`); never an index or a root.

use crate::config::metrics::MetricsConfig;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Connections served at once; a scrape needs one, so this is ample and bounds memory.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head (request line + headers) read; hyper's minimum buffer.
pub const MAX_HEAD_BYTES: usize = 8192;
/// A request head must arrive within this long (slow clients are dropped).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A keep-alive connection is closed after this long, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// The exposition format Prometheus expects for text.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The socket name `chartd-metrics.socket` gives its listener (`FileDescriptorName=`).
pub const FD_NAME: &str = "metrics";
const SD_LISTEN_FDS_START: i32 = 3;

/// The endpoint's listener: the socket systemd passed in if there is one (it wins over
/// `listen`), else a new one bound to `metrics.listen`, else `None` (off).
pub fn listener(cfg: &MetricsConfig) -> Result<Option<StdListener>, String> {
    if let Some(fd) = passed_fd(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::env::var("LISTEN_FDNAMES").ok().as_deref(),
        std::process::id(),
    ) {
        return adopt(fd).map(Some);
    }
    let Some(addr) = cfg.listen else {
        return Ok(None);
    };
    let l = StdListener::bind(addr).map_err(|e| {
        format!("metrics.listen: cannot listen on {addr}: {e} (under systemd, use chartd-metrics.socket instead)")
    })?;
    l.set_nonblocking(true)
        .map_err(|e| format!("metrics.listen: {e}"))?;
    Ok(Some(l))
}

/// Which passed descriptor is ours, per sd_listen_fds(3): only when `LISTEN_PID` is this
/// process; the one named [`FD_NAME`] in `LISTEN_FDNAMES`, else the only one passed.
pub fn passed_fd(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    me: u32,
) -> Option<i32> {
    if pid?.trim().parse::<u32>().ok()? != me {
        return None;
    }
    let n: i32 = fds?.trim().parse().ok()?;
    if n < 1 {
        return None;
    }
    if let Some(names) = names {
        if let Some(i) = names.split(':').position(|name| name == FD_NAME) {
            return (i < n as usize).then_some(SD_LISTEN_FDS_START + i as i32);
        }
    }
    (n == 1).then_some(SD_LISTEN_FDS_START)
}

/// Takes ownership of a passed descriptor after checking that it is a TCP stream socket. A
/// descriptor that fails the checks is left alone (it may be something else's).
fn adopt(fd: i32) -> Result<StdListener, String> {
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    let what = format!("the socket passed by systemd (fd {fd})");
    // SAFETY: fcntl(F_GETFD) on a plain number touches no memory; it tells whether `fd` is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!("{what} is not open"));
    }
    // SAFETY: `fd` is open (checked above) and stays open while `borrowed` is used: nothing
    // closes descriptors by number in chartd.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match rustix::net::sockopt::socket_type(borrowed) {
        Ok(rustix::net::SocketType::STREAM) => {}
        Ok(_) => return Err(format!("{what} is not a stream socket")),
        Err(e) => return Err(format!("{what} is not a socket: {e}")),
    }
    match rustix::net::getsockname(borrowed) {
        Ok(a)
            if matches!(
                a.address_family(),
                rustix::net::AddressFamily::INET | rustix::net::AddressFamily::INET6
            ) => {}
        Ok(_) => {
            return Err(format!(
                "{what} is not a TCP socket (ListenStream= must be an IP address and port)"
            ))
        }
        Err(e) => return Err(format!("{what}: {e}")),
    }
    // SAFETY: per sd_listen_fds(3) systemd passed `fd` to this process (LISTEN_PID is ours) for
    // it to own; it is an open TCP stream socket (checked above) and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| format!("{what}: {e}"))?;
    let l = StdListener::from(owned);
    match l.local_addr() {
        Ok(a) => tracing::debug!("metrics: using {what}, listening on {a}"),
        Err(e) => return Err(format!("{what} is not a TCP socket: {e}")),
    }
    l.set_nonblocking(true)
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(l)
}

/// Serves scrapes until `shutdown` turns true (or its sender is dropped).
pub async fn serve(
    listener: StdListener,
    ctx: Arc<crate::control::Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics endpoint: {e}");
            return;
        }
    };
    match listener.local_addr() {
        Ok(a) => tracing::info!(listen = %a, "metrics endpoint listening on http://{a}/metrics"),
        Err(e) => tracing::warn!("metrics endpoint: {e}"),
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        // A fresh socket's send buffer is empty: this cannot block.
                        let _ = stream.try_write(BUSY);
                        tracing::warn!("metrics endpoint: {MAX_CONNECTIONS} connections open; refused one");
                        continue;
                    };
                    let ctx = ctx.clone();
                    tasks.spawn(async move {
                        connection(stream, ctx).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = stopped(&mut shutdown) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.abort_all();
}

const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

async fn connection(stream: tokio::net::TcpStream, ctx: Arc<crate::control::Context>) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = respond(&req, || ctx.metrics_text());
        async move { Ok::<_, std::convert::Infallible>(r) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(e)) => tracing::debug!("metrics endpoint: connection: {e}"),
    }
}

/// The answer to one request: a function of its method and path and of the metrics text
/// (`chartd metrics`, from the latest snapshot), which is built only for a `GET`/`HEAD`.
pub fn respond<B>(req: &Request<B>, metrics: impl FnOnce() -> String) -> Response<Full<Bytes>> {
    let (status, body) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "not found: chartd serves /metrics\n".to_string(),
        )
    } else if req.method() == Method::GET || req.method() == Method::HEAD {
        (StatusCode::OK, metrics())
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: /metrics is read-only (GET, HEAD)\n".to_string(),
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let ctype = if status == StatusCode::OK {
        CONTENT_TYPE_TEXT
    } else {
        "text/plain; charset=utf-8"
    };
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    r
}

/// Resolves when shutdown is requested or nobody can request it any more.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_fd_follows_sd_listen_fds() {
        let me = 4242;
        assert_eq!(passed_fd(Some("4242"), Some("1"), None, me), Some(3));
        assert_eq!(passed_fd(Some("4243"), Some("1"), None, me), None);
        assert_eq!(passed_fd(None, Some("1"), None, me), None);
        assert_eq!(passed_fd(Some("4242"), Some("0"), None, me), None);
        assert_eq!(passed_fd(Some("4242"), Some("x"), None, me), None);
        assert_eq!(
            passed_fd(Some("4242"), Some("2"), Some("a:metrics"), me),
            Some(4)
        );
        assert_eq!(
            passed_fd(Some("4242"), Some("1"), Some("metrics"), me),
            Some(3)
        );
        // Two unnamed sockets: which one is ours is unknown.
        assert_eq!(passed_fd(Some("4242"), Some("2"), Some("a:b"), me), None);
        assert_eq!(passed_fd(Some("4242"), Some("2"), None, me), None);
        // A name beyond the count passed is not trusted.
        assert_eq!(
            passed_fd(Some("4242"), Some("1"), Some("a:metrics"), me),
            None
        );
    }

    fn req(method: Method, path: &str) -> Request<()> {
        let mut r = Request::new(());
        *r.method_mut() = method;
        *r.uri_mut() = path.parse().unwrap();
        r
    }

    #[test]
    fn routes() {
        let s = || "chartd_up 1\n".to_string();
        let r = respond(&req(Method::GET, "/metrics?x=1"), s);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], CONTENT_TYPE_TEXT);
        let r = respond(&req(Method::HEAD, "/metrics"), s);
        assert_eq!(r.status(), StatusCode::OK);
        let r = respond(&req(Method::POST, "/metrics"), s);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        assert_eq!(
            respond(&req(Method::GET, "/"), s).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&req(Method::DELETE, "/metrics/x"), s).status(),
            StatusCode::NOT_FOUND
        );
    }
}
