//! Per-group retention rules, compiled once per config: which rule a group (the first directory
//! under a root) follows, and the limits that gives its files.
//!
//! The index stores each group's rule number on the group's directory node when the group is
//! first seen, so that the event path never matches a glob: a file's limits are two array
//! lookups away (file → group → rule). Slot 0 is "no rule" (the root's own values); rule `i`
//! of the config is slot `i + 1`. First match wins.
//!
//! May touch: nothing outside its arguments (pure), except `describe_groups` (`check-config`),
//! which lists the first level of each configured root, read-only.

use crate::config::RootConfig;
use globset::{GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::time::Duration;

/// Rule number of a group: 0 = the root's values, `i + 1` = `rules[i]`.
pub type RuleId = u16;

/// What one rule (or the root, slot 0) means for a group's files, resolved against the root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupLimits {
    /// Nanoseconds after its mtime at which a file expires: `max(max_age, grace)`. `None`: no
    /// age limit (such files go after every file that has one under pressure).
    pub age_ns: Option<i64>,
    pub grace_ns: i64,
    /// The group's N newest managed files are never evicted by age and go last.
    pub keep_newest: u32,
    pub quota_bytes: Option<u64>,
    pub quota_files: Option<u64>,
    /// Every file of the group is protected.
    pub protect: bool,
}

impl GroupLimits {
    pub fn has_quota(&self) -> bool {
        self.quota_bytes.is_some() || self.quota_files.is_some()
    }
}

/// The compiled rules of one root.
#[derive(Debug, Clone)]
pub struct Rules {
    set: GlobSet,
    limits: Vec<GroupLimits>,
    /// The `match` of each slot (`None` for slot 0), for `groups` and `check-config`.
    labels: Vec<Option<String>>,
}

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

fn limits(
    max_age: Option<Duration>,
    grace: Duration,
    keep_newest: u32,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    protect: bool,
) -> GroupLimits {
    let grace_ns = nanos(grace);
    GroupLimits {
        age_ns: max_age
            .filter(|d| !d.is_zero())
            .map(|d| nanos(d).max(grace_ns)),
        grace_ns,
        keep_newest,
        quota_bytes: quota_bytes.filter(|&b| b > 0),
        quota_files: quota_files.filter(|&n| n > 0),
        protect,
    }
}

impl Default for Rules {
    /// No rules and no limits (an index built before its root's config is known).
    fn default() -> Rules {
        Rules {
            set: GlobSet::empty(),
            limits: vec![limits(None, Duration::ZERO, 0, None, None, false)],
            labels: vec![None],
        }
    }
}

impl Rules {
    /// Compiles `root.rules` with the policy's glob compiler (validation uses the same one).
    pub fn new(root: &RootConfig) -> Result<Rules, String> {
        let mut b = GlobSetBuilder::new();
        let mut limits_v = vec![limits(
            root.max_age,
            root.grace,
            root.keep_newest,
            root.group_max_size,
            root.group_max_files,
            false,
        )];
        let mut labels = vec![None];
        if root.rules.len() >= usize::from(RuleId::MAX) {
            return Err(format!("rules: at most {} rules", RuleId::MAX - 1));
        }
        for (i, r) in root.rules.iter().enumerate() {
            b.add(crate::policy::compile(
                &format!("rules[{i}].match"),
                &r.pattern,
            )?);
            let grace = r.grace.unwrap_or(root.grace);
            limits_v.push(limits(
                r.max_age.or(root.max_age),
                grace,
                r.keep_newest.unwrap_or(root.keep_newest),
                r.group_max_size.or(root.group_max_size),
                r.group_max_files.or(root.group_max_files),
                r.protect,
            ));
            labels.push(Some(r.pattern.clone()));
        }
        let set = b.build().map_err(|e| format!("rules: {e}"))?;
        Ok(Rules {
            set,
            limits: limits_v,
            labels,
        })
    }

    /// The rule a group named `name` follows (first match wins; 0 when none matches).
    pub fn rule_for(&self, name: &OsStr) -> RuleId {
        if self.limits.len() == 1 {
            return 0;
        }
        self.set
            .matches(name)
            .into_iter()
            .min()
            .map_or(0, |i| (i + 1) as RuleId)
    }

    pub fn limits(&self, r: RuleId) -> &GroupLimits {
        self.limits.get(usize::from(r)).unwrap_or(&self.limits[0])
    }

    /// The `match` of rule `r` (`None`: the root's own values).
    pub fn label(&self, r: RuleId) -> Option<&str> {
        self.labels.get(usize::from(r)).and_then(|l| l.as_deref())
    }

    /// No rule, no keep-newest: every file has the same limits, so eviction order is plain
    /// mtime order (the head of the queue is the oldest file).
    pub fn uniform(&self) -> bool {
        self.limits.len() == 1 && self.limits[0].keep_newest == 0
    }

