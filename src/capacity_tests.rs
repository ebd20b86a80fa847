//! Tests of `capacity.rs`: scripted workloads whose true figures are known in advance.
//!
//! May touch: nothing (pure; times are made up).

use super::*;

/// A minute boundary, so that "minute k" of a script is exact.
const T0: u64 = 1_700_000_040;

fn at(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + s)
}

fn no_room() -> Room {
    Room::default()
}

#[test]
fn t0_is_a_minute_boundary() {
    assert_eq!(T0 % 60, 0);
}

#[test]
fn steady_writer_rate_and_time_to_full() {
    let mut t = CapacityTracker::new(at(0));
    t.set_usage(0, at(0));
    for s in 0..600 {
        t.on_write(1000, at(s));
    }
    // 1 MB to go at 1000 B/s net: 1000 s; 3.6 MB: exactly one hour.
    let room = Room {
        to_max_size: Some(3_600_000),
        to_floor: None,
    };
    let f = t.figures(at(600), &room);
    assert_eq!(f.write_bytes_per_second, 1000.0);
    assert_eq!(f.evicted_bytes_per_second, 0.0);
    assert_eq!(f.time_to_full_hours, Some(1.0));
    assert_eq!(f.effective_retention_hours, None);
    // The nearer of the two limits counts.
    let f = t.figures(
        at(600),
        &Room {
            to_max_size: Some(3_600_000),
            to_floor: Some(1_800_000),
        },
    );
    assert_eq!(f.time_to_full_hours, Some(0.5));
    // No limit known: no estimate.
    assert_eq!(t.figures(at(600), &no_room()).time_to_full_hours, None);
    // Writing stops: after the 5-minute window the rate is 0 and the root is not growing.
    let f = t.figures(at(600 + 5 * 60), &room);
    assert_eq!(f.write_bytes_per_second, 0.0);
    assert_eq!(f.time_to_full_hours, None);
}

#[test]
fn rate_at_start_uses_the_time_since_start() {
    let mut t = CapacityTracker::new(at(0));
    for s in 1..=30 {
        t.on_write(500, at(s));
    }
    assert_eq!(t.figures(at(30), &no_room()).write_bytes_per_second, 500.0);
    // Shrinking files are not writes.
    t.on_write(-10_000, at(30));
    assert_eq!(t.figures(at(30), &no_room()).write_bytes_per_second, 500.0);
}

#[test]
fn size_pressure_gives_effective_retention_and_no_growth() {
    let mut t = CapacityTracker::new(at(0));
    t.set_usage(10_000_000, at(0));
    // A root held at its size limit: every second 2000 B in, one 2000 B file of 2 h evicted.
    for s in 0..1200 {
        t.on_write(2000, at(s));
        t.on_evict(Duration::from_secs(7200), 2000, Reason::Size, s, at(s));
    }
    let room = Room {
        to_max_size: Some(0),
        to_floor: Some(1 << 30),
    };
    let f = t.figures(at(1200), &room);
    assert_eq!(f.write_bytes_per_second, 2000.0);
    assert_eq!(f.evicted_bytes_per_second, 2000.0);
    assert_eq!(f.effective_retention_hours, Some(2.0));
    assert_eq!(f.time_to_full_hours, None);
    assert_eq!(f.history.last().map(|m| m.usage_bytes), Some(10_000_000));
}

#[test]
fn retention_is_the_mean_age_of_pressure_evictions_in_the_last_hour() {
    let mut t = CapacityTracker::new(at(0));
    t.on_evict(Duration::from_secs(3600), 1, Reason::Size, 1, at(10));
    t.on_evict(
        Duration::from_secs(2 * 3600),
        1,
        Reason::FreeSpace,
        2,
        at(20),
    );
    t.on_evict(Duration::from_secs(3 * 3600), 1, Reason::Size, 3, at(30));
    // Age and purge deletions are not pressure.
    t.on_evict(Duration::from_secs(10 * 3600), 1, Reason::Age, 4, at(40));
    t.on_evict(Duration::from_secs(20 * 3600), 1, Reason::Purge, 5, at(50));
    assert_eq!(
        t.figures(at(60), &no_room()).effective_retention_hours,
        Some(2.0)
    );
    // Only age evictions: null.
    let mut u = CapacityTracker::new(at(0));
    u.on_evict(Duration::from_secs(3600), 1, Reason::Age, 1, at(10));
    assert_eq!(
        u.figures(at(60), &no_room()).effective_retention_hours,
        None
    );
    // An hour later the old pressure evictions have left the window.
    assert_eq!(
        t.figures(at(30 + 3600), &no_room())
            .effective_retention_hours,
        None
    );
}

