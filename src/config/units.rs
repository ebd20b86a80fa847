//! Parsers and formatters for the human units of the config file: sizes (`200MiB`), durations
//! (`6h`) and percentages (`90%`).
//!
//! These functions see untrusted text (config files, environment variables, control requests)
//! and are fuzz targets, so they must never panic: all arithmetic is checked, and strings are
//! only split at indexes returned by `find` on ASCII characters, which are always UTF-8
//! boundaries.
//!
//! May touch: nothing outside its arguments (pure).

use std::time::Duration;

/// The longest duration accepted anywhere (100 Julian years). The daemon computes
/// `now - max_age` and `now + interval`; capping here means those can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Units accepted by [`parse_size`], lower-cased. 1000-based with and without `B`, 1024-based
/// with and without `B`. Matching is case-insensitive: people write `mb`, `MB` and `Mb` and all
/// mean megabytes here (a size limit in bits makes no sense).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
];

/// Units emitted by [`format_size`], in the spelling the docs use.
const FORMAT_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
];

/// A decimal number split into its integer digits and fraction digits (both ASCII, non-empty
/// in total). Parsed by hand, rather than through `f64`, so that sizes are exact.
struct Decimal<'a> {
    int: &'a str,
    frac: &'a str,
}

/// Splits `s` into a leading unsigned decimal number and the rest (the unit).
fn split_number(s: &str) -> Result<(Decimal<'_>, &str), String> {
    if s.starts_with('-') {
        return Err("negative values are not allowed".to_string());
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(end);
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || num.ends_with('.') {
        return Err("expected a number".to_string());
    }
    Ok((Decimal { int, frac }, rest))
}

/// Parses a size in bytes.
///
/// * a plain integer is bytes: `1048576`;
/// * `K`/`M`/`G`/`T`, optionally followed by `B`, are powers of 1000 (`200MB`);
/// * `Ki`/`Mi`/`Gi`/`Ti`, optionally followed by `B`, are powers of 1024 (`200MiB`);
/// * a lone `B` means bytes; units are case-insensitive;
/// * a fraction is allowed with a unit (`1.5GiB`) and rounded down to whole bytes;
/// * spaces around the number and between number and unit are allowed (`200 MiB`).
///
/// Negative values, fractional bytes and values above `u64::MAX` are rejected.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty size".to_string());
    }
    let (num, rest) = split_number(s)?;
    let unit_text = rest.trim_start();
    let unit_lc = unit_text.to_ascii_lowercase();
    let Some(&(_, unit)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit_lc) else {
        return Err(format!("unknown size unit {unit_text:?}"));
    };
    let too_large = || "size too large".to_string();
    let int: u128 = if num.int.is_empty() {
        0
    } else {
        num.int.parse::<u64>().map_err(|_| too_large())?.into()
    };
    let mut total = int.checked_mul(unit.into()).ok_or_else(too_large)?;
    // Digits beyond the 18th cannot change the result by a whole byte for any unit here
    // (the largest is 2^40 < 10^13), so they are dropped to keep the arithmetic in range.
    let frac = num.frac.get(..num.frac.len().min(18)).unwrap_or("");
    if !frac.is_empty() {
        let frac_num: u128 = frac.parse::<u64>().map_err(|_| too_large())?.into();
        let denom = 10u128.pow(frac.len() as u32);
        let part = frac_num * u128::from(unit); // < 10^18 * 2^40, fits in u128
        if unit == 1 && frac_num != 0 {
            return Err("a number of bytes must be a whole number".to_string());
        }
        total = total.checked_add(part / denom).ok_or_else(too_large)?;
    }
    u64::try_from(total).map_err(|_| too_large())
}

/// Formats a size so that [`parse_size`] gives it back exactly: the largest unit that divides
/// it (`209715200` → `200MiB`, `5000000000` → `5GB`), else plain bytes.
pub fn format_size(bytes: u64) -> String {
    for (name, unit) in FORMAT_UNITS {
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{}", bytes / unit, name);
        }
    }
    bytes.to_string()
}

/// Parses a duration.
///
/// * a bare integer is seconds (`90`), and `0` is zero (which callers read as "no limit");
/// * anything else goes to humantime: `60s`, `6h`, `1h 30m`, `2days`, `500ms`.
///
/// Durations above [`MAX_DURATION`] are rejected.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let d = if s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| "duration too large".to_string())?,
        )
    } else {
        humantime::parse_duration(s).map_err(|e| e.to_string())?
    };
    if d > MAX_DURATION {
        return Err("duration too large (at most 100 years)".to_string());
    }
    Ok(d)
}

/// Formats a duration so that [`parse_duration`] gives it back exactly: `0` for zero, else
/// hours down to nanoseconds, omitting zero parts (`6h`, `24h`, `1h 30m`, `1s 500ms`).
/// Days, months and years are not used, because humantime's month and year are fractional
/// (30.44 and 365.25 days), which reads as a surprise in `check-config` output.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0".to_string();
    }
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a percentage or fraction and returns the percentage and whether the `%` form was
/// used; shared by [`parse_percent`] and [`parse_percent_points`] so that each can avoid a
/// lossy multiplication or division for the form it returns natively.
fn parse_percent_raw(input: &str) -> Result<(f64, bool), String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty percentage".to_string());
    }
    let (body, is_percent) = match s.strip_suffix('%') {
        Some(b) => (b.trim_end(), true),
        None => (s, false),
    };
    let (num, rest) = split_number(body)?;
    if !rest.is_empty() {
        return Err("expected a percentage".to_string());
    }
    let text = if num.int.is_empty() {
        format!("0.{}", num.frac)
    } else if num.frac.is_empty() {
        num.int.to_string()
    } else {
        format!("{}.{}", num.int, num.frac)
    };
    let v: f64 = text.parse().map_err(|_| "expected a number".to_string())?;
    if !v.is_finite() {
        return Err("expected a finite number".to_string());
    }
    if is_percent {
        if v > 100.0 {
            return Err("a percentage must be at most 100%".to_string());
        }
    } else if !(v > 0.0 && v <= 1.0) {
        return Err(
            "a bare number must be a fraction in (0, 1], or write a percentage with %".to_string(),
        );
    }
    Ok((v, is_percent))
}

/// Parses a share and returns it as a fraction: `90%` → 0.9 (the `%` form accepts 0–100%),
/// or a bare number in (0, 1] taken as the fraction itself (`0.9`). A bare `90` is rejected
/// rather than guessed, because it is ambiguous between 90% and a typo for 0.9.
pub fn parse_percent(input: &str) -> Result<f64, String> {
    let (v, is_percent) = parse_percent_raw(input)?;
    Ok(if is_percent { v / 100.0 } else { v })
}

/// Same syntax as [`parse_percent`], but returns percentage points: `90%` → 90.0, `0.9` → 90.0.
pub fn parse_percent_points(input: &str) -> Result<f64, String> {
    let (v, is_percent) = parse_percent_raw(input)?;
    Ok(if is_percent { v } else { v * 100.0 })
}

/// Formats percentage points as `N%`; Rust's shortest float form parses back exactly.
pub fn format_percent_points(points: f64) -> String {
    format!("{points}%")
}

/// Formats a fraction as the shortest `N%` that [`parse_percent`] maps back to the same value
/// (0.9 → `90%`), falling back to the bare fraction, which always parses back exactly.
pub fn format_fraction(fraction: f64) -> String {
    for decimals in 0..=15 {
        let text = format!("{:.*}%", decimals, fraction * 100.0);
        if parse_percent(&text) == Ok(fraction) {
            return text;
        }
    }
    format!("{fraction}")
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
