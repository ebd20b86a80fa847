//! `chartd generate-assets --out DIR`: the man page and the shell completions, generated from
//! the same clap definition the binary parses (packaging/build.sh runs it at package build
//! time).
//!
//! May touch: the `cli` definition (read) and the files it writes into the `--out` directory it is
//! given; nothing of the daemon.

use crate::cli::Cli;
use clap::{Arg, Command, CommandFactory};
use clap_complete::{generate_to, Shell};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// Writes `chartd.1`, `chartd.bash`, `_chartd` (zsh) and `chartd.fish` into `out` (created if
/// missing).
pub fn generate(out: &Path) -> std::io::Result<()> {
    fs::create_dir_all(out)?;
    let mut cmd = Cli::command();
    cmd.build();

    // clap_mangen's own SUBCOMMANDS section points at chartd-SUBCOMMAND(1) pages; chartd(1)
    // is one page instead, with a COMMANDS section describing every subcommand's options.
    let man = clap_mangen::Man::new(cmd.clone()).manual("chartd manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    page.extend_from_slice(extra_sections(&cmd).as_bytes());
    man.render_version_section(&mut page)?;
    fs::write(out.join("chartd.1"), page)?;

    // Completions offer what an operator types: not the hidden packaging subcommand.
    let mut visible = completion_command(&cmd);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        generate_to(shell, &mut visible, "chartd", out)?;
    }
    Ok(())
}

/// The command tree without hidden subcommands (clap_complete completes those too).
fn completion_command(full: &Command) -> Command {
    let mut c = Command::new("chartd")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .subcommands(
            full.get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
                .cloned(),
        );
    if let Some(about) = full.get_about() {
        c = c.about(about.clone());
    }
    c.build();
    c
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would start a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn arg_label(arg: &Arg) -> String {
    let value = || {
        arg.get_value_names()
            .and_then(|v| v.first().map(|s| s.to_string()))
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
    };
    if arg.is_positional() {
        return format!("\\fI{}\\fR", value());
    }
    let mut names = Vec::new();
    if let Some(s) = arg.get_short() {
        names.push(format!("\\fB\\-{s}\\fR"));
    }
    if let Some(l) = arg.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
    }
    let mut label = names.join(", ");
    if arg.get_action().takes_values() {
        let _ = write!(label, " \\fI{}\\fR", value());
    }
    label
}

/// COMMANDS (every subcommand and its options), then the sections a packaged daemon's page needs (files, exit
/// status, signals, see also), appended after what clap_mangen renders.
fn extra_sections(cmd: &Command) -> String {
    let mut s = String::from(".SH COMMANDS\n");
    let subs = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help");
    for sub in subs {
        let _ = writeln!(s, ".SS \"chartd {}\"", sub.get_name());
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            let _ = writeln!(s, "{}", roff(&about.to_string()));
        }
        let args = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"));
        for arg in args {
            let _ = writeln!(s, ".TP\n{}", arg_label(arg));
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let _ = writeln!(s, "{}", roff(&help));
        }
    }
    s.push_str(MAN_REFERENCE);
    s
}

