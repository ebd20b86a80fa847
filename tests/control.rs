//! The control socket and the CLI, end to end against the real daemon.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

const KIB: u64 = 1024;

fn cli(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(&d.socket)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tree(root: &std::path::Path) {
    three_groups(root);
}

#[test]
fn every_command_end_to_end() {
    let d = Daemon::start("max_size: 10MiB\nmax_age: 24h\ngrace: 0s", tree);
    let st = d.request(r#"{"cmd":"status"}"#);
    assert_eq!(st["ok"], true);
    assert_eq!(st["total_files"], 9);
    for key in [
        "path",
        "total_files",
        "total_bytes",
        "total_size_mb",
        "oldest_file_age_hours",
        "newest_file_age_hours",
        "max_age_hours",
        "max_size_mb",
        "usage_percent",
        "alert",
        "fs_free_bytes",
        "unmanaged_files",
        "files_removed",
        "bytes_freed",
        "errors",
        "last_eviction",
        "cleanup_enabled",
        "watches",
        "overflows",
        "resyncs",
        "degraded",
    ] {
        assert!(
            st["roots"][0].get(key).is_some(),
            "status lacks {key}: {st}"
        );
    }
    assert_eq!(st["roots"][0]["max_age_hours"], 24.0);
    assert_eq!(st["roots"][0]["watches"], 4);

    let g = d.request(r#"{"cmd":"groups","top":2,"sort":"files"}"#);
    let names: Vec<&str> = g["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["AAPL_1d", "MSFT_1h"], "{g}");
    assert_eq!(g["groups"][0]["bytes"], 400 * KIB);

    let l = d.request(r#"{"cmd":"list","group":"MSFT_1h"}"#);
    let files = l["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert!(
        files[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("MSFT_1h/c2.png"),
        "oldest first: {l}"
    );
    assert!(files[0]["age_hours"].as_f64().unwrap() > 2.9);

    let dry = d.request(r#"{"cmd":"purge","group":"sess-42","dry_run":true}"#);
    assert_eq!(dry["would_remove"], 2, "{dry}");
    assert!(d.root.join("sess-42/c0.png").exists());
    let p = d.request(r#"{"cmd":"purge","group":"sess-42"}"#);
    assert_eq!(p["files_removed"], 2, "{p}");
    assert!(
        !d.root.join("sess-42").exists(),
        "the emptied group directory is pruned"
    );
    let p = d.request(r#"{"cmd":"purge","group":"nope"}"#);
    assert_eq!(p["ok"], false);

    // cleanup enforces a limit lowered by reload.
    d.rewrite_config("max_size: 500KiB\nmax_age: 24h\ngrace: 0s");
    let r = d.request(r#"{"cmd":"reload"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert!(wait_until(Duration::from_secs(5), || d.status_root()
        ["total_bytes"]
        .as_u64()
        <= Some(450 * KIB)));
    let c = d.request(r#"{"cmd":"cleanup","dry_run":true}"#);
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(c["would_remove"], 0);

    let m = d.request(r#"{"cmd":"metrics"}"#);
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("chartd_managed_files{root="), "{text}");
    assert!(text.contains("chartd_removed_files_total{"), "{text}");

    let all = d.request(r#"{"cmd":"purge","all":true}"#);
    assert_eq!(all["ok"], false, "purge all needs confirm: {all}");
    let all = d.request(r#"{"cmd":"purge","all":true,"confirm":true}"#);
    assert_eq!(all["ok"], true, "{all}");
    assert_eq!(walk_png(&d.root).0, 0, "{all}\n{}", d.log_text());
    assert!(d.root.is_dir(), "never the root itself");
}

#[test]
fn the_cli_prints_tables_json_and_exit_codes() {
    let d = Daemon::start("max_size: 10MiB\ngrace: 0s", tree);
    let (code, out, _) = cli(&d, &["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(d.root.to_str().unwrap()) && out.contains("FILES"),
        "{out}"
    );
    let (code, out, _) = cli(&d, &["status", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_files"], 9);
    let (code, out, _) = cli(&d, &["groups", "--top", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("AAPL_1d") && !out.contains("sess-42"), "{out}");
    let (code, out, _) = cli(&d, &["list", "AAPL_1d"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches(".png").count(), 4, "{out}");
    let (code, _, err) = cli(&d, &["list", "../etc"]);
    assert_ne!(code, 0, "{err}");
    let (code, out, _) = cli(&d, &["purge", "MSFT_1h", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(walk_png(&d.root).0, 9);
    let (code, _, _) = cli(&d, &["purge", "--all"]);
    assert_eq!(code, 2, "--all without --yes is a usage error");
    let (code, _, _) = cli(&d, &["cleanup"]);
    assert_eq!(code, 0);
    let (code, out, _) = cli(&d, &["metrics"]);
    assert_eq!(code, 0);
    assert!(out.contains("# TYPE chartd_managed_files gauge"));
    let (code, out, _) = cli(&d, &["reload"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = cli(&d, &["list", "no-such-group"]);
    assert_eq!(code, 1, "{err}");
    let o = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(d.dir.path().join("missing.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.sock"));
    // --config FILE finds the socket too.
    let o = Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn the_readme_python_client_works() {
    let d = Daemon::start("max_size: 10MiB", tree);
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```python\n")
        .expect("README has a python client")
        + 10;
    let code = &readme[start..start + readme[start..].find("```").unwrap()];
    assert!(code.lines().count() <= 6, "a five-line client");
    let code = code.replace("/run/chartd/chartd.sock", d.socket.to_str().unwrap());
    let o = Command::new("python3")
        .arg("-c")
        .arg(&code)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(d.root.to_str().unwrap()), "{out}");
}

#[test]
fn status_equals_the_disk_after_a_burst_of_writes_and_evictions() {
    let d = Daemon::start("max_size: 2MiB\ngrace: 0s", |_| {});
    for s in 0..40 {
        for i in 0..4 {
            write_file(
                &d.root.join(format!("S{s}/chart_{i}.png")),
                30_000 + 1000 * i,
            );
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let st = d.status_root();
            let disk = walk_png(&d.root);
            st["total_files"] == disk.0 && st["total_bytes"] == disk.1 && disk.1 <= 2 * 1024 * 1024
        }),
        "{} vs {:?}",
        d.status_root(),
        walk_png(&d.root)
    );
    let st = d.status_root();
    assert!(st["files_removed"].as_u64().unwrap() > 0);
    assert!(st["total_bytes"].as_u64().unwrap() <= 2 * 1024 * 1024);
    let groups = d.request(r#"{"cmd":"groups"}"#);
    let sum: u64 = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["files"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, st["total_files"].as_u64().unwrap());
}

fn raw(d: &Daemon) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn answer(r: &mut BufReader<UnixStream>) -> Value {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

#[test]
fn bad_requests_get_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start("max_size: 10MiB", tree);
    let (mut s, mut r) = raw(&d);
    for bad in [
        "{not json",
        "[1,2]",
        r#"{"cmd":"explode"}"#,
        r#"{"cmd":"list","group":"../etc"}"#,
        r#"{"cmd":"purge","group":"a/b"}"#,
        r#"{"cmd":"list","group":""}"#,
        r#"{"cmd":"groups","top":"x"}"#,
    ] {
        s.write_all(bad.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let a = answer(&mut r);
        assert_eq!(a["ok"], false, "{bad} -> {a}");
        assert!(a["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    s.write_all(b"{\"cmd\":\"nope\"}\n").unwrap();
    let a = answer(&mut r);
    assert!(
        a["error"].as_str().unwrap().contains("status"),
        "names the valid commands: {a}"
    );
    // Same connection still works.
    s.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    assert_eq!(answer(&mut r)["ok"], true);
    // Oversized line: an error, then the connection is closed.
    let (mut s2, mut r2) = raw(&d);
    let big = vec![b'x'; 70 * 1024];
    let _ = s2.write_all(&big);
    let _ = s2.write_all(b"\n");
    let a = answer(&mut r2);
    assert_eq!(a["ok"], false, "{a}");
    let mut rest = String::new();
    assert_eq!(
        r2.read_to_string(&mut rest).unwrap_or(0),
        0,
        "closed after an oversized line"
    );
    // A slow client that never finishes its line does not block others.
    let (mut slow, _r) = raw(&d);
    slow.write_all(b"{\"cmd\":\"sta").unwrap();
    assert_eq!(d.request(r#"{"cmd":"status"}"#)["ok"], true);
    assert_eq!(d.status_root()["ready"], true);
}

#[test]
fn concurrent_clients_are_all_answered() {
    let d = Daemon::start("max_size: 10MiB\n^control: { max_connections: 300 }", tree);
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let sock = d.socket.clone();
            std::thread::spawn(move || {
                request_at(&sock, r#"{"cmd":"status"}"#).is_some_and(|v| v["ok"] == true)
            })
        })
        .collect();
    let answered = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&x| x)
        .count();
    assert_eq!(answered, 200);
}

#[test]
fn a_non_admin_peer_may_read_but_not_purge() {
    if !is_root()
        || !std::path::Path::new("/usr/bin/python3").exists()
        || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("SKIP a_non_admin_peer_may_read_but_not_purge: needs root and setpriv to run a client as nobody");
        return;
    }
    let d = Daemon::start(
        "max_size: 10MiB\ngrace: 0s\n^control: { group: nogroup }",
        tree,
    );
    // Let `nobody` reach the socket through the temp dir.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |req: &str| -> Value {
        let code = format!(
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\ns.sendall(b'{}\\n')\nsys.stdout.write(s.makefile().readline())",
            d.socket.to_str().unwrap(),
            req
        );
        let o = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                &code,
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)))
    };
    assert_eq!(as_nobody(r#"{"cmd":"status"}"#)["ok"], true);
    let denied = as_nobody(r#"{"cmd":"purge","group":"AAPL_1d"}"#);
    assert_eq!(denied["ok"], false);
    assert!(
        denied["error"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{denied}"
    );
    assert!(d.root.join("AAPL_1d/c0.png").exists());
    let denied = as_nobody(r#"{"cmd":"reload"}"#);
    assert_eq!(denied["ok"], false);
}
