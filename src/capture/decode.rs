//! Turns the bytes of one container's logs body into lines with exact positions, without
//! I/O: frame demux (or TTY messages), timestamp split, resume skipping, per-stream merge.
//!
//! Positions count frames: `(time, n)` means every frame up to the n-th one stamped `time`
//! was consumed. A line's position is the last frame it used, but never past the first
//! frame of a line still being assembled on the other stream, so resuming from any
//! emitted position loses nothing.

use super::merge::{Line, LineMerger};
use super::record::{FilePos, Mark, Position, Stream};
use super::timestamp::Timestamp;
use crate::docker::frame::{FrameBuffer, FrameError, StreamKind};

/// Bound of one frame's payload: Docker's are 16 KiB plus a timestamp.
const MAX_FRAME: usize = 1 << 20;
/// A follower's read buffer at first: an idle stream (most of them, on a host with many
/// containers) needs no more, and each byte of it is resident memory per container.
pub const FIRST_READ_BUFFER: usize = 4 * 1024;
/// What the read buffer grows to once a read fills it (a busy stream), in bigger reads;
/// it goes back to [`FIRST_READ_BUFFER`] once the stream is quiet (a read timed out).
pub const BUSY_READ_BUFFER: usize = 32 * 1024;

/// Something other than a line that the caller should know about.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// A stdcopy type-3 frame: the daemon reports an error in-band.
    DaemonError(String),
    /// A frame whose text did not start with a timestamp; skipped.
    BadTimestamp,
    /// A frame skipped because it was delivered before the resume point.
    DuplicateSkipped,
    /// Several pieces were merged into one line.
    Merged,
}

/// What the decoder hands out. Handed to a callback at once and never stored, so the
/// size of the `Line` variant costs nothing (boxing it would cost an allocation per line).
#[allow(clippy::large_enum_variant)]
pub enum Output {
    /// A line and its position. `continues`: the next line belongs to the same group and
    /// only the group's last line carries the position past all of them (see `State`).
    /// `before`: a position to resume from that reads this line again (what a multiline
    /// record that begins with it starts from); `end`: the line's last frame (what a
    /// stream's mark is set to once the line is delivered).
    Line {
        stream: Stream,
        line: Line,
        position: Position,
        continues: bool,
        before: Position,
        end: Mark,
    },
    Notice(Notice),
}

/// Lines held while a partial line is pending, at most; past it they go out with the
/// group's start position (no loss, but a crash could repeat them).
const HOLD_MAX: usize = 1024;

/// Decoding state of one container's log, kept across reconnects.
pub struct LogDecoder {
    /// `None` until the first byte tells: stdcopy headers start with 0..=3, TTY text with
    /// the digit of a timestamp. (API 1.41 sends no Content-Type for logs.)
    tty: Option<bool>,
    frames: FrameBuffer,
    state: State,
}

/// Everything but the byte buffer, so frames can be borrowed from the buffer while the
/// state changes.
struct State {
    mergers: [LineMerger; 2],
    /// Last frame consumed.
    pos: Option<Position>,
    /// Position of the last frame of the current body, counted from the body's start.
    counting: Option<Position>,
    /// Resume point: frames at or before it were delivered already.
    skip: Option<Mark>,
    /// Per stream, frames at or before the mark were delivered already (a multiline
    /// record was open on the other stream at the resume point; see `Position`). Handed on
    /// in the positions of the lines until the reading passes them.
    marks: [Option<Mark>; 2],
    /// Position before the first piece of the oldest pending partial line: while any line
    /// is being assembled, completed lines are held, then handed out as one group. A
    /// position inside a partial line cannot be resumed from (the rest would come out as a
    /// fragment), and one past it could skip held lines of the other stream.
    hold_from: Option<Position>,
    /// With the frame each was completed at.
    held: Vec<(Stream, Line, Mark)>,
    scratch: Vec<Line>,
    /// Per stream, where its last piece counted: the end of a line the merger hands out
    /// late (its text without a newline, flushed when a piece of another time comes).
    last_piece: [Option<Mark>; 2],
}

