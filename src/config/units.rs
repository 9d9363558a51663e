//! Human-readable units of the config file: durations (`"500ms"`, `"10s"`, `"1.5m"`,
//! read and written by `humantime`) and byte sizes (`"64KiB"`, `"100MiB"`, `"10MB"`, or
//! a bare byte count, parsed exactly without floating point). Both print back in a short
//! form that parses to the same value, and (de)serialize as strings so `--check-config`
//! output round-trips.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Why a config value could not be parsed; the caller adds the key and origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidValue(pub String);

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidValue {}

/// A duration as `humantime` reads and writes it: a number (decimals allowed) and a unit
/// (`ns`, `us`, `ms`, `s`, `m`, `h`, `d`...), or several summed (`"1m 30s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        // humantime panics on a total of exactly u64::MAX seconds (a missed carry). That
        // needs a number of 12 digits or more, or over five parts: refused first, as they
        // are far past the bound below anyway.
        let digits = text
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max();
        if digits > Some(11) || text.len() > 64 {
            return Err(InvalidValue(format!(
                "duration {text:?} is too long: at most 64 characters, 11 digits a number"
            )));
        }
        let duration = humantime::parse_duration(text).map_err(|e| {
            InvalidValue(format!(
                "invalid duration {text:?}: {e}; write e.g. \"500ms\", \"10s\", \"1.5m\""
            ))
        })?;
        // At most u64::MAX nanoseconds (584 years): deadlines computed from it cannot overflow.
        if duration.as_nanos() > u128::from(u64::MAX) {
            return Err(InvalidValue(format!("duration {text:?} is too large")));
        }
        Ok(HumanDuration(duration))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A byte count: a bare integer, or a number with `B`, `KB`/`MB`/`GB`/`TB` (powers of
/// 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024); units are case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn get(self) -> u64 {
        self.0
    }
}

const KIB: u128 = 1024;
const SIZE_UNITS: [(&str, u128); 10] = [
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", KIB),
    ("mib", KIB * KIB),
    ("gib", KIB * KIB * KIB),
    ("tib", KIB * KIB * KIB * KIB),
];

impl FromStr for ByteSize {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        let invalid = || {
            InvalidValue(format!(
                "invalid size {text:?}: expected a byte count or a number and a unit \
                 (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"64KiB\", \"100MiB\""
            ))
        };
        let (number, unit) = split_number(text.trim());
        let unit = unit.to_ascii_lowercase();
        let scale = SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(invalid)?;
        // A bare number is a byte count and must be whole.
        if unit.is_empty() && number.contains('.') {
            return Err(invalid());
        }
        let bytes = scale_decimal(number, scale).ok_or_else(invalid)?;
        let bytes = u64::try_from(bytes)
            .map_err(|_| InvalidValue(format!("size {text:?} is too large")))?;
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = u128::from(self.0);
        let binary = [
            ("TiB", KIB.pow(4)),
            ("GiB", KIB.pow(3)),
            ("MiB", KIB.pow(2)),
            ("KiB", KIB),
        ];
        match binary
            .iter()
            .find(|(_, scale)| bytes != 0 && bytes % scale == 0)
        {
            Some((unit, scale)) => write!(f, "{}{unit}", bytes / scale),
            None => write!(f, "{bytes}B"),
        }
    }
}

/// Splits `"1.5MiB"` into `("1.5", "MiB")`; spaces between number and unit are allowed.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim_start())
}

/// `number * scale` for a non-negative decimal like `"1.5"`, exactly, truncating any
/// fraction below one unit of the result. `None` when malformed or overflowing.
fn scale_decimal(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    // Digits past the 20th cannot change the result by a whole unit of any scale here.
    let fraction = &fraction[..fraction.len().min(20)];
    let part = fraction.parse::<u128>().ok()? * scale / 10u128.pow(fraction.len() as u32);
    whole
        .parse::<u128>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(part)
}

