//! Phase `status`: `status` round trips the way `chartd status` makes them, alternating
//! between the N-file daemon and the empty-root one, in one block per crawl repetition (on that
//! repetition's daemons, so that a baseline binary's blocks take turns with this build's).
//!
//! May touch: nothing but the daemons' control sockets.

use crate::compare::{block, row_pct};
use crate::daemon::Daemon;
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

/// One block of `count` `status` round trips (after 20 warm-ups), alternating between the
/// N-file daemon `d` and the empty-root one: (ms of `d`, ms of `empty`, answer bytes of `d`).
pub fn status_block(count: usize, d: &Daemon, empty: &Daemon) -> Res<(Vec<f64>, Vec<f64>, usize)> {
    let mut a = Vec::with_capacity(count);
    let mut b = Vec::with_capacity(count);
    let mut buf = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        status_rtt(&d.socket, &mut buf)?;
        status_rtt(&empty.socket, &mut buf)?;
    }
    for i in 0..count {
        if i % 2 == 0 {
            a.push(status_rtt(&d.socket, &mut buf)?.as_secs_f64() * 1e3);
            bytes = buf.len();
            b.push(status_rtt(&empty.socket, &mut buf)?.as_secs_f64() * 1e3);
        } else {
            b.push(status_rtt(&empty.socket, &mut buf)?.as_secs_f64() * 1e3);
            a.push(status_rtt(&d.socket, &mut buf)?.as_secs_f64() * 1e3);
        }
    }
    Ok((a, b, bytes))
}

/// What the status blocks of one variant measured, one vector per block (repetition).
#[derive(Default)]
pub struct StatusRuns {
    pub ms: Vec<Vec<f64>>,
    pub empty_ms: Vec<Vec<f64>>,
    pub bytes: usize,
}

/// `out["status"]` for this build, and the comparison with the baseline (`runs[1]`), if any.
pub fn status_json(n: usize, runs: &[StatusRuns], labels: &[&str], out: &mut Value) {
    let (a, b) = (runs[0].ms.concat(), runs[0].empty_ms.concat());
    eprintln!(
        "  [{n}] status p50/p99 {:.3}/{:.3} ms (empty root {:.3}/{:.3} ms)",
        pct(&a, 50.0),
        pct(&a, 99.0),
        pct(&b, 50.0),
        pct(&b, 99.0)
    );
    out["status"] = json!({
        "ms": stats(&a),
        "empty_root_ms": stats(&b),
        "answer_bytes": runs[0].bytes,
        "blocks": runs[0].ms.len(),
    });
    if let Some(base) = runs.get(1) {
        let (c, e) = (base.ms.concat(), base.empty_ms.concat());
        eprintln!(
            "  [{n}] {}: status p50/p99 {:.3}/{:.3} ms (empty root {:.3}/{:.3} ms)",
            labels[1],
            pct(&c, 50.0),
            pct(&c, 99.0),
            pct(&e, 50.0),
            pct(&e, 99.0)
        );
        out["status"]["baseline_ms"] = stats(&c);
        out["status"]["baseline_empty_root_ms"] = stats(&e);
        let r0 = &runs[0];
        out["compare"]["status"] = block(
            labels[0],
            labels[1],
            vec![
                row_pct("status round trip p50", 50.0, Some(1.10), &r0.ms, &base.ms),
                row_pct("status round trip p99", 99.0, Some(1.10), &r0.ms, &base.ms),
                row_pct(
                    "status, empty root, p50",
                    50.0,
                    None,
                    &r0.empty_ms,
                    &base.empty_ms,
                ),
            ],
        );
    }
}
