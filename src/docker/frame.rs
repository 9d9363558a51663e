//! Pure demultiplexing of the logs body: Docker's stdcopy frames (8-byte header
//! `[type,0,0,0,len u32 BE]`, then `len` bytes) and, for TTY containers, raw text cut into
//! messages at `\n` or at Docker's 16 KiB message size. No I/O: bytes go in through
//! [`FrameBuffer::spare`]/[`FrameBuffer::filled`], frames come out of `next_*`.

use std::fmt;

pub const HEADER_LEN: usize = 8;
/// Docker's log copier cuts messages at 16 KiB; longer lines arrive as several messages.
pub const DOCKER_MESSAGE_BYTES: usize = 16 * 1024;
/// "2026-11-26T17:55:29.376306023+00:00 ": the longest timestamp prefix, with its space.
pub const MAX_TIMESTAMP_PREFIX: usize = 36;

/// The stream a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Stdout,
    Stderr,
    /// Type 3: an error the daemon reports in-band (e.g. it could not read the log file).
    System,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
            StreamKind::System => "system",
        }
    }
}

/// The body did not follow the stdcopy format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    UnknownType(u8),
    TooLarge { len: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::UnknownType(t) => write!(f, "stdcopy frame of unknown type {t}"),
            FrameError::TooLarge { len, max } => {
                write!(
                    f,
                    "stdcopy frame of {len} bytes exceeds the {max}-byte bound"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: StreamKind,
    pub len: usize,
}

/// Parses one header; `Ok(None)` when fewer than 8 bytes are there.
pub fn parse_header(buf: &[u8], max_len: usize) -> Result<Option<FrameHeader>, FrameError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let kind = match h[0] {
        // stdin (0) only appears with attach; treat as stdout like the docker CLI does.
        0 | 1 => StreamKind::Stdout,
        2 => StreamKind::Stderr,
        3 => StreamKind::System,
        t => return Err(FrameError::UnknownType(t)),
    };
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    Ok(Some(FrameHeader { kind, len }))
}

/// A growable read buffer that yields whole frames (or TTY messages) as borrowed slices.
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: usize,
}

impl FrameBuffer {
    /// `max_frame` bounds one frame's payload: the buffer never grows beyond it plus a read.
    pub fn new(capacity: usize, max_frame: usize) -> FrameBuffer {
        FrameBuffer {
            buf: vec![0; capacity.max(HEADER_LEN * 2)],
            start: 0,
            end: 0,
            max_frame,
        }
    }

