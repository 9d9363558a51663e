//! Multiline continuation: decides, line by line, whether a line of one stream continues
//! the record that is open or begins a new one.
//!
//! The trace presets join the continuation lines of known stack-trace formats and nothing
//! else: a line that is not part of a trace is never glued to its neighbour. Each language
//! is a small state machine (`java`, `python`, `go`); a [`Detector`] remembers which trace
//! it is following and in which state the last line left it. [`Preset::Auto`] follows a
//! trace of any of the three. The checks are byte and prefix tests, no regex: `Auto` runs
//! on every line of the containers that enable it, and most lines are rejected by a few
//! `starts_with` and one `memchr` pass over their colons.

mod go;
mod java;
mod python;
#[cfg(test)]
mod tests;

use regex::Regex;

/// Which lines continue a record (the `multiline` key of a rule, minus "none").
///
/// Cloning is cheap: a cloned `Regex` shares its compiled program.
#[derive(Debug, Clone)]
pub enum Preset {
    /// Java, Python and Go at once: a line continues when the trace being followed, of
    /// whichever language, continues with it.
    Auto,
    /// Java and other JVM traces (V8/Node traces, `Error: x` then `    at ...`, share the
    /// shape).
    Java,
    /// Python tracebacks, chained ones included.
    Python,
    /// Go panics and fatal errors with their goroutine dumps.
    Go,
    /// A line matching the pattern begins a record; any other line continues the open one.
    Start(Regex),
}

/// The trace being followed, in the state its last line left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trace {
    Java,
    Python(python::State),
    Go(go::State),
}

impl Trace {
    /// The state after `line` if it continues this trace; `None` when it does not.
    fn next(self, line: &str) -> Option<Trace> {
        match self {
            Trace::Java => java::continues(line).then_some(Trace::Java),
            Trace::Python(state) => python::next(state, line).map(Trace::Python),
            Trace::Go(state) => go::next(state, line).map(Trace::Go),
        }
    }
}

/// Per-stream detection state for one preset. Cheap to create: a preset and one small
/// enum.
#[derive(Debug, Clone)]
pub struct Detector {
    preset: Preset,
    /// `None` when the last record did not start as a trace, or its trace has ended.
    trace: Option<Trace>,
}

impl Detector {
    pub fn new(preset: Preset) -> Detector {
        Detector {
            preset,
            trace: None,
        }
    }

    /// Called for each line of one stream, in order (the text of one logical line, no
    /// trailing newline). `pending` says whether a record is currently open on this stream
    /// (false at the very start, and after the caller emitted the open record because of a
    /// timeout, max lines or stream end). Returns true when `line` continues the open
    /// record, false when it begins a new record; with `pending == false` always false.
    ///
    /// A line that would have continued the trace when no record is open (the caller cut
    /// the trace at max lines or a timeout) begins the record of the trace's remainder:
    /// the following frames join it rather than each becoming a record of its own.
    pub fn continues(&mut self, line: &str, pending: bool) -> bool {
        if let Preset::Start(start) = &self.preset {
            return pending && !start.is_match(line);
        }
        if let Some(next) = self.trace.and_then(|trace| trace.next(line)) {
            self.trace = Some(next);
            return pending;
        }
        self.trace = self.start(line);
        false
    }

    /// The trace that `line` begins, among the preset's languages.
    fn start(&self, line: &str) -> Option<Trace> {
        let (java, python, go) = match self.preset {
            Preset::Auto => (true, true, true),
            Preset::Java => (true, false, false),
            Preset::Python => (false, true, false),
            Preset::Go => (false, false, true),
            Preset::Start(_) => (false, false, false),
        };
        // Python and Go are prefix tests, and more specific than Java's: try them first.
        if python {
            if let Some(state) = python::start(line) {
                return Some(Trace::Python(state));
            }
        }
        if go {
            if let Some(state) = go::start(line) {
                return Some(Trace::Go(state));
            }
        }
        (java && java::starts(line)).then_some(Trace::Java)
    }
}

/// Whether `line` begins with a space or a tab.
fn indented(line: &str) -> bool {
    line.starts_with([' ', '\t'])
}

/// Whether `line` is empty or only whitespace.
fn blank(line: &str) -> bool {
    line.trim_ascii().is_empty()
}
