//! Socket abuse: malformed, oversized, truncated and binary requests, clients that connect and
//! say nothing, and 1,000 concurrent clients. Every legitimate request is still answered (a
//! `busy` answer is retried, as the CLI does), and chartd's memory (VmRSS) and open fds stay
//! bounded.
//!
//! `CHARTD_STRESS=full`: 10,000 abusive requests; CI: 2,000. Always 1,000 concurrent clients.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One abusive request of kind `k`; the answer (if any) is read and dropped.
fn abuse(socket: &Path, k: usize) {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let payload: Vec<u8> = match k % 8 {
        0 => b"{\"cmd\":\n".to_vec(),                         // truncated JSON
        1 => b"not json at all\n".to_vec(),                   // malformed
        2 => vec![b'x'; 200 * 1024],                          // oversized, no newline
        3 => [&[0xff, 0xfe, 0x00, 0x80][..], b"\n"].concat(), // binary, invalid UTF-8
        4 => format!("{}\n", "[".repeat(100_000)).into_bytes(), // deep nesting (over MAX_LINE)
        5 => format!("{}1{}\n", "[".repeat(5_000), "]".repeat(5_000)).into_bytes(), // deep, fits
        6 => b"{\"cmd\":\"list\",\"group\":\"../../etc\"}\n{\"cmd\":\"purge\"}\n".to_vec(),
        _ => b"{\"cmd\":\"status\"".to_vec(), // truncated, then close
    };
    let _ = s.write_all(&payload);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// A legitimate `status`, retried while the answer is `busy`; the number of tries.
fn legit(socket: &Path) -> usize {
    for tries in 1..=200 {
        if let Some(v) = request_at(socket, r#"{"cmd":"status"}"#) {
            if v["ok"] == true {
                assert!(v["roots"][0]["ready"] == true);
                return tries;
            }
            let e = v["error"].as_str().unwrap_or_default();
            assert!(e.starts_with("busy"), "unexpected answer {v}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("a legitimate request was never answered");
}

#[test]
fn malformed_oversized_truncated_and_concurrent_requests() {
    let abusive = scale(2_000, 10_000);
    let d = Daemon::start("max_age: 1h", |root| {
        file(&root.join("g/a.png"), 1000, hours(0));
    });
    let pid = d.pid();
    legit(&d.socket);
    let (rss0, fds0) = (proc_status_kib(pid, "VmRSS"), fd_count(pid));
    let t0 = Instant::now();
    // 8 abusers and 2 legitimate clients at once.
    let socket: PathBuf = d.socket.clone();
    let mut abusers = Vec::new();
    for t in 0..8 {
        let s = socket.clone();
        abusers.push(std::thread::spawn(move || {
            for i in 0..abusive / 8 {
                abuse(&s, t + i * 8);
            }
        }));
    }
    let mut legits = Vec::new();
    for _ in 0..2 {
        let s = socket.clone();
        legits.push(std::thread::spawn(move || {
            let mut n = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(2) || n < 50 {
                legit(&s);
                n += 1;
            }
            n
        }));
    }
    for a in abusers {
        a.join().unwrap();
    }
    let answered: usize = legits.into_iter().map(|l| l.join().unwrap()).sum();
    let abuse_time = t0.elapsed();

    // 1,000 concurrent clients: connect all, then send, then read every answer.
    let t1 = Instant::now();
    let clients = 1_000;
    let mut conns = Vec::new();
    for _ in 0..clients {
        let s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        conns.push(s);
    }
    for s in &mut conns {
        let _ = s.write_all(b"{\"cmd\":\"status\"}\n");
    }
    let (mut ok, mut busy) = (0, 0);
    for s in conns {
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["ok"] == true {
            ok += 1;
        } else if v["error"].as_str().is_some_and(|e| e.starts_with("busy")) {
            busy += 1;
        } else {
            panic!("client got {line:?}");
        }
    }
    // The ones told `busy` retry, as the CLI does: all answered.
    let mut retries = 0;
    for _ in 0..busy {
        retries += legit(&socket);
    }
    let concurrent_time = t1.elapsed();
    // Idle clients that never send a full line are closed after idle_timeout; meanwhile the
    // limit is max_connections (64): legit requests get `busy` and retry. Checked above.
    std::thread::sleep(Duration::from_millis(300));
    let (rss1, fds1) = (proc_status_kib(pid, "VmRSS"), fd_count(pid));
    eprintln!(
        "socket abuse: {abusive} abusive requests in {abuse_time:.1?} with {answered} legitimate \
         status requests answered meanwhile; {clients} concurrent clients in \
         {concurrent_time:.1?}: {ok} answered at once, {busy} told busy and answered on retry \
         ({retries} tries); VmRSS {rss0} -> {rss1} KiB, fds {fds0} -> {fds1}"
    );
    assert_eq!(ok + busy, clients);
    assert!(rss1 < rss0 + 16 * 1024, "memory grew: {rss0} -> {rss1} KiB");
    assert!(fds1 <= fds0 + 2, "fds leaked: {fds0} -> {fds1}");
    assert_eq!(d.status_root()["ready"], true);
    assert!(d.root.join("g/a.png").exists());
}
