//! One follower's rule stage: lines in, records out. With a multiline rule the lines go
//! through the [`Joiner`]; without, each line is its record, with the decoder's position.
//! Parsing and drop/keep are [`Shaping::shape`], applied to each record as it is made.

use std::sync::Arc;
use std::time::Instant;

use super::joiner::{JoinLine, Joined, Joiner};
use super::rules::Shaping;
use crate::capture::record::Position;

/// The stage of one container or file.
pub struct Stage {
    joiner: Option<Joiner>,
}

impl Stage {
    /// `max_bytes`: a joined record's bound (`containers.max_line_bytes`); `resume`: where
    /// reading resumes.
    pub fn new(shaping: Arc<Shaping>, max_bytes: usize, resume: Option<Position>) -> Stage {
        let joiner = shaping
            .multiline
            .clone()
            .map(|spec| Joiner::new(spec, max_bytes, resume));
        Stage { joiner }
    }

    /// Takes one line; hands out the records it completes, each with whether the next
    /// record belongs to the same group (the decoder's `continues`, see `Record`).
    pub fn push(
        &mut self,
        line: JoinLine,
        continues: bool,
        now: Instant,
        out: &mut impl FnMut(Joined, bool),
    ) {
        match &mut self.joiner {
            Some(j) => j.push(line, now, &mut |r| out(r, false)),
            None => out(Joined::from(line), continues),
        }
    }

    /// Whether lines are joined (a multiline rule): open records wait for `tick`.
    pub fn joins(&self) -> bool {
        self.joiner.is_some()
    }

    /// Hands out the records whose stream has been quiet for the multiline timeout.
    pub fn tick(&mut self, now: Instant, out: &mut impl FnMut(Joined, bool)) {
        if let Some(j) = &mut self.joiner {
            j.tick(now, &mut |r| out(r, false));
        }
    }

    /// The stream ended: hands out every open record.
    pub fn finish(&mut self, out: &mut impl FnMut(Joined, bool)) {
        if let Some(j) = &mut self.joiner {
            j.finish(&mut |r| out(r, false));
        }
    }

    /// Whether a multiline record is open (waiting for more lines or its timeout).
    pub fn has_open(&self) -> bool {
        self.joiner.as_ref().is_some_and(Joiner::has_open)
    }

    /// Where a new follower of the same container resumes when this one stops with
    /// records still open (before them); `None` when nothing is open.
    pub fn open_position(&self) -> Option<Position> {
        self.joiner
            .as_ref()
            .filter(|j| j.has_open())
            .and_then(Joiner::position)
    }
}
