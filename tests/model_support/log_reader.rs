//! The model test's reader of chartd's log: the `deleted PATH (` lines, by path, with their
//! timestamps and when chartd last saw the directory beneath the root.
//!
//! May touch: chartd's log file (read only, from where it left off).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

/// A log reader: `deleted PATH (` lines, by path, with their timestamps (unix ns).
pub(super) struct LogIndex {
    pub(super) offset: u64,
    pub(super) by_path: HashMap<String, Vec<i128>>,
    /// Per deleted path, when chartd last saw its directory beneath the root before the
    /// unlink (`beneath_at_ns` of the log line), in the order of `by_path`.
    pub(super) beneath: HashMap<String, Vec<Option<i128>>>,
    pub(super) count: u64,
}

impl LogIndex {
    pub(super) fn update(&mut self, log: &Path) {
        let Ok(mut f) = fs::File::open(log) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut r = BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !line.ends_with('\n') {
                        break; // half a line: read it next time
                    }
                    self.offset += n as u64;
                    if let Some(i) = line.find(" deleted ") {
                        let rest = &line[i + 9..];
                        if let Some(end) = rest.find(" (") {
                            let ts = parse_ts(line.split_whitespace().next().unwrap_or(""));
                            let beneath = line.find("beneath_at_ns=").and_then(|j| {
                                line[j + 14..]
                                    .split(|c: char| !c.is_ascii_digit())
                                    .next()
                                    .and_then(|d| d.parse::<i128>().ok())
                            });
                            self.count += 1;
                            self.by_path
                                .entry(rest[..end].to_string())
                                .or_default()
                                .push(ts.unwrap_or(0));
                            self.beneath
                                .entry(rest[..end].to_string())
                                .or_default()
                                .push(beneath);
                        }
                    }
                }
            }
        }
    }
}

/// `2026-12-01T21:13:01.211494Z` -> unix ns.
fn parse_ts(s: &str) -> Option<i128> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    let ns: i64 = frac.parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) as i128) * 1_000_000_000 + ns as i128)
}