/// Deserializes any `FromStr<Err = InvalidValue>` type from a string.
pub(super) fn deserialize_from_str<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = InvalidValue>,
{
    struct StrVisitor<T>(&'static str, PhantomData<T>);

    impl<T: FromStr<Err = InvalidValue>> Visitor<'_> for StrVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(|e: InvalidValue| E::custom(e))
        }
    }

    deserializer.deserialize_str(StrVisitor(expecting, PhantomData))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(
            deserializer,
            "a duration string such as \"500ms\", \"10s\" or \"5m\"",
        )
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte count or a size string such as \"64KiB\" or \"100MiB\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {bytes}: must not be negative")))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(text: &str) -> Result<Duration, InvalidValue> {
        text.parse::<HumanDuration>().map(HumanDuration::get)
    }

    fn size(text: &str) -> Result<u64, InvalidValue> {
        text.parse::<ByteSize>().map(ByteSize::get)
    }

    #[test]
    fn durations_parse() {
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("0.25m").unwrap(), Duration::from_secs(15));
        assert_eq!(duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("0.1s").unwrap(), Duration::from_millis(100));
        assert_eq!(duration(" 2 s ").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_rejected() {
        let cases = "10 parsecs|10||s|-1s|1.s|.5s|1..5s|1e3ms|10S|99999999999h";
        for text in cases.split('|') {
            let err = duration(text).expect_err(text);
            assert!(err.0.contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn durations_display_canonically_and_round_trip() {
        for (text, shown) in [
            ("500ms", "500ms"),
            ("10s", "10s"),
            ("5m", "5m"),
            ("60m", "1h"),
            ("90s", "1m 30s"),
            ("1.5s", "1s 500ms"),
            ("1m 30s", "1m 30s"),
            ("48h", "2days"),
            ("0ms", "0s"),
            ("250us", "250us"),
            ("3ns", "3ns"),
        ] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(shown.parse::<HumanDuration>().unwrap(), parsed);
        }
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        let max = HumanDuration(Duration::from_nanos(u64::MAX));
        assert_eq!(max.to_string().parse::<HumanDuration>(), Ok(max));
        for text in [
            "18446744073709551615s 999999999ns 1ns",
            "99999999999y 99999999999y 99999999999y 99999999999y 99999999999y 9y",
            "584y 7months",
        ] {
            assert!(duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(size("64KiB").unwrap(), 64 * 1024);
        assert_eq!(size("100MiB").unwrap(), 100 << 20);
        assert_eq!(size("1MiB").unwrap(), 1 << 20);
        assert_eq!(size("1GiB").unwrap(), 1 << 30);
        assert_eq!(size("512B").unwrap(), 512);
        assert_eq!(size("10KB").unwrap(), 10_000);
        assert_eq!(size("10MB").unwrap(), 10_000_000);
        assert_eq!(size("1048576").unwrap(), 1 << 20);
        assert_eq!(size("1.5KiB").unwrap(), 1536);
        assert_eq!(size("64 kib").unwrap(), 64 * 1024);
    }

    #[test]
    fn bad_sizes_are_rejected() {
        let cases = "lots|10 parsecs||MiB|-1KiB|1.5|1e6|99999999999TiB|1.KiB";
        for text in cases.split('|') {
            let err = size(text).expect_err(text);
            assert!(err.0.contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn sizes_display_canonically_and_round_trip() {
        for (bytes, shown) in [
            (1 << 20, "1MiB"),
            (100 << 20, "100MiB"),
            (64 << 10, "64KiB"),
            (123, "123B"),
            (0, "0B"),
            (10_000, "10000B"),
            (1 << 30, "1GiB"),
        ] {
            assert_eq!(ByteSize(bytes).to_string(), shown);
            assert_eq!(shown.parse::<ByteSize>().unwrap(), ByteSize(bytes));
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Units {
        size: ByteSize,
        time: HumanDuration,
    }

    #[test]
    fn serde_uses_strings_and_accepts_integer_sizes() {
        let units: Units = toml::from_str("size = 4096\ntime = \"2s\"").unwrap();
        assert_eq!(
            units,
            Units {
                size: ByteSize(4096),
                time: HumanDuration(Duration::from_secs(2))
            }
        );
        assert_eq!(
            toml::to_string(&units).unwrap(),
            "size = \"4KiB\"\ntime = \"2s\"\n"
        );
        assert!(toml::from_str::<Units>("size = -1\ntime = \"2s\"").is_err());
        let err = toml::from_str::<Units>("size = 1\ntime = 2").unwrap_err();
        assert!(err.message().contains("duration string"), "{err}");
    }
}
