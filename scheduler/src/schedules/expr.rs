//! Schedule expressions, as EventBridge Scheduler and Application Auto
//! Scaling's scheduled actions write them: `at(yyyy-mm-ddThh:mm:ss)`,
//! `rate(N minutes|hours|days)` and the 6-field
//! `cron(minutes hours day-of-month month day-of-week year)`, evaluated in
//! an IANA time zone (UTC by default). Pure: [`Expression::parse`] and
//! [`Schedule::next_after`] read no clock.
//!
//! Cron is EventBridge's: `,` lists, `-` ranges, `*`, `/` increments
//! (`0/15`, `*/5`, `10-40/10`), `?` in exactly one of day-of-month and
//! day-of-week, `L` (last day of the month; `5L` the last Thursday), `W`
//! (`15W` the weekday nearest the 15th within the month, `LW` the last
//! weekday), `#` (`2#1` the first Monday), month names `JAN`–`DEC`,
//! day names `SUN`–`SAT` (1 = Sunday), years 1970–2199.
//!
//! Time zones and daylight saving time, as EventBridge Scheduler documents
//! them: a cron time that does not exist on a spring-forward day (a gap) is
//! skipped; a cron time that happens twice on a fall-back day (a fold)
//! fires once, at its first occurrence. `rate` counts fixed durations (a
//! day is 24 hours whatever the clock does) from its anchor (the start
//! date, else the creation time; the first fire is the anchor itself).
//! `at` names a wall-clock time in the zone: in a gap it moves forward by
//! the gap's length, in a fold it is the first occurrence.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use crate::records::UnixMillis;

/// Years a cron expression may name.
const FIRST_YEAR: i16 = 1970;
const LAST_YEAR: i16 = 2199;

/// An expression that does not parse, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ExprError {
    /// `expression`, `cron.minutes`, `cron.day-of-week`, `timezone`, …
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ExprError {
    ExprError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// One time, at this wall-clock time in the schedule's zone.
    At(DateTime),
    /// Every `millis` from the anchor.
    Rate {
        millis: i64,
    },
    Cron(Box<Cron>),
}

/// A 6-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    months: u16,
    /// Bit `y - FIRST_YEAR`.
    years: [u64; 4],
    days: DaySpec,
}

/// Which days of a month match: by day of month or by day of week (the
/// other field is `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DaySpec {
    /// Day of month: bits 1–31, `L`, `LW`, and `nW` days.
    Month {
        days: u32,
        last: bool,
        last_weekday: bool,
        nearest_weekday: Vec<u8>,
    },
    /// Day of week: bits 1–7 (1 = Sunday), `nL` (last such day), `d#n`.
    Week {
        days: u8,
        last: u8,
        nth: Vec<(u8, u8)>,
    },
}

impl Expression {
    /// Parses `at(…)`, `rate(…)` or `cron(…)`.
    pub fn parse(s: &str) -> Result<Expression, ExprError> {
        let s = s.trim();
        let inner = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(body) = inner("at(") {
            return parse_at(body);
        }
        if let Some(body) = inner("rate(") {
            return parse_rate(body);
        }
        if let Some(body) = inner("cron(") {
            return Ok(Expression::Cron(Box::new(Cron::parse(body)?)));
        }
        Err(err(
            "expression",
            format!(
                "{s:?} is not a schedule expression: use at(yyyy-mm-ddThh:mm:ss), \
                 rate(value unit) or cron(minutes hours day-of-month month day-of-week year)"
            ),
        ))
    }

    /// Whether it fires once only.
    pub fn is_one_time(&self) -> bool {
        matches!(self, Expression::At(_))
    }
}

fn parse_at(body: &str) -> Result<Expression, ExprError> {
    let bad = || {
        err(
            "at",
            format!("{body:?} is not yyyy-mm-ddThh:mm:ss (for example 2027-01-31T18:30:00)"),
        )
    };
    // Exactly the form EventBridge takes: no offset, no fraction.
    let b = body.as_bytes();
    if b.len() != 19 || b[10] != b'T' {
        return Err(bad());
    }
    let dt: DateTime = body.parse().map_err(|_| bad())?;
    Ok(Expression::At(dt))
}

