//! `chartd generate-assets --out DIR`: the man page and the shell completions, generated from
//! the same clap definition the binary parses (packaging/build.sh runs it at package build
//! time).

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

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        generate_to(shell, &mut cmd, "chartd", out)?;
    }
    Ok(())
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
    s.push_str(
        r#".SH "EXIT STATUS"
For the client commands (status, groups, list, cleanup, purge, reload, metrics):
.TP
\fB0\fR
success
.TP
\fB1\fR
the daemon answered with an error
.TP
\fB2\fR
usage error
.TP
\fB3\fR
the daemon is not reachable (not running, wrong \fB\-\-socket\fR, or no permission to connect)
.PP
\fBchartd check\-config\fR exits 0 for a valid file, 1 for an invalid one.
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
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fBtmpfiles.d\fR(5),
\fBsetfacl\fR(1)
"#,
    );
    s
}