fn idx(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl LogDecoder {
    pub fn new(tty: Option<bool>, max_line_bytes: usize, resume: Option<Position>) -> LogDecoder {
        let strip_cr = tty.unwrap_or(false);
        LogDecoder {
            tty,
            frames: FrameBuffer::new(FIRST_READ_BUFFER, MAX_FRAME),
            state: State {
                mergers: [
                    LineMerger::new(max_line_bytes, strip_cr),
                    LineMerger::new(max_line_bytes, strip_cr),
                ],
                pos: resume,
                counting: None,
                skip: resume.map(|p| by_time(p.mark())),
                marks: resume.map_or([None; 2], |p| p.marks.map(|m| m.map(by_time))),
                hold_from: None,
                held: Vec::new(),
                scratch: Vec::new(),
                last_piece: [None; 2],
            },
        }
    }

    /// The last frame consumed (where a reconnect resumes).
    pub fn position(&self) -> Option<Position> {
        self.state.pos
    }

    /// Before a new request: resume after the last consumed frame, dropping any torn
    /// bytes of the old body.
    pub fn restart(&mut self) {
        self.frames.clear();
        self.state.skip = self.state.pos.map(|p| by_time(p.mark()));
        self.state.counting = None;
    }

    /// Bytes of an unfinished stdcopy frame left when a body ended: a torn body.
    pub fn torn_bytes(&self) -> usize {
        match self.tty {
            Some(true) => 0,
            _ => self.frames.pending().len(),
        }
    }

    pub fn buffer(&mut self) -> &mut FrameBuffer {
        &mut self.frames
    }

    /// Decodes every complete frame buffered so far. With `at_eof`, a TTY body's last
    /// unterminated message counts too.
    pub fn drain(&mut self, at_eof: bool, out: &mut impl FnMut(Output)) -> Result<(), FrameError> {
        loop {
            let tty = match self.tty {
                Some(t) => t,
                None => match self.frames.pending().first() {
                    None => return Ok(()),
                    Some(&b) => {
                        let tty = b > 3;
                        self.tty = Some(tty);
                        for m in &mut self.state.mergers {
                            m.set_strip_cr(tty);
                        }
                        tty
                    }
                },
            };
            let (kind, payload) = if tty {
                match self.frames.next_tty_message(at_eof) {
                    Some(p) => (StreamKind::Stdout, p),
                    None => return Ok(()),
                }
            } else {
                match self.frames.next_frame()? {
                    Some(f) => f,
                    None => return Ok(()),
                }
            };
            self.state.frame(kind, payload, out);
        }
    }

    /// Decodes one json-file entry: `log` of `stream` stamped `time`, which sits between
    /// `start` and `end` in its file.
    pub fn file_entry(
        &mut self,
        stream: Stream,
        time: Timestamp,
        log: &[u8],
        start: FilePos,
        end: FilePos,
        out: &mut impl FnMut(Output),
    ) {
        self.state.piece(stream, time, log, Some((start, end)), out);
    }

    /// Reading continues exactly after the resume position (a file offset), so nothing is
    /// skipped (but by the position's marks) and frames at the resume time are counted on
    /// from it.
    pub fn continue_from_resume(&mut self) {
        self.state.skip = None;
        self.state.counting = self.state.pos;
        // Reading goes on in the very file of the position (the follower checked it): its
        // marks' byte offsets are exact there.
        self.state.marks = self.state.pos.map_or([None; 2], |p| p.marks);
    }

    /// At the end of the log: hands out text left without a newline.
    pub fn flush(&mut self, out: &mut impl FnMut(Output)) {
        self.state.flush(out)
    }
}

impl State {
    fn frame(&mut self, kind: StreamKind, payload: &[u8], out: &mut impl FnMut(Output)) {
        let stream = match kind {
            StreamKind::Stdout => Stream::Stdout,
            StreamKind::Stderr => Stream::Stderr,
            StreamKind::System => {
                let text = String::from_utf8_lossy(payload).trim_end().to_string();
                out(Output::Notice(Notice::DaemonError(text)));
                return;
            }
        };
        if payload.is_empty() {
            return;
        }
        let Ok((time, text)) = Timestamp::split_prefix(payload) else {
            out(Output::Notice(Notice::BadTimestamp));
            return;
        };
        self.piece(stream, time, text, None, out);
    }

    /// One message of `stream` stamped `time`; `file`: where it starts and ends in a file.
    fn piece(
        &mut self,
        stream: Stream,
        time: Timestamp,
        text: &[u8],
        file: Option<(FilePos, FilePos)>,
        out: &mut impl FnMut(Output),
    ) {
        // Count like a body requested with since=<anchor> would be counted: the anchor is
        // the newest time seen, n the frames at it; older frames keep the position.
        let (anchor, n) = match self.counting {
            Some(c) if time == c.time => (time, c.frames_at_time + 1),
            Some(c) if time < c.time => (c.time, c.frames_at_time),
            _ => (time, 1),
        };
        let at = Mark {
            time: anchor,
            frames_at_time: n,
            file: file.map(|f| f.1),
        };
        self.counting = Some(Position {
            time: anchor,
            frames_at_time: n,
            file: None,
            marks: [None; 2],
        });
        let i = idx(stream);
        if self.skip.is_some_and(|s| at.not_after(&s))
            || self.marks[i].is_some_and(|m| at.not_after(&m))
        {
            out(Output::Notice(Notice::DuplicateSkipped));
            return;
        }
        self.skip = None;
        // Marks the reading has passed say nothing more. Strictly passed: a frame stamped
        // earlier than the newest one counts at the same place as the frame before it, so
        // the other stream's delivered frame can still come at exactly this place.
        for m in &mut self.marks {
            if m.is_some_and(|m| m.place_cmp(&at).is_lt()) {
                *m = None;
            }
        }
        let pos = Position {
            time: anchor,
            frames_at_time: n,
            file: file.map(|f| f.1),
            marks: self.marks,
        };
        let before = self.pos.unwrap_or(Position {
            time,
            frames_at_time: 0,
            file: file.map(|f| f.0),
            marks: self.marks,
        });
        self.pos = Some(pos);
        let pending_before = self.any_pending();
        if !pending_before {
            self.hold_from = Some(before);
        }
        let scratch = &mut self.scratch;
        self.mergers[i].push(time, text, |line| scratch.push(line));
        // A line of another time than this piece was flushed by it: it ended earlier.
        let prev = self.last_piece[i].replace(at).unwrap_or(at);
        let end_of = |line: &Line| if line.time == time { at } else { prev };
        if !pending_before && !self.any_pending() && self.held.is_empty() {
            // The common case: whole lines, nothing held.
            for line in self.scratch.drain(..) {
                let end = end_of(&line);
                emit(out, stream, line, pos, false, before, end);
            }
            return;
        }
        self.held.extend(self.scratch.drain(..).map(|l| {
            let end = end_of(&l);
            (stream, l, end)
        }));
        if !self.any_pending() {
            self.release(pos, out);
        } else if self.held.len() > HOLD_MAX {
            let from = self.hold_from.unwrap_or(pos);
            for (s, line, end) in self.held.drain(..) {
                emit(out, s, line, from, false, from, end);
            }
        }
    }

    fn any_pending(&self) -> bool {
        self.mergers.iter().any(LineMerger::has_pending)
    }

    /// Hands out the held lines as one group: all but the last at the group's start, the
    /// last at `end`, so no acknowledged position ever covers a line not yet handed out.
    fn release(&mut self, end: Position, out: &mut impl FnMut(Output)) {
        let from = self.hold_from.unwrap_or(end);
        let n = self.held.len();
        for (k, (s, line, at)) in self.held.drain(..).enumerate() {
            let last = k + 1 == n;
            emit(out, s, line, if last { end } else { from }, !last, from, at);
        }
    }

    fn flush(&mut self, out: &mut impl FnMut(Output)) {
        let pos = self.pos.unwrap_or_default();
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if let Some(line) = self.mergers[i].flush() {
                let end = self.last_piece[i].unwrap_or(pos.mark());
                self.held.push((stream, line, end));
            }
        }
        self.release(pos, out);
    }
}

