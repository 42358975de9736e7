//! Expression parsing, validation errors naming their field, and fire
//! times in UTC and in zones with daylight saving time.

#![allow(clippy::unwrap_used)]

use super::*;

fn ms(s: &str) -> UnixMillis {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

fn iso(t: UnixMillis) -> String {
    Timestamp::from_millisecond(t).unwrap().to_string()
}

fn sched(expr: &str, tz: &str) -> Schedule {
    Schedule {
        expression: Expression::parse(expr).unwrap(),
        zone: zone(tz).unwrap(),
        anchor: ms("2026-01-01T00:00:00Z"),
        start: None,
        end: None,
    }
}

/// The next `n` fire times after `after`, as UTC RFC 3339 strings.
fn next_n(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    let s = sched(expr, tz);
    let mut t = ms(after);
    let mut out = Vec::new();
    for _ in 0..n {
        match s.next_after(t) {
            Some(x) => {
                out.push(iso(x));
                t = x;
            }
            None => break,
        }
    }
    out
}

#[test]
fn cron_fire_times_in_utc() {
    let cases: &[(&str, &str, &[&str])] = &[
        // EventBridge's examples.
        (
            "cron(0 10 * * ? *)",
            "2026-03-01T10:00:00Z",
            &["2026-03-02T10:00:00Z", "2026-03-03T10:00:00Z"],
        ),
        (
            "cron(15 12 * * ? *)",
            "2026-03-01T00:00:00Z",
            &["2026-03-01T12:15:00Z", "2026-03-02T12:15:00Z"],
        ),
        // 2026-03-06 is a Friday.
        (
            "cron(0 18 ? * MON-FRI *)",
            "2026-03-06T18:00:00Z",
            &["2026-03-09T18:00:00Z", "2026-03-10T18:00:00Z"],
        ),
        (
            "cron(0 8 1 * ? *)",
            "2026-03-01T08:00:00Z",
            &["2026-04-01T08:00:00Z", "2026-05-01T08:00:00Z"],
        ),
        (
            "cron(0/15 * * * ? *)",
            "2026-03-01T00:07:00Z",
            &[
                "2026-03-01T00:15:00Z",
                "2026-03-01T00:30:00Z",
                "2026-03-01T00:45:00Z",
                "2026-03-01T01:00:00Z",
            ],
        ),
        (
            "cron(*/20 1-2 * * ? *)",
            "2026-03-01T00:00:00Z",
            &[
                "2026-03-01T01:00:00Z",
                "2026-03-01T01:20:00Z",
                "2026-03-01T01:40:00Z",
                "2026-03-01T02:00:00Z",
            ],
        ),
        // Lists and names.
        (
            "cron(0 9 ? JAN,JUL MON *)",
            "2026-01-05T09:00:00Z",
            &["2026-01-12T09:00:00Z", "2026-01-19T09:00:00Z"],
        ),
        // L: last day of the month (leap year included).
        (
            "cron(0 0 L * ? *)",
            "2028-01-31T12:00:00Z",
            &["2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"],
        ),
        // 5L: the last Thursday; 2026-03-26 and 2026-04-30.
        (
            "cron(0 0 ? * 5L *)",
            "2026-03-01T00:00:00Z",
            &["2026-03-26T00:00:00Z", "2026-04-30T00:00:00Z"],
        ),
        // 2#1: the first Monday.
        (
            "cron(30 6 ? * 2#1 *)",
            "2026-03-01T00:00:00Z",
            &["2026-03-02T06:30:00Z", "2026-04-06T06:30:00Z"],
        ),
        // 15W: 2026-08-15 is a Saturday → Friday the 14th; 2026-11-15 a
        // Sunday → Monday the 16th.
        (
            "cron(0 12 15W AUG,NOV ? *)",
            "2026-01-01T00:00:00Z",
            &["2026-08-14T12:00:00Z", "2026-11-16T12:00:00Z"],
        ),
        // 1W on a Saturday (2026-08-01) stays in the month: Monday the 3rd.
        (
            "cron(0 12 1W 8 ? 2026)",
            "2026-01-01T00:00:00Z",
            &["2026-08-03T12:00:00Z"],
        ),
        // LW: 2026-05-31 is a Sunday → Friday the 29th.
        (
            "cron(0 12 LW 5 ? 2026)",
            "2026-01-01T00:00:00Z",
            &["2026-05-29T12:00:00Z"],
        ),
        // Years: a range ends the schedule.
        (
            "cron(0 0 1 1 ? 2027-2028)",
            "2026-06-01T00:00:00Z",
            &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
        ),
        // L alone in day-of-week is Saturday.
        (
            "cron(0 0 ? * L 2026)",
            "2026-03-01T00:00:00Z",
            &["2026-03-07T00:00:00Z"],
        ),
        // Feb 30 never happens but Feb 29 of a leap year does.
        (
            "cron(0 0 29 2 ? *)",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
    ];
    for (expr, after, want) in cases {
        assert_eq!(
            next_n(expr, "UTC", after, want.len()),
            *want,
            "{expr} after {after}"
        );
    }
}

#[test]
fn cron_errors_name_the_field() {
    let cases = [
        ("cron(0 10 * * *)", "cron"),
        ("cron(60 10 * * ? *)", "cron.minutes"),
        ("cron(0 24 * * ? *)", "cron.hours"),
        ("cron(0 10 32 * ? *)", "cron.day-of-month"),
        ("cron(0 10 * 13 ? *)", "cron.month"),
        ("cron(0 10 * FOO ? *)", "cron.month"),
        ("cron(0 10 ? * 8 *)", "cron.day-of-week"),
        ("cron(0 10 ? * MON#6 *)", "cron.day-of-week"),
        ("cron(0 10 * * MON *)", "cron.day-of-week"),
        ("cron(0 10 ? * ? *)", "cron.day-of-week"),
        ("cron(0 10 * * ? 1969)", "cron.year"),
        ("cron(0 10 * * ? 2300)", "cron.year"),
        ("cron(0/0 10 * * ? *)", "cron.minutes"),
        ("cron(30-10 10 * * ? *)", "cron.minutes"),
        ("cron(0 10 30 2 ? *)", "cron"),
        ("rate(0 minutes)", "rate.value"),
        ("rate(5 weeks)", "rate.unit"),
        ("rate(5)", "rate"),
        ("at(2026-13-01T00:00:00)", "at"),
        ("at(2026-01-01 00:00:00)", "at"),
        ("at(2026-01-01T00:00:00Z)", "at"),
        ("every(5 minutes)", "expression"),
    ];
    for (expr, field) in cases {
        let e = Expression::parse(expr).unwrap_err();
        assert_eq!(e.field, field, "{expr}: {e}");
    }
    assert_eq!(zone("Mars/Olympus").unwrap_err().field, "timezone");
}

#[test]
fn rate_fires_from_its_anchor_in_fixed_steps() {
    let mut s = sched("rate(5 minutes)", "UTC");
    s.anchor = ms("2026-03-01T10:00:30Z");
    // The anchor itself is the first fire.
    assert_eq!(
        iso(s.next_after(ms("2026-03-01T09:00:00Z")).unwrap()),
        "2026-03-01T10:00:30Z"
    );
    assert_eq!(
        iso(s.next_after(ms("2026-03-01T10:00:30Z")).unwrap()),
        "2026-03-01T10:05:30Z"
    );
    assert_eq!(
        iso(s.next_after(ms("2026-03-01T10:07:00Z")).unwrap()),
        "2026-03-01T10:10:30Z"
    );
    // A day is 24 hours even across a DST change (New York, 2026-03-08).
    let mut d = sched("rate(1 day)", "America/New_York");
    d.anchor = ms("2026-03-07T14:00:00Z");
    assert_eq!(
        iso(d.next_after(ms("2026-03-07T14:00:00Z")).unwrap()),
        "2026-03-08T14:00:00Z"
    );
    // End date: nothing after it.
    s.end = Some(ms("2026-03-01T10:12:00Z"));
    assert_eq!(s.next_after(ms("2026-03-01T10:10:30Z")), None);
}

#[test]
fn start_date_bounds_the_first_fire() {
    let mut s = sched("cron(0 * * * ? *)", "UTC");
    s.start = Some(ms("2026-03-01T05:00:00Z"));
    assert_eq!(
        iso(s.next_after(ms("2026-02-01T00:00:00Z")).unwrap()),
        "2026-03-01T05:00:00Z"
    );
}

#[test]
fn cron_follows_the_zone_offset() {
    // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    assert_eq!(
        next_n(
            "cron(0 9 * * ? *)",
            "Europe/Paris",
            "2026-03-28T12:00:00Z",
            2
        ),
        ["2026-03-29T07:00:00Z", "2026-03-30T07:00:00Z"]
    );
    assert_eq!(
        next_n(
            "cron(0 9 * * ? *)",
            "Europe/Paris",
            "2026-01-10T12:00:00Z",
            1
        ),
        ["2026-01-11T08:00:00Z"]
    );
    // A zone with a fixed offset.
    assert_eq!(
        next_n("cron(0 0 * * ? *)", "Etc/GMT+9", "2026-01-10T12:00:00Z", 1),
        ["2026-01-11T09:00:00Z"]
    );
}

#[test]
fn a_time_in_the_spring_gap_is_skipped() {
    // New York springs forward on 2026-03-08: 02:00 → 03:00 local.
    assert_eq!(
        next_n(
            "cron(30 2 * * ? *)",
            "America/New_York",
            "2026-03-06T12:00:00Z",
            3
        ),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            // 2026-03-08 02:30 does not exist: skipped.
            "2026-03-09T06:30:00Z", // 02:30 EDT
            "2026-03-10T06:30:00Z",
        ]
    );
    // Every 30 minutes through the gap: 01:30 EST, then 03:00 EDT.
    assert_eq!(
        next_n(
            "cron(0/30 * 8 3 ? 2026)",
            "America/New_York",
            "2026-03-08T06:00:00Z",
            2
        ),
        ["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z"]
    );
}