fn parse_rate(body: &str) -> Result<Expression, ExprError> {
    let mut parts = body.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(
            "rate",
            format!("{body:?} is not \"value unit\" (for example rate(5 minutes))"),
        ));
    };
    let n: i64 = value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| err("rate.value", format!("{value:?} is not a positive integer")))?;
    let unit_ms: i64 = match unit {
        "minute" | "minutes" => 60_000,
        "hour" | "hours" => 3_600_000,
        "day" | "days" => 86_400_000,
        other => {
            return Err(err(
                "rate.unit",
                format!("{other:?} is not minute(s), hour(s) or day(s)"),
            ))
        }
    };
    // Up to about a thousand years; more is surely a typo.
    let millis = n
        .checked_mul(unit_ms)
        .filter(|m| *m <= 366 * 1000 * 86_400_000)
        .ok_or_else(|| err("rate.value", format!("{value} {unit} is too long")))?;
    Ok(Expression::Rate { millis })
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One numeric field's range and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Field {
    fn value(&self, s: &str) -> Result<u32, ExprError> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            return Ok(self.min + i as u32);
        }
        let v: u32 = s.parse().map_err(|_| {
            err(
                self.name,
                format!("{s:?} is not a number{}", self.names_hint()),
            )
        })?;
        if v < self.min || v > self.max {
            return Err(err(
                self.name,
                format!("{v} is not within {}–{}", self.min, self.max),
            ));
        }
        Ok(v)
    }

    fn names_hint(&self) -> String {
        match (self.names.first(), self.names.last()) {
            (Some(a), Some(b)) => format!(" or a name {a}–{b}"),
            _ => String::new(),
        }
    }

    /// `*`, `a`, `a-b`, `*/n`, `a/n`, `a-b/n`, comma-separated: the set of
    /// values as bits.
    fn set(&self, s: &str) -> Result<Vec<u32>, ExprError> {
        let mut out = Vec::new();
        for item in s.split(',') {
            if item.is_empty() {
                return Err(err(self.name, format!("{s:?} has an empty list item")));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, st)) => {
                    let step: u32 = st.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        err(
                            self.name,
                            format!("{st:?} in {item:?} is not a positive increment"),
                        )
                    })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(err(
                        self.name,
                        format!("the range {range:?} runs backwards"),
                    ));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `a/n`: from a to the end, as in EventBridge's `0/15`.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                out.push(v);
                v += step;
            }
        }
        Ok(out)
    }
}

