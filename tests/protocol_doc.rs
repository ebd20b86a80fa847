//! The README's protocol table ("### Protocol") against the typed messages of
//! `src/control/messages.rs`: every field a reply type serializes is listed in its row, and
//! every field a row lists is one the type serializes. A renamed or added field fails here
//! until the README says so.
//!
//! Also the README's source map against `src/`, and every `NAME.rs` the docs and comments
//! mention against the files that exist (a module turned into a directory fails here until
//! the references follow it), and every module's opening comment against issue 12's rule: it
//! says what the module may touch.
//!
//! May touch: nothing; it only reads the repository's files.

use chartd::control::messages::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// A field tree: name → sub-fields (empty for a leaf).
#[derive(Debug, Default, PartialEq)]
struct Tree(BTreeMap<String, Tree>);

/// Fields the README lists as one name although they are JSON objects keyed by data (not by
/// schema): `removed_by_reason` is keyed by the deletion reasons, listed under the table.
const MAPS: [&str; 1] = ["removed_by_reason"];

fn tree_of(v: &Value) -> Tree {
    let mut t = Tree::default();
    if let Value::Object(m) = v {
        for (k, v) in m {
            let sub = match v {
                Value::Object(_) if !MAPS.contains(&k.as_str()) => tree_of(v),
                Value::Array(a) => a.first().map(tree_of).unwrap_or_default(),
                _ => Tree::default(),
            };
            t.0.insert(k.clone(), sub);
        }
    }
    t
}

/// Parses `a, b: [{c, d}], e: {f}` (the backticked parts of a row, joined).
fn parse(s: &str) -> Tree {
    fn list(chars: &[char], i: &mut usize) -> Tree {
        let mut t = Tree::default();
        loop {
            while *i < chars.len() && (chars[*i] == ',' || chars[*i].is_whitespace()) {
                *i += 1;
            }
            if *i >= chars.len() || chars[*i] == '}' || chars[*i] == ']' {
                return t;
            }
            let start = *i;
            while *i < chars.len() && (chars[*i].is_ascii_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            let name: String = chars[start..*i].iter().collect();
            assert!(!name.is_empty(), "unparsable near {:?}", &chars[start..]);
            let mut sub = Tree::default();
            if *i < chars.len() && chars[*i] == ':' {
                *i += 1;
                while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '[') {
                    *i += 1;
                }
                if *i < chars.len() && chars[*i] == '{' {
                    *i += 1;
                    sub = list(chars, i);
                    // Exactly this group's `}` (and the `]` of a list of objects).
                    if *i < chars.len() && chars[*i] == '}' {
                        *i += 1;
                    }
                    if *i < chars.len() && chars[*i] == ']' {
                        *i += 1;
                    }
                }
            }
            t.0.insert(name, sub);
        }
    }
    let chars: Vec<char> = s.chars().collect();
    list(&chars, &mut 0)
}

/// The rows of the README's protocol table: cmd → the fields its answer column lists.
fn readme_rows() -> BTreeMap<String, Tree> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let at = readme
        .find("### Protocol")
        .expect("README has ### Protocol");
    let mut rows = BTreeMap::new();
    for line in readme[at..]
        .lines()
        .skip_while(|l| !l.starts_with("| request"))
    {
        if !line.starts_with('|') {
            break;
        }
        let cols: Vec<&str> = line.split(" | ").collect();
        if cols.len() < 2 || !cols[0].contains("\"cmd\"") {
            continue;
        }
        let cmd = cols[0]
            .split("\"cmd\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a cmd in the request column")
            .to_string();
        // The backticked parts only; prose between them ("dry run:", "first 1000") is not a field.
        let code: Vec<&str> = cols[1].split('`').skip(1).step_by(2).collect();
        rows.insert(cmd, parse(&code.join(", ")));
    }
    rows
}

