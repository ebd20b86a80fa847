//! Phase `status`: `status` round trips the way `chartd status` makes them, alternating
//! between the N-file daemon and the empty-root one.
//!
//! May touch: nothing but the two daemons' control sockets.

use crate::daemon::Daemon;
use crate::opts::Opts;
use crate::util::{err, pct, stats, Res};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// One `status` round trip as `chartd status` does it: connect, send, read the whole line.
fn status_rtt(socket: &Path, buf: &mut Vec<u8>) -> Res<Duration> {
    let t = Instant::now();
    let mut s = UnixStream::connect(socket).map_err(err("connect"))?;
    s.write_all(b"{\"cmd\":\"status\"}\n")
        .map_err(err("write"))?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).map_err(err("read"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.last() == Some(&b'\n') {
            break;
        }
    }
    let d = t.elapsed();
    if !buf.starts_with(b"{") {
        return Err("bad status answer".into());
    }
    Ok(d)
}

/// `status` round trips, alternating between the N-file daemon and the empty-root one.
pub fn phase_status(o: &Opts, d: &Daemon, empty: &Daemon, out: &mut Value) -> Res<()> {
    let mut a = Vec::with_capacity(o.status_n);
    let mut b = Vec::with_capacity(o.status_n);
    let mut buf = Vec::new();
    let mut bytes = 0;
    // Warm-up.
    for _ in 0..20 {
        status_rtt(&d.socket, &mut buf)?;
        status_rtt(&empty.socket, &mut buf)?;
    }
    for i in 0..o.status_n {
        if i % 2 == 0 {
            a.push(status_rtt(&d.socket, &mut buf)?.as_secs_f64() * 1e3);
            bytes = buf.len();
            b.push(status_rtt(&empty.socket, &mut buf)?.as_secs_f64() * 1e3);
        } else {
            b.push(status_rtt(&empty.socket, &mut buf)?.as_secs_f64() * 1e3);
            a.push(status_rtt(&d.socket, &mut buf)?.as_secs_f64() * 1e3);
        }
    }
    eprintln!(
        "  [{}] status p50/p99 {:.3}/{:.3} ms (empty root {:.3}/{:.3} ms)",
        tree_n(d),
        pct(&a, 50.0),
        pct(&a, 99.0),
        pct(&b, 50.0),
        pct(&b, 99.0)
    );
    out["status"] = json!({
        "ms": stats(&a),
        "empty_root_ms": stats(&b),
        "answer_bytes": bytes,
    });
    Ok(())
}

fn tree_n(d: &Daemon) -> u64 {
    d.status()
        .ok()
        .and_then(|s| s["total_files"].as_u64())
        .unwrap_or(0)
}
