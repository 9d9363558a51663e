//! Docker log timestamps: RFC 3339 parsing and formatting as UTC nanoseconds since the epoch.
//!
//! With `timestamps=1` Docker prefixes every log frame with an RFC3339Nano UTC time and one
//! space (`2026-11-26T17:55:29.376306023Z hello\n`); trailing fraction zeros are trimmed, so it
//! has 0 to 9 digits (more are rejected). json-file logs use the same format and may carry an
//! offset (`+00:00`, `-07:00`), converted to UTC here; lowercase `t`/`z` are accepted too.
//! A [`Timestamp`] is an `i64` of nanoseconds, so it covers `1677-09-21T00:12:43.145224192Z
//! ..= 2262-04-11T23:47:16.854775807Z`; times before 1970 are negative, and valid times outside
//! that range (e.g. year 9999) fail with `OutOfRange { field: "timestamp" }`. A leap second
//! (`:60`) is clamped to `:59`, keeping its fraction. Nothing here panics on any input.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Why bytes are not a timestamp; `at` is a byte offset into the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimestampError {
    /// The input ended before the timestamp was complete.
    TooShort,
    /// A non-digit where a digit belongs.
    BadDigit { at: usize },
    /// Wrong punctuation (`-`, `T`, `:`, `.`, `Z` or offset sign) at this position.
    BadSeparator { at: usize },
    /// A field is out of range, or the time does not fit in `i64` nanoseconds.
    OutOfRange { field: &'static str },
    /// `split_prefix`: the timestamp is not followed by a space.
    MissingSpace,
    /// `parse`: bytes follow a complete timestamp.
    TrailingBytes { at: usize },
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => f.write_str("timestamp is truncated"),
            Self::BadDigit { at } => write!(f, "timestamp: expected a digit at byte {at}"),
            Self::BadSeparator { at } => write!(f, "timestamp: unexpected byte at {at}"),
            Self::OutOfRange { field } => write!(f, "timestamp: {field} out of range"),
            Self::MissingSpace => f.write_str("timestamp is not followed by a space"),
            Self::TrailingBytes { at } => write!(f, "timestamp: trailing bytes at byte {at}"),
        }
    }
}

impl std::error::Error for TimestampError {}

type E = TimestampError;

/// Checks `s[at..]` against `template`: `d` is any ASCII digit, `T` is `T` or `t`.
fn check(s: &[u8], at: usize, template: &[u8]) -> Result<(), TimestampError> {
    for (i, &t) in template.iter().enumerate() {
        let b = *s.get(at + i).ok_or(E::TooShort)?;
        match t {
            b'd' if !b.is_ascii_digit() => return Err(E::BadDigit { at: at + i }),
            b'd' => {}
            _ if b == t || (t == b'T' && b == b't') => {}
            _ => return Err(E::BadSeparator { at: at + i }),
        }
    }
    Ok(())
}

