//! Which files a root manages (include / exclude) and which it must never delete (protect),
//! compiled once per config from the root's globs.
//!
//! May touch: nothing outside its arguments (pure: compiled globs over path components).

use crate::config::RootConfig;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Policy {
    include_name: GlobSet,
    include_path: GlobSet,
    exclude_name: GlobSet,
    exclude_path: GlobSet,
    protect_name: GlobSet,
    protect_path: GlobSet,
}

/// Compiles one glob exactly as the policy matches it: the one glob compiler of chartd, which
/// config validation uses too, so that a glob the config check accepts is one the policy can
/// build (and the other way round).
pub fn compile(key: &str, g: &str) -> Result<Glob, String> {
    if g.is_empty() {
        return Err(format!("{key}: empty glob pattern"));
    }
    GlobBuilder::new(g.trim_start_matches('/'))
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("{key}: invalid glob {g:?} ({})", e.kind()))
}

/// Splits globs into those matched against a single name (no `/`) and those matched against
/// the path relative to the root.
fn build(key: &str, globs: &[String]) -> Result<(GlobSet, GlobSet), String> {
    let mut names = GlobSetBuilder::new();
    let mut paths = GlobSetBuilder::new();
    for g in globs {
        let glob: Glob = compile(key, g)?;
        if g.contains('/') {
            paths.add(glob);
        } else {
            names.add(glob);
        }
    }
    let n = names.build().map_err(|e| format!("{key}: {e}"))?;
    let p = paths.build().map_err(|e| format!("{key}: {e}"))?;
    Ok((n, p))
}

impl Policy {
    pub fn new(root: &RootConfig) -> Result<Policy, String> {
        let (include_name, include_path) = build("include", &root.include)?;
        let (exclude_name, exclude_path) = build("exclude", &root.exclude)?;
        let (protect_name, protect_path) = build("protect", &root.protect)?;
        Ok(Policy {
            include_name,
            include_path,
            exclude_name,
            exclude_path,
            protect_name,
            protect_path,
        })
    }

    /// Whether a regular file at `components` (relative to the root) is managed: its name (or
    /// path) matches an include glob, and neither its name, nor any directory on its path, nor
    /// its path matches an exclude glob.
    pub fn managed(&self, components: &[&OsStr]) -> bool {
        let Some(name) = components.last() else {
            return false;
        };
        let rel: &Path = &components.iter().collect::<std::path::PathBuf>();
        let included = self.include_name.is_match(name) || self.include_path.is_match(rel);
        if !included {
            return false;
        }
        if components.iter().any(|c| self.exclude_name.is_match(c)) {
            return false;
        }
        !self.exclude_path.is_match(rel)
    }

    /// Whether a managed file must never be deleted.
    pub fn protected(&self, components: &[&OsStr]) -> bool {
        let Some(name) = components.last() else {
            return false;
        };
        if self.protect_name.is_empty() && self.protect_path.is_empty() {
            return false;
        }
        let rel: std::path::PathBuf = components.iter().collect();
        self.protect_name.is_match(name) || self.protect_path.is_match(&rel)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn policy(include: &[&str], exclude: &[&str], protect: &[&str]) -> Policy {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let mut rc = test_root("/tmp/x");
        rc.include = s(include);
        rc.exclude = s(exclude);
        rc.protect = s(protect);
        Policy::new(&rc).unwrap()
    }

    pub(crate) fn test_root(path: &str) -> RootConfig {
        RootConfig {
            path: path.into(),
            create: false,
            max_age: None,
            max_size: None,
            low_watermark: 0.9,
            min_free: None,
            grace: std::time::Duration::ZERO,
            include: vec!["*.png".into()],
            exclude: vec![],
            protect: vec![],
            prune_empty_dirs: true,
            max_files: None,
            min_free_inodes: None,
            keep_newest: 0,
            group_max_size: None,
            group_max_files: None,
            rules: vec![],
        }
    }

    fn c(p: &str) -> Vec<&OsStr> {
        p.split('/').map(OsStr::new).collect()
    }

    #[test]
    fn include_exclude_protect() {
        let p = policy(
            &["*.png", "reports/*.json"],
            &["*.tmp", ".*"],
            &["keep/**", "logo.png"],
        );
        assert!(p.managed(&c("AAPL_1d/a.png")));
        assert!(!p.managed(&c("AAPL_1d/a.jpg")));
        assert!(p.managed(&c("reports/x.json")));
        assert!(!p.managed(&c("other/x.json")));
        assert!(!p.managed(&c("AAPL_1d/.a.png")));
        assert!(!p.managed(&c(".cache/a.png")));
        assert!(p.protected(&c("keep/deep/a.png")));
        assert!(p.protected(&c("g/logo.png")));
        assert!(!p.protected(&c("g/a.png")));
        assert!(policy(&["*.png"], &[], &[]).managed(&c("a.png")));
        assert!(Policy::new(&{
            let mut r = test_root("/x");
            r.include = vec!["[".into()];
            r
        })
        .is_err());
    }
}
