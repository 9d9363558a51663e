//! Grouping tests of the [`Detector`]: realistic traces among plain log lines, fed line by
//! line as the rule stage would, must come back as exactly the expected records.

use super::*;
use proptest::prelude::*;

/// Records of a JVM service: each string is one record, its lines joined with `\n`.
const JAVA: &[&str] = &[
    "2024-05-01 12:00:00.123 INFO  [main] c.e.App - Starting App",
    "2024-05-01 12:00:01.456 ERROR [exec-1] c.e.Handler - request failed",
    "java.lang.IllegalStateException: boom\n\
     \tat com.example.Service.run(Service.java:42)\n\
     \tat com.example.Handler.handle(Handler.java:17)\n\
     \tSuppressed: java.io.IOException: close failed\n\
     \t\tat com.example.Resource.close(Resource.java:9)\n\
     \t\t... 2 more\n\
     Caused by: java.lang.NullPointerException: Cannot invoke \"String.length()\"\n\
     \tat com.example.Util.len(Util.java:5)\n\
     \t... 3 common frames omitted",
    // A false start: only trace-shaped lines could join it.
    "2024-05-01 12:00:02.000 WARN  [main] c.e.App - Error: retrying",
    "  indented plain text after the warning",
    "2024-05-01 12:00:03.000 ERROR [exec-2] c.e.Io - read failed: java.io.UncheckedIOException: x\n\
     \tat com.example.Io.read(Io.java:3)\n\
     \t... 5 more",
    "Exception in thread \"main\" java.lang.RuntimeException: fatal\n\
     \tat com.example.App.main(App.java:10)",
    "2024-05-01 12:00:04.000 INFO  [main] c.e.App - Stopped",
];

/// Records of a Python service, with both kinds of chained tracebacks.
const PYTHON: &[&str] = &[
    "INFO:app:starting",
    "ERROR:app:load failed",
    "Traceback (most recent call last):\n\
     \x20 File \"/app/main.py\", line 10, in load\n\
     \x20   return json.loads(raw)\n\
     \x20          ^^^^^^^^^^^^^^^\n\
     \x20 File \"/usr/lib/python3.12/json/__init__.py\", line 346, in loads\n\
     \x20   return _default_decoder.decode(s)\n\
     json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n\
     \n\
     During handling of the above exception, another exception occurred:\n\
     \n\
     Traceback (most recent call last):\n\
     \x20 File \"/app/main.py\", line 20, in <module>\n\
     \x20   load()\n\
     \x20 File \"/app/main.py\", line 12, in load\n\
     \x20   raise ConfigError(\"bad config\")\n\
     ConfigError: bad config",
    "INFO:app:retrying",
    "Traceback (most recent call last):\n\
     \x20 File \"/app/db.py\", line 5, in connect\n\
     \x20   raise OSError(\"refused\")\n\
     OSError: refused\n\
     \n\
     The above exception was the direct cause of the following exception:\n\
     \n\
     Traceback (most recent call last):\n\
     \x20 File \"/app/main.py\", line 30, in <module>\n\
     \x20   connect()\n\
     mymod.DatabaseError",
    "INFO:app:done",
    // The blank line after the exception line is kept in case a chain follows.
    "Traceback (most recent call last):\n\
     \x20 File \"/app/x.py\", line 1, in <module>\n\
     \x20   d['x']\n\
     KeyError: 'x'\n",
    "GET / 200",
    "  + Exception Group Traceback (most recent call last):\n\
     \x20 |   File \"/app/g.py\", line 3, in <module>\n\
     \x20 | ExceptionGroup: many (2 sub-exceptions)\n\
     \x20 +-+---------------- 1 ----------------\n\
     \x20   | ValueError: 1\n\
     \x20   +------------------------------------",
    "INFO:app:exit",
];