/// Value of the (already checked) digits `s[at..at + n]`, which must lie in `ok`.
fn num(s: &[u8], at: usize, n: usize, ok: RangeInclusive<u32>, f: &'static str) -> Result<u32, E> {
    let digits = s.get(at..at + n).into_iter().flatten();
    let v = digits.fold(0, |v, &b| v * 10 + u32::from(b.wrapping_sub(b'0')));
    if ok.contains(&v) {
        Ok(v)
    } else {
        Err(E::OutOfRange { field: f })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * i64::from(if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Inverse of [`days_from_civil`] (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses one timestamp at the start of `s`; returns it and the number of bytes consumed.
fn parse_at(s: &[u8]) -> Result<(Timestamp, usize), TimestampError> {
    use TimestampError::*;
    check(s, 0, b"dddd-dd-ddTdd:dd:dd")?;
    let (mut pos, mut frac, mut scale) = (19, 0i64, NANOS_PER_SEC);
    if s.get(19) == Some(&b'.') {
        check(s, 20, b"d")?;
        pos = 20;
        while let Some(&b) = s.get(pos).filter(|b| b.is_ascii_digit()) {
            if scale == 1 {
                return Err(OutOfRange { field: "fraction" });
            }
            scale /= 10;
            frac += i64::from(b - b'0') * scale;
            pos += 1;
        }
    }
    let sign = match s.get(pos) {
        Some(b'Z' | b'z') => 0,
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err(BadSeparator { at: pos }),
        None => return Err(TooShort),
    };
    let mut offset = 0;
    if sign != 0 {
        check(s, pos + 1, b"dd:dd")?;
        let oh = num(s, pos + 1, 2, 0..=23, "offset hour")?;
        offset = sign * i64::from(oh * 3600 + num(s, pos + 4, 2, 0..=59, "offset minute")? * 60);
        pos += 5;
    }
    let year = num(s, 0, 4, 0..=9999, "year")?;
    let month = num(s, 5, 2, 1..=12, "month")?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let mdays = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1];
    let day = num(s, 8, 2, 1..=mdays + u32::from(leap && month == 2), "day")?;
    let hms = num(s, 11, 2, 0..=23, "hour")? * 3600
        + num(s, 14, 2, 0..=59, "minute")? * 60
        + num(s, 17, 2, 0..=60, "second")?.min(59);
    let secs = days_from_civil(i64::from(year), month, day) * 86_400 + i64::from(hms) - offset;
    let nanos = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(frac);
    match i64::try_from(nanos) {
        Ok(n) => Ok((Timestamp(n), pos + 1)),
        Err(_) => Err(OutOfRange { field: "timestamp" }),
    }
}

/// Writes `v` into `buf` as `buf.len()` zero-padded decimal digits.
fn put_digits(buf: &mut [u8], mut v: u64) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl Timestamp {
    pub const fn from_nanos(n: i64) -> Self {
        Timestamp(n)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// The current system time (saturating at the ends of the representable range).
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n)),
        }
    }

    /// Parses `s`, which must be exactly one timestamp.
    pub fn parse(s: &[u8]) -> Result<Timestamp, TimestampError> {
        match parse_at(s)? {
            (ts, end) if end == s.len() => Ok(ts),
            (_, end) => Err(E::TrailingBytes { at: end }),
        }
    }

    /// Splits `"<ts> rest"` into the timestamp and `rest`; the one space is consumed.
    pub fn split_prefix(line: &[u8]) -> Result<(Timestamp, &[u8]), TimestampError> {
        let (ts, end) = parse_at(line)?;
        match line.get(end) {
            Some(b' ') => Ok((ts, &line[end + 1..])),
            _ => Err(E::MissingSpace),
        }
    }

    /// Floored whole seconds and the nanoseconds (`0..1e9`) past them.
    fn split(self) -> (i64, i64) {
        let n = self.0;
        (n.div_euclid(NANOS_PER_SEC), n.rem_euclid(NANOS_PER_SEC))
    }

    /// UTC calendar date and hour: `(year, month 1..=12, day 1..=31, hour 0..=23)`.
    pub fn civil(self) -> (i64, u32, u32, u32) {
        let (secs, _) = self.split();
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        (y, m, d, (secs.rem_euclid(86_400) / 3600) as u32)
    }

    /// The 30 ASCII bytes `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (the year is 1677..=2262).
    pub fn rfc3339_bytes(self) -> [u8; 30] {
        let (secs, nanos) = self.split();
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u64;
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        put_digits(&mut b[0..4], y as u64);
        put_digits(&mut b[5..7], u64::from(m));
        put_digits(&mut b[8..10], u64::from(d));
        put_digits(&mut b[11..13], sod / 3600);
        put_digits(&mut b[14..16], sod / 60 % 60);
        put_digits(&mut b[17..19], sod % 60);
        put_digits(&mut b[20..29], nanos as u64);
        b
    }

    /// Appends the RFC 3339 form with exactly 9 fraction digits and `Z`.
    pub fn write_rfc3339(self, out: &mut String) {
        out.extend(self.rfc3339_bytes().iter().map(|&b| char::from(b)));
    }

    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(30);
        self.write_rfc3339(&mut s);
        s
    }

    /// Docker's `since` value `<secs>.<9-digit nanos>`; seconds are floored, as Go's `time.Unix`.
    pub fn to_since_param(self) -> String {
        let (secs, nanos) = self.split();
        format!("{secs}.{nanos:09}")
    }

    pub fn as_secs_f64(self) -> f64 {
        let (secs, nanos) = self.split();
        secs as f64 + nanos as f64 / 1e9
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.rfc3339_bytes()).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimestampError::*;

    fn p(s: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(s.as_bytes())
    }
    fn lcg(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1); // odd: full period
        *state >> 29
    }
    fn table(t: &str) -> impl Iterator<Item = Vec<&str>> {
        t.lines()
            .skip(1)
            .map(|l| l.split(" => ").map(str::trim).collect())
    }

    /// `input => canonical UTC form [=> since param]`; canonical forms must parse to themselves.
    const OK: &str = "
        2026-11-26T17:55:29Z => 2026-11-26T17:55:29.000000000Z
        2026-11-26T17:55:29.3Z => 2026-11-26T17:55:29.300000000Z
        2026-11-26T17:55:29.37Z => 2026-11-26T17:55:29.370000000Z
        2026-11-26T17:55:29.376Z => 2026-11-26T17:55:29.376000000Z
        2026-11-26T17:55:29.3763Z => 2026-11-26T17:55:29.376300000Z
        2026-11-26T17:55:29.37630Z => 2026-11-26T17:55:29.376300000Z
        2026-11-26T17:55:29.376306Z => 2026-11-26T17:55:29.376306000Z
        2026-11-26T17:55:29.3763060Z => 2026-11-26T17:55:29.376306000Z
        2026-11-26T17:55:29.37630602Z => 2026-11-26T17:55:29.376306020Z
        2026-11-26T17:55:29.376306023Z => 2026-11-26T17:55:29.376306023Z => 1795715729.376306023
        2026-11-26T17:55:29.000000001Z => 2026-11-26T17:55:29.000000001Z => 1795715729.000000001
        2026-11-26t17:55:29.5z => 2026-11-26T17:55:29.500000000Z
        2026-11-26T10:55:29.5-07:00 => 2026-11-26T17:55:29.500000000Z
        2026-11-26T17:55:29.5+00:00 => 2026-11-26T17:55:29.500000000Z
        2026-11-26T17:55:29.5-00:00 => 2026-11-26T17:55:29.500000000Z
        2026-11-27T03:25:29+09:30 => 2026-11-26T17:55:29.000000000Z
        2026-01-01T02:00:00+05:30 => 2025-12-31T20:30:00.000000000Z
        2024-02-28T23:00:00-23:59 => 2024-02-29T22:59:00.000000000Z
        2024-02-29T12:34:56.789012345Z => 2024-02-29T12:34:56.789012345Z
        2000-02-29T00:00:00Z => 2000-02-29T00:00:00.000000000Z
        2016-12-31T23:59:60.5Z => 2016-12-31T23:59:59.500000000Z
        1970-01-01T00:00:00Z => 1970-01-01T00:00:00.000000000Z => 0.000000000
        2038-01-19T03:14:08Z => 2038-01-19T03:14:08.000000000Z => 2147483648.000000000
        1969-12-31T23:59:59.999999999Z => 1969-12-31T23:59:59.999999999Z => -1.999999999
        1900-01-01T00:00:00Z => 1900-01-01T00:00:00.000000000Z => -2208988800.000000000
        2262-04-11T23:47:16.854775807Z => 2262-04-11T23:47:16.854775807Z => 9223372036.854775807
        2262-04-12T06:47:16.854775807+07:00 => 2262-04-11T23:47:16.854775807Z
        1677-09-21T00:12:43.145224192Z => 1677-09-21T00:12:43.145224192Z => -9223372037.145224192";

    /// `input => Debug of the parse error`.
    const ERR: &str = r#"
        9999-12-31T23:59:59.999999999Z => OutOfRange { field: "timestamp" }
        2262-04-11T23:47:16.854775808Z => OutOfRange { field: "timestamp" }
        1677-09-21T00:12:43.145224191Z => OutOfRange { field: "timestamp" }
        0000-01-01T00:00:00Z => OutOfRange { field: "timestamp" }
        2026-11-26T17:55:29.3763060231Z => OutOfRange { field: "fraction" }
        2023-02-29T00:00:00Z => OutOfRange { field: "day" }
        2100-02-29T00:00:00Z => OutOfRange { field: "day" }
        2024-04-31T00:00:00Z => OutOfRange { field: "day" }
        2024-01-00T00:00:00Z => OutOfRange { field: "day" }
        2024-00-01T00:00:00Z => OutOfRange { field: "month" }
        2024-13-01T00:00:00Z => OutOfRange { field: "month" }
        2024-01-01T24:00:00Z => OutOfRange { field: "hour" }
        2024-01-01T00:60:00Z => OutOfRange { field: "minute" }
        2024-01-01T00:00:61Z => OutOfRange { field: "second" }
        2024-01-01T00:00:00+24:00 => OutOfRange { field: "offset hour" }
        2024-01-01T00:00:00-01:60 => OutOfRange { field: "offset minute" }
        2024-01-01T00:00:00+0100 => BadSeparator { at: 22 }
        2024-01-01T00:00:00+01:0x => BadDigit { at: 24 }
        2026/11-26T17:55:29Z => BadSeparator { at: 4 }
        2026-1x-26T17:55:29Z => BadDigit { at: 6 }
        2026-11-26_17:55:29Z => BadSeparator { at: 10 }
        2026-11-26T17-55:29Z => BadSeparator { at: 13 }
        2026-11-26T17:55:29.Z => BadDigit { at: 20 }
        2026-11-26T17:55:29.3x => BadSeparator { at: 21 }
        2026-11-26T17:55:29x => BadSeparator { at: 19 }
        2026-11-26T17:55:29ZZ => TrailingBytes { at: 20 }
        -026-11-26T17:55:29Z => BadDigit { at: 0 }
        ２026-11-26T17:55:29Z => BadDigit { at: 0 }
        garbage => BadDigit { at: 0 }
        2026 => TooShort"#;

    #[test]
    fn parse_table_and_round_trip() {
        for row in table(OK) {
            let ts = p(row[0]).unwrap();
            assert_eq!(ts.to_rfc3339(), row[1]);
            assert_eq!(ts.to_string(), row[1]);
            assert_eq!(p(row[1]), Ok(ts));
            if let Some(since) = row.get(2) {
                assert_eq!(ts.to_since_param(), *since);
            }
        }
    }

    #[test]
    fn error_table() {
        for row in table(ERR) {
            assert_eq!(format!("{:?}", p(row[0])), format!("Err({})", row[1]));
        }
        assert_eq!(p("2026-11-26T17:55:29Z "), Err(TrailingBytes { at: 20 }));
        assert_eq!(p(""), Err(TooShort));
    }

    #[test]
    fn round_trip_random_nanos_and_every_day() {
        let mut st = 42;
        for i in 0..20_000 {
            let n = (lcg(&mut st) << 40 ^ lcg(&mut st) << 11 ^ lcg(&mut st)) as i64;
            let n = [n, n >> 8, n >> 24, i64::MIN + i, i64::MAX - i][i as usize % 5];
            assert_eq!(p(&Timestamp::from_nanos(n).to_rfc3339()), Ok(Timestamp(n)));
        }
        for days in -106_752..=106_751 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn truncated_at_every_length() {
        for s in table(OK).map(|row| row[0]) {
            for i in 0..s.len() {
                let b = &s.as_bytes()[..i];
                assert_eq!(Timestamp::parse(b), Err(TooShort), "{s} {i}");
                assert_eq!(Timestamp::split_prefix(b), Err(TooShort));
            }
        }
    }

    #[test]
    fn split_prefix_cases() {
        let sp = |s: &'static str| Timestamp::split_prefix(s.as_bytes()).map(|(t, r)| (t.0, r));
        let ts = 1_795_715_729_376_306_023;
        assert_eq!(
            sp("2026-11-26T17:55:29.376306023Z hi\n"),
            Ok((ts, &b"hi\n"[..]))
        );
        assert_eq!(sp("2026-11-26T17:55:29.376306023Z "), Ok((ts, &b""[..])));
        assert_eq!(
            sp("2026-11-26T17:55:29.376306023Z  x"),
            Ok((ts, &b" x"[..]))
        );
        assert_eq!(
            sp("2026-11-26T10:55:29.376306023-07:00 a"),
            Ok((ts, &b"a"[..]))
        );
        assert_eq!(sp("2026-11-26T17:55:29.376306023Z"), Err(MissingSpace));
        assert_eq!(sp("2026-11-26T17:55:29.376306023Zhi"), Err(MissingSpace));
        assert_eq!(sp("2026-11-26T17:55:29.376306023Z\thi"), Err(MissingSpace));
        assert_eq!(sp("2026-11-26T17:55:29 hi"), Err(BadSeparator { at: 19 }));
        assert_eq!(sp("hello"), Err(BadDigit { at: 0 }));
    }

    #[test]
    fn since_param_and_secs_f64() {
        let ts = Timestamp(1_795_715_729_376_306_023);
        assert_eq!(ts.to_since_param(), "1795715729.376306023");
        assert_eq!(Timestamp(7).to_since_param(), "0.000000007");
        assert_eq!(Timestamp(-500_000_000).to_since_param(), "-1.500000000");
        assert_eq!(Timestamp(-1_500_000_000).as_secs_f64(), -1.5);
        assert!((ts.as_secs_f64() - 1_795_715_729.376_306).abs() < 1e-5);
    }

    #[test]
    fn fuzz_never_panics() {
        let (mut st, valid) = (7, b"2026-11-26T10:55:29.376306023-07:00 hello");
        let alphabet = b"0123456789-T:.Z+ tz9x\xff";
        for i in 0..100_000 {
            let len = lcg(&mut st) as usize % 45;
            let mut buf = valid[..len.min(valid.len()) * (i % 2)].to_vec();
            for _ in 0..lcg(&mut st) % 4 {
                let b = alphabet[lcg(&mut st) as usize % alphabet.len()];
                match lcg(&mut st) as usize % (buf.len() + 1) {
                    at if at < buf.len() && i % 3 == 0 => buf[at] = b,
                    _ => buf.push(b),
                }
            }
            if let Ok(ts) = Timestamp::parse(&buf) {
                assert_eq!(Timestamp::parse(ts.to_rfc3339().as_bytes()), Ok(ts));
            }
            let _ = Timestamp::split_prefix(&buf);
        }
    }

    #[test]
    fn misc() {
        assert!(Timestamp::now() > Timestamp(1_704_067_200 * NANOS_PER_SEC));
        assert!(Timestamp::from_nanos(-1) < Timestamp::default());
        let mut out = String::from("x ");
        Timestamp::from_nanos(-500_000_000).write_rfc3339(&mut out);
        assert_eq!(out, "x 1969-12-31T23:59:59.500000000Z");
        let e: Box<dyn std::error::Error> = Box::new(OutOfRange { field: "day" });
        assert_eq!(e.to_string(), "timestamp: day out of range");
        for e in [TooShort, MissingSpace, BadDigit { at: 3 }] {
            assert!(e.to_string().starts_with("timestamp"));
        }
    }
}
