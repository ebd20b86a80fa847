//! The HTTP scrape endpoint against the real binary: `metrics.listen` on 127.0.0.1:0 (the bound
//! port is read from the log) and a socket passed in the way systemd passes it (LISTEN_FDS).
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets, and TCP ports on 127.0.0.1 that it takes from the kernel.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// The address the daemon logged for its endpoint.
fn endpoint(d: &Daemon) -> SocketAddr {
    let mut addr = None;
    wait_until(Duration::from_secs(10), || {
        addr = d.log_text().lines().find_map(|l| {
            let rest = l.split("listening on http://").nth(1)?;
            rest.split("/metrics").next()?.parse().ok()
        });
        addr.is_some()
    });
    addr.unwrap_or_else(|| panic!("no endpoint address in the log:\n{}", d.log_text()))
}

/// Sends `raw` and reads the whole answer (the request asks for `Connection: close`).
fn http(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let text = http(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// The exposition without the lines that change by themselves between two reads.
fn stable(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            !l.starts_with("chartd_uptime_seconds")
                && !l.starts_with("chartd_oldest_file_age")
                && !l.starts_with("chartd_average_file_age")
                && !l.starts_with("chartd_snapshot_age_seconds")
        })
        .collect()
}

fn cli_metrics(d: &Daemon) -> String {
    let out = Command::new(BIN)
        .args(["metrics", "--socket"])
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn scrape_endpoint_serves_metrics_read_only_and_bounded() {
    let d = Daemon::start(
        "^metrics: { listen: \"127.0.0.1:0\" }\nmax_size: 1MiB",
        |root| {
            write_file(&root.join("a.png"), 1000);
        },
    );
    let addr = endpoint(&d);

    let (code, head, body) = get(addr, "GET", "/metrics");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let root = d.root.display().to_string();
    assert!(
        body.contains(&format!("chartd_managed_files{{root=\"{root}\"}} 1\n")),
        "{body}"
    );
    assert!(body.contains("chartd_max_size_bytes"), "{body}");
    // The same text as `chartd metrics` over the control socket.
    assert_eq!(stable(&body), stable(&cli_metrics(&d)));

    let (code, head, body) = get(addr, "HEAD", "/metrics");
    assert_eq!(code, 200, "{head}");
    assert!(body.is_empty(), "HEAD answered a body: {body:?}");

    for method in ["POST", "PUT", "DELETE"] {
        let (code, head, _) = get(addr, method, "/metrics");
        assert_eq!(code, 405, "{method}: {head}");
        assert!(
            head.contains("allow: GET, HEAD") || head.contains("Allow: GET, HEAD"),
            "{head}"
        );
    }
    for path in ["/x", "/", "/metrics/x"] {
        assert_eq!(get(addr, "GET", path).0, 404, "{path}");
    }

    // A request head over 8 KiB is refused, not served.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let answer = http(addr, big.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "oversized request answered: {:?}",
        answer.chars().take(80).collect::<String>()
    );

    // 64 connections are served at once; the 65th is refused with a 503 while they are open.
    let held: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let answer = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || get(addr, "GET", "/metrics").0
            == 200),
        "not served again after the connections closed"
    );

    // A client that never completes its request is dropped after the header timeout (5 s).
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(12),
        "slow client dropped after {waited:?}"
    );
}

#[test]
fn without_listen_there_is_no_endpoint() {
    let d = Daemon::start("max_size: 1MiB", |_| {});
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !d.log_text().contains("metrics endpoint"),
        "{}",
        d.log_text()
    );
}

#[test]
fn bad_listen_address_is_a_config_error() {
    let (dir, root) = workspace();
    let config = dir.path().join("chartd.yaml");
    std::fs::write(
        &config,
        config_text(
            &root,
            &dir.path().join("s.sock"),
            "^metrics: { listen: localhost }",
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics.listen") && err.contains("invalid listen address"),
        "{err}"
    );
}

/// The socket systemd would pass: bound here, handed over as fd 3 with LISTEN_PID/LISTEN_FDS
/// set for the daemon's own pid (through `sh`, which knows its pid before it execs chartd).
#[test]
fn socket_passed_like_systemd_is_used() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty()).unwrap();

    let (dir, root) = workspace();
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    // No metrics.listen: the passed socket alone turns the endpoint on.
    std::fs::write(&config, config_text(&root, &socket, "max_size: 1MiB")).unwrap();
    // bash, not sh: dash cannot redirect descriptors above 9.
    let mut cmd = Command::new("bash");
    let to_3 = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    cmd.arg("-c")
        .arg(format!(
            "{to_3}LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=metrics exec \"$0\" run --config \"$1\""
        ))
        .arg(BIN)
        .arg(&config);
    let d = Daemon::spawn_cmd(dir, root, socket, config, &[], cmd);
    drop(listener);
    assert_eq!(endpoint(&d), addr);
    let (code, head, body) = get(addr, "GET", "/metrics");
    assert_eq!(code, 200, "{head}");
    assert!(body.contains("chartd_managed_files{root="), "{body}");
}

/// A port already taken: chartd says so and exits 1 at start, before it crawls anything.
#[test]
fn listen_address_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (dir, root) = workspace();
    let config = dir.path().join("chartd.yaml");
    std::fs::write(
        &config,
        config_text(
            &root,
            &dir.path().join("s.sock"),
            &format!("^metrics: {{ listen: \"{addr}\" }}"),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(&config);
    for v in CHART_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut code = None;
    wait_until(Duration::from_secs(10), || {
        code = child.try_wait().unwrap().and_then(|s| s.code());
        code.is_some()
    });
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("metrics.listen: cannot listen on {addr}")),
        "{err}"
    );
}