const MINUTES: Field = Field {
    name: "cron.minutes",
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Field = Field {
    name: "cron.hours",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "cron.day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "cron.month",
    min: 1,
    max: 12,
    names: &MONTHS,
};
const DAY_OF_WEEK: Field = Field {
    name: "cron.day-of-week",
    min: 1,
    max: 7,
    names: &DAYS,
};
const YEAR: Field = Field {
    name: "cron.year",
    min: FIRST_YEAR as u32,
    max: LAST_YEAR as u32,
    names: &[],
};

impl Cron {
    /// Parses the six fields inside `cron(…)`.
    pub fn parse(body: &str) -> Result<Cron, ExprError> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = fields[..] else {
            return Err(err(
                "cron",
                format!(
                    "{} fields; cron takes 6: minutes hours day-of-month month day-of-week year",
                    fields.len()
                ),
            ));
        };
        let bits64 = |v: Vec<u32>| v.into_iter().fold(0u64, |a, x| a | 1 << x);
        let minutes = bits64(MINUTES.set(min)?);
        let hours = bits64(HOURS.set(hour)?) as u32;
        let months = bits64(MONTH.set(month)?) as u16;
        let mut years = [0u64; 4];
        for y in YEAR.set(year)? {
            let i = (y - FIRST_YEAR as u32) as usize;
            years[i / 64] |= 1 << (i % 64);
        }
        let days = match (dom, dow) {
            ("?", "?") => {
                return Err(err(
                    "cron.day-of-week",
                    "day-of-month and day-of-week cannot both be ?",
                ))
            }
            (dom, "?") => parse_dom(dom)?,
            ("?", dow) => parse_dow(dow)?,
            _ => {
                return Err(err(
                    "cron.day-of-week",
                    "one of day-of-month and day-of-week must be ? (EventBridge cannot \
                     take both)",
                ))
            }
        };
        let cron = Cron {
            minutes,
            hours,
            months,
            years,
            days,
        };
        if cron.next_date(Date::constant(FIRST_YEAR, 1, 1)).is_none() {
            return Err(err("cron", "matches no date between 1970 and 2199"));
        }
        Ok(cron)
    }

    fn year_matches(&self, y: i16) -> bool {
        if !(FIRST_YEAR..=LAST_YEAR).contains(&y) {
            return false;
        }
        let i = (y - FIRST_YEAR) as usize;
        self.years[i / 64] & (1 << (i % 64)) != 0
    }

    fn day_matches(&self, d: Date) -> bool {
        let dim = d.days_in_month();
        match &self.days {
            DaySpec::Month {
                days,
                last,
                last_weekday,
                nearest_weekday,
            } => {
                (days & (1 << d.day()) != 0)
                    || (*last && d.day() == dim)
                    || (*last_weekday && d == last_weekday_of(d))
                    || nearest_weekday
                        .iter()
                        .any(|n| (*n as i8) <= dim && nearest_weekday_of(d, *n as i8) == d)
            }
            DaySpec::Week { days, last, nth } => {
                let wd = d.weekday().to_sunday_one_offset() as u8;
                (days & (1 << wd) != 0)
                    || (last & (1 << wd) != 0 && d.day() + 7 > dim)
                    || nth
                        .iter()
                        .any(|(w, n)| *w == wd && (d.day() as u8 - 1) / 7 + 1 == *n)
            }
        }
    }

    /// The first date on or after `from` that matches, if any before 2200.
    fn next_date(&self, from: Date) -> Option<Date> {
        let mut d = from;
        loop {
            if d.year() > LAST_YEAR {
                return None;
            }
            if !self.year_matches(d.year()) {
                d = Date::new(d.year() + 1, 1, 1).ok()?;
                continue;
            }
            if self.months & (1 << d.month()) == 0 {
                d = d.last_of_month().tomorrow().ok()?;
                continue;
            }
            if self.day_matches(d) {
                return Some(d);
            }
            d = d.tomorrow().ok()?;
        }
    }

    /// The first matching wall-clock minute at or after `from`.
    fn next_local(&self, from: DateTime) -> Option<DateTime> {
        let mut date = from.date();
        let mut start = Some(from.time());
        loop {
            date = self.next_date(date)?;
            let floor = start.take().filter(|_| date == from.date());
            for h in 0..24i8 {
                if self.hours & (1 << h) == 0 {
                    continue;
                }
                for m in 0..60i8 {
                    if self.minutes & (1 << m) == 0 {
                        continue;
                    }
                    let t = Time::constant(h, m, 0, 0);
                    if floor.is_some_and(|f| t < f) {
                        continue;
                    }
                    return Some(DateTime::from_parts(date, t));
                }
            }
            date = date.tomorrow().ok()?;
        }
    }
}

fn last_weekday_of(d: Date) -> Date {
    let mut l = d.last_of_month();
    while is_weekend(l) {
        l = l.yesterday().unwrap_or(l);
    }
    l
}

fn is_weekend(d: Date) -> bool {
    matches!(d.weekday().to_sunday_one_offset(), 1 | 7)
}

/// The weekday nearest day `n` of `d`'s month, not leaving the month
/// (Quartz's and EventBridge's `nW`).
fn nearest_weekday_of(d: Date, n: i8) -> Date {
    let Ok(target) = Date::new(d.year(), d.month(), n) else {
        return d.last_of_month().tomorrow().unwrap_or(d);
    };
    match target.weekday().to_sunday_one_offset() {
        // Saturday: Friday, or Monday when the 1st is a Saturday.
        7 if n == 1 => Date::new(d.year(), d.month(), 3).unwrap_or(target),
        7 => target.yesterday().unwrap_or(target),
        // Sunday: Monday, or Friday when Monday is in the next month.
        1 if n == target.days_in_month() => Date::new(d.year(), d.month(), n - 2).unwrap_or(target),
        1 => target.tomorrow().unwrap_or(target),
        _ => target,
    }
}

