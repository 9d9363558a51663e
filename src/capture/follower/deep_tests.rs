//! The deepest path a follower thread takes, run on a thread of half its stack
//! ([`FOLLOWER_STACK`]): lines of up to `containers.max_line_bytes` (1 MiB), written as the
//! daemon writes them (16 KiB pieces merged), read from a json-file log and through the
//! logs endpoint (a one-connection-at-a-time daemon on a Unix socket), joined by a
//! multiline rule and parsed: JSON nested to serde_json's depth limit (on one line and
//! across lines), logfmt and regex over a whole line, drop and keep regexes. A stack
//! overflow would abort the test process.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::tests::{queued, shaped_follower, write_log};
use super::*;
use crate::capture::record::{Fields, Record};
use crate::process::detect::Preset;
use crate::process::parse::Parser;
use crate::process::rules::{MultilineSpec, Shaping};
use crate::threads::{self, FOLLOWER_STACK};

const MAX_LINE: usize = 1 << 20;
/// The piece a daemon cuts a long line into (json-file entries and API frames alike).
const PIECE: usize = 16 * 1024;

/// The deepest JSON serde_json accepts: objects and arrays nested to its limit.
fn deepest_json() -> String {
    let nested = |depth: usize| {
        let mut s = String::new();
        (0..depth).for_each(|i| s.push_str(if i % 2 == 0 { "{\"a\":" } else { "[" }));
        s.push('1');
        (0..depth)
            .rev()
            .for_each(|i| s.push(if i % 2 == 0 { '}' } else { ']' }));
        s
    };
    let depth = (1..1000)
        .take_while(|&d| serde_json::from_str::<serde_json::Value>(&nested(d)).is_ok())
        .last()
        .unwrap_or(1);
    assert!(depth >= 100, "serde_json's depth limit is {depth}");
    // One level is the record's own object around it.
    nested(depth - 1)
}

/// The lines of the log, each shorter than `MAX_LINE` (with its newline).
fn lines() -> Vec<String> {
    let deep = deepest_json();
    let pad = |len: usize| "x".repeat(len);
    let mut logfmt = String::from("level=info msg=\"a quoted \\\"value\\\"\"");
    let mut i = 0;
    while logfmt.len() < MAX_LINE - 64 {
        logfmt.push_str(&format!(" k{i}=v{i} q{i}=\"v {i}\" flag{i}"));
        i += 1;
    }
    let mut lines = vec![
        // One record of two lines: a JSON object (pretty-printed) across lines.
        format!("{{\"pad\":\"{}\",", pad(MAX_LINE - 64 * 1024)),
        format!("\"deep\":{deep}}}"),
        // One max-size line that is a deep JSON object.
        format!(
            "{{\"deep\":{deep},\"pad\":\"{}\"}}",
            pad(MAX_LINE - 16 * 1024)
        ),
        logfmt,
        "java.lang.IllegalStateException: boom".to_owned(),
    ];
    lines.extend((0..200).map(|i| format!("\tat com.example.C{i}.m(C{i}.java:{i})")));
    lines
}

/// The pieces of `line` (with its newline) as the daemon writes them.
fn pieces(line: &str) -> Vec<String> {
    let text = format!("{line}\n");
    text.as_bytes()
        .chunks(PIECE)
        .map(|c| String::from_utf8(c.to_vec()).expect("ASCII lines"))
        .collect()
}

/// Every piece of every line, with its line's timestamp (nanoseconds past a second): the
/// pieces of a line all carry its first piece's.
fn timed_pieces(lines: &[String]) -> Vec<(u32, String)> {
    (1..)
        .zip(lines)
        .flat_map(|(ns, l)| pieces(l).into_iter().map(move |p| (ns, p)))
        .collect()
}

/// The logs endpoint's body: every piece a frame with its timestamp (stdout).
fn api_body(lines: &[String]) -> Vec<u8> {
    let mut body = Vec::new();
    for (ns, piece) in timed_pieces(lines) {
        let payload = format!("2026-12-02T10:00:00.{ns:09}Z {piece}");
        body.extend_from_slice(&[1, 0, 0, 0]);
        body.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        body.extend_from_slice(payload.as_bytes());
    }
    body
}

