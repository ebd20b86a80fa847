//! `chartd top`: a live terminal view of the daemon, redrawn every second from `status` and
//! `groups --top` answers over the control socket (the client's own request path, `exchange` in `client/mod.rs`).
//!
//! Per root: a usage bar, the capacity rates when the daemon reports them (`—` when a field is
//! absent or null), sparklines of usage and write / eviction rates over the last hour from the
//! daemon's `history` (when present); below, the biggest groups. `q` (or Esc, Ctrl-C) quits.
//! Plain ratatui widgets over crossterm, so it works in any terminal and over SSH; no colour
//! when `NO_COLOR` is set. The terminal is restored on exit, on error and on panic.
//!
//! May touch: the control socket (read-only `status` and `groups` requests, through `exchange`),
//! the terminal (raw mode, alternate screen, stdin polled) and `NO_COLOR`; never a root.

use super::format::{bytes, count, hours};
use super::{exchange, resolve_socket, unreachable_message, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE};
use crate::cli::Target;
use crate::control::messages::{ClientRequest, SortKey};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, LineGauge, Paragraph, Row, Sparkline, Table};
use ratatui::{Frame, Terminal};
use serde_json::{Map, Value};
use std::io::{self, Stdout};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the view is refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// `status` answers from the snapshot: a slow one means trouble, show that instead of waiting.
const STATUS_WAIT: Duration = Duration::from_secs(2);
/// `groups` waits for the index owner; a busy owner must not freeze the view.
const GROUPS_WAIT: Duration = Duration::from_secs(1);
const TOP_GROUPS: u64 = 8;
/// How often a pending SIGTERM / SIGHUP is noticed while waiting for keys.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// What the last refresh got.
#[derive(Default)]
struct View {
    status: Option<Map<String, Value>>,
    groups: Vec<Map<String, Value>>,
    error: Option<String>,
}

pub fn run(target: &Target) -> i32 {
    let socket = match resolve_socket(target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chartd: {e}");
            return EXIT_USAGE;
        }
    };
    // Unreachable at start: say so on the normal screen, like `chartd status`.
    if let Err(e) = exchange(&socket.path, &ClientRequest::Status, STATUS_WAIT) {
        eprintln!("chartd: {}", unreachable_message(&socket, &e));
        return EXIT_UNREACHABLE;
    }
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut term = match Screen::enter() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chartd top: cannot set up the terminal: {e}");
            return EXIT_USAGE;
        }
    };
    let result = event_loop(&mut term.0, &socket.path, color);
    drop(term);
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("chartd top: {e}");
            EXIT_UNREACHABLE
        }
    }
}

/// Raw mode + alternate screen for as long as it lives; restored on drop and on panic.
struct Screen(Terminal<CrosstermBackend<Stdout>>);

impl Screen {
    fn enter() -> io::Result<Screen> {
        terminal::enable_raw_mode()?;
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            prev(info);
        }));
        let mut out = io::stdout();
        if let Err(e) = crossterm::execute!(out, EnterAlternateScreen) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(mut t) => {
                let _ = t.hide_cursor();
                Ok(Screen(t))
            }
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

fn event_loop(
    term: &mut Terminal<CrosstermBackend<Stdout>>,
    socket: &Path,
    color: bool,
) -> io::Result<()> {
    // SIGTERM / SIGHUP (the SSH session went away) end the loop like `q`, so the terminal is
    // restored rather than left in raw mode.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut view = View::default();
    loop {
        refresh(&mut view, socket);
        term.draw(|f| draw(f, &view, socket, color))?;
        let due = Instant::now() + REFRESH;
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match key(left.min(SIGNAL_CHECK))? {
                Key::Quit | Key::Gone => return Ok(()),
                Key::Nothing => {}
            }
        }
    }
}

/// What the keyboard said within a wait.
enum Key {
    Nothing,
    /// `q`, `Q`, Esc or Ctrl-C.
    Quit,
    /// The terminal hung up (an SSH session or a tmux server gone): end-of-file on stdin.
    Gone,
}

