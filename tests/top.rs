//! `chartd top` in a real terminal: a detached tmux session of fixed size on a private tmux
//! server, against the real daemon. Draws, refreshes while charts are written, quits on `q`.
//! Skips (printing SKIP) when tmux is not installed.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets, and a private tmux server on its own socket, killed at the end.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A private tmux server (its own socket file in the test's temp dir), killed at the end.
struct Tmux {
    socket: PathBuf,
    /// `chartd top`'s exit status is written here when it exits.
    exit_file: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(15), || {
            last = self.capture();
            f(&last)
        });
        assert!(ok, "{what}; the pane shows:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only our own server: its socket is ours.
        let _ = self.cmd(&["kill-server"]);
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start_top(d: &Daemon, name: &str, env: &str) -> Tmux {
    let t = Tmux {
        socket: d.dir.path().join(format!("tmux-{name}.sock")),
        exit_file: d.dir.path().join(format!("top-{name}.exit")),
    };
    let cmd = format!(
        "{env} TERM=xterm-256color {} top --socket {}; echo $? > {}; sleep 60",
        BIN,
        d.socket.display(),
        t.exit_file.display()
    );
    let out = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "110",
        "-y",
        "32",
        "sh",
        "-c",
        &cmd,
    ]);
    assert!(out.status.success(), "{out:?}");
    t
}

/// `chartd top`'s exit status once it has exited (the shell writes it after the process).
fn exit_status(t: &Tmux) -> Option<String> {
    let s = std::fs::read_to_string(&t.exit_file).ok()?;
    s.ends_with('\n').then(|| s.trim().to_string())
}

fn usage(screen: &str) -> Option<String> {
    screen
        .split("usage ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_string)
}

fn write_mib(dir: &Path, name: &str, mib: usize) {
    std::fs::create_dir_all(dir).unwrap();
    write_file(&dir.join(name), mib << 20);
}

#[test]
fn top_draws_refreshes_and_quits() {
    if !have_tmux() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let d = Daemon::start("max_size: 100MiB\ngrace: 0s", |root| {
        write_mib(&root.join("AAPL_1day"), "a.png", 10);
    });
    let t = start_top(&d, "main", "");
    let root = d.root.display().to_string();
    let first = t.wait_for("the root, its usage and its biggest group are drawn", |s| {
        s.contains(&root) && s.contains("usage 10.0%") && s.contains("AAPL_1day")
    });
    assert!(first.contains("q: quit"), "{first}");
    // Reported figures are shown; one that does not exist yet (no eviction under pressure,
    // so no effective retention) is a dash, not invented.
    assert!(first.contains("write 0 B/s"), "{first}");
    assert!(first.contains("retention —"), "{first}");
    assert_eq!(usage(&first).as_deref(), Some("10.0%"));

    // More charts: the view follows within a refresh or two.
    write_mib(&d.root.join("MSFT_1day"), "b.png", 20);
    t.wait_for("usage goes to 30 % and the new group shows", |s| {
        s.contains("usage 30.0%") && s.contains("MSFT_1day")
    });

    assert_eq!(exit_status(&t), None, "chartd top exited before q");
    t.cmd(&["send-keys", "-t", "top", "q"]);
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = exit_status(&t);
        status.is_some()
    });
    assert_eq!(
        status.as_deref(),
        Some("0"),
        "chartd top did not exit 0 on q:\n{}",
        t.capture()
    );
    // The alternate screen is gone: the pane shows the shell's normal screen again.
    assert!(!t.capture().contains("biggest groups"), "{}", t.capture());
}

/// Whether any SGR sequence sets a foreground or background colour (30-38, 40-48, 90-107;
/// 39/49, "default colour", are resets, not colour).
fn has_colour(screen: &str) -> bool {
    screen.split("\x1b[").skip(1).any(|seq| {
        let Some(end) = seq.find('m') else {
            return false;
        };
        seq[..end].split(';').any(|p| {
            matches!(
                p.parse::<u32>(),
                Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
            )
        })
    })
}

#[test]
fn top_honours_no_color() {
    if !have_tmux() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let d = Daemon::start("max_size: 100MiB", |root| {
        write_mib(&root.join("X_1day"), "a.png", 1);
    });
    let colored = start_top(&d, "colour", "");
    colored.wait_for("drawn", |s| s.contains("usage 1.0%"));
    let esc = |t: &Tmux| {
        String::from_utf8_lossy(&t.cmd(&["capture-pane", "-e", "-p", "-t", "top"]).stdout)
            .into_owned()
    };
    // Colour escapes (38;5;n / 3n foreground) appear without NO_COLOR ...
    let with = esc(&colored);
    assert!(
        has_colour(&with),
        "no colour at all without NO_COLOR:\n{with:?}"
    );
    drop(colored);
    // ... and none with it (bold is not colour).
    let plain = start_top(&d, "plain", "NO_COLOR=1");
    plain.wait_for("drawn", |s| s.contains("usage 1.0%"));
    let without = esc(&plain);
    assert!(!has_colour(&without), "colour with NO_COLOR:\n{without:?}");
}

/// SIGTERM (or the SSH session's SIGHUP) quits like `q`: exit 0, normal screen back.
#[test]
fn top_quits_cleanly_on_sigterm() {
    if !have_tmux() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let d = Daemon::start("max_size: 100MiB", |_| {});
    let t = start_top(&d, "term", "");
    t.wait_for("drawn", |s| s.contains("q: quit"));
    let out = t.cmd(&["display-message", "-p", "-t", "top", "#{pane_pid}"]);
    let sh: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // The pane runs `sh -c "chartd top ...; echo ..."`: chartd top is the shell's child.
    let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap();
    let top: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    assert!(std::fs::read_to_string(format!("/proc/{top}/cmdline"))
        .unwrap()
        .contains("top"));
    // SAFETY: kill(2) on the pid of the process this test started (via tmux and sh).
    assert_eq!(unsafe { libc::kill(top, libc::SIGTERM) }, 0);
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = exit_status(&t);
        status.is_some()
    });
    assert_eq!(status.as_deref(), Some("0"), "{}", t.capture());
    assert!(!t.capture().contains("q: quit"), "{}", t.capture());
}

#[test]
fn top_without_a_daemon_says_so_and_exits_3() {
    let (dir, _root) = workspace();
    let out = Command::new(BIN)
        .args(["top", "--socket"])
        .arg(dir.path().join("nothing.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the chartd daemon"));
}
