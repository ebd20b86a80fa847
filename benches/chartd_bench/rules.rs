//! Phase `rules`: what 20 retention rules cost (issue #11). The same tree as the crawl phase,
//! chartd with 20 rules on its group names (every group matches one; the half whose symbol ends
//! in an even digit carries `group_max_files` / `group_max_size` quotas, set above what a group
//! of four charts can reach; `max_age` varies per rule, always beyond the tree's oldest file)
//! against the same binary with no rules, interleaved: crawl time and memory per file on the
//! cached tree (observe-only), and reaction latency on the live tree (the reaction phase's
//! machinery, one daemon per variant per block). Rows: rules ÷ no rules. Only this build:
//! older binaries do not know the `rules` key.
//!
//! May touch: what the crawl and reaction phases touch (the cached and live trees, the daemons
//! it starts).

use crate::compare::{block, row_reps, Better, Variant};
use crate::crawl::{observe_reps, time_find};
use crate::live::{with_live_tree, Live, LiveVariant};
use crate::opts::{Bin, Opts};
use crate::reaction::{reaction, reaction_rows};
use crate::tree::{dir_name, Tree};
use crate::util::{now_ns, Res};
use serde_json::{json, Value};
use std::path::Path;

const RULES: usize = 20;
const HOUR_NS: i64 = 3600 * 1_000_000_000;

/// Rule `r` (0..20) of a tree: its glob and limits. Rules 2k and 2k+1 take the groups whose
/// symbol ends in the digit k: the minute intervals (`1m`, `5m`, `15m`), then the others (`1h`,
/// `4h`, `1d`). Even digits have quotas.
struct Rule {
    pattern: String,
    max_age_h: i64,
    quota: Option<(u64, u64)>,
}

/// The hours every rule's `max_age` exceeds: the tree's oldest file (48 h before its base
/// time) plus three days, so that nothing expires while the phase runs, however old the
/// cached tree is.
fn min_age_h(tree: &Tree) -> i64 {
    let age = now_ns() - tree.base_ns + 48 * HOUR_NS;
    age / HOUR_NS + 72
}

fn rule(tree: &Tree, r: usize) -> Rule {
    let k = r / 2;
    let ivs = if r % 2 == 0 { "*m" } else { "*[hd]" };
    Rule {
        pattern: format!("S????{k}_{ivs}"),
        // Varied: 0 to 114 h on top of the floor, so rules interleave in expiry order.
        max_age_h: min_age_h(tree) + ((r * 7) % RULES) as i64 * 6,
        quota: (k % 2 == 0).then_some((8 + r as u64, (4 + r as u64 % 5) << 20)),
    }
}

/// The rule a group (by name) follows, as chartd's first-match globs decide it.
fn rule_of(name: &str) -> Option<usize> {
    let (sym, iv) = name.split_once('_')?;
    let k = sym.strip_prefix('S')?.chars().last()?.to_digit(10)? as usize;
    Some(2 * k + usize::from(!iv.ends_with('m')))
}

/// The `rules:` line (YAML flow style: the harness's config writer takes one line per key).
fn rules_line(tree: &Tree) -> String {
    let items: Vec<String> = (0..RULES)
        .map(|r| {
            let x = rule(tree, r);
            let mut s = format!("{{match: \"{}\", max_age: {}h", x.pattern, x.max_age_h);
            if let Some((files, bytes)) = x.quota {
                s.push_str(&format!(
                    ", group_max_files: {files}, group_max_size: {bytes}"
                ));
            }
            s + "}"
        })
        .collect();
    format!("rules: [{}]", items.join(", "))
}

/// The order chartd evicts the tree's files in under these rules: soonest expiry (mtime +
/// its rule's `max_age`) first, larger first on equal expiry.
fn rules_order(tree: &Tree) -> Vec<u32> {
    let ages: Vec<i64> = (0..RULES)
        .map(|r| rule(tree, r).max_age_h * HOUR_NS)
        .collect();
    let age_of = |i: usize| rule_of(&dir_name(i / 4)).map_or(0, |r| ages[r]);
    let mut v: Vec<u32> = (0..tree.n as u32).collect();
    v.sort_by_key(|&i| {
        let i = i as usize;
        (
            tree.mtime_ns(i) + age_of(i),
            std::cmp::Reverse(tree.size(i)),
        )
    });
    v
}

fn variants(tree: &Tree) -> [Variant; 2] {
    let cur = Bin::current();
    let rules = Variant {
        label: "20 rules".into(),
        bin: cur.path.clone(),
        lines: rules_line(tree),
    };
    let none = Variant {
        label: "no rules".into(),
        ..Variant::of(&cur)
    };
    [rules, none]
}

/// The rules phase for one size.
pub fn phase_rules(o: &Opts, n: usize, empty_root: &Path, out: &mut Value) -> Res<()> {
    let tree = Tree::ensure(&o.base.join("trees").join(n.to_string()), n)?;
    let vs = variants(&tree);
    let quota_groups = (0..tree.dirs())
        .filter(|&d| rule_of(&dir_name(d)).is_some_and(|r| rule(&tree, r).quota.is_some()))
        .count();
    eprintln!(
        "  [{n}] rules: {RULES} rules, quotas on {quota_groups} of {} groups",
        tree.dirs()
    );
    // Warm-up (untimed), as the crawl phase does.
    time_find(&tree.root)?;
    let runs = observe_reps(o, &tree, empty_root, &vs, None, &mut |_, _, _, _| Ok(()))?;
    let (a, b) = (&runs[0], &runs[1]);
    let lower = Better::Lower;
    let mut rows = vec![
        row_reps(
            "crawl: start → READY=1",
            "s",
            lower,
            Some(1.10),
            &a.crawl_s,
            &b.crawl_s,
        ),
        row_reps(
            "memory: (RSS − empty root) / N",
            "B",
            lower,
            Some(1.10),
            &a.rss_per_file,
            &b.rss_per_file,
        ),
        row_reps(
            "memory: peak (VmHWM − empty root) / N",
            "B",
            lower,
            None,
            &a.hwm_per_file,
            &b.hwm_per_file,
        ),
        row_reps(
            "memory: index_bytes / N",
            "B",
            lower,
            None,
            &a.index_per_file,
            &b.index_per_file,
        ),
    ];
    let r = with_live_tree(n, Live::Reaction, &o.base, |live| {
        let vs = variants(live);
        let lv = [
            LiveVariant {
                order: rules_order(live),
                v: vs[0].clone(),
            },
            LiveVariant {
                order: live.eviction_order(),
                v: vs[1].clone(),
            },
        ];
        let x = reaction(o, live, &lv)?;
        rows.extend(reaction_rows(&x, Some(1.10)));
        Ok(())
    });
    let mut cmp = block(&vs[0].label, &vs[1].label, rows);
    cmp["rules"] = json!(RULES);
    cmp["groups"] = json!(tree.dirs());
    cmp["groups_with_quota"] = json!(quota_groups);
    cmp["rules_line"] = json!(vs[0].lines);
    out["rules"] = cmp;
    r
}