#[test]
fn premature_evictions_within_ten_minutes_count_once() {
    let mut t = CapacityTracker::new(at(0));
    t.on_evict(Duration::from_secs(60), 100, Reason::Size, 11, at(0));
    t.on_evict(Duration::from_secs(60), 100, Reason::Age, 22, at(0));
    t.on_evict(Duration::from_secs(60), 100, Reason::Purge, 33, at(0));
    t.on_create(11, at(5 * 60)); // 5 min later: premature
    t.on_create(11, at(6 * 60)); // the same eviction again: not counted twice
    t.on_create(44, at(6 * 60)); // never evicted
    t.on_create(33, at(6 * 60)); // purged on purpose: not premature
    t.on_create(22, at(11 * 60)); // 11 min later: outside the window
    let f = t.figures(at(12 * 60), &no_room());
    assert_eq!(f.premature_evictions, 1);
    assert_eq!(f.premature_evictions_last_hour, 1);
    assert_eq!(
        f.history.iter().map(|m| m.premature).sum::<u64>(),
        1,
        "{:?}",
        f.history
    );
    // Just inside the window (9 min 59 s).
    t.on_evict(
        Duration::from_secs(60),
        100,
        Reason::FreeSpace,
        55,
        at(20 * 60),
    );
    t.on_create(55, at(20 * 60 + 599));
    assert_eq!(t.figures(at(31 * 60), &no_room()).premature_evictions, 2);
    // The counter is since start; the last hour drops the old ones.
    let f = t.figures(at(90 * 60), &no_room());
    assert_eq!(f.premature_evictions, 2);
    assert_eq!(f.premature_evictions_last_hour, 0);
}

#[test]
fn recent_evictions_are_bounded_and_the_newest_remembered() {
    let mut t = CapacityTracker::new(at(0));
    for h in 0..10_000u64 {
        t.on_evict(Duration::from_secs(1), 1, Reason::Size, h, at(h / 100));
    }
    assert_eq!(t.recent.len(), RECENT_SLOTS);
    for h in 9_900..10_000u64 {
        t.on_create(h, at(120));
    }
    assert_eq!(t.figures(at(120), &no_room()).premature_evictions, 100);
}

#[test]
fn history_is_sixty_minutes_oldest_first_with_usage_carried() {
    let mut t = CapacityTracker::new(at(0));
    t.set_usage(1000, at(0));
    t.on_write(60_000, at(60));
    t.on_write(60_000, at(120));
    t.on_evict(Duration::from_secs(1), 20_000, Reason::Size, 1, at(150));
    t.on_write(60_000, at(180));
    let f = t.figures(at(300), &no_room());
    assert_eq!(f.history.len(), HISTORY_MINUTES);
    let last: Vec<(u64, u64, u64)> = f.history[HISTORY_MINUTES - 6..]
        .iter()
        .map(|m| (m.usage_bytes, m.written_bytes, m.evicted_bytes))
        .collect();
    assert_eq!(
        last,
        vec![
            (1000, 0, 0),
            (61_000, 60_000, 0),
            (101_000, 60_000, 20_000),
            (161_000, 60_000, 0),
            (161_000, 0, 0),
            (161_000, 0, 0),
        ]
    );
    // Minutes before the tracker existed are empty; minute numbers are consecutive.
    assert_eq!(f.history[0].usage_bytes, 0);
    assert!(f.history.windows(2).all(|w| w[1].minute == w[0].minute + 1));
    assert_eq!(f.history[HISTORY_MINUTES - 1].minute, (T0 + 300) / 60);
    // Two idle hours later: no rates anywhere, usage carried forward everywhere.
    let f = t.figures(at(2 * 3600), &no_room());
    assert!(f
        .history
        .iter()
        .all(|m| m.written_bytes == 0 && m.evicted_bytes == 0));
    assert!(f.history.iter().all(|m| m.usage_bytes == 161_000));
}

#[test]
fn a_clock_going_back_stays_on_the_current_minute() {
    let mut t = CapacityTracker::new(at(600));
    t.on_write(100, at(600));
    t.on_write(100, at(0)); // ten minutes back
    let f = t.figures(at(0), &no_room());
    assert_eq!(f.history.last().map(|m| m.written_bytes), Some(200));
}

#[test]
fn room_from_snapshot_figures() {
    let r = Room::new(900, Some(1000), 5000, 10_000, Some(1000));
    assert_eq!(r.to_max_size, Some(100));
    assert_eq!(r.to_floor, Some(4000));
    assert_eq!(r.nearest(), Some(100));
    let r = Room::new(2000, Some(1000), 500, 10_000, Some(1000));
    assert_eq!((r.to_max_size, r.to_floor), (Some(0), Some(0)));
    // Filesystem not measured: no floor reading; no limits at all: nothing known.
    assert_eq!(Room::new(1, None, 0, 0, Some(5)).nearest(), None);
    assert_eq!(Room::new(1, None, 700, 1000, None).nearest(), Some(700));
}

#[test]
fn figures_and_metrics_text() {
    let mut t = CapacityTracker::new(at(0));
    for s in 1..=60 {
        t.on_write(1000, at(s));
    }
    let f = t.figures(at(60), &Room::new(0, Some(7_200_000), 0, 0, None));
    assert_eq!(f.write_bytes_per_second, 1000.0);
    assert_eq!(f.time_to_full_hours, Some(2.0));
    assert!(f.effective_retention_hours.is_none());
    assert_eq!(f.history.len(), HISTORY_MINUTES);
    let text = metrics(&[("/srv/a".to_string(), &f)]);
    assert!(
        text.contains("chartd_write_bytes_per_second{root=\"/srv/a\"} 1000\n"),
        "{text}"
    );
    assert!(
        text.contains("chartd_time_to_full_hours{root=\"/srv/a\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE chartd_premature_evictions_total counter\n"));
    // Unknown figures are absent, not 0.
    assert!(
        !text.contains("chartd_effective_retention_hours{"),
        "{text}"
    );
    assert_eq!(text.matches("# HELP").count(), 5);
}