/// The hand-written part of chartd(1): configuration reference, variables, alerts, exit
/// status, signals, files, examples. Kept next to the generator so `cargo test` can check it
/// names every configuration key (see the tests below).
const MAN_REFERENCE: &str = r#".SH CONFIGURATION
\fBchartd run\fR reads \fB\-\-config\fR \fIFILE\fR; without it \fI/etc/chartd/chartd.yaml\fR if that
file exists, else the built\-in defaults: one root \fI./output/charts\fR (created if missing), the
development preset, images only. Unknown keys are refused. Sizes: a plain number is bytes,
\fBK M G T\fR (or \fBKB MB\fR...) are powers of 1000, \fBKiB MiB GiB TiB\fR powers of 1024.
Durations: \fB60s\fR, \fB15m\fR, \fB6h\fR; a bare number is seconds. Percentages: \fB90%\fR.
.TP
\fBenvironment\fR
\fBdevelopment\fR (24h, 1000 MiB, resync 60m), \fBstaging\fR (12h, 500 MiB, 30m) or \fBproduction\fR
(6h, 200 MiB, 15m): a preset for max_age, max_size and resync_interval where the file sets none.
.TP
\fBcleanup_enabled\fR
\fBfalse\fR: observe only, never delete (default true).
.TP
\fBresync_interval\fR
safety\-net check of the index against the disk (default: preset, else 60m).
.TP
\fBsocket\fR
control socket (default \fI/run/chartd/chartd.sock\fR; when not root and /run/chartd is not
writable: \fI$XDG_RUNTIME_DIR/chartd/chartd.sock\fR, else \fI/tmp/chartd\-UID/chartd.sock\fR).
.TP
\fBlog.level\fR, \fBlog.format\fR
\fBerror\fR...\fBtrace\fR (default info); \fBauto\fR (journald under systemd), \fBtext\fR, \fBjournald\fR.
.TP
\fBcontrol.group\fR, \fBcontrol.admin_uids\fR, \fBcontrol.admin_group\fR
who may connect (group of the 0660 socket) and who may run cleanup, purge and reload (besides
root and chartd's own uid).
.TP
\fBcontrol.max_connections\fR, \fBcontrol.idle_timeout\fR
concurrent clients (default 1024) and idle time before a connection is closed (default 60s).
.TP
\fBalerts.warning\fR, \fBalerts.critical\fR
how close free space may come to the floor, while chartd has almost nothing left to delete,
before free_space_near_floor is a warning / critical (default 80% / 95%).
.TP
\fBmetrics.listen\fR
IP:PORT of the HTTP scrape endpoint GET /metrics (off by default). Under systemd enable
chartd-metrics.socket instead; a socket systemd passes in wins over this key. Read at start.
.TP
\fBroots[].path\fR
the governed directory (relative paths against the working directory). One chartd per tree:
a second daemon on the same directory is refused.
.TP
\fBroots[].create\fR
create the root when it is missing at start (default false).
.TP
\fBroots[].max_age\fR, \fBroots[].max_size\fR
delete files older than this; keep the managed total under this (0 = no limit).
.TP
\fBroots[].low_watermark\fR
once max_size is crossed, evict down to this share of it (default 90%).
.TP
\fBroots[].min_free\fR
keep this much of the filesystem free (\fB5%\fR or a size).
.TP
\fBroots[].grace\fR
never delete a file modified less than this long ago (default 10s). The effective size bound is
max_size plus what writers add within grace.
.TP
\fBroots[].include\fR, \fBroots[].exclude\fR, \fBroots[].protect\fR
globs: managed files (default images: *.png *.jpg *.jpeg *.svg *.webp *.gif), never managed
(default *.tmp *.part .*), managed but never deleted.
.TP
\fBroots[].prune_empty_dirs\fR
remove directories eviction emptied, never the root (default true).
.TP
\fBroots[].max_files\fR
at most this many managed files; once crossed, evict down to low_watermark of it (0 = none).
.TP
\fBroots[].min_free_inodes\fR
keep this many inodes of the filesystem free (\fB5%\fR or a count), restored like min_free.
.TP
\fBroots[].keep_newest\fR
per group (the first directory under the root), its N newest managed files are never evicted
by age and go last under pressure (default 0).
.TP
\fBroots[].group_max_size\fR, \fBroots[].group_max_files\fR
per-group quotas (0 = none): a group over one loses its own oldest files, down to low_watermark
of the quota; other groups are untouched.
.TP
\fBroots[].rules\fR
per-group rules, first match wins: \fBmatch\fR (a glob on the group name) and any of
\fBmax_age\fR (0 = no age limit), \fBgrace\fR, \fBkeep_newest\fR, \fBgroup_max_size\fR,
\fBgroup_max_files\fR, \fBprotect\fR. Under pressure files go soonest expiry first, files
without an age limit after them, kept files last. \fBchartd check-config\fR lists the rule each
existing group follows; SIGHUP applies new rules without a re-crawl.
.SH ENVIRONMENT
The variables of the system chartd replaces override the file and apply to the first root:
.TP
\fBCHART_OUTPUT_DIR\fR
roots[0].path
.TP
\fBSTORAGE_CHARTS_PATH\fR
roots[0].path too (the storage configuration's name); \fBCHART_OUTPUT_DIR\fR wins when both are
set
.TP
\fBCHART_MAX_AGE_HOURS\fR
roots[0].max_age, in hours
.TP
\fBCHART_MAX_SIZE_MB\fR
roots[0].max_size, in MiB (1,048,576 bytes; \fBMB\fR in the file is 1,000,000)
.TP
\fBCHART_GRACE_SECONDS\fR
roots[0].grace, in seconds
.TP
\fBCHART_CLEANUP_INTERVAL_MINUTES\fR
resync_interval, in minutes
.TP
\fBCHART_ENABLE_CLEANUP\fR
cleanup_enabled (true/false, 1/0, yes/no, on/off)
.TP
\fBENVIRONMENT\fR
the preset; an unknown value (it belongs to the application too) is a warning and selects
development. The variable overrides \fBenvironment:\fR in the file, whatever its value: to
let the file choose, run chartd without it (systemd: \fBUnsetEnvironment=ENVIRONMENT\fR)
.TP
\fBNO_COLOR\fR
no colour in the client's tables
.SH ALERTS
\fBalert\fR is \fBok\fR while chartd holds a root at its limits, even at 100% of max_size.
\fBwarning\fR or \fBcritical\fR means a human must act: the root is missing (root_missing,
critical), free space stays below min_free beyond grace (floor_not_holding, critical), the
size stays over max_size beyond grace (limit_not_holding; critical after 5 more minutes), free
space nears the floor with little left to delete (free_space_near_floor), size pressure evicts
files younger than half of max_age (retention_short), deletions fail (deletions_failing), or
directories are not watched (degraded).
.SH "EXIT STATUS"
For the client commands (status, groups, list, cleanup, purge, reload, metrics):
.TP
\fB0\fR
success
.TP
\fB1\fR
the daemon answered with an error; with \fBstatus \-\-check\fR: a root is at warning
.TP
\fB2\fR
usage error; with \fBstatus \-\-check\fR: a root is critical
.TP
\fB3\fR
the daemon is not reachable (not running, wrong \fB\-\-socket\fR, or no permission to connect)
.PP
\fBchartd check\-config\fR exits 0 for a valid file (warnings go to stderr), 1 for an invalid one.
\fBchartd run\fR exits 1 when the config is invalid or another chartd governs one of its roots.
.SH SIGNALS
\fBchartd run\fR reloads its configuration on \fBSIGHUP\fR (\fBsystemctl reload chartd\fR); an
invalid new file is logged and the previous configuration stays in force.
\fBSIGTERM\fR stops it.
.SH FILES
.TP
\fI/etc/chartd/chartd.yaml\fR
configuration of the packaged service
.TP
\fI/run/chartd/chartd.sock\fR
control socket (mode 0660, group \fBchartd\fR): members of group \fBchartd\fR may query it
.TP
\fI/var/lib/chartd/charts\fR
the default root: setgid group \fBchartd\fR with default ACLs, so that files written by any
member of group \fBchartd\fR stay removable by the daemon
.TP
\fI/usr/lib/systemd/system/chartd.service\fR
the systemd unit; roots outside the default need \fBReadWritePaths=\fR in a drop\-in
(\fBsystemctl edit chartd\fR)
.TP
\fI/usr/lib/sysctl.d/60\-chartd.conf\fR
raises \fBfs.inotify.max_user_watches\fR (one watch per watched directory)
.SH EXAMPLES
.nf
chartd status                          # figures per root
chartd status \-\-check || echo "a root needs attention"
chartd status \-\-json | jq '.roots[] | {path, alert, alert_reasons}'
chartd groups \-\-top 10 \-\-sort bytes
chartd list AAPL_1d
sudo chartd purge AAPL_1d \-\-dry\-run
sudo chartd purge 'RELIANCE_*' \-\-include\-young   # every group of a symbol, fresh charts too
sudo chartd purge \-\-all \-\-yes \-\-root /var/lib/chartd/charts
sudo chartd check\-config \-\-explain
chartd run \-\-config dev.yaml \-\-socket ./chartd.sock   # from a checkout
.fi
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fBtmpfiles.d\fR(5),
\fBsetfacl\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The man page is a reference: every key of the example config and every variable is
    /// in it, and the completions do not offer the hidden packaging subcommand.
    #[test]
    fn the_man_page_covers_every_key_and_the_completions_hide_generate_assets() {
        let example = include_str!("../chartd.example.yaml");
        for line in example.lines() {
            let t = line.trim_start().trim_start_matches("- ");
            if t.starts_with('#') || !t.contains(':') {
                continue;
            }
            let key = t.split(':').next().unwrap_or_default().trim();
            if key.is_empty() || key.contains(' ') {
                continue;
            }
            assert!(
                MAN_REFERENCE.contains(&format!("\\fB{key}\\fR"))
                    || MAN_REFERENCE.contains(&format!(".{key}\\fR"))
                    || MAN_REFERENCE.contains(&format!("\\fB{key}."))
                    || MAN_REFERENCE.contains(&format!("\\fB{key}[].")),
                "chartd(1) does not describe {key:?}"
            );
        }
        for var in [
            "CHART_OUTPUT_DIR",
            "STORAGE_CHARTS_PATH",
            "CHART_MAX_AGE_HOURS",
            "CHART_MAX_SIZE_MB",
            "CHART_GRACE_SECONDS",
            "CHART_CLEANUP_INTERVAL_MINUTES",
            "CHART_ENABLE_CLEANUP",
            "ENVIRONMENT",
        ] {
            assert!(MAN_REFERENCE.contains(var), "{var}");
        }
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        for f in ["chartd.bash", "_chartd", "chartd.fish"] {
            let text = fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(!text.contains("generate-assets"), "{f}");
            assert!(!text.contains("generate__assets"), "{f}");
            assert!(text.contains("status"), "{f}");
        }
        // A number is not completed with file names (`groups --top N`).
        let bash = fs::read_to_string(dir.path().join("chartd.bash")).unwrap();
        let top = bash
            .find("--top)")
            .expect("groups --top in the bash completion");
        let case = &bash[top..top + bash[top..].find(";;").unwrap_or(0)];
        assert!(!case.contains("compgen -f"), "{case}");
        let page = fs::read_to_string(dir.path().join("chartd.1")).unwrap();
        for section in [
            ".SH COMMANDS",
            ".SH CONFIGURATION",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
            ".SH \"EXIT STATUS\"",
        ] {
            assert!(page.contains(section), "{section}");
        }
        assert!(page.contains("\\-\\-check"), "status --check is documented");
    }

    /// Issue #14, item 12: the .deb synopsis (the description's first line) is whole, and the
    /// .rpm honours presets the way %systemd_post / %systemd_preun do.
    #[test]
    fn package_metadata() {
        let synopsis = env!("CARGO_PKG_DESCRIPTION");
        assert!(
            synopsis.len() < 80 && !synopsis.ends_with('.'),
            "{synopsis}"
        );
        assert!(!synopsis.contains('\n'));
        let post = include_str!("../packaging/rpm/post_install.sh");
        assert!(post.contains("systemctl --no-reload preset chartd.service"));
        assert!(!post.contains("enable --now chartd.service"), "{post}");
        let preun = include_str!("../packaging/rpm/pre_uninstall.sh");
        assert!(preun.contains("disable --now chartd.service"));
    }
}