#[test]
fn a_time_in_the_fall_fold_fires_once() {
    // New York falls back on 2026-11-01: 02:00 EDT → 01:00 EST, so 01:30
    // happens twice; it fires at the first (05:30 UTC) only.
    assert_eq!(
        next_n(
            "cron(30 1 * * ? *)",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            3
        ),
        [
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z"
        ]
    );
    // Hourly through the fold: 01:00 EDT, then 02:00 EST (the second
    // 01:00 is not repeated).
    assert_eq!(
        next_n(
            "cron(0 * 1 11 ? 2026)",
            "America/New_York",
            "2026-11-01T04:30:00Z",
            2
        ),
        ["2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"]
    );
    // Asked from inside the second pass of the fold, nothing repeats.
    assert_eq!(
        next_n(
            "cron(45 1 1 11 ? 2026)",
            "America/New_York",
            "2026-11-01T06:10:00Z",
            1
        ),
        Vec::<String>::new()
    );
}

#[test]
fn at_fires_once_in_its_zone() {
    let s = sched("at(2026-07-04T12:00:00)", "America/New_York");
    assert!(s.expression.is_one_time());
    assert_eq!(
        iso(s.next_after(ms("2026-07-01T00:00:00Z")).unwrap()),
        "2026-07-04T16:00:00Z"
    );
    assert_eq!(s.next_after(ms("2026-07-04T16:00:00Z")), None);
    // In the spring gap it moves forward by the gap (02:30 → 03:30 EDT).
    let g = sched("at(2026-03-08T02:30:00)", "America/New_York");
    assert_eq!(
        iso(g.next_after(ms("2026-03-01T00:00:00Z")).unwrap()),
        "2026-03-08T07:30:00Z"
    );
    // In the fold: the first occurrence (EDT).
    let f = sched("at(2026-11-01T01:30:00)", "America/New_York");
    assert_eq!(
        iso(f.next_after(ms("2026-10-01T00:00:00Z")).unwrap()),
        "2026-11-01T05:30:00Z"
    );
}

#[test]
fn fires_between_lists_the_missed_fires() {
    let s = sched("cron(0 * * * ? *)", "UTC");
    let fires = s.fires_between(ms("2026-03-01T00:30:00Z"), ms("2026-03-01T03:00:00Z"), 10);
    assert_eq!(
        fires.into_iter().map(iso).collect::<Vec<_>>(),
        [
            "2026-03-01T01:00:00Z",
            "2026-03-01T02:00:00Z",
            "2026-03-01T03:00:00Z"
        ]
    );
    assert_eq!(
        s.fires_between(ms("2026-03-01T00:30:00Z"), ms("2026-03-02T00:00:00Z"), 2)
            .len(),
        2
    );
}
