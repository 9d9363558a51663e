//! Multiline joining with exact positions. Per stream, the lines of one record are
//! gathered until the next record begins (as the [`Detector`] says), the stream is quiet
//! for the timeout, the record reaches its line or byte limit (then it is marked
//! truncated), or the stream ends.
//!
//! An open record is never acknowledged: every record handed out carries a position
//! before the oldest record still open, on either stream, so a restart reads that one
//! again, whole. A record of one stream can be complete while the other stream's record
//! is still open; its position then stays before the open one and carries a mark per
//! stream (the last frame of that stream already handed out), which the decoder skips
//! on resume (`record::Position`). So every record comes out exactly once across
//! restarts, without holding complete records back.

use std::time::Instant;

use super::detect::Detector;
use super::rules::MultilineSpec;
use crate::capture::decode::Output;
use crate::capture::record::{message_text, Mark, Position, Stream};
use crate::capture::timestamp::Timestamp;

/// One line, as the decoder hands it out.
#[derive(Clone, Debug)]
pub struct JoinLine {
    pub stream: Stream,
    pub time: Timestamp,
    pub text: String,
    pub truncated: bool,
    /// Resuming here reads everything after this line.
    pub after: Position,
    /// Resuming here reads this line again.
    pub before: Position,
    /// The line's last frame.
    pub end: Mark,
}

impl JoinLine {
    /// The line of a decoder output, if it is one.
    pub fn from_output(o: Output) -> Option<JoinLine> {
        match o {
            Output::Line {
                stream,
                line,
                position,
                before,
                end,
                ..
            } => Some(JoinLine {
                stream,
                time: line.time,
                text: message_text(line.text),
                truncated: line.truncated,
                after: position,
                before,
                end,
            }),
            Output::Notice(_) => None,
        }
    }
}

/// A line that is its record (no multiline rule): the position after it.
impl From<JoinLine> for Joined {
    fn from(l: JoinLine) -> Joined {
        Joined {
            stream: l.stream,
            time: l.time,
            text: l.text,
            truncated: l.truncated,
            position: l.after,
        }
    }
}

/// A record, joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub stream: Stream,
    /// The first line's.
    pub time: Timestamp,
    /// The lines joined with `\n`.
    pub text: String,
    pub truncated: bool,
    pub position: Position,
}

/// The joining state of one container (both streams).
pub struct Joiner {
    spec: MultilineSpec,
    max_bytes: usize,
    sides: [Side; 2],
    /// The `after` of the last line taken.
    last_after: Option<Position>,
    /// Order of the records opened, to find the oldest.
    seq: u64,
}

struct Side {
    detector: Detector,
    open: Option<Open>,
    /// The last frame of this stream handed out in a record.
    mark: Option<Mark>,
}

struct Open {
    seq: u64,
    start: Position,
    time: Timestamp,
    text: String,
    lines: usize,
    truncated: bool,
    end: Mark,
    last_at: Instant,
}

impl Joiner {
    /// `resume`: where reading resumes; its marks are this joiner's until passed.
    pub fn new(spec: MultilineSpec, max_bytes: usize, resume: Option<Position>) -> Joiner {
        let marks = resume.map_or([None; 2], |p| p.marks);
        let side = |mark: Option<Mark>| Side {
            detector: Detector::new(spec.preset.clone()),
            open: None,
            mark,
        };
        Joiner {
            sides: [side(marks[0]), side(marks[1])],
            spec,
            max_bytes,
            last_after: resume,
            seq: 0,
        }
    }

    /// Whether a record is open on either stream.
    pub fn has_open(&self) -> bool {
        self.sides.iter().any(|s| s.open.is_some())
    }

    /// Takes one line; hands out the record it closes, if any.
    pub fn push(&mut self, line: JoinLine, now: Instant, out: &mut impl FnMut(Joined)) {
        let i = line.stream.index();
        let (max_lines, max_bytes) = (self.spec.max_lines, self.max_bytes);
        let side = &mut self.sides[i];
        let continues = side.detector.continues(&line.text, side.open.is_some());
        let mut closed = side.open.take();
        if continues {
            if let Some(o) = closed.as_mut() {
                if o.lines < max_lines && o.text.len() + 1 + line.text.len() <= max_bytes {
                    o.text.push('\n');
                    o.text.push_str(&line.text);
                    o.lines += 1;
                    o.truncated |= line.truncated;
                    o.end = line.end;
                    o.last_at = now;
                    side.open = closed;
                    self.last_after = Some(line.after);
                    return;
                }
                // Full: it goes out cut, and this line begins the next record.
                o.truncated = true;
            }
        }
        side.open = Some(Open {
            seq: self.seq,
            start: line.before,
            time: line.time,
            text: line.text,
            lines: 1,
            truncated: line.truncated,
            end: line.end,
            last_at: now,
        });
        self.seq += 1;
        self.last_after = Some(line.after);
        if let Some(o) = closed {
            self.emit(i, o, out);
        }
    }

    /// Hands out the records whose stream was quiet for the timeout.
    pub fn tick(&mut self, now: Instant, out: &mut impl FnMut(Joined)) {
        let timeout = self.spec.timeout;
        while let Some(i) = self.oldest(|o| now.saturating_duration_since(o.last_at) >= timeout) {
            if let Some(o) = self.sides[i].open.take() {
                self.emit(i, o, out);
            }
        }
    }

    /// The stream ended: hands out every open record, oldest first.
    pub fn finish(&mut self, out: &mut impl FnMut(Joined)) {
        while let Some(i) = self.oldest(|_| true) {
            if let Some(o) = self.sides[i].open.take() {
                self.emit(i, o, out);
            }
        }
    }

    /// Where a resume would start now: before the oldest open record, with the marks of
    /// what each stream handed out since; after the last line when nothing is open.
    pub fn position(&self) -> Option<Position> {
        let oldest = self
            .oldest(|_| true)
            .and_then(|i| self.sides[i].open.as_ref());
        let Some(o) = oldest else {
            // Nothing open: everything read so far was handed out.
            let mut after = self.last_after?;
            after.marks = [None; 2];
            return Some(after);
        };
        let mut base = o.start;
        let at = base.mark();
        // A mark at the base's very place is kept: a frame of the other stream may count
        // at the same place.
        base.marks = [0, 1].map(|k| self.sides[k].mark.filter(|m| at.not_after(m)));
        Some(base)
    }

    /// The side whose open record is the oldest among those `pick` accepts.
    fn oldest(&self, pick: impl Fn(&Open) -> bool) -> Option<usize> {
        (0..2)
            .filter_map(|i| {
                self.sides[i]
                    .open
                    .as_ref()
                    .filter(|o| pick(o))
                    .map(|o| (o.seq, i))
            })
            .min()
            .map(|(_, i)| i)
    }

    fn emit(&mut self, i: usize, mut o: Open, out: &mut impl FnMut(Joined)) {
        self.sides[i].mark = Some(o.end);
        if o.lines > 1 {
            // Grown by doubling; the queue's byte bound counts lengths.
            o.text.shrink_to_fit();
        }
        let position = self.position().unwrap_or(o.start);
        out(Joined {
            stream: Stream::BOTH[i],
            time: o.time,
            text: o.text,
            truncated: o.truncated,
            position,
        });
    }
}

#[cfg(test)]
#[path = "joiner_tests.rs"]
mod tests;