    /// Any group (or the root's default) has a quota.
    pub fn any_quota(&self) -> bool {
        self.limits.iter().any(GroupLimits::has_quota)
    }

    /// Any rule protects its groups.
    pub fn any_protect(&self) -> bool {
        self.limits.iter().any(|l| l.protect)
    }

    pub fn len(&self) -> usize {
        self.limits.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// For `check-config`: which rule each existing group of each root follows (as YAML comments,
/// so that the output stays a loadable config). Only roots with rules that exist are listed;
/// reading a root's entries is all this does (no symlink is followed).
pub fn describe_groups(roots: &[RootConfig]) -> String {
    const SHOWN: usize = 200;
    let mut out = String::new();
    for (i, root) in roots.iter().enumerate() {
        if root.rules.is_empty() {
            continue;
        }
        let Ok(rules) = Rules::new(root) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(&root.path) else {
            out += &format!(
                "# roots[{i}] {}: does not exist (yet); no groups to match the rules against\n",
                root.path.display()
            );
            continue;
        };
        let mut groups: Vec<std::ffi::OsString> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect();
        groups.sort();
        out += &format!(
            "# roots[{i}] {}: the rule each of its {} groups follows\n",
            root.path.display(),
            groups.len()
        );
        for g in groups.iter().take(SHOWN) {
            let r = rules.rule_for(g);
            let l = rules.limits(r);
            let which = match rules.label(r) {
                Some(m) => format!("rules[{}] {m:?}", r - 1),
                None => "(no rule: the root's values)".to_string(),
            };
            let age = l.age_ns.map_or("no age limit".to_string(), |a| {
                format!(
                    "max_age {}",
                    crate::config::units::format_duration(Duration::from_nanos(a as u64))
                )
            });
            let mut extra = Vec::new();
            if l.keep_newest > 0 {
                extra.push(format!("keep_newest {}", l.keep_newest));
            }
            if let Some(q) = l.quota_bytes {
                extra.push(format!(
                    "group_max_size {}",
                    crate::config::units::format_size(q)
                ));
            }
            if let Some(q) = l.quota_files {
                extra.push(format!("group_max_files {q}"));
            }
            if l.protect {
                extra.push("protected".to_string());
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(", {}", extra.join(", "))
            };
            out += &format!("#   {}: {which}: {age}{extra}\n", g.to_string_lossy());
        }
        if groups.len() > SHOWN {
            out += &format!("#   ... and {} more\n", groups.len() - SHOWN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;

    fn rule(m: &str) -> RuleConfig {
        RuleConfig {
            pattern: m.into(),
            ..RuleConfig::default()
        }
    }

    #[test]
    fn first_match_wins_and_values_inherit() {
        let mut rc = crate::policy::tests::test_root("/x");
        rc.max_age = Some(Duration::from_secs(6 * 3600));
        rc.grace = Duration::from_secs(10);
        rc.rules = vec![
            RuleConfig {
                max_age: Some(Duration::from_secs(7 * 86400)),
                ..rule("RELIANCE_*")
            },
            RuleConfig {
                max_age: Some(Duration::from_secs(3600)),
                ..rule("*_1min")
            },
            RuleConfig {
                group_max_files: Some(40),
                protect: true,
                ..rule("sess-*")
            },
            RuleConfig {
                max_age: Some(Duration::ZERO),
                ..rule("keep")
            },
        ];
        let r = Rules::new(&rc).unwrap();
        assert_eq!(
            r.rule_for(OsStr::new("RELIANCE_1min")),
            1,
            "first match wins"
        );
        assert_eq!(r.rule_for(OsStr::new("TCS_1min")), 2);
        assert_eq!(r.rule_for(OsStr::new("TCS_1d")), 0);
        assert_eq!(r.label(2), Some("*_1min"));
        assert_eq!(r.label(0), None);
        assert_eq!(r.limits(1).age_ns, Some(7 * 86400 * 1_000_000_000));
        assert_eq!(
            r.limits(3).age_ns,
            Some(6 * 3600 * 1_000_000_000),
            "inherited"
        );
        assert_eq!(r.limits(3).quota_files, Some(40));
        assert!(r.limits(3).protect);
        assert_eq!(r.limits(4).age_ns, None, "0 = no age limit");
        assert!(!r.uniform());
        assert!(Rules::default().uniform());
    }

    #[test]
    fn age_is_at_least_grace() {
        let mut rc = crate::policy::tests::test_root("/x");
        rc.max_age = Some(Duration::from_secs(5));
        rc.grace = Duration::from_secs(60);
        let r = Rules::new(&rc).unwrap();
        assert_eq!(r.limits(0).age_ns, Some(60_000_000_000));
    }
}
