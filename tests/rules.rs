//! `[[rules]]` against real containers: Java, Python and Go traces interleaved with plain
//! lines on both streams become exactly the expected records, the same through the API
//! and from the json-file log; labels override a rule, and a bad label is reported while
//! the rule applies; drop/keep and the three parsers; a SIGTERM or a SIGKILL in the middle
//! of a trace, then a restart: the trace comes out once, whole.

use std::time::Duration;

use serde_json::Value;

use crate::util::{shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(60);

/// A shell script printing `lines` on stdout (or stderr with `err`), one printf each.
fn printing(lines: &[&str], err: bool) -> String {
    let quoted: Vec<String> = lines
        .iter()
        .map(|l| format!("'{}'", l.replace('\'', "'\\''")))
        .collect();
    let redirect = if err { " >&2" } else { "" };
    format!("printf '%s\\n' {}{redirect}", quoted.join(" "))
}

const JAVA: &[&str] = &[
    "2026-12-02 10:00:00 ERROR request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.example.Api.handle(Api.java:42)",
    "\tat com.example.Server.run(Server.java:7)",
    "Caused by: java.io.IOException: disk full",
    "\tat com.example.Store.write(Store.java:9)",
    "\t... 2 more",
    "2026-12-02 10:00:01 INFO next request ok",
];

const PYTHON: &[&str] = &[
    "worker started",
    "Traceback (most recent call last):",
    "  File \"/app/worker.py\", line 12, in <module>",
    "    main()",
    "  File \"/app/worker.py\", line 8, in main",
    "    raise ValueError(\"bad input\")",
    "ValueError: bad input",
    "worker stopped",
];

const GO: &[&str] = &[
    "listening on :8080",
    "panic: runtime error: index out of range [3] with length 3",
    "",
    "goroutine 1 [running]:",
    "main.main()",
    "\t/src/main.go:12 +0x1d",
    "exit status 2",
    "after the panic",
];

/// The records of each stream: (stream, message), in order.
fn by_stream(records: &[Value], stream: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["stream"] == stream)
        .map(|r| r["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn expected_stdout() -> Vec<String> {
    let mut want = vec![
        JAVA[0].to_owned(),
        JAVA[1..7].join("\n"),
        JAVA[7].to_owned(),
    ];
    want.extend([GO[0].to_owned(), GO[1..7].join("\n"), GO[7].to_owned()]);
    want
}

fn expected_stderr() -> Vec<String> {
    vec![
        PYTHON[0].to_owned(),
        PYTHON[1..7].join("\n"),
        PYTHON[7].to_owned(),
    ]
}

const AUTO: &str = "[[rules]]\nmultiline = \"auto\"\nmultiline_timeout = \"30s\"\n";

#[test]
fn traces_become_records_the_same_through_the_api_and_from_disk() {
    let _daemon = shared_daemon();
    let prefix = unique("traces");
    let api = Capturer::start(&format!("{prefix}-*"), AUTO);
    let files = Capturer::start(
        &format!("{prefix}-*"),
        &format!("{AUTO}[containers]\nread_from = \"files\"\n"),
    );
    let name = format!("{prefix}-a");
    let script = format!(
        "{}; {}; {}",
        printing(JAVA, false),
        printing(PYTHON, true),
        printing(GO, false)
    );
    let c = Container::run(&name, &[], &script);
    c.wait();
    let total = expected_stdout().len() + expected_stderr().len();
    let from_api = api.wait_records(&name, total, WAIT);
    let from_disk = files.wait_records(&name, total, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    for (mode, cap) in [("api", &api), ("files", &files)] {
        let records = cap.records_of(&name);
        assert_eq!(by_stream(&records, "stdout"), expected_stdout(), "{mode}");
        assert_eq!(by_stream(&records, "stderr"), expected_stderr(), "{mode}");
    }
    let times = |r: &[Value]| -> Vec<Value> { r.iter().map(|r| r["time"].clone()).collect() };
    assert_eq!(
        times(&from_api),
        times(&from_disk),
        "the same records in both modes"
    );
}

#[test]
fn labels_override_the_rule_and_a_bad_label_is_reported() {
    let _daemon = shared_daemon();
    let prefix = unique("labels");
    let cap = Capturer::start(
        &format!("{prefix}-*"),
        "[[rules]]\nmultiline = \"java\"\nmultiline_timeout = \"30s\"\n",
    );
    // The label asks for records that begin with a date.
    let dated = format!("{prefix}-dated");
    let c1 = Container::run(
        &dated,
        &[
            "--label",
            "log-capturer.multiline=start",
            "--label",
            "log-capturer.multiline_start=^\\d{4}-",
            "--label",
            "log-capturer.parse=regex",
            "--label",
            "log-capturer.parse_regex=^(?P<date>\\S+) (?P<level>[A-Z]+)",
        ],
        &printing(
            &[
                "2026-12-02 INFO one",
                "  detail a",
                "  detail b",
                "2026-12-02 WARN two",
            ],
            false,
        ),
    );
    // A bad label: reported, and the rule (java) applies.
    let bad = format!("{prefix}-bad");
    let c2 = Container::run(
        &bad,
        &["--label", "log-capturer.multiline=cobol"],
        &printing(&JAVA[1..7], false),
    );
    c1.wait();
    c2.wait();
    let records = cap.wait_records(&dated, 2, WAIT);
    assert_eq!(
        by_stream(&records, "stdout"),
        vec![
            "2026-12-02 INFO one\n  detail a\n  detail b",
            "2026-12-02 WARN two"
        ]
    );
    assert_eq!(records[0]["fields"]["level"], "INFO");
    assert_eq!(records[1]["fields"]["date"], "2026-12-02");
    let bad_records = cap.wait_records(&bad, 1, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        by_stream(&cap.records_of(&bad), "stdout"),
        vec![JAVA[1..7].join("\n")]
    );
    assert_eq!(bad_records.len(), 1);
    assert_eq!(cap.metric("log_capturer_rule_errors_total"), 1.0);
    assert!(
        cap.log()
            .contains("label log-capturer.multiline: invalid multiline \"cobol\""),
        "{}",
        cap.log()
    );
}

#[test]
fn drop_keep_and_parsers() {
    let _daemon = shared_daemon();
    let prefix = unique("parse");
    let cap = Capturer::start(
        &format!("{prefix}-*"),
        &format!(
            "[[rules]]\nmatch_names = [\"{prefix}-json\"]\nparse = \"json\"\ndrop = [\"healthz\"]\n\
             [[rules]]\nmatch_names = [\"{prefix}-logfmt\"]\nparse = \"logfmt\"\nkeep = [\"level=(warn|error)\"]\n"
        ),
    );
    let json = format!("{prefix}-json");
    let c1 = Container::run(
        &json,
        &[],
        &printing(
            &[
                r#"{"level":"info","msg":"GET /healthz"}"#,
                r#"{"level":"error","msg":"boom","code":500}"#,
                "not json",
            ],
            false,
        ),
    );
    let logfmt = format!("{prefix}-logfmt");
    let c2 = Container::run(
        &logfmt,
        &[],
        &printing(
            &[
                "level=info msg=hello",
                "level=warn msg=\"disk low\" free=3%",
                "level=error msg=gone",
            ],
            false,
        ),
    );
    c1.wait();
    c2.wait();
    cap.wait_records(&json, 2, WAIT);
    let l = cap.wait_records(&logfmt, 2, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    let j = cap.records_of(&json);
    let l2 = cap.records_of(&logfmt);
    assert_eq!(j.len(), 2, "the health check was dropped: {j:?}");
    assert_eq!(j[0]["fields"]["code"], 500);
    assert_eq!(j[0]["fields"]["level"], "error");
    assert!(
        j[1].get("fields").is_none(),
        "not json: kept without fields"
    );
    assert_eq!(l2.len(), 2, "only warn and error kept: {l:?}");
    assert_eq!(l2[0]["fields"]["msg"], "disk low");
    assert_eq!(l2[0]["fields"]["free"], "3%");
    assert_eq!(cap.metric("log_capturer_records_dropped_total"), 2.0);
    assert_eq!(cap.metric("log_capturer_parse_errors_total"), 1.0);
}

/// The container prints a trace's first half, then waits for the test's go before the
/// rest. The capturer is stopped (SIGTERM, then in a second round SIGKILL) while the
/// trace is open, and started again: the trace comes out once, whole.
fn stop_mid_trace(kill: bool) {
    let _daemon = shared_daemon();
    let name = unique(if kill { "killtrace" } else { "termtrace" });
    let mut cap = Capturer::start(&name, AUTO);
    let gate = tempfile::tempdir().expect("tempdir");
    let volume = format!("{}:/gate", gate.path().display());
    let script = format!(
        "{}; {}; while [ ! -e /gate/go ]; do sleep 0.05; done; {}; {}",
        printing(&JAVA[..4], false),
        printing(&["marker", "marker 2"], true),
        printing(&JAVA[4..], false),
        printing(&["end"], true),
    );
    let c = Container::run(&name, &["-v", &volume], &script);
    // The marker follows the trace's first half in the log: once it is a record (the
    // second marker line closes it), the capturer has read that half (and holds it open).
    wait_for(WAIT, "the marker", || {
        by_stream(&cap.records_of(&name), "stderr")
            .contains(&"marker".to_owned())
            .then_some(())
    });
    if kill {
        // Killed only once the marker is acknowledged and saved (its position, before the
        // open trace, carries marks), so the kill's allowance of one repeated batch does
        // not blur what is checked here.
        let positions = cap.dir.path().join("positions.json");
        wait_for(WAIT, "the marker's position saved", || {
            std::fs::read_to_string(&positions)
                .ok()
                .filter(|t| t.contains(&c.id) && t.contains("\"marks\""))
        });
        cap.kill9();
    } else {
        let (status, _) = cap.terminate(Duration::from_secs(30));
        assert!(status.success());
    }
    cap.restart();
    std::fs::write(gate.path().join("go"), "").expect("the go file");
    c.wait();
    wait_for(WAIT, "the end marker", || {
        by_stream(&cap.records_of(&name), "stderr")
            .contains(&"end".to_owned())
            .then_some(())
    });
    wait_for(WAIT, "the last line", || {
        by_stream(&cap.records_of(&name), "stdout")
            .contains(&JAVA[7].to_owned())
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let records = cap.records_of(&name);
    assert_eq!(
        by_stream(&records, "stdout"),
        vec![
            JAVA[0].to_owned(),
            JAVA[1..7].join("\n"),
            JAVA[7].to_owned()
        ],
        "the trace once, whole"
    );
    assert_eq!(
        by_stream(&records, "stderr"),
        vec!["marker", "marker 2", "end"]
    );
}

#[test]
fn sigterm_mid_trace_then_restart_gives_the_trace_once() {
    stop_mid_trace(false);
}

#[test]
fn sigkill_mid_trace_then_restart_gives_the_trace_once() {
    stop_mid_trace(true);
}
