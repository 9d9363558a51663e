//! Java traces. One state is enough: once an exception line has begun a trace, every
//! frame, cause, suppressed exception and elision line continues it, in any order, and any
//! other line ends it.
//!
//! The start rule is deliberately loose (a word ending in `Exception`, `Error` or
//! `Throwable`, then `:` or the end of the line): a false start costs nothing, since only
//! trace-shaped lines are ever joined to it.

use super::indented;

/// The endings of an exception's class name.
const NAMES: [&[u8]; 3] = [b"Exception", b"Error", b"Throwable"];

/// Whether `line` begins a trace: `java.lang.IllegalStateException: boom`,
/// `Exception in thread "main" java.lang.RuntimeException: x`, `com.foo.BarError`, or a log
/// line whose message ends with the exception (`... failed: java.io.IOException: x`).
pub(super) fn starts(line: &str) -> bool {
    let bytes = line.trim_ascii_end().as_bytes();
    ends_with_name(bytes) || memchr::memchr_iter(b':', bytes).any(|at| ends_with_name(&bytes[..at]))
}

fn ends_with_name(bytes: &[u8]) -> bool {
    NAMES.iter().any(|name| bytes.ends_with(name))
}

/// Whether `line` continues a trace: `\tat pkg.Class.method(File.java:12)`, `Caused by: ...`,
/// `\tSuppressed: ...`, `\t... 12 more`, `... 3 common frames omitted`,
/// `\t[CIRCULAR REFERENCE: ...]`.
pub(super) fn continues(line: &str) -> bool {
    let body = line.trim_start_matches([' ', '\t']);
    (indented(line) && body.starts_with("at "))
        || body.starts_with("Caused by:")
        || body.starts_with("Suppressed:")
        || body.starts_with("[CIRCULAR REFERENCE:")
        || elided(body)
}

/// `... 12 more` or `... 12 common frames omitted` (logback), indentation removed.
fn elided(body: &str) -> bool {
    let Some(rest) = body.strip_prefix("... ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && matches!(
            rest[digits..].trim_ascii_end(),
            " more" | " common frames omitted"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_lines_start_a_trace() {
        for line in [
            "java.lang.IllegalStateException: boom",
            "Exception in thread \"main\" java.lang.RuntimeException: x",
            "com.foo.BarError",
            "java.lang.OutOfMemoryError: Java heap space",
            "java.lang.NullPointerException",
            "java.lang.Throwable: t",
            "12:00:01 ERROR c.e.H - failed: java.io.IOException: broken pipe",
            "Error: connect ECONNREFUSED 127.0.0.1:5432",
            "com.foo.BarError   ",
        ] {
            assert!(starts(line), "{line:?}");
        }
    }

    #[test]
    fn plain_lines_do_not_start_a_trace() {
        for line in [
            "",
            "GET / 200",
            "12:00:01 INFO errors: 0",
            "ErrorCount: 5",
            "ExceptionHandler registered",
            "{\"level\":\"error\",\"msg\":\"x\"}",
            "\tat com.example.A.b(A.java:1)",
        ] {
            assert!(!starts(line), "{line:?}");
        }
    }

    #[test]
    fn frames_causes_and_elisions_continue() {
        for line in [
            "\tat com.example.Service.run(Service.java:42)",
            "    at java.base/java.lang.Thread.run(Thread.java:834)",
            "\t\tat com.example.Resource.close(Resource.java:9)",
            "Caused by: java.lang.NullPointerException",
            "\tCaused by: java.io.IOException: x",
            "\tSuppressed: java.io.IOException: close failed",
            "\t... 12 more",
            "... 3 common frames omitted",
            "\t[CIRCULAR REFERENCE: java.lang.IllegalStateException: boom]",
        ] {
            assert!(continues(line), "{line:?}");
        }
    }

    #[test]
    fn other_lines_do_not_continue() {
        for line in [
            "",
            "at com.example.A.b(A.java:1)",
            "GET / 200",
            "\t...",
            "\t... more",
            "\t... 12 lines skipped",
            "java.lang.IllegalStateException: another",
            "\tcaused by: lowercase",
        ] {
            assert!(!continues(line), "{line:?}");
        }
    }
}
