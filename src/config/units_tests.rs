//! Unit tests of the parsers and formatters, including malformed and hostile input.
//!
//! May touch: nothing (pure).

use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size("1048576"), Ok(1_048_576));
    assert_eq!(parse_size("200MiB"), Ok(209_715_200));
    assert_eq!(parse_size("200 MiB"), Ok(209_715_200));
    assert_eq!(parse_size(" 200mib "), Ok(209_715_200));
    assert_eq!(parse_size("200Mi"), Ok(209_715_200));
    assert_eq!(parse_size("200MB"), Ok(200_000_000));
    assert_eq!(parse_size("200M"), Ok(200_000_000));
    assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
    assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
    assert_eq!(parse_size(".5K"), Ok(500));
    assert_eq!(parse_size("10B"), Ok(10));
    assert_eq!(parse_size("2TiB"), Ok(2 << 40));
    assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_size("1.0000000000000000000000001KiB"), Ok(1024));
}

#[test]
fn bad_sizes() {
    for s in [
        "",
        " ",
        "-1",
        "-1MiB",
        "20 0MiB",
        "MiB",
        "1.5",
        "1..5MiB",
        "1.MiB",
        "1.5.5G",
        "18446744073709551616",
        "16777216TiB",
        "99999999999999999999999",
        "1XB",
        "1 M B",
        "١٢",
        "1é",
        "+1",
        "nan",
        "inf",
        "1e3",
    ] {
        assert!(parse_size(s).is_err(), "{s:?} should be rejected");
    }
    assert!(parse_size("20 0MiB").unwrap_err().contains("unit"));
    assert!(parse_size("-5").unwrap_err().contains("negative"));
}

#[test]
fn size_format_round_trips() {
    assert_eq!(format_size(209_715_200), "200MiB");
    assert_eq!(format_size(5_000_000_000), "5GB");
    assert_eq!(format_size(0), "0");
    assert_eq!(format_size(1_000_003), "1000003");
    for b in [
        0,
        1,
        999,
        1000,
        1024,
        1536,
        1_000_000,
        209_715_200,
        u64::MAX,
        u64::MAX - 1,
    ] {
        assert_eq!(parse_size(&format_size(b)), Ok(b), "{b}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration(" 2days "),
        Ok(Duration::from_secs(2 * 86400))
    );
    for s in [
        "",
        "-1",
        "-5s",
        "6 hours ago",
        "h",
        "1.5.5h",
        "99999999999999999999",
        "1000years",
        "18446744073709551615",
        "584942417355y",
        "é",
        "1é",
    ] {
        assert!(parse_duration(s).is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn duration_format_round_trips() {
    assert_eq!(format_duration(Duration::from_secs(6 * 3600)), "6h");
    assert_eq!(format_duration(Duration::ZERO), "0");
    assert_eq!(format_duration(Duration::from_secs(86400)), "24h");
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
    assert_eq!(
        format_duration(Duration::new(3661, 1_002_003)),
        "1h 1m 1s 1ms 2us 3ns"
    );
    for d in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_secs(5400),
        Duration::from_secs(40 * 86400 + 7),
        Duration::new(12345, 678_901_234),
        MAX_DURATION,
    ] {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
    }
}

#[test]
fn percents() {
    assert_eq!(parse_percent("90%"), Ok(0.9));
    assert_eq!(parse_percent("90 %"), Ok(0.9));
    assert_eq!(parse_percent("0.9"), Ok(0.9));
    assert_eq!(parse_percent("1"), Ok(1.0));
    assert_eq!(parse_percent("0%"), Ok(0.0));
    assert_eq!(parse_percent("100%"), Ok(1.0));
    assert_eq!(parse_percent_points("80%"), Ok(80.0));
    assert_eq!(parse_percent_points("12.5%"), Ok(12.5));
    for s in [
        "", "%", "90", "0", "1.5", "101%", "-5%", "-0.5", "abc", "5%%", "nan", "inf%", "1e2%",
    ] {
        assert!(parse_percent(s).is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn percent_format_round_trips() {
    assert_eq!(format_fraction(0.9), "90%");
    assert_eq!(format_fraction(0.125), "12.5%");
    assert_eq!(format_percent_points(80.0), "80%");
    for f in [0.9, 0.1, 0.3, 1.0, 0.123_456_789, 0.7, 1e-9] {
        assert_eq!(parse_percent(&format_fraction(f)), Ok(f), "{f}");
    }
    for p in [80.0, 95.0, 5.5, 33.333_333_333_3] {
        assert_eq!(
            parse_percent_points(&format_percent_points(p)),
            Ok(p),
            "{p}"
        );
    }
}

/// Every prefix of tricky multi-byte strings must be handled without panicking.
#[test]
fn never_panics() {
    let long = "9".repeat(400);
    let samples = [
        "1½MiB",
        "🙂",
        "12€",
        "1.5\u{0}G",
        long.as_str(),
        "\u{202e}5%",
    ];
    for s in samples {
        for (i, _) in s.char_indices() {
            let p = &s[..i];
            let _ = parse_size(p);
            let _ = parse_duration(p);
            let _ = parse_percent(p);
        }
    }
}

/// A tiny deterministic generator (xorshift) so the random inputs need no dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Random strings over an alphabet biased towards the parsers' own syntax must never panic,
/// and whatever parses must survive a format/parse round trip.
#[test]
fn random_inputs_never_panic() {
    let alphabet: Vec<char> = "0123456789.%- kKmMgGtTiIbBsShHdD\u{e9}\u{1f600}\u{0}\t+eE_"
        .chars()
        .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        let len = (xorshift(&mut state) % 24) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(xorshift(&mut state) % alphabet.len() as u64) as usize])
            .collect();
        if let Ok(b) = parse_size(&s) {
            assert_eq!(parse_size(&format_size(b)), Ok(b), "{s:?}");
        }
        if let Ok(d) = parse_duration(&s) {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s:?}");
        }
        if let Ok(f) = parse_percent(&s) {
            assert_eq!(parse_percent(&format_fraction(f)), Ok(f), "{s:?}");
        }
        if let Ok(p) = parse_percent_points(&s) {
            assert_eq!(
                parse_percent_points(&format_percent_points(p)),
                Ok(p),
                "{s:?}"
            );
        }
    }
}
