//! Pure parser of one line of Docker's `json-file` log driver:
//! `{"log":"text\n","stream":"stdout","time":"2026-11-26T17:55:29.376306023Z"}`, possibly
//! with an `"attrs"` object (log-opt labels/env), which is ignored. A partial piece of a
//! line longer than 16 KiB has no `\n` at the end of `log`, exactly as in the API stream.
//! Docker writes invalid UTF-8 as U+FFFD already, so `log` is text.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use super::record::Stream;
use super::timestamp::Timestamp;

/// One entry of a json-file log.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub stream: Stream,
    pub time: Timestamp,
    /// The text, with its `\n` when the line (or its last piece) ended.
    pub log: Cow<'a, str>,
}

/// A line that is not a json-file entry.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryError {
    Json(String),
    Stream(String),
    Time(String),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Json(e) => write!(f, "not a json-file entry: {e}"),
            EntryError::Stream(s) => write!(f, "unknown stream {s:?}"),
            EntryError::Time(e) => write!(f, "bad time: {e}"),
        }
    }
}

impl std::error::Error for EntryError {}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// Parses one line (without its trailing `\n`).
pub fn parse_entry(line: &[u8]) -> Result<Entry<'_>, EntryError> {
    let raw: Raw<'_> = serde_json::from_slice(line).map_err(|e| EntryError::Json(e.to_string()))?;
    let stream = match raw.stream.as_ref() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        other => return Err(EntryError::Stream(other.chars().take(32).collect())),
    };
    let time =
        Timestamp::parse(raw.time.as_bytes()).map_err(|e| EntryError::Time(e.to_string()))?;
    Ok(Entry {
        stream,
        time,
        log: raw.log,
    })
}

/// The time of a line as Docker writes it (`"time"` last), without parsing the rest:
/// lets lines before a start time be skipped cheaply. `None` when the line is not shaped
/// so; `parse_entry` decides then.
pub fn quick_time(line: &[u8]) -> Option<Timestamp> {
    const KEY: &[u8] = b"\"time\":\"";
    let body = line.strip_suffix(b"\"}")?;
    let tail = &body[body.len().saturating_sub(48)..];
    let at = memchr::memmem::rfind(tail, KEY)?;
    Timestamp::parse(&tail[at + KEY.len()..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_line() {
        let e = parse_entry(
            br#"{"log":"GET / 200\n","stream":"stderr","time":"2026-11-26T17:55:29.376306023Z"}"#,
        )
        .unwrap();
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.log, "GET / 200\n");
        assert_eq!(
            e.time,
            Timestamp::parse(b"2026-11-26T17:55:29.376306023Z").unwrap()
        );
    }

    #[test]
    fn escapes_partial_pieces_and_attrs() {
        let e = parse_entry(
            br#"{"log":"tab\there \u0001 \"q\" \ufffd \u00e9","stream":"stdout","attrs":{"tag":"x"},"time":"2026-11-26T17:55:29Z"}"#,
        )
        .unwrap();
        assert_eq!(e.log, "tab\there \u{1} \"q\" \u{fffd} é");
        assert!(!e.log.ends_with('\n'), "a partial piece keeps no newline");
    }

    #[test]
    fn unescaped_text_is_borrowed() {
        let e = parse_entry(br#"{"log":"plain","stream":"stdout","time":"2026-11-26T17:55:29Z"}"#)
            .unwrap();
        assert!(matches!(e.log, Cow::Borrowed(_)));
    }

    #[test]
    fn quick_time_reads_the_last_field_only() {
        let line = br#"{"log":""time":"1999-01-01T00:00:00Z"}","stream":"stdout","time":"2026-11-26T17:55:29.5Z"}"#;
        assert_eq!(
            quick_time(line),
            Some(Timestamp::parse(b"2026-11-26T17:55:29.5Z").unwrap())
        );
        assert_eq!(
            quick_time(br#"{"time":"2026-11-26T17:55:29Z","log":"x"}"#),
            None
        );
        assert_eq!(quick_time(b"garbage"), None);
    }

    #[test]
    fn bad_lines_are_errors_naming_what_is_wrong() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "not a json-file entry"),
            (
                b"{\"log\":\"x\",\"stream\":\"stdout\"",
                "not a json-file entry",
            ),
            (
                br#"{"log":"x","stream":"stdin","time":"2026-11-26T17:55:29Z"}"#,
                "stream",
            ),
            (
                br#"{"log":"x","stream":"stdout","time":"yesterday"}"#,
                "bad time",
            ),
            (
                br#"{"log":7,"stream":"stdout","time":"2026-11-26T17:55:29Z"}"#,
                "not a json",
            ),
        ];
        for (line, want) in cases {
            let e = parse_entry(line).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