/// Records of a Go service: a recovered panic with several goroutines, a deadlock.
const GO: &[&str] = &[
    "2024/05/01 12:00:00 listening on :8080",
    "panic: runtime error: invalid memory address or nil pointer dereference [recovered]\n\
     \tpanic: runtime error: invalid memory address or nil pointer dereference\n\
     [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n\
     \n\
     goroutine 7 [running]:\n\
     main.(*Server).handle.func1()\n\
     \t/app/server.go:31 +0x1d\n\
     panic({0x4c2e40?, 0x5a1f90?})\n\
     \t/usr/local/go/src/runtime/panic.go:770 +0x132\n\
     main.(*Server).handle(0x0, {0x5b3a28, 0xc0000a2000})\n\
     \t/app/server.go:35 +0x2f\n\
     created by main.(*Server).serve in goroutine 1\n\
     \t/app/server.go:20 +0x5e\n\
     \n\
     goroutine 1 [chan receive]:\n\
     main.main()\n\
     \t/app/main.go:12 +0x85\n\
     \n\
     goroutine 9 [select]:\n\
     main.worker(0xc000012345)\n\
     \t/app/worker.go:8 +0x3a\n\
     created by main.main in goroutine 1\n\
     \t/app/main.go:9 +0x1f\n\
     exit status 2",
    "2024/05/01 12:00:05 restarting",
    "fatal error: all goroutines are asleep - deadlock!\n\
     \n\
     goroutine 1 [chan receive]:\n\
     main.main()\n\
     \t/app/main.go:5 +0x2d",
    "2024/05/01 12:00:06 stopped",
];

/// Drives a detector over `lines` as the rule stage would with no timeout and no line
/// bound: the records it makes.
fn group<'a>(preset: Preset, lines: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut detector = Detector::new(preset);
    let mut records: Vec<Vec<&str>> = Vec::new();
    for &line in lines {
        let continues = detector.continues(line, !records.is_empty());
        match records.last_mut() {
            Some(open) if continues => open.push(line),
            _ => {
                assert!(!continues, "continued with no record open: {line:?}");
                records.push(vec![line]);
            }
        }
    }
    records
}

/// The records, each split into its lines.
fn split<'a>(records: &[&'a str]) -> Vec<Vec<&'a str>> {
    records.iter().map(|r| r.split('\n').collect()).collect()
}

/// Asserts that the lines of `records`, fed in order, group back into exactly `records`.
fn assert_groups(preset: Preset, records: &[&str]) {
    let expected = split(records);
    assert_eq!(group(preset, &expected.concat()), expected);
}

/// Asserts that every line of `records` is a record of its own.
fn assert_all_alone(preset: Preset, records: &[&str]) {
    let lines = split(records).concat();
    let alone: Vec<Vec<&str>> = lines.iter().map(|&line| vec![line]).collect();
    assert_eq!(group(preset, &lines), alone);
}

fn trace_presets() -> [Preset; 4] {
    [Preset::Auto, Preset::Java, Preset::Python, Preset::Go]
}

fn date_start() -> Regex {
    Regex::new(r"^\d{4}-\d{2}-\d{2} ").expect("a valid pattern")
}

fn start_preset() -> Preset {
    Preset::Start(date_start())
}

#[test]
fn java_traces_with_causes_suppressed_and_elisions() {
    assert_groups(Preset::Java, JAVA);
}

#[test]
fn python_chained_tracebacks() {
    assert_groups(Preset::Python, PYTHON);
}

#[test]
fn go_panic_with_several_goroutines() {
    assert_groups(Preset::Go, GO);
}

#[test]
fn auto_follows_all_three_interleaved() {
    let mixed: Vec<&str> = [GO, JAVA, PYTHON, JAVA, GO, PYTHON].concat();
    assert_groups(Preset::Auto, &mixed);
}

#[test]
fn each_language_preset_ignores_the_others() {
    assert_all_alone(Preset::Java, PYTHON);
    assert_all_alone(Preset::Java, GO);
    assert_all_alone(Preset::Python, JAVA);
    assert_all_alone(Preset::Python, GO);
    assert_all_alone(Preset::Go, JAVA);
    assert_all_alone(Preset::Go, PYTHON);
}

/// A plain line is never glued, not even an indented one or one shaped like a frame:
/// presets join only lines that follow a trace's start.
#[test]
fn plain_lines_are_never_glued() {
    let lines = &[
        "GET / 200",
        "  indented plain text",
        "\tat the door",
        "",
        "Caused by: nothing",
        "main.main()",
        "\t... 2 more",
    ];
    for preset in trace_presets() {
        assert_all_alone(preset, lines);
    }
}