/// Waits up to `wait` for a key on stdin. Read here rather than through crossterm's event
/// reader, which retries a hung-up terminal's endless end-of-file in a loop of its own (and
/// so spun at full CPU after its terminal had gone); a resize needs no event, every redraw
/// fits the frame to the terminal's size.
fn key(wait: Duration) -> io::Result<Key> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdin = io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(Key::Nothing),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    if fds[0]
        .revents()
        .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
    {
        return Ok(Key::Gone);
    }
    let mut buf = [0u8; 64];
    let n = match rustix::io::read(&stdin, &mut buf) {
        Ok(n) => n,
        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => return Ok(Key::Nothing),
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        return Ok(Key::Gone);
    }
    let bytes = &buf[..n];
    // Esc alone (not the start of an arrow key's escape sequence), Ctrl-C (raw mode), q.
    let quit = bytes.iter().any(|&b| b == b'q' || b == b'Q' || b == 3) || bytes == [0x1b];
    Ok(if quit { Key::Quit } else { Key::Nothing })
}

fn ask(socket: &Path, req: &ClientRequest, wait: Duration) -> Result<Map<String, Value>, String> {
    let line = exchange(socket, req, wait).map_err(|e| e.to_string())?;
    match serde_json::from_str(&line) {
        Ok(Value::Object(m)) if m.get("ok") == Some(&Value::Bool(true)) => Ok(m),
        Ok(Value::Object(m)) => Err(m
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string()),
        _ => Err("not a chartd answer".to_string()),
    }
}

fn refresh(view: &mut View, socket: &Path) {
    match ask(socket, &ClientRequest::Status, STATUS_WAIT) {
        Ok(s) => {
            view.status = Some(s);
            view.error = None;
        }
        Err(e) => view.error = Some(format!("cannot reach chartd: {e}")),
    }
    // Groups are best effort: a busy owner keeps the previous list.
    let req = ClientRequest::Groups {
        root: None,
        top: Some(TOP_GROUPS),
        sort: SortKey::Bytes,
    };
    if let Ok(g) = ask(socket, &req, GROUPS_WAIT) {
        view.groups = g
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_object).cloned().collect())
            .unwrap_or_default();
    }
}

fn num(m: &Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k).and_then(Value::as_f64)
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".to_string())
}