/// Answers every request on `<root>/docker.sock` with `body` until `stop`.
fn serve_logs(root: &Path, body: &[u8], stop: &AtomicBool) {
    let listener = UnixListener::bind(root.join("docker.sock")).unwrap();
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        conn.set_nonblocking(false).unwrap();
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(answer.as_bytes());
        let _ = conn.write_all(body);
    }
}

/// The rules of the deepest path: each parser, with a multiline rule.
fn shapings() -> Vec<Shaping> {
    let multiline = |preset| {
        Some(MultilineSpec {
            preset,
            max_lines: 1000,
            timeout: Duration::from_secs(60),
        })
    };
    let re = |p: &str| Regex::new(p).unwrap();
    vec![
        Shaping {
            // A line that opens neither a string member nor a trace line starts a record.
            multiline: multiline(Preset::Start(re(r#"^[^"\t]"#))),
            parser: Some(Parser::Json),
            drop: vec![re("^never$")],
            keep: vec![],
        },
        Shaping {
            multiline: multiline(Preset::Auto),
            parser: Some(Parser::Logfmt),
            drop: vec![],
            keep: vec![re(r"(?s).")],
        },
        Shaping {
            multiline: multiline(Preset::Java),
            parser: Some(Parser::Regex(re(
                r"(?s)^(?P<first>\S+)(?: (?P<rest>.*?))?(?P<last>\w*)$",
            ))),
            drop: vec![re(r"\d{3}never$")],
            keep: vec![],
        },
    ]
}

/// Follows the log of every shaping, in files mode and through the API, each on a
/// thread of `stack` bytes; gives the records of each run.
fn follow_deepest(stack: usize) -> Vec<Vec<Record>> {
    let lines = lines();
    let mut runs = Vec::new();
    for files in [true, false] {
        for shaping in shapings() {
            let dir = tempfile::tempdir().unwrap();
            let entries = timed_pieces(&lines);
            let entries: Vec<(&str, u32, &str)> = entries
                .iter()
                .map(|(ns, e)| ("stdout", *ns, e.as_str()))
                .collect();
            write_log(dir.path(), &entries);
            let body = api_body(&lines);
            let run = shaped_follower(
                dir.path(),
                StartFrom::Beginning,
                Streams {
                    stdout: true,
                    stderr: true,
                },
                Some(Arc::new(shaping)),
                files,
            );
            let served = AtomicBool::new(false);
            std::thread::scope(|s| {
                let daemon = s.spawn(|| serve_logs(dir.path(), &body, &served));
                let follower = run.follower;
                let outcome = threads::spawn("deep".into(), stack, move || follower.run())
                    .unwrap()
                    .join()
                    .expect("the follower thread");
                served.store(true, Ordering::SeqCst);
                daemon.join().unwrap();
                assert_eq!(outcome.reason, EndReason::Eof, "files mode {files}");
            });
            runs.push(queued(&run.rx));
        }
    }
    runs
}

fn field_keys(r: &Record) -> Vec<String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r.fields_text().unwrap_or("{}")).unwrap();
    map.keys().cloned().collect()
}

#[test]
fn the_deepest_follower_path_fits_in_half_the_follower_stack() {
    let runs = follow_deepest(FOLLOWER_STACK / 2);
    assert_eq!(runs.len(), 6);
    for (i, records) in runs.iter().enumerate() {
        let sizes: Vec<usize> = records.iter().map(|r| r.message.len()).collect();
        // Every line was read whole: the longest is the one-line deep JSON.
        assert!(
            sizes.iter().any(|&n| n > MAX_LINE - 16 * 1024),
            "{i}: {sizes:?}"
        );
        match i % 3 {
            0 => {
                // The two-line object, parsed into fields; the one-line one is its own.
                assert_eq!(field_keys(&records[0]), ["deep", "pad"], "{i}");
                assert!(matches!(records[1].fields, Fields::Message), "{i}");
                assert_eq!(records.len(), 4, "{i}: {sizes:?}");
            }
            1 => {
                assert!(records[3].message.starts_with("level=info"), "{i}");
                assert!(field_keys(&records[3]).len() > 10_000, "{i}");
                assert_eq!(records.len(), 5, "{i}: the trace is one record");
            }
            _ => {
                assert_eq!(field_keys(&records[3]), ["first", "last", "rest"], "{i}");
                assert_eq!(records.len(), 5, "{i}: the trace is one record");
            }
        }
    }
}