#[test]
fn a_log_line_before_the_exception_line_is_not_joined() {
    let records = &[
        "12:00 ERROR c.e.Handler - Error: request failed",
        "java.lang.IllegalStateException: boom\n\tat com.example.A.b(A.java:1)",
        "ERROR:root:failed",
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: x",
    ];
    assert_groups(Preset::Auto, records);
}

#[test]
fn a_trace_of_another_language_ends_the_one_followed() {
    let records = &[
        "java.lang.IllegalStateException: boom\n\tat com.example.A.b(A.java:1)",
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: x",
        "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:3 +0x1",
        "java.lang.Error\n\tat com.example.A.b(A.java:1)",
    ];
    assert_groups(Preset::Auto, records);
}

#[test]
fn start_regex_groups_until_the_next_match() {
    let lines = &[
        "  orphan continuation at stream start",
        "  another",
        "2024-05-01 first",
        "  detail",
        "plain",
        "2024-05-01 second",
        "2024-05-01 third",
        "",
    ];
    let expected = vec![
        vec![lines[0], lines[1]],
        vec![lines[2], lines[3], lines[4]],
        vec![lines[5]],
        vec![lines[6], lines[7]],
    ];
    assert_eq!(group(start_preset(), lines), expected);
}

#[test]
fn nothing_continues_when_no_record_is_open() {
    let lines = split(&[JAVA, PYTHON, GO].concat()).concat();
    for preset in trace_presets().into_iter().chain([start_preset()]) {
        let mut detector = Detector::new(preset);
        for &line in &lines {
            assert!(!detector.continues(line, false), "{line:?}");
        }
    }
}

/// The caller cut a trace (max lines or timeout): the rest of the trace is one record.
#[test]
fn a_cut_trace_goes_on_as_one_record() {
    let mut detector = Detector::new(Preset::Auto);
    assert!(!detector.continues("java.lang.IllegalStateException: boom", false));
    assert!(detector.continues("\tat a.A.a(A.java:1)", true));
    assert!(!detector.continues("\tat b.B.b(B.java:2)", false));
    assert!(detector.continues("\tat c.C.c(C.java:3)", true));
    assert!(!detector.continues("GET / 200", true));
    assert!(!detector.continues("\tat d.D.d(D.java:4)", true));
}

#[test]
fn a_plain_line_after_a_cut_ends_the_trace() {
    let mut detector = Detector::new(Preset::Go);
    assert!(!detector.continues("panic: boom", false));
    assert!(!detector.continues("GET / 200", false));
    assert!(!detector.continues("", true));
    assert!(!detector.continues("goroutine 1 [running]:", true));
}

proptest! {
    #[test]
    fn continues_is_false_whenever_nothing_is_pending(
        steps in proptest::collection::vec((".{0,40}", any::<bool>()), 0..40),
        which in 0usize..5,
    ) {
        let presets: Vec<Preset> = trace_presets().into_iter().chain([start_preset()]).collect();
        let mut detector = Detector::new(presets[which].clone());
        for (line, pending) in &steps {
            let continues = detector.continues(line, *pending);
            prop_assert!(*pending || !continues);
        }
    }

    /// Lines with no trace start in them (no `:`, no capital letter) are never glued,
    /// whatever their indentation or brackets.
    #[test]
    fn lines_without_a_trace_start_stay_alone(
        lines in proptest::collection::vec("[a-z0-9 \t./()\\[\\]]{0,24}", 0..40),
    ) {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let alone: Vec<Vec<&str>> = lines.iter().map(|&line| vec![line]).collect();
        for preset in trace_presets() {
            prop_assert_eq!(group(preset, &lines), alone.clone());
        }
    }

    #[test]
    fn start_continues_exactly_the_lines_that_do_not_match(
        line in "([0-9]{4}-[0-9]{2}-[0-9]{2} )?.{0,30}",
    ) {
        let re = date_start();
        let mut detector = Detector::new(Preset::Start(re.clone()));
        prop_assert_eq!(detector.continues(&line, true), !re.is_match(&line));
    }
}
