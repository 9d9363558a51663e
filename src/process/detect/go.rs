//! Go panics and fatal errors: `panic: ...` or `fatal error: ...`, the `[signal ...]` and
//! nested `\tpanic:` lines under it, then the goroutine dump (headers, function lines, file
//! lines, blank lines between goroutines), and `exit status 2` from `go run`, which ends
//! it. A line of any other shape ends the dump.

use super::{blank, indented};

/// Where in a dump the last line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// After the panic line, before the first goroutine header.
    Head,
    /// In the goroutine dump.
    Stack,
    /// After `exit status N`: nothing continues.
    Exited,
}

/// The state after `line` if it begins a dump.
pub(super) fn start(line: &str) -> Option<State> {
    (line.starts_with("panic: ") || line.starts_with("fatal error: ")).then_some(State::Head)
}

/// The state after `line` if it continues the dump; `None` when it does not.
pub(super) fn next(state: State, line: &str) -> Option<State> {
    if state == State::Exited {
        return None;
    }
    if blank(line) || indented(line) || line.starts_with('[') {
        return Some(state);
    }
    if goroutine_header(line) || line.starts_with("runtime stack:") {
        return Some(State::Stack);
    }
    if exit_status(line) {
        return Some(State::Exited);
    }
    let frame = line.starts_with("created by ")
        || line.starts_with("...additional frames elided...")
        || function(line);
    (state == State::Stack && frame).then_some(State::Stack)
}

/// `goroutine 1 [running]:`
fn goroutine_header(line: &str) -> bool {
    line.starts_with("goroutine ") && line.trim_ascii_end().ends_with(':')
}

/// `exit status 2`
fn exit_status(line: &str) -> bool {
    line.strip_prefix("exit status ")
        .map(str::trim_ascii_end)
        .is_some_and(|code| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
}

/// A function line: `main.main()`, `main.(*T).m(0x0, {0x1, 0x2})`, `panic({0x4a1b20?, ...})`:
/// a name without spaces, then arguments in parentheses to the end of the line.
fn function(line: &str) -> bool {
    let line = line.trim_ascii_end();
    match line.find('(') {
        Some(open) => {
            open > 0 && line.ends_with(')') && !line[..open].contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_fatal_errors_start() {
        assert_eq!(start("panic: boom"), Some(State::Head));
        assert_eq!(
            start("fatal error: all goroutines are asleep - deadlock!"),
            Some(State::Head)
        );
        assert_eq!(start("panic:boom"), None);
        assert_eq!(start(" panic: boom"), None);
        assert_eq!(start("error: boom"), None);
    }

    #[test]
    fn function_lines() {
        for line in [
            "main.main()",
            "main.(*Server).handle(0x0, {0x5b3a28, 0xc0000a2000})",
            "panic({0x4c2e40?, 0x5a1f90?})",
            "main.Map[...](...)",
            "runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)",
        ] {
            assert!(function(line), "{line:?}");
        }
        for line in ["", "()", "GET / (200)", "main.main", "main.main() trailing"] {
            assert!(!function(line), "{line:?}");
        }
    }

    #[test]
    fn the_head_takes_no_frames_before_a_goroutine_header() {
        assert_eq!(next(State::Head, "main.main()"), None);
        assert_eq!(next(State::Head, "[signal SIGSEGV: x]"), Some(State::Head));
        assert_eq!(next(State::Head, "\tpanic: again"), Some(State::Head));
        assert_eq!(next(State::Head, ""), Some(State::Head));
        assert_eq!(
            next(State::Head, "goroutine 1 [running]:"),
            Some(State::Stack)
        );
        assert_eq!(next(State::Head, "runtime stack:"), Some(State::Stack));
        assert_eq!(next(State::Head, "listening on :8080"), None);
    }

    #[test]
    fn exit_status_ends_the_dump() {
        assert_eq!(next(State::Stack, "exit status 2"), Some(State::Exited));
        assert_eq!(next(State::Stack, "exit status two"), None);
        assert_eq!(next(State::Exited, ""), None);
        assert_eq!(next(State::Exited, "\t/app/main.go:1 +0x1"), None);
    }
}
