//! The `chartd` client subcommands as an operator runs them: exit codes and messages, without a
//! daemon (the answers of a live server are tested in src/client/tests.rs and
//! src/control/tests.rs against a real socket).
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets; it runs the `chartd` binary as a client.

use std::process::{Command, Output};

fn chartd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chartd"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn no_daemon_is_exit_3_naming_the_socket_and_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("chartd.sock");
    let sock = sock.to_str().unwrap();
    for args in [
        vec!["status"],
        vec!["groups", "--top", "3"],
        vec!["list", "EURUSD_1h"],
        vec!["cleanup", "--dry-run"],
        vec!["purge", "g"],
        vec!["reload"],
        vec!["metrics"],
    ] {
        let mut args = args.clone();
        args.extend(["--socket", sock]);
        let o = chartd(&args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(sock) && e.contains("systemctl status chartd"),
            "{e}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn stale_socket_says_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("chartd.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let o = chartd(&["status", "--socket", sock.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("nothing listens"), "{}", stderr(&o));
}

#[test]
fn usage_errors_are_exit_2() {
    let o = chartd(&["purge", "--all", "--socket", "/nonexistent.sock"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    let o = chartd(&["groups", "--sort", "size", "--socket", "/nonexistent.sock"]);
    assert_eq!(o.status.code(), Some(2));
    // --sort is a closed set (shells complete its values, not file names).
    assert!(
        stderr(&o).contains("[possible values: bytes, files, age, name]"),
        "{}",
        stderr(&o)
    );
    let o = chartd(&["list", "../etc", "--socket", "/nonexistent.sock"]);
    assert_eq!(o.status.code(), Some(2));
    let o = chartd(&["purge", "g", "--all", "--yes"]); // clap: conflicting arguments
    assert_eq!(o.status.code(), Some(2));
    let o = chartd(&["status", "--config", "/nonexistent/chartd.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/chartd.yaml"),
        "{}",
        stderr(&o)
    );
}

/// Issue #14, item 11: every option and argument of every subcommand has help text; `--sort`
/// lists its values.
#[test]
fn help_describes_every_option() {
    // Every subcommand `chartd --help` lists, so that a new one is checked too.
    let top = chartd(&["--help"]);
    let listing = String::from_utf8_lossy(&top.stdout).into_owned();
    let subcommands: Vec<String> = listing
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(subcommands.len() >= 11, "{listing}");
    let listed: Vec<Vec<&str>> = subcommands.iter().map(|c| vec![c.as_str(), "-h"]).collect();
    let specific: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["status", "-h"],
            vec![
                "--json",
                "Print the daemon's JSON reply",
                "--check",
                "Nagios",
            ],
        ),
        (
            vec!["groups", "-h"],
            vec![
                "[possible values: bytes, files, age, name]",
                "resolved against the working directory",
            ],
        ),
        (
            vec!["list", "-h"],
            vec!["<GROUP>", "a directory directly under a root"],
        ),
        (
            vec!["purge", "-h"],
            vec![
                "--dry-run",
                "delete nothing",
                "--yes",
                "--include-young",
                "'RELIANCE_*'",
            ],
        ),
        (vec!["cleanup", "-h"], vec!["--dry-run", "delete nothing"]),
        (
            vec!["check-config", "-h"],
            vec!["--config", "--explain", "where it came from"],
        ),
        (vec!["clean", "-h"], vec!["--config", "built-in"]),
        (
            vec!["groups", "-h"],
            vec!["--top <N>", "Show only the first N groups after sorting"],
        ),
    ];
    for (cmd, wants) in listed.into_iter().map(|c| (c, Vec::new())).chain(specific) {
        let o = chartd(&cmd);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}");
        for want in wants {
            assert!(out.contains(want), "{cmd:?}: missing {want:?} in\n{out}");
        }
        // No option or argument is left without a description (the short help puts it on the
        // same line).
        for line in out.lines() {
            let t = line.trim();
            let item = t.starts_with("--")
                || (t.starts_with('-') && t.len() > 1)
                || t.starts_with('<')
                || t.starts_with('[');
            if item && !t.contains("  ") {
                panic!("{cmd:?}: {t:?} has no help text\n{out}");
            }
        }
    }
    assert!(!listing.contains("generate-assets"));
}
