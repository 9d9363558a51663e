//! The message formats and framings on sample records.

use super::*;
use crate::capture::record::{sample_records, Fields};
use crate::capture::timestamp::Timestamp;
use crate::config::parse_template;

fn formatter(format: SyslogFormat) -> Formatter {
    Formatter {
        format,
        facility: 1,
        app_name: parse_template("{container_name}").unwrap(),
        hostname: parse_template("{host}").unwrap(),
    }
}

fn record(message: &str) -> Record {
    let mut r = sample_records(1, "x").remove(0);
    r.time = Timestamp::from_nanos(1_764_669_845_123_456_789);
    r.message = message.to_owned();
    r
}

#[test]
fn rfc5424_has_the_microsecond_time_structured_data_and_a_bom() {
    let mut out = Vec::new();
    let cut =
        formatter(SyslogFormat::Rfc5424).message(&record("héllo \"x\""), usize::MAX, &mut out);
    assert!(!cut);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "<14>1 2025-12-02T10:04:05.123456Z h n - - \
         [docker@32473 container_id=\"c\" container_name=\"n\" image=\"i\"] \u{feff}héllo \"x\""
    );
}

#[test]
fn severity_follows_the_stream_or_a_parsed_level() {
    let f = formatter(SyslogFormat::Rfc5424);
    let mut r = record("m");
    r.stream = Some(Stream::Stderr);
    let mut out = Vec::new();
    f.message(&r, usize::MAX, &mut out);
    assert!(out.starts_with(b"<11>1 "), "user.err");
    r.fields = Fields::Json(r#"{"level":"WARN"}"#.into());
    out.clear();
    f.message(&r, usize::MAX, &mut out);
    assert!(out.starts_with(b"<12>1 "), "user.warning");
}

#[test]
fn structured_data_values_are_escaped_and_header_fields_sanitized() {
    let mut f = formatter(SyslogFormat::Rfc5424);
    f.app_name = parse_template("my app]\"").unwrap();
    let mut out = Vec::new();
    f.message(&record("m"), usize::MAX, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(" h my_app]\" - - "), "{text}");
}

#[test]
fn rfc3164_is_cut_at_1024_bytes() {
    let f = formatter(SyslogFormat::Rfc3164);
    let mut out = Vec::new();
    assert!(!f.message(&record("short"), usize::MAX, &mut out));
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "<14>Dec  2 10:04:05 h n: short"
    );
    out.clear();
    let long = "é".repeat(1000);
    assert!(
        f.message(&record(&long), usize::MAX, &mut out),
        "counted as cut"
    );
    assert!(out.len() <= 1024, "{}", out.len());
    assert!(
        String::from_utf8(out).is_ok(),
        "cut at a character boundary"
    );
}

#[test]
fn framings() {
    let mut out = Vec::new();
    frame(Framing::OctetCounting, b"a\nb", &mut out);
    frame(Framing::Newline, b"a\nb", &mut out);
    assert_eq!(out, b"3 a\nba\\nb\n");
}
