//! Pure line splitting for one host file: bytes in, lines out, each with the file offset
//! just past its `\n`. A line longer than `max_line_bytes` is cut (on a UTF-8 boundary)
//! and the rest up to its `\n` discarded, so at most about `max_line_bytes` is held. Text
//! after the last `\n` stays pending until more arrives or [`Splitter::flush`] is called:
//! an offset handed out never covers bytes not yet in a line.

use crate::capture::merge::utf8_cut;

/// One line of a host file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line without its `\n` (and the `\r` before it), at most `max_line_bytes`.
    pub text: Vec<u8>,
    pub truncated: bool,
    /// File offset just past the line's `\n` (past its last byte when flushed without one).
    pub end: u64,
}

/// Splits one file's bytes into lines.
#[derive(Debug)]
pub struct Splitter {
    max: usize,
    /// The pending line's first bytes: at most `max + 1`, one more than kept, so a `\r`
    /// right before the `\n` of a line of exactly `max` bytes is not taken for overflow.
    buf: Vec<u8>,
    /// The pending line outgrew `buf`; the rest up to its `\n` is being discarded.
    overflow: bool,
    /// Offset of the next byte fed.
    offset: u64,
    /// Offset just past the last line handed out.
    committed: u64,
}

/// A pending buffer that grew past this is released after its line, not kept per file.
const KEEP_CAPACITY: usize = 64 * 1024;

impl Splitter {
    /// A splitter whose next byte is at file offset `offset`.
    pub fn new(max_line_bytes: usize, offset: u64) -> Splitter {
        Splitter {
            max: max_line_bytes,
            buf: Vec::new(),
            overflow: false,
            offset,
            committed: offset,
        }
    }

    /// Offset of the next byte to feed (how far the file was read).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset just past the last line handed out.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Whether text without a `\n` is held.
    pub fn has_pending(&self) -> bool {
        self.offset > self.committed
    }