/// A mark compared by the counting only. Unless reading resumes in the position's own
/// file, byte offsets say nothing: Docker deletes rotated logs, and their inode numbers
/// come back for new files.
fn by_time(m: Mark) -> Mark {
    Mark { file: None, ..m }
}

fn emit(
    out: &mut impl FnMut(Output),
    stream: Stream,
    line: Line,
    position: Position,
    continues: bool,
    before: Position,
    end: Mark,
) {
    if line.pieces > 1 {
        out(Output::Notice(Notice::Merged));
    }
    out(Output::Line {
        stream,
        line,
        position,
        continues,
        before,
        end,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::frame::frame;

    fn run(
        d: &mut LogDecoder,
        bytes: &[u8],
        eof: bool,
    ) -> (Vec<(Stream, String, Position)>, Vec<Notice>) {
        d.buffer().extend(bytes);
        let (mut lines, mut notices) = (Vec::new(), Vec::new());
        let mut sink = |o: Output| match o {
            Output::Line {
                stream,
                line,
                position,
                ..
            } => lines.push((stream, String::from_utf8(line.text).unwrap(), position)),
            Output::Notice(n) => notices.push(n),
        };
        d.drain(eof, &mut sink).unwrap();
        if eof {
            d.flush(&mut sink);
        }
        (lines, notices)
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn frames_to_lines_with_positions() {
        let bytes = [
            frame(1, b"2026-01-01T00:00:01Z a\n"),
            frame(2, b"2026-01-01T00:00:01Z b\n"),
            frame(1, b"2026-01-01T00:00:02.5Z c\n"),
        ]
        .concat();
        let mut d = LogDecoder::new(Some(false), 1024, None);
        let (lines, notices) = run(&mut d, &bytes, false);
        assert!(notices.is_empty());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].0, Stream::Stderr);
        assert_eq!(
            lines[1].2,
            Position {
                time: ts("2026-01-01T00:00:01Z"),
                frames_at_time: 2,
                file: None,
                marks: [None; 2],
            }
        );
        assert_eq!(lines[2].1, "c");
    }

    #[test]
    fn resume_skips_exactly_the_delivered_frames() {
        let t = "2026-01-01T00:00:01Z";
        let bytes = [
            frame(1, format!("{t} one\n").as_bytes()),
            frame(1, format!("{t} two\n").as_bytes()),
            frame(1, format!("{t} three\n").as_bytes()),
            frame(1, b"2026-01-01T00:00:03Z four\n"),
        ]
        .concat();
        let resume = Position {
            time: ts(t),
            frames_at_time: 2,
            file: None,
            marks: [None; 2],
        };
        let mut d = LogDecoder::new(Some(false), 1024, Some(resume));
        let (lines, notices) = run(&mut d, &bytes, false);
        let texts: Vec<_> = lines.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(texts, vec!["three", "four"]);
        assert_eq!(
            notices,
            vec![Notice::DuplicateSkipped, Notice::DuplicateSkipped]
        );
    }

    /// A resume point with a mark: the base is after "a", and stdout was delivered up to
    /// "c" (a record of it was complete while one of stderr was still open). Only "c" is
    /// skipped, and the lines before the mark hand it on in their positions.
    #[test]
    fn resume_skips_a_streams_frames_up_to_its_mark() {
        let at = |s: &str, n| Mark {
            time: ts(s),
            frames_at_time: n,
            file: None,
        };
        let bytes = [
            frame(1, b"2026-01-01T00:00:01Z a\n"),
            frame(2, b"2026-01-01T00:00:02Z b\n"),
            frame(1, b"2026-01-01T00:00:03Z c\n"),
            frame(2, b"2026-01-01T00:00:04Z d\n"),
            frame(1, b"2026-01-01T00:00:05Z e\n"),
        ]
        .concat();
        let resume = Position {
            time: ts("2026-01-01T00:00:01Z"),
            frames_at_time: 1,
            file: None,
            marks: [Some(at("2026-01-01T00:00:03Z", 1)), None],
        };
        let mut d = LogDecoder::new(Some(false), 1024, Some(resume));
        let (lines, notices) = run(&mut d, &bytes, false);
        let texts: Vec<_> = lines.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(texts, vec!["b", "d", "e"]);
        assert_eq!(
            notices,
            vec![Notice::DuplicateSkipped, Notice::DuplicateSkipped]
        );
        assert_eq!(
            lines[0].2.marks, resume.marks,
            "b is before the mark: handed on"
        );
        assert_eq!(lines[1].2.marks, [None, None], "d is past it");
        assert!(lines[0]
            .2
            .covers(Stream::Stdout, at("2026-01-01T00:00:03Z", 1)));
        assert!(!lines[0]
            .2
            .covers(Stream::Stderr, at("2026-01-01T00:00:03Z", 1)));
    }

    /// dockerd stamps each stream's lines as it reads them, so a stderr line can come in
    /// the log after a stdout line stamped later: it counts at that line's place. The
    /// stderr line was delivered (its mark), the stdout line was not (an open record):
    /// reading the stdout line must not wipe the mark the stderr line still needs.
    #[test]
    fn a_mark_holds_for_a_frame_at_the_same_place() {
        let bytes = [
            frame(1, b"2026-01-01T00:00:01Z a\n"),
            frame(1, b"2026-01-01T00:00:03Z b\n"),
            frame(2, b"2026-01-01T00:00:02Z m\n"),
        ]
        .concat();
        let (lines, _) = run(&mut LogDecoder::new(Some(false), 1024, None), &bytes, false);
        assert_eq!(
            lines[1].2.mark(),
            lines[2].2.mark(),
            "m counts at b's place"
        );
        let resume = Position {
            marks: [None, Some(lines[2].2.mark())],
            ..lines[0].2
        };
        let mut d = LogDecoder::new(Some(false), 1024, Some(resume));
        let (again, _) = run(&mut d, &bytes, false);
        let texts: Vec<_> = again.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(texts, vec!["b"], "m was delivered; b was not");
    }

    /// Text left without a newline is handed out when a piece of another time comes: it
    /// ends at its own piece, not at the piece that flushed it (else a mark set after it
    /// would cover the next line).
    #[test]
    fn a_line_flushed_by_a_later_piece_ends_at_its_own() {
        let bytes = [
            frame(1, b"2026-01-01T00:00:01Z plain"),
            frame(1, b"2026-01-01T00:00:02Z \n"),
        ]
        .concat();
        let mut d = LogDecoder::new(Some(false), 1024, None);
        d.buffer().extend(&bytes);
        let mut ends = Vec::new();
        d.drain(false, &mut |o| {
            if let Output::Line { line, end, .. } = o {
                ends.push((String::from_utf8(line.text).unwrap(), end.time));
            }
        })
        .unwrap();
        assert_eq!(
            ends,
            vec![
                ("plain".to_owned(), ts("2026-01-01T00:00:01Z")),
                (String::new(), ts("2026-01-01T00:00:02Z"))
            ]
        );
    }

    #[test]
    fn pending_partial_holds_back_the_other_streams_position() {
        let t1 = "2026-01-01T00:00:01Z";
        let piece = format!("{t1} {}", "x".repeat(16 * 1024));
        let bytes = [
            frame(1, piece.as_bytes()),
            frame(2, b"2026-01-01T00:00:02Z err\n"),
            frame(1, format!("{t1} end\n").as_bytes()),
        ]
        .concat();
        let mut d = LogDecoder::new(Some(false), 1 << 20, None);
        let (lines, notices) = run(&mut d, &bytes, false);
        assert_eq!(lines[0].1, "err");
        // Resuming from the stderr line's position must re-read the stdout piece.
        assert_eq!(
            lines[0].2,
            Position {
                time: ts(t1),
                frames_at_time: 0,
                file: None,
                marks: [None; 2],
            }
        );
        assert_eq!(lines[1].1.len(), 16 * 1024 + 3);
        // The late piece is older than the newest frame: the position stays at the newest.
        assert_eq!(
            lines[1].2,
            Position {
                time: ts("2026-01-01T00:00:02Z"),
                frames_at_time: 1,
                file: None,
                marks: [None; 2],
            }
        );
        assert_eq!(notices, vec![Notice::Merged]);
    }

    #[test]
    fn tty_crlf_and_final_text() {
        let mut d = LogDecoder::new(Some(true), 1024, None);
        let (lines, _) = run(
            &mut d,
            b"2026-01-01T00:00:01Z hi\r\n2026-01-01T00:00:02Z bye",
            true,
        );
        let texts: Vec<_> = lines.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(texts, vec!["hi", "bye"]);
    }

    #[test]
    fn tty_or_not_is_sniffed_from_the_first_byte() {
        let mut d = LogDecoder::new(None, 1024, None);
        let (lines, _) = run(&mut d, b"2026-01-01T00:00:01Z tty\r\n", false);
        assert_eq!(lines[0].1, "tty");
        let mut d = LogDecoder::new(None, 1024, None);
        let bytes = [frame(2, b"2026-01-01T00:00:01Z muxed\r\n")].concat();
        let (lines, _) = run(&mut d, &bytes, false);
        assert_eq!(
            (lines[0].0, lines[0].1.as_str()),
            (Stream::Stderr, "muxed\r")
        );
    }

    #[test]
    fn garbage_and_daemon_errors_are_notices() {
        let bytes = [
            frame(3, b"could not read log\n"),
            frame(1, b"no timestamp here\n"),
            frame(1, b""),
        ]
        .concat();
        let mut d = LogDecoder::new(Some(false), 1024, None);
        let (lines, notices) = run(&mut d, &bytes, false);
        assert!(lines.is_empty());
        assert_eq!(
            notices,
            vec![
                Notice::DaemonError("could not read log".into()),
                Notice::BadTimestamp
            ]
        );
    }
}