fn paint(color: bool, c: Color) -> Style {
    if color {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

fn alert_color(alert: &str) -> Color {
    match alert {
        "critical" => Color::Red,
        "warning" => Color::Yellow,
        _ => Color::Green,
    }
}

const ROOT_HEIGHT: u16 = 7;

fn draw(f: &mut Frame, view: &View, socket: &Path, color: bool) {
    let empty = Map::new();
    let status = view.status.as_ref().unwrap_or(&empty);
    let roots: Vec<&Map<String, Value>> = status
        .get("roots")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let area = f.area();
    let groups_height = (view.groups.len() as u16 + 3).min(TOP_GROUPS as u16 + 3);
    let mut rows = vec![Constraint::Length(1)];
    rows.extend(roots.iter().map(|_| Constraint::Length(ROOT_HEIGHT)));
    rows.push(Constraint::Length(groups_height));
    rows.push(Constraint::Min(0));
    let chunks = Layout::vertical(rows).split(area);

    let uptime = num(status, "uptime_seconds").unwrap_or(0.0) as u64;
    let mut head = vec![Span::styled(
        format!(
            "chartd {}  up {}h{:02}m  {} files  {}  ",
            text(status, "version"),
            uptime / 3600,
            uptime % 3600 / 60,
            count(num(status, "total_files").unwrap_or(0.0) as u64),
            bytes(num(status, "total_bytes").unwrap_or(0.0)),
        ),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    match &view.error {
        Some(e) => head.push(Span::styled(e.clone(), paint(color, Color::Red))),
        None => head.push(Span::raw(format!("{}  q: quit", socket.display()))),
    }
    f.render_widget(Paragraph::new(Line::from(head)), chunks[0]);

    for (i, r) in roots.iter().enumerate() {
        draw_root(f, chunks[1 + i], r, color);
    }
    draw_groups(f, chunks[1 + roots.len()], &view.groups);
}

fn draw_root(f: &mut Frame, area: Rect, r: &Map<String, Value>, color: bool) {
    let alert = text(r, "alert");
    let mut title = format!(" {} ", text(r, "path"));
    if r.get("degraded").and_then(Value::as_bool) == Some(true) {
        title.push_str("DEGRADED ");
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .title(Line::from(format!(" {alert} ")).right_aligned())
        .border_style(paint(color, alert_color(alert)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let lines = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .split(inner);

    // Usage: of max_size, else of the space the free-space floor leaves, else just the size.
    let total = num(r, "total_bytes").unwrap_or(0.0);
    let (pct, of) = match (num(r, "usage_percent"), num(r, "floor_usage_percent")) {
        (Some(p), _) => (
            Some(p),
            format!(
                "of {}",
                bytes(num(r, "max_size_mb").unwrap_or(0.0) * 1048576.0)
            ),
        ),
        (None, Some(p)) => (Some(p), "of the space above the floor".to_string()),
        _ => (None, "no size limit".to_string()),
    };
    let label = format!(
        "usage {} {of}  {}  {} files",
        pct.map_or_else(|| "—".to_string(), |p| format!("{p:.1}%")),
        bytes(total),
        count(num(r, "total_files").unwrap_or(0.0) as u64),
    );
    let gauge = LineGauge::default()
        .ratio((pct.unwrap_or(0.0) / 100.0).clamp(0.0, 1.0))
        .label(label)
        .filled_style(paint(color, alert_color(alert)));
    f.render_widget(gauge, lines[0]);

    let rate = |k: &str| dash(num(r, k).map(|v| format!("{}/s", bytes(v))));
    let rates = format!(
        "write {}  evict {}  retention {}  full in {}  premature {}",
        rate("write_bytes_per_second"),
        rate("evicted_bytes_per_second"),
        dash(num(r, "effective_retention_hours").map(hours)),
        dash(num(r, "time_to_full_hours").map(hours)),
        dash(num(r, "premature_evictions").map(|n| count(n as u64))),
    );
    f.render_widget(Paragraph::new(rates), lines[1]);

    let history = r.get("history").and_then(Value::as_object);
    for (i, (name, key)) in [
        ("usage", "usage_bytes"),
        ("write", "written_bytes"),
        ("evict", "evicted_bytes"),
    ]
    .iter()
    .enumerate()
    {
        let cols =
            Layout::horizontal([Constraint::Length(8), Constraint::Min(1)]).split(lines[2 + i]);
        f.render_widget(Paragraph::new(format!("{name:<6}")), cols[0]);
        let data: Option<Vec<u64>> = history
            .and_then(|h| h.get(*key))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect());
        match data {
            Some(d) => {
                // The newest minutes at the right edge, as many as fit.
                let fit = cols[1].width as usize;
                let shown = &d[d.len().saturating_sub(fit)..];
                f.render_widget(
                    Sparkline::default()
                        .data(shown)
                        .style(paint(color, Color::Cyan)),
                    cols[1],
                );
            }
            None => f.render_widget(Paragraph::new("— (1 h history not reported)"), cols[1]),
        }
    }
}

fn draw_groups(f: &mut Frame, area: Rect, groups: &[Map<String, Value>]) {
    let rows = groups.iter().map(|g| {
        Row::new(vec![
            text(g, "name").to_string(),
            count(num(g, "files").unwrap_or(0.0) as u64),
            bytes(num(g, "bytes").unwrap_or(0.0)),
            dash(num(g, "oldest_file_age_hours").map(hours)),
            text(g, "root").to_string(),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(16),
            Constraint::Length(10),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["GROUP", "FILES", "SIZE", "OLDEST", "ROOT"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(" biggest groups "),
    );
    f.render_widget(table, area);
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use ratatui::backend::TestBackend;
    use serde_json::json;

    pub(super) fn screen(view: &View) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
        t.draw(|f| draw(f, view, Path::new("/run/x.sock"), false))
            .unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    pub(super) fn view(root: Value) -> View {
        let status = json!({"ok": true, "version": "0.1.0", "uptime_seconds": 3725,
            "total_files": 3, "total_bytes": 3072, "roots": [root]});
        View {
            status: status.as_object().cloned(),
            groups: vec![json!({"name": "AAPL_1day", "files": 3, "bytes": 3072,
                "oldest_file_age_hours": 2.5, "root": "/srv/a"})
            .as_object()
            .cloned()
            .unwrap()],
            error: None,
        }
    }

    pub(super) fn screen_of(root: Value) -> String {
        screen(&view(root))
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{screen, view};
    use serde_json::json;

    #[test]
    fn rates_and_sparklines_when_reported() {
        let ramp: Vec<u64> = (0..60).collect();
        let s = screen(&view(
            json!({"path": "/srv/a", "total_files": 3, "total_bytes": 3072,
            "usage_percent": 42.0, "max_size_mb": 1.0, "alert": "ok",
            "write_bytes_per_second": 2048.0, "evicted_bytes_per_second": 0.0,
            "effective_retention_hours": 2.5, "time_to_full_hours": null,
            "premature_evictions": 7,
            "history": {"usage_bytes": ramp, "written_bytes": ramp, "evicted_bytes": ramp}}),
        ));
        assert!(s.contains("usage 42.0% of 1.0 MiB"), "{s}");
        assert!(
            s.contains("write 2.0 KiB/s  evict 0 B/s  retention 2.5h  full in —  premature 7"),
            "{s}"
        );
        assert!(s.contains('█'), "no sparkline drawn:\n{s}");
        assert!(!s.contains("history not reported"), "{s}");
        assert!(s.contains("AAPL_1day"), "{s}");
        assert!(s.contains("up 1h02m"), "{s}");
    }

    #[test]
    fn absent_fields_are_dashes() {
        let s = screen(&view(
            json!({"path": "/srv/a", "total_files": 3, "total_bytes": 3072,
            "usage_percent": null, "floor_usage_percent": null, "alert": "ok"}),
        ));
        assert!(s.contains("usage — no size limit"), "{s}");
        assert!(
            s.contains("write —  evict —  retention —  full in —  premature —"),
            "{s}"
        );
        assert_eq!(s.matches("history not reported").count(), 3, "{s}");
    }

    #[test]
    fn unreachable_daemon_is_shown_not_fatal() {
        let mut v = view(json!({"path": "/srv/a"}));
        v.error = Some("cannot reach chartd: connection refused".into());
        let s = screen(&v);
        assert!(s.contains("cannot reach chartd: connection refused"), "{s}");
    }
}

/// The daemon's side of the contract: a root of the `status` reply the server builds
/// (`control::report`, serialized as the wire carries it) is what this view reads.
#[cfg(test)]
mod contract {
    use super::tests_support::screen_of;
    use crate::capacity::{CapacityTracker, Room};
    use crate::control::report::tests::{root, snapshot, status_json};
    use std::time::{Duration, SystemTime};

    #[test]
    fn capacity_status_fields_are_drawn() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_040);
        let now = t0 + Duration::from_secs(600);
        let mut t = CapacityTracker::new(t0);
        for s in 0..600 {
            t.on_write(1024, t0 + Duration::from_secs(s));
        }
        let mut r = root("/srv/a");
        r.capacity = t.figures(now, &Room::new(0, Some(1024 * 3600), 0, 0, None));
        let reply = status_json(&snapshot(vec![r]), now);
        let s = screen_of(reply["roots"][0].clone());
        assert!(s.contains("write 1.0 KiB/s"), "{s}");
        assert!(s.contains("full in 1.0h"), "{s}");
        assert!(s.contains("premature 0"), "{s}");
        assert!(!s.contains("history not reported"), "{s}");
    }
}