    /// Feeds the next bytes of the file; calls `emit` for each completed line, in order.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Line)) {
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            let body = &bytes[..i];
            self.offset += i as u64 + 1;
            let (text, truncated) = if self.buf.is_empty() && !self.overflow {
                message(body, self.max, false, true)
            } else {
                self.append(body);
                let m = message(&self.buf, self.max, self.overflow, true);
                self.clear();
                m
            };
            self.committed = self.offset;
            emit(Line {
                text,
                truncated,
                end: self.offset,
            });
            bytes = &bytes[i + 1..];
        }
        self.offset += bytes.len() as u64;
        self.append(bytes);
    }

    /// Hands out the pending text as a line (the writer moved on to another file).
    pub fn flush(&mut self) -> Option<Line> {
        if !self.has_pending() {
            return None;
        }
        let (text, truncated) = message(&self.buf, self.max, self.overflow, false);
        self.clear();
        self.committed = self.offset;
        Some(Line {
            text,
            truncated,
            end: self.offset,
        })
    }

    /// Drops the pending text and goes on at `offset` (the file was truncated).
    pub fn reset(&mut self, offset: u64) {
        self.clear();
        self.offset = offset;
        self.committed = offset;
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = (self.max + 1).saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn clear(&mut self) {
        self.overflow = false;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// The message of one line body (no `\n`): without the `\r` before the `\n` when
/// `complete`, cut at `max` on a UTF-8 boundary when longer (or when `overflow` says the
/// body was already cut). Returns the text and whether it was cut.
fn message(body: &[u8], max: usize, overflow: bool, complete: bool) -> (Vec<u8>, bool) {
    let body = match body.strip_suffix(b"\r") {
        Some(b) if complete && !overflow => b,
        _ => body,
    };
    if !overflow && body.len() <= max {
        return (body.to_vec(), false);
    }
    let head = &body[..body.len().min(max)];
    (head[..utf8_cut(head)].to_vec(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, pieces: &[&[u8]]) -> (Vec<(String, bool, u64)>, Splitter) {
        let mut s = Splitter::new(max, 0);
        let mut out = Vec::new();
        for p in pieces {
            s.push(p, |l| {
                out.push((String::from_utf8(l.text).unwrap(), l.truncated, l.end))
            });
        }
        (out, s)
    }

    #[test]
    fn lines_with_their_end_offsets() {
        let (lines, s) = split(100, &[b"a\nbc\n\nd"]);
        assert_eq!(
            lines,
            [
                ("a".into(), false, 2),
                ("bc".into(), false, 5),
                ("".into(), false, 6)
            ]
        );
        assert_eq!((s.offset(), s.committed(), s.has_pending()), (7, 6, true));
    }

    #[test]
    fn a_line_split_across_reads_and_crlf() {
        let (lines, s) = split(100, &[b"he", b"llo\r", b"\nwor", b"ld\r\n"]);
        assert_eq!(
            lines,
            [("hello".into(), false, 7), ("world".into(), false, 14)]
        );
        assert!(!s.has_pending());
    }

    #[test]
    fn a_lone_cr_inside_a_line_is_kept() {
        let (lines, _) = split(100, &[b"a\rb\n"]);
        assert_eq!(lines, [("a\rb".into(), false, 4)]);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_discarded() {
        let (lines, s) = split(4, &[b"abcdefgh\nxy\n"]);
        assert_eq!(lines, [("abcd".into(), true, 9), ("xy".into(), false, 12)]);
        assert!(!s.has_pending());
        // Across reads, with memory bounded by max + 1.
        let mut s = Splitter::new(4, 0);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.push(&[b'z'; 1000], |l| out.push(l));
            assert!(s.buf.len() <= 5);
        }
        s.push(b"\nok\n", |l| out.push(l));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].text.as_slice(), out[0].truncated),
            (&b"zzzz"[..], true)
        );
        assert_eq!(out[0].end, 1_000_001);
        assert_eq!(
            (out[1].text.as_slice(), out[1].end),
            (&b"ok"[..], 1_000_004)
        );
    }

    #[test]
    fn a_line_of_exactly_max_bytes_with_crlf_is_not_truncated() {
        let (lines, _) = split(4, &[b"abcd\r\n", b"ab", b"cd\r", b"\n"]);
        assert_eq!(
            lines,
            [("abcd".into(), false, 6), ("abcd".into(), false, 12)]
        );
        let (lines, _) = split(4, &[b"abcde\n"]);
        assert_eq!(lines, [("abcd".into(), true, 6)]);
    }

    #[test]
    fn the_cut_respects_utf8() {
        // "é" is 2 bytes, "€" 3, "😀" 4: a cut inside one drops the whole sequence.
        let (lines, _) = split(
            4,
            &["abcé\n".as_bytes(), "a€€\n".as_bytes(), "😀😀\n".as_bytes()],
        );
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.0.as_str(), l.1))
                .collect::<Vec<_>>(),
            [("abc", true), ("a€", true), ("😀", true)]
        );
        assert_eq!(
            utf8_cut(b"ab\xff"),
            3,
            "invalid bytes are left to the lossy conversion"
        );
    }

    #[test]
    fn invalid_utf8_passes_through_as_bytes() {
        let mut s = Splitter::new(100, 0);
        let mut out = Vec::new();
        s.push(b"a\xffb\n", |l| out.push(l));
        assert_eq!(out[0].text, b"a\xffb");
    }

    #[test]
    fn pending_text_is_flushed_only_on_request() {
        let (lines, mut s) = split(100, &[b"one\ntw", b"o"]);
        assert_eq!(lines.len(), 1);
        assert_eq!(s.committed(), 4);
        let last = s.flush().unwrap();
        assert_eq!(
            (last.text.as_slice(), last.truncated, last.end),
            (&b"two"[..], false, 7)
        );
        assert!(s.flush().is_none());
        // A flushed line keeps a trailing '\r': no newline followed it.
        let (_, mut s) = split(2, &[b"abc\r"]);
        assert_eq!(
            s.flush().map(|l| (l.text, l.truncated)),
            Some((b"ab".to_vec(), true))
        );
    }

    #[test]
    fn reset_drops_the_pending_text() {
        let (_, mut s) = split(100, &[b"abc"]);
        s.reset(0);
        assert!(!s.has_pending());
        let mut out = Vec::new();
        s.push(b"x\n", |l| out.push(l));
        assert_eq!((out[0].text.as_slice(), out[0].end), (&b"x"[..], 2));
    }

    #[test]
    fn starts_at_a_given_offset() {
        let mut s = Splitter::new(100, 1000);
        let mut out = Vec::new();
        s.push(b"x\n", |l| out.push(l.end));
        assert_eq!(out, [1002]);
    }
}
