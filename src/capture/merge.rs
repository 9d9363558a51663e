//! Pure partial-line merging for one stream of one container. Docker cuts lines longer
//! than 16 KiB into several messages that all carry the first piece's timestamp; only the
//! last ends in `\n`. The merger joins them, cuts at `max_line_bytes` (on a UTF-8
//! boundary), strips the line end, and hands out text left without a newline at EOF.

use super::timestamp::Timestamp;

/// One logical line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub time: Timestamp,
    pub text: Vec<u8>,
    pub truncated: bool,
    /// How many Docker messages (frames) made this line.
    pub pieces: u32,
}

/// Joins the pieces of one stream's lines.
#[derive(Debug)]
pub struct LineMerger {
    max_line_bytes: usize,
    strip_cr: bool,
    pending: Option<Line>,
}

impl LineMerger {
    /// `strip_cr`: TTY containers end lines with `\r\n`.
    pub fn new(max_line_bytes: usize, strip_cr: bool) -> LineMerger {
        LineMerger {
            max_line_bytes,
            strip_cr,
            pending: None,
        }
    }

    /// Sets whether `\r` before the `\n` is removed (known once the body shows TTY or not).
    pub fn set_strip_cr(&mut self, strip_cr: bool) {
        self.strip_cr = strip_cr;
    }

    /// Whether a line is being assembled.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds one message's text (timestamp already split off); calls `emit` for each
    /// completed line, in order.
    pub fn push(&mut self, time: Timestamp, text: &[u8], mut emit: impl FnMut(Line)) {
        let complete = text.last() == Some(&b'\n');
        let body = if complete {
            &text[..text.len() - 1]
        } else {
            text
        };
        if let Some(p) = &self.pending {
            if p.time != time {
                // A piece of another line: the pending one will never be completed.
                if let Some(line) = self.flush() {
                    emit(line);
                }
            }
        }
        if complete && self.pending.is_none() {
            // The common case: one message, one line, one allocation.
            let mut line = Line {
                time,
                text: Vec::with_capacity(body.len().min(self.max_line_bytes)),
                truncated: false,
                pieces: 1,
            };
            self.append(&mut line, body);
            emit(self.finish(line));
            return;
        }
        let mut line = self.pending.take().unwrap_or(Line {
            time,
            text: Vec::new(),
            truncated: false,
            pieces: 0,
        });
        line.pieces += 1;
        self.append(&mut line, body);
        if complete {
            emit(self.finish(line));
        } else {
            self.pending = Some(line);
        }
    }

    /// Hands out text left without a newline (container exit, end of stream).
    pub fn flush(&mut self) -> Option<Line> {
        let line = self.pending.take()?;
        Some(self.finish(line))
    }

    fn append(&self, line: &mut Line, body: &[u8]) {
        let room = self.max_line_bytes.saturating_sub(line.text.len());
        if body.len() > room {
            line.text.extend_from_slice(&body[..room]);
            line.truncated = true;
        } else {
            line.text.extend_from_slice(body);
        }
    }

    fn finish(&self, mut line: Line) -> Line {
        if self.strip_cr && !line.truncated && line.text.last() == Some(&b'\r') {
            line.text.pop();
        }
        if line.pieces > 1 {
            // Grown by doubling: up to twice its length, which the queue's byte bound
            // (counting lengths) would not see.
            line.text.shrink_to_fit();
        }
        if line.truncated {
            // Do not leave half a UTF-8 sequence at the cut.
            line.text.truncate(utf8_cut(&line.text));
        }
        line
    }
}

/// Length of `bytes` without a UTF-8 sequence left incomplete at its end: where a line
/// cut at a byte limit ends (invalid bytes are kept, for the lossy conversion).
pub(crate) fn utf8_cut(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look for its lead
        }
        let need = match b {
            0xF8.. => 1, // never a lead byte: left to the lossy conversion
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > back { n - back } else { n };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: i64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    fn run(m: &mut LineMerger, pieces: &[(i64, &[u8])]) -> Vec<Line> {
        let mut out = Vec::new();
        for (time, text) in pieces {
            m.push(t(*time), text, |l| out.push(l));
        }
        out
    }

    #[test]
    fn single_lines() {
        let mut m = LineMerger::new(1024, false);
        let out = run(&mut m, &[(1, b"a\n"), (2, b"\n"), (3, b"c\r\n")]);
        let texts: Vec<_> = out.iter().map(|l| l.text.clone()).collect();
        assert_eq!(texts, vec![b"a".to_vec(), b"".to_vec(), b"c\r".to_vec()]);
        assert!(out.iter().all(|l| l.pieces == 1 && !l.truncated));
    }

    #[test]
    fn sixteen_k_pieces_merge() {
        let piece = vec![b'a'; 16 * 1024];
        let mut m = LineMerger::new(1 << 20, false);
        let out = run(&mut m, &[(5, &piece), (5, &piece), (5, b"end\n")]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text.len(), 32 * 1024 + 3);
        assert_eq!(out[0].pieces, 3);
        assert_eq!(out[0].time, t(5));
    }

    #[test]
    fn interleaved_streams_use_separate_mergers() {
        let piece = vec![b'o'; 16 * 1024];
        let mut out_m = LineMerger::new(1 << 20, false);
        let mut err_m = LineMerger::new(1 << 20, false);
        let mut lines = Vec::new();
        out_m.push(t(1), &piece, |l| lines.push(("out", l)));
        err_m.push(t(2), b"err line\n", |l| lines.push(("err", l)));
        out_m.push(t(1), b"tail\n", |l| lines.push(("out", l)));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1.text, b"err line");
        assert_eq!(lines[1].1.text.len(), 16 * 1024 + 4);
    }

    #[test]
    fn cap_truncates_and_marks() {
        let mut m = LineMerger::new(10, false);
        let out = run(
            &mut m,
            &[(1, b"0123456"), (1, b"789abcdef\n"), (2, b"ok\n")],
        );
        assert_eq!(out[0].text, b"0123456789");
        assert!(out[0].truncated);
        assert_eq!(out[1].text, b"ok");
        assert!(!out[1].truncated);
    }

    #[test]
    fn cap_respects_utf8_boundary() {
        let mut m = LineMerger::new(4, false);
        let out = run(&mut m, &[(1, "aaé€\n".as_bytes())]);
        assert_eq!(out[0].text, "aaé".as_bytes());
        assert!(out[0].truncated);
        // An invalid byte earlier in the line does not keep half a sequence at the cut.
        let mut m = LineMerger::new(5, false);
        let out = run(&mut m, &[(2, b"\xffa\xc3\xa9\xe2\x82\xac\n")]);
        assert_eq!(out[0].text, b"\xffa\xc3\xa9");
    }

    #[test]
    fn flush_at_eof_gives_text_without_newline() {
        let mut m = LineMerger::new(100, true);
        let out = run(&mut m, &[(1, b"line\r\n"), (2, b"no newline")]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, b"line");
        assert!(m.has_pending());
        let last = m.flush().unwrap();
        assert_eq!(last.text, b"no newline");
        assert!(m.flush().is_none());
    }

    #[test]
    fn orphan_piece_is_emitted_when_another_time_arrives() {
        let mut m = LineMerger::new(100, false);
        let out = run(&mut m, &[(1, b"orphan"), (2, b"next\n")]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, b"orphan");
        assert_eq!(out[1].text, b"next");
    }
}
