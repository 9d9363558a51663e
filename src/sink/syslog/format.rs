//! Syslog messages from records, pure: RFC 5424 (`<PRI>1 TIMESTAMP HOSTNAME APP-NAME - -
//! [docker@32473 container_id="..." container_name="..." image="..."] BOM MSG`, the
//! record's own time to the microsecond) or RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOSTNAME TAG:
//! MSG`, at most 1024 bytes, times in UTC), and their framing on a stream: RFC 6587 octet
//! counting, or one message per line with embedded newlines escaped as `\n`.
//!
//! Severity: a parsed `level` field when a rule made one (README, Rules) and it names a
//! syslog severity, else `err` for stderr and `info` for stdout and host files.

use std::io::Write;

use crate::capture::record::{Origin, Record, Stream};
use crate::config::{Framing, SyslogFormat, TemplatePart};
use crate::sink::template::render;

/// `32473` is the private enterprise number RFC 5612 reserves for examples: the SD-ID
/// names our element without claiming a number of our own.
const SD_ID: &str = "docker@32473";
/// RFC 3164 4.1: a packet is at most 1024 bytes.
const RFC3164_MAX: usize = 1024;
/// The largest UDP payload over IPv4.
pub const UDP_MAX: usize = 65_507;

pub struct Formatter {
    pub format: SyslogFormat,
    pub facility: u8,
    pub app_name: Vec<TemplatePart>,
    pub hostname: Vec<TemplatePart>,
}

impl Formatter {
    /// Appends the message of `r` to `out`, at most `limit` bytes (cut at a character
    /// boundary); true when it was cut.
    pub fn message(&self, r: &Record, limit: usize, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let pri = u32::from(self.facility) * 8 + u32::from(severity(r));
        let mut text = String::new();
        render(&self.hostname, r, &mut text);
        let hostname = header_field(&text, 255);
        text.clear();
        render(&self.app_name, r, &mut text);
        let stamp = r.time.rfc3339_bytes();
        let limit = match self.format {
            SyslogFormat::Rfc5424 => {
                let app = header_field(&text, 48);
                let _ = write!(out, "<{pri}>1 ");
                out.extend_from_slice(&stamp[..26]);
                out.push(b'Z');
                let _ = write!(out, " {hostname} {app} - - ");
                structured_data(r, out);
                out.extend_from_slice(b" \xEF\xBB\xBF");
                limit
            }
            SyslogFormat::Rfc3164 => {
                let tag: String = text
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .take(32)
                    .collect();
                let tag = if tag.is_empty() {
                    "log-capturer".to_owned()
                } else {
                    tag
                };
                let _ = write!(out, "<{pri}>");
                rfc3164_time(&stamp, out);
                let _ = write!(out, " {hostname} {tag}: ");
                limit.min(RFC3164_MAX)
            }
        };
        let room = limit.saturating_sub(out.len() - start);
        let message = cut(&r.message, room);
        out.extend_from_slice(message.as_bytes());
        message.len() < r.message.len()
    }
}

/// Frames `message` onto a stream.
pub fn frame(framing: Framing, message: &[u8], out: &mut Vec<u8>) {
    match framing {
        Framing::OctetCounting => {
            let _ = write!(out, "{} ", message.len());
            out.extend_from_slice(message);
        }
        Framing::Newline => {
            for &b in message {
                match b {
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b => out.push(b),
                }
            }
            out.push(b'\n');
        }
    }
}

/// RFC 5424 severity: the `level` field's, else by stream.
fn severity(r: &Record) -> u8 {
    let level = r.field_text("level").map(|l| l.to_ascii_lowercase());
    let named = match level.as_deref() {
        Some("emerg" | "emergency" | "panic") => Some(0),
        Some("alert") => Some(1),
        Some("crit" | "critical" | "fatal") => Some(2),
        Some("err" | "error") => Some(3),
        Some("warn" | "warning") => Some(4),
        Some("notice") => Some(5),
        Some("info" | "informational" | "information") => Some(6),
        Some("debug" | "trace") => Some(7),
        _ => None,
    };
    named.unwrap_or(match r.stream {
        Some(Stream::Stderr) => 3,
        Some(Stream::Stdout) | None => 6,
    })
}

/// A header field: printable ASCII without spaces (others become `_`), at most `max`
/// characters, `-` when empty (RFC 5424 NILVALUE).
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// `[docker@32473 container_id=".." container_name=".." image=".."]`, or
/// `[docker@32473 path=".."]` for host files.
fn structured_data(r: &Record, out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(SD_ID.as_bytes());
    let mut param = |name: &str, value: &str| {
        let _ = write!(out, " {name}=\"");
        for c in value.chars() {
            if matches!(c, '"' | '\\' | ']') {
                out.push(b'\\');
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.push(b'"');
    };
    match &r.origin {
        Origin::Container(c) => {
            param("container_id", c.id.as_str());
            param("container_name", &c.name);
            param("image", &c.image);
        }
        Origin::HostFile(h) => param("path", &h.path),
    }
    out.push(b']');
}

/// `Mmm dd hh:mm:ss` (day space-padded) from `YYYY-MM-DDTHH:MM:SS...`.
fn rfc3164_time(stamp: &[u8; 30], out: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = usize::from((stamp[5] - b'0') * 10 + (stamp[6] - b'0'));
    out.extend_from_slice(MONTHS[month.clamp(1, 12) - 1]);
    out.push(b' ');
    out.push(if stamp[8] == b'0' { b' ' } else { stamp[8] });
    out.push(stamp[9]);
    out.push(b' ');
    out.extend_from_slice(&stamp[11..19]);
}

/// The longest prefix of `s` of at most `max` bytes ending at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