fn sample_status() -> StatusReply {
    let blocked = BlockedStatus {
        limit: "max_size".into(),
        excess_bytes: 1,
        excess_files: 0,
        cause: "grace".into(),
        since: "2026-01-01T00:00:00Z".into(),
        blocked_seconds: 1.0,
        next_eligible: Some("2026-01-01T00:01:00Z".into()),
        next_eligible_in_seconds: Some(1.0),
        grace_files: 1,
        grace_bytes: 1,
    };
    let root = RootStatus {
        path: "/r".into(),
        total_files: 1,
        total_bytes: 1,
        total_size_mb: 1.0,
        oldest_file_age_hours: Some(1.0),
        newest_file_age_hours: Some(1.0),
        average_file_age_hours: Some(1.0),
        max_age_hours: Some(1.0),
        max_size_mb: Some(1.0),
        usage_percent: Some(1.0),
        floor_usage_percent: Some(1.0),
        alert: AlertLevel::Ok,
        alert_reasons: vec!["degraded".into()],
        fs_free_bytes: 1,
        fs_total_bytes: 1,
        min_free_bytes: Some(1),
        max_files: Some(1),
        min_free_inodes: Some(1),
        fs_free_inodes: 1,
        fs_total_inodes: 1,
        unmanaged_files: 1,
        files_removed: 1,
        removed_by_reason: [("age".to_string(), 1)].into_iter().collect(),
        bytes_freed: 1,
        errors: 1,
        last_eviction: Some("2026-01-01T00:00:00Z".into()),
        cleanup_enabled: true,
        watches: 1,
        index_bytes: 1,
        overflows: 1,
        resyncs: 1,
        degraded: true,
        degraded_reason: Some("x".into()),
        ready: true,
        holding: HoldingStatus {
            blocked: Some(blocked),
            ..HoldingStatus::default()
        },
        kernel_watches: Some(1),
        watch_repairs: 0,
        effective_retention_hours: Some(1.0),
        write_bytes_per_second: 1.0,
        evicted_bytes_per_second: 1.0,
        time_to_full_hours: Some(1.0),
        premature_evictions: 0,
        history: CapacityHistory {
            minutes: 60,
            usage_bytes: vec![1],
            written_bytes: vec![1],
            evicted_bytes: vec![1],
        },
    };
    StatusReply {
        version: "0".into(),
        uptime_seconds: 1,
        total_files: 1,
        total_bytes: 1,
        warning_percent: 80.0,
        critical_percent: 95.0,
        snapshot_age_seconds: 0.0,
        stale: false,
        roots: vec![root],
    }
}

/// A `cleanup` reply (`None`) or a `purge` reply (`Some`: its own fields are present).
fn deletion(purge: Option<u64>) -> DeletionReply {
    DeletionReply {
        files_removed: Some(1),
        bytes_freed: Some(1),
        would_remove: Some(1),
        would_free_bytes: Some(1),
        skipped: 1,
        files: vec![RemovedFile {
            path: "/r/a.png".into(),
            bytes: 1,
            age_hours: 1.0,
            reason: "age".into(),
        }],
        dry_run: true,
        skipped_in_grace: purge,
        groups_matched: purge,
    }
}

/// Every field of every type, as the wire carries it.
fn types() -> BTreeMap<String, Tree> {
    let v = |x: Value| tree_of(&x);
    let j = |x: &dyn erased::Ser| x.value();
    BTreeMap::from([
        ("status".to_string(), v(j(&sample_status()))),
        (
            "groups".to_string(),
            v(j(&GroupsReply {
                groups: vec![GroupRow {
                    name: "g".into(),
                    root: "/r".into(),
                    files: 1,
                    bytes: 1,
                    oldest_file_age_hours: Some(1.0),
                    newest_file_age_hours: Some(1.0),
                    rule: None,
                    max_age_hours: None,
                    quota_bytes: None,
                    quota_files: None,
                    quota_percent: None,
                }],
                total_groups: 1,
            })),
        ),
        (
            "list".to_string(),
            v(j(&ListReply {
                root: "/r".into(),
                group: "g".into(),
                files: vec![ListedFile {
                    path: "p".into(),
                    bytes: 1,
                    mtime: "t".into(),
                    mtime_unix: 1.0,
                    age_hours: 1.0,
                    protected: false,
                }],
            })),
        ),
        ("cleanup".to_string(), v(j(&deletion(None)))),
        ("purge".to_string(), v(j(&deletion(Some(1))))),
        (
            "reload".to_string(),
            v(j(&ReloadReply {
                reloaded: true,
                message: "m".into(),
            })),
        ),
        (
            "metrics".to_string(),
            v(j(&MetricsReply { text: "t".into() })),
        ),
    ])
}

