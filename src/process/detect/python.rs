//! Python tracebacks: `Traceback (most recent call last):`, indented frames and code lines,
//! then the exception line, which ends the traceback. A chained traceback continues the
//! same record: blank line, the chain sentence, blank line, the next `Traceback`.
//!
//! Only one line is seen at a time, so a blank line right after the exception line
//! continues the record in case a chain follows; if none does, the record has a trailing
//! blank line. An exception group printed at top level (`  + Exception Group Traceback`)
//! is indented throughout and ends at the first line that is not.

use super::{blank, indented};

const TRACEBACK: &str = "Traceback (most recent call last):";
const GROUP: &str = "  + Exception Group Traceback (most recent call last):";
const DURING: &str = "During handling of the above exception, another exception occurred:";
const CAUSE: &str = "The above exception was the direct cause of the following exception:";

/// Where in a traceback the last line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// After the `Traceback` line or a frame: frames, or the exception line.
    Frames,
    /// Inside a top-level exception group: indented lines.
    Group,
    /// After the exception line: a blank line, if a chain follows.
    Ended,
    /// After that blank line: the chain sentence.
    Blank,
    /// After the chain sentence: blank lines, then the next traceback.
    Chain,
}

/// The state after `line` if it begins a traceback.
pub(super) fn start(line: &str) -> Option<State> {
    let line = line.trim_ascii_end();
    if line == TRACEBACK {
        Some(State::Frames)
    } else if line == GROUP {
        Some(State::Group)
    } else {
        None
    }
}

/// The state after `line` if it continues the traceback; `None` when it does not.
pub(super) fn next(state: State, line: &str) -> Option<State> {
    match state {
        State::Frames if indented(line) => Some(State::Frames),
        State::Frames => exception_line(line).then_some(State::Ended),
        State::Group if indented(line) => Some(State::Group),
        State::Group | State::Ended => blank(line).then_some(State::Blank),
        State::Blank => {
            let line = line.trim_ascii_end();
            (line == DURING || line == CAUSE).then_some(State::Chain)
        }
        State::Chain if blank(line) => Some(State::Chain),
        State::Chain => start(line),
    }
}

/// Whether `line` has the shape of a traceback's last line: a dotted name, then `:` or
/// nothing (`ValueError: bad`, `KeyError: 'x'`, `mymod.MyError`, `KeyboardInterrupt`).
fn exception_line(line: &str) -> bool {
    let end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    name.starts_with(|c: char| c.is_alphabetic() || c == '_')
        && (rest.starts_with(':') || rest.trim_ascii_end().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_lines() {
        for line in [
            "ValueError: bad",
            "KeyError: 'x'",
            "mymod.MyError",
            "KeyboardInterrupt",
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
            "__main__.Ошибка: юникод",
            "_private.Error:",
        ] {
            assert!(exception_line(line), "{line:?}");
        }
        for line in [
            "",
            "GET / 200",
            ".Error: x",
            "1Error: x",
            "Traceback (most recent call last):",
            "  File \"x.py\", line 3, in f",
        ] {
            assert!(!exception_line(line), "{line:?}");
        }
    }

    #[test]
    fn starts_only_on_the_traceback_line() {
        assert_eq!(start(TRACEBACK), Some(State::Frames));
        assert_eq!(
            start("Traceback (most recent call last):\r"),
            Some(State::Frames)
        );
        assert_eq!(start(GROUP), Some(State::Group));
        assert_eq!(start("  Traceback (most recent call last):"), None);
        assert_eq!(start("Traceback"), None);
        assert_eq!(start("ValueError: bad"), None);
    }

    #[test]
    fn a_blank_line_in_the_frames_ends_the_traceback() {
        assert_eq!(next(State::Frames, ""), None);
    }

    #[test]
    fn only_a_chain_sentence_follows_the_blank_line() {
        assert_eq!(next(State::Blank, DURING), Some(State::Chain));
        assert_eq!(next(State::Blank, CAUSE), Some(State::Chain));
        assert_eq!(next(State::Blank, ""), None);
        assert_eq!(next(State::Blank, "INFO:app:next"), None);
        assert_eq!(next(State::Chain, ""), Some(State::Chain));
        assert_eq!(next(State::Chain, TRACEBACK), Some(State::Frames));
        assert_eq!(next(State::Chain, "ValueError: x"), None);
    }
}