    /// Writable space after the buffered bytes; compacts first, and grows when one frame
    /// needs more room than the buffer has.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 && (self.start == self.end || self.end == self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.max_frame + HEADER_LEN + 4096);
            let grown = grown.max(self.buf.len() + 4096);
            self.buf.resize(grown, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Grows the buffer to at least `len` bytes (never shrinks it).
    pub fn grow_to(&mut self, len: usize) {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
    }

    /// Gives back memory past `len` bytes when nothing is buffered (a stream gone quiet).
    pub fn shrink_to(&mut self, len: usize) {
        if self.start == self.end && self.buf.len() > len {
            self.start = 0;
            self.end = 0;
            self.buf.truncate(len.max(HEADER_LEN * 2));
            self.buf.shrink_to_fit();
        }
    }

    /// Records that `n` bytes were written into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies `data` in (for tests and re-reads).
    pub fn extend(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops whatever is buffered (after a reconnect the stream starts afresh).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Next complete stdcopy frame. Zero-length frames are returned too (callers skip).
    pub fn next_frame(&mut self) -> Result<Option<(StreamKind, &[u8])>, FrameError> {
        let Some(h) = parse_header(self.pending(), self.max_frame)? else {
            return Ok(None);
        };
        if self.end - self.start < HEADER_LEN + h.len {
            return Ok(None);
        }
        let from = self.start + HEADER_LEN;
        self.start = from + h.len;
        Ok(Some((h.kind, &self.buf[from..from + h.len])))
    }

    /// Next TTY message: `"<timestamp> text"` up to and including `\n`, or a 16 KiB piece
    /// of text without one. With `at_eof`, whatever is left is the last message.
    pub fn next_tty_message(&mut self, at_eof: bool) -> Option<&[u8]> {
        let pending = self.pending();
        if pending.is_empty() {
            return None;
        }
        // Text starts after "<timestamp> "; a message without newline is exactly 16 KiB.
        // No space where a timestamp ends means garbage: cut it into 16 KiB pieces (the
        // caller rejects them) instead of buffering without bound.
        let head = &pending[..pending.len().min(MAX_TIMESTAMP_PREFIX)];
        let limit = match memchr::memchr(b' ', head) {
            Some(i) => i + 1 + DOCKER_MESSAGE_BYTES,
            None if pending.len() >= MAX_TIMESTAMP_PREFIX => DOCKER_MESSAGE_BYTES,
            None if at_eof => pending.len(),
            None => return None,
        };
        let window = &pending[..limit.min(pending.len())];
        let len = match memchr::memchr(b'\n', window) {
            Some(i) => i + 1,
            None if pending.len() >= limit => limit,
            None if at_eof => pending.len(),
            None => return None,
        };
        let from = self.start;
        self.start += len;
        Some(&self.buf[from..from + len])
    }
}

/// One stdcopy frame as the daemon sends it (test fixtures).
#[cfg(test)]
pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(fb: &mut FrameBuffer) -> Vec<(StreamKind, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((k, p)) = fb.next_frame().unwrap() {
            out.push((k, p.to_vec()));
        }
        out
    }

    #[test]
    fn header_split_across_reads() {
        let mut bytes = frame(1, b"hello\n");
        bytes.extend(frame(2, b"oops\n"));
        for cut in 0..bytes.len() {
            let mut fb = FrameBuffer::new(16, 1 << 20);
            fb.extend(&bytes[..cut]);
            let mut got = drain(&mut fb);
            fb.extend(&bytes[cut..]);
            got.extend(drain(&mut fb));
            assert_eq!(
                got,
                vec![
                    (StreamKind::Stdout, b"hello\n".to_vec()),
                    (StreamKind::Stderr, b"oops\n".to_vec())
                ],
                "cut at {cut}"
            );
            assert!(fb.pending().is_empty());
        }
    }

    #[test]
    fn a_grown_buffer_shrinks_back_only_when_empty() {
        let mut fb = FrameBuffer::new(16, 1 << 20);
        fb.grow_to(1024);
        assert_eq!(fb.spare().len(), 1024);
        fb.extend(&frame(1, b"hel")[..6]);
        fb.shrink_to(16);
        assert_eq!(fb.spare().len(), 1024 - 6, "a frame is pending: kept");
        fb.extend(&frame(1, b"hel")[6..]);
        assert_eq!(drain(&mut fb), vec![(StreamKind::Stdout, b"hel".to_vec())]);
        fb.shrink_to(16);
        assert_eq!(fb.spare().len(), 16, "empty: given back");
    }

    #[test]
    fn byte_by_byte() {
        let big = vec![b'x'; 40_000];
        let bytes = [frame(0, b"in"), frame(1, &big), frame(2, b"")].concat();
        let mut fb = FrameBuffer::new(16, 1 << 20);
        let mut got = Vec::new();
        for b in &bytes {
            fb.extend(std::slice::from_ref(b));
            got.extend(drain(&mut fb));
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (StreamKind::Stdout, b"in".to_vec()));
        assert_eq!(got[1].1.len(), 40_000);
        assert_eq!(got[2], (StreamKind::Stderr, Vec::new()));
    }

    #[test]
    fn zero_length_frame() {
        let mut fb = FrameBuffer::new(64, 1024);
        fb.extend(&frame(1, b""));
        assert_eq!(drain(&mut fb), vec![(StreamKind::Stdout, Vec::new())]);
    }

    #[test]
    fn absurd_length_is_an_error_not_an_allocation() {
        let mut fb = FrameBuffer::new(64, 1 << 20);
        fb.extend(&[1, 0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(
            fb.next_frame(),
            Err(FrameError::TooLarge {
                len: 1 << 31,
                max: 1 << 20
            })
        );
        assert!(fb.buf.len() < 4096);
    }

    #[test]
    fn unknown_type_and_daemon_error_type() {
        let mut fb = FrameBuffer::new(64, 1024);
        fb.extend(&frame(3, b"error from daemon in stream"));
        assert_eq!(drain(&mut fb)[0].0, StreamKind::System);
        let mut fb = FrameBuffer::new(64, 1024);
        fb.extend(&frame(7, b"x"));
        assert_eq!(fb.next_frame(), Err(FrameError::UnknownType(7)));
    }

    #[test]
    fn frame_cut_at_eof_stays_pending() {
        let mut fb = FrameBuffer::new(64, 1024);
        let f = frame(1, b"incomplete");
        fb.extend(&f[..f.len() - 3]);
        assert_eq!(fb.next_frame(), Ok(None));
        assert_eq!(fb.pending().len(), f.len() - 3);
    }

    #[test]
    fn tty_messages() {
        let mut fb = FrameBuffer::new(16, 1 << 20);
        fb.extend(b"2026-01-01T00:00:00Z a\r\n2026-01-01T00:00:01Z b\r\n2026-01-01T00:00:02Z tail");
        assert_eq!(
            fb.next_tty_message(false),
            Some(&b"2026-01-01T00:00:00Z a\r\n"[..])
        );
        assert_eq!(
            fb.next_tty_message(false),
            Some(&b"2026-01-01T00:00:01Z b\r\n"[..])
        );
        assert_eq!(fb.next_tty_message(false), None);
        assert_eq!(
            fb.next_tty_message(true),
            Some(&b"2026-01-01T00:00:02Z tail"[..])
        );
        assert_eq!(fb.next_tty_message(true), None);
    }

    #[test]
    fn tty_garbage_without_timestamp_stays_bounded() {
        let mut fb = FrameBuffer::new(16, 1 << 20);
        let mut sizes = Vec::new();
        for chunk in vec![b'z'; 3 * DOCKER_MESSAGE_BYTES + 5].chunks(4096) {
            fb.extend(chunk);
            while let Some(m) = fb.next_tty_message(false) {
                sizes.push(m.len());
            }
        }
        assert_eq!(sizes, vec![DOCKER_MESSAGE_BYTES; 3]);
        assert_eq!(fb.pending().len(), 5);
        assert!(fb.buf.len() <= 4 * DOCKER_MESSAGE_BYTES);
    }

    #[test]
    fn tty_partial_at_16k() {
        let ts = b"2026-01-01T00:00:00.5Z ";
        let mut bytes = ts.to_vec();
        bytes.extend(vec![b'y'; DOCKER_MESSAGE_BYTES]);
        bytes.extend_from_slice(ts);
        bytes.extend_from_slice(b"end\r\n");
        let mut fb = FrameBuffer::new(16, 1 << 20);
        fb.extend(&bytes);
        let first = fb.next_tty_message(false).unwrap().to_vec();
        assert_eq!(first.len(), ts.len() + DOCKER_MESSAGE_BYTES);
        let second = fb.next_tty_message(false).unwrap();
        assert_eq!(second, [&ts[..], b"end\r\n"].concat());
    }
}