fn parse_dom(s: &str) -> Result<DaySpec, ExprError> {
    let mut days = 0u32;
    let mut last = false;
    let mut last_weekday = false;
    let mut nearest_weekday = Vec::new();
    for item in s.split(',') {
        match item.to_ascii_uppercase().as_str() {
            "L" => last = true,
            "LW" => last_weekday = true,
            u if u.ends_with('W') && u.len() > 1 => {
                let n = DAY_OF_MONTH.value(&u[..u.len() - 1])?;
                nearest_weekday.push(n as u8);
            }
            _ => {
                for v in DAY_OF_MONTH.set(item)? {
                    days |= 1 << v;
                }
            }
        }
    }
    Ok(DaySpec::Month {
        days,
        last,
        last_weekday,
        nearest_weekday,
    })
}

fn parse_dow(s: &str) -> Result<DaySpec, ExprError> {
    let mut days = 0u8;
    let mut last = 0u8;
    let mut nth = Vec::new();
    for item in s.split(',') {
        let u = item.to_ascii_uppercase();
        if u == "L" {
            // `L` alone: the last day of the week, Saturday.
            days |= 1 << 7;
        } else if let Some(d) = u.strip_suffix('L') {
            last |= 1 << DAY_OF_WEEK.value(d)?;
        } else if let Some((d, n)) = u.split_once('#') {
            let d = DAY_OF_WEEK.value(d)? as u8;
            let n: u8 = n
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| {
                    err(
                        "cron.day-of-week",
                        format!("{item:?}: the week after # must be 1–5"),
                    )
                })?;
            nth.push((d, n));
        } else {
            for v in DAY_OF_WEEK.set(item)? {
                days |= 1 << v;
            }
        }
    }
    Ok(DaySpec::Week { days, last, nth })
}

/// An expression in its time zone, with the window it may fire in.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: Expression,
    pub zone: TimeZone,
    /// `rate`'s anchor: the start date, else the creation time.
    pub anchor: UnixMillis,
    pub start: Option<UnixMillis>,
    pub end: Option<UnixMillis>,
}

/// An IANA time zone name (empty: UTC).
pub fn zone(name: &str) -> Result<TimeZone, ExprError> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| {
        err(
            "timezone",
            format!("{name:?} is not an IANA time zone known to this host: {e}"),
        )
    })
}

fn ts(ms: UnixMillis) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

impl Schedule {
    /// The first fire time strictly after `after`, within the start and
    /// end dates; `None` when there is none.
    pub fn next_after(&self, after: UnixMillis) -> Option<UnixMillis> {
        let after = match self.start {
            // The start date itself may fire.
            Some(s) if s > after => s - 1,
            _ => after,
        };
        let next = match &self.expression {
            Expression::At(dt) => {
                let t = self.zone.to_ambiguous_timestamp(*dt).compatible().ok()?;
                Some(t.as_millisecond()).filter(|t| *t > after)
            }
            Expression::Rate { millis } => {
                let k = if after < self.anchor {
                    0
                } else {
                    (after - self.anchor) / millis + 1
                };
                self.anchor.checked_add(k.checked_mul(*millis)?)
            }
            Expression::Cron(c) => self.next_cron(c, after),
        }?;
        match self.end {
            Some(e) if next > e => None,
            _ => Some(next),
        }
    }

    fn next_cron(&self, c: &Cron, after: UnixMillis) -> Option<UnixMillis> {
        let local = ts(after)?.to_zoned(self.zone.clone()).datetime();
        let mut from = DateTime::from_parts(
            local.date(),
            Time::constant(local.hour(), local.minute(), 0, 0),
        );
        // Enough for any gap; a fold's repeat is skipped by the `> after` test.
        for _ in 0..100_000 {
            let dt = c.next_local(from)?;
            let at = match self.zone.to_ambiguous_timestamp(dt).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
                // Spring forward: the time does not exist; skipped.
                AmbiguousOffset::Gap { .. } => None,
                // Fall back: the first occurrence only.
                AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
            };
            if let Some(t) = at.map(|t| t.as_millisecond()).filter(|t| *t > after) {
                return Some(t);
            }
            from = dt.checked_add(jiff::SignedDuration::from_mins(1)).ok()?;
        }
        None
    }

    /// The fire times in `(after, until]`, at most `limit` of them, oldest
    /// first.
    pub fn fires_between(
        &self,
        after: UnixMillis,
        until: UnixMillis,
        limit: usize,
    ) -> Vec<UnixMillis> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < limit {
            match self.next_after(t) {
                Some(n) if n <= until => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