mod erased {
    /// Serialize behind a trait object, so `types()` can list different reply types.
    pub trait Ser {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

fn diff(path: &str, doc: &Tree, ty: &Tree, out: &mut Vec<String>) {
    for (k, sub) in &ty.0 {
        match doc.0.get(k) {
            None => out.push(format!("{path}{k}: sent by the daemon, not in the README")),
            Some(d) => diff(&format!("{path}{k}."), d, sub, out),
        }
    }
    for k in doc.0.keys() {
        if !ty.0.contains_key(k) {
            out.push(format!("{path}{k}: in the README, not sent by the daemon"));
        }
    }
}

#[test]
fn the_readme_protocol_table_matches_the_types() {
    let doc = readme_rows();
    let types = types();
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        types.keys().collect::<Vec<_>>(),
        "one README row per command"
    );
    let mut problems = Vec::new();
    for (cmd, ty) in &types {
        diff(&format!("{cmd}: "), &doc[cmd], ty, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "README ### Protocol disagrees with src/control/messages.rs:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_parser_reads_nested_lists() {
    let t = parse("a, b: [{c, d: {e}}], f");
    assert_eq!(t.0.len(), 3);
    assert_eq!(t.0["b"].0.len(), 2);
    assert_eq!(t.0["b"].0["d"].0.len(), 1);
    // A changed table is caught: the parser is not lenient about what it compares.
    let mut problems = Vec::new();
    diff("", &parse("a, x"), &parse("a, b"), &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

fn manifest_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file below `dir` (relative to the manifest dir), skipping `target`.
fn files_below(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if p.is_dir() {
            files_below(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_readme_source_map_names_every_module() {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let at = readme
        .find("## Development")
        .expect("a Development section");
    let start = readme[at..].find("```\nsrc/\n").expect("the source map") + at;
    let end = start + 4 + readme[start + 4..].find("```").unwrap();
    let map = &readme[start..end];
    let mut missing = Vec::new();
    for e in std::fs::read_dir(manifest_dir().join("src"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let shown = if e.path().is_dir() {
            format!("{name}/")
        } else if name.ends_with("_tests.rs") || !name.ends_with(".rs") {
            continue;
        } else {
            name
        };
        if !map.contains(&shown) {
            missing.push(shown);
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "the README's source map leaves out {missing:?}"
    );
}

/// Inside the module directories, *How it works* names every file with its job.
#[test]
fn how_it_works_names_every_file_of_the_module_directories() {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let at = readme
        .find("## How it works")
        .expect("a How it works section");
    let end = at
        + readme[at..]
            .find("\n## Reliability")
            .expect("Reliability after it");
    let section = &readme[at..end];
    let mut missing = Vec::new();
    for d in std::fs::read_dir(manifest_dir().join("src"))
        .unwrap()
        .flatten()
    {
        if !d.path().is_dir() {
            continue;
        }
        let dir = d.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".rs") || name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            if !section.contains(&format!("`{name}`")) {
                missing.push(format!("src/{dir}/{name}"));
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "README *How it works* does not name {missing:?}"
    );
}

#[test]
fn every_source_file_the_docs_name_exists() {
    let root = manifest_dir();
    let mut ours = Vec::new();
    for d in ["src", "tests", "benches", "fuzz"] {
        files_below(&root.join(d), &mut ours);
    }
    let names: std::collections::BTreeSet<String> = ours
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut docs: Vec<std::path::PathBuf> = ours
        .iter()
        .filter(|p| p.starts_with(root.join("src")))
        .cloned()
        .collect();
    for f in ["README.md", "BENCHMARKS.md", "Cargo.toml"] {
        docs.push(root.join(f));
    }
    let mut stale = Vec::new();
    for doc in &docs {
        let Ok(text) = std::fs::read_to_string(doc) else {
            continue;
        };
        let word = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
        for (n, line) in text.lines().enumerate() {
            for token in line.split(|c: char| !word(c)) {
                let token = token.trim_end_matches('.');
                let Some(stem) = token.strip_suffix(".rs") else {
                    continue;
                };
                if stem.is_empty() || stem.ends_with('/') {
                    continue;
                }
                let ok = if ["src/", "tests/", "benches/", "fuzz/"]
                    .iter()
                    .any(|d| token.starts_with(d))
                {
                    root.join(token).exists()
                } else {
                    let base = token.rsplit('/').next().unwrap_or(token);
                    names.contains(base)
                };
                if !ok {
                    let shown = doc.strip_prefix(&root).unwrap_or(doc).display().to_string();
                    stale.push(format!("{shown}:{}: {token}", n + 1));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "names of files that do not exist:\n{}",
        stale.join("\n")
    );
}

/// Issue 12: every module's opening comment says what it may touch, in a paragraph that starts
/// `May touch:`, so that a new module states it too: the library's, the unit tests', and the
/// integration tests' with their harness, and the benchmark's.
#[test]
fn every_module_says_what_it_may_touch() {
    let mut files = Vec::new();
    files_below(&manifest_dir().join("src"), &mut files);
    files_below(&manifest_dir().join("benches"), &mut files);
    files_below(&manifest_dir().join("tests"), &mut files);
    let mut silent: Vec<String> = files
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".rs")
        })
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.starts_with("//! May touch: "))
        })
        .map(|p| {
            p.strip_prefix(manifest_dir())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    silent.sort();
    assert!(
        silent.is_empty(),
        "modules whose opening //! comment has no `May touch:` paragraph: {silent:?}"
    );
}
