//! The unit parsers on arbitrary text: they must never panic, and every value they accept
//! must survive the formatter the config printer (`check-config`, `to_yaml`) uses:
//! `parse(format(parse(s))) == parse(s)`.
//!
//! Touches nothing: the parsers and formatters are pure.
#![no_main]

use chartd::config::units::{
    format_duration, format_fraction, format_percent_points, format_size, parse_duration,
    parse_percent, parse_percent_points, parse_size, MAX_DURATION,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(bytes) = parse_size(text) {
        let shown = format_size(bytes);
        assert_eq!(parse_size(&shown), Ok(bytes), "{text:?} -> {shown:?}");
    }

    if let Ok(d) = parse_duration(text) {
        assert!(d <= MAX_DURATION, "{text:?} -> {d:?}");
        let shown = format_duration(d);
        assert_eq!(parse_duration(&shown), Ok(d), "{text:?} -> {shown:?}");
    }

    if let Ok(f) = parse_percent(text) {
        assert!(f.is_finite() && (0.0..=1.0).contains(&f), "{text:?} -> {f}");
        let shown = format_fraction(f);
        assert_eq!(parse_percent(&shown), Ok(f), "{text:?} -> {shown:?}");
    }

    if let Ok(p) = parse_percent_points(text) {
        assert!(
            p.is_finite() && (0.0..=100.0).contains(&p),
            "{text:?} -> {p}"
        );
        let shown = format_percent_points(p);
        assert_eq!(parse_percent_points(&shown), Ok(p), "{text:?} -> {shown:?}");
    }
});
