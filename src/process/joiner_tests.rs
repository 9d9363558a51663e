//! The joiner behind the real decoder: traces on one stream while the other logs plain
//! lines, then the properties exactly-once rests on: any split of the body into reads
//! gives the same records, and resuming from any record's position gives exactly the
//! records after it, each whole.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::capture::decode::{LogDecoder, Output};
use crate::docker::frame::frame;
use crate::process::detect::Preset;

fn spec(preset: Preset) -> MultilineSpec {
    MultilineSpec {
        preset,
        max_lines: 500,
        timeout: Duration::from_secs(1),
    }
}

/// A frame of `stream` (1 stdout, 2 stderr) at second `t` plus `n` ns.
fn line(stream: u8, t: i64, text: &str) -> Vec<u8> {
    let time = Timestamp::from_nanos(1_700_000_000_000_000_000 + t).to_rfc3339();
    frame(stream, format!("{time} {text}\n").as_bytes())
}

/// Decodes `body` (read in pieces of the given sizes, cycled) from `resume` and joins it.
fn run(
    body: &[u8],
    resume: Option<Position>,
    reads: &[usize],
    spec: &MultilineSpec,
) -> Vec<Joined> {
    let mut dec = LogDecoder::new(Some(false), 1 << 20, resume);
    let mut joiner = Joiner::new(spec.clone(), 1 << 20, resume);
    let mut out = Vec::new();
    let now = Instant::now();
    let take = |o: Output, joiner: &mut Joiner, out: &mut Vec<Joined>| {
        if let Some(l) = JoinLine::from_output(o) {
            joiner.push(l, now, &mut |j| out.push(j));
        }
    };
    let mut at = 0;
    let mut k = 0;
    while at < body.len() {
        let n = reads
            .get(k % reads.len().max(1))
            .copied()
            .unwrap_or(body.len())
            .max(1);
        let end = (at + n).min(body.len());
        dec.buffer().extend(&body[at..end]);
        at = end;
        k += 1;
        dec.drain(false, &mut |o| take(o, &mut joiner, &mut out))
            .unwrap();
    }
    dec.flush(&mut |o| take(o, &mut joiner, &mut out));
    joiner.finish(&mut |j| out.push(j));
    out
}

fn texts(records: &[Joined]) -> Vec<(Stream, String)> {
    records.iter().map(|r| (r.stream, r.text.clone())).collect()
}

#[test]
fn a_java_trace_on_stdout_while_stderr_logs_plain_lines() {
    let body = [
        line(1, 1, "request failed"),
        line(1, 2, "java.lang.IllegalStateException: boom"),
        line(2, 3, "err one"),
        line(1, 4, "\tat a.B.c(B.java:1)"),
        line(2, 5, "err two"),
        line(1, 6, "Caused by: java.io.IOException: disk"),
        line(1, 7, "\t... 3 more"),
        line(1, 8, "next request ok"),
    ]
    .concat();
    let all = run(&body, None, &[], &spec(Preset::Java));
    assert_eq!(
        texts(&all),
        vec![
            (Stream::Stdout, "request failed".into()),
            (Stream::Stderr, "err one".into()),
            (
                Stream::Stdout,
                "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\
                 Caused by: java.io.IOException: disk\n\t... 3 more"
                    .into()
            ),
            // Open until the stream ends: then handed out oldest first.
            (Stream::Stderr, "err two".into()),
            (Stream::Stdout, "next request ok".into()),
        ]
    );
    // "err one" went out while the trace was open: its position stays before the trace,
    // with stderr's mark past "err one". Resuming there reads the trace again, whole,
    // and not "err one".
    let after_err_one = all[1].position;
    assert!(after_err_one.has_marks(), "{after_err_one:?}");
    assert_eq!(
        texts(&run(&body, Some(after_err_one), &[], &spec(Preset::Java))),
        texts(&all[2..])
    );
    assert_eq!(
        all[0].time,
        Timestamp::from_nanos(1_700_000_000_000_000_001)
    );
    assert_eq!(
        all[2].time,
        Timestamp::from_nanos(1_700_000_000_000_000_002),
        "the first line's"
    );
}

#[test]
fn a_record_is_cut_at_max_lines_and_marked_truncated() {
    let mut s = spec(Preset::Start("^START".parse().unwrap()));
    s.max_lines = 3;
    let body = [
        line(1, 1, "START a"),
        line(1, 2, "1"),
        line(1, 3, "2"),
        line(1, 4, "3"),
        line(1, 5, "START b"),
    ]
    .concat();
    let all = run(&body, None, &[], &s);
    let got: Vec<(String, bool)> = all.iter().map(|r| (r.text.clone(), r.truncated)).collect();
    assert_eq!(
        got,
        vec![
            ("START a\n1\n2".to_owned(), true),
            ("3".to_owned(), false),
            ("START b".to_owned(), false)
        ]
    );
}

#[test]
fn a_quiet_stream_gives_out_its_record_after_the_timeout() {
    let mut j = Joiner::new(spec(Preset::Java), 1 << 20, None);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let p = Position::default();
    let l = |text: &str| JoinLine {
        stream: Stream::Stdout,
        time: Timestamp::from_nanos(1),
        text: text.into(),
        truncated: false,
        after: p,
        before: p,
        end: p.mark(),
    };
    j.push(l("java.lang.Error: x"), t0, &mut |r| out.push(r));
    j.push(l("\tat a.b(C.java:1)"), t0, &mut |r| out.push(r));
    j.tick(t0 + Duration::from_millis(999), &mut |r| out.push(r));
    assert!(out.is_empty(), "not quiet for the timeout yet");
    j.tick(t0 + Duration::from_secs(1), &mut |r| out.push(r));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "java.lang.Error: x\n\tat a.b(C.java:1)");
    assert!(!j.has_open());
}

/// The lines the generated logs are made of: plain lines and the pieces of Java, Python
/// and Go traces, in any order (the detector must cope with nonsense too).
const VOCABULARY: &[&str] = &[
    "plain",
    "GET / 200",
    "java.lang.IllegalStateException: boom",
    "\tat a.B.c(B.java:1)",
    "Caused by: x.Y: z",
    "\t... 2 more",
    "Traceback (most recent call last):",
    "  File \"x.py\", line 3, in f",
    "    f()",
    "ValueError: bad",
    "panic: oops",
    "",
    "goroutine 1 [running]:",
    "main.main()",
    "\t/x/main.go:5 +0x1d",
    "exit status 2",
];

/// A log: (stream, time step, vocabulary index) per line. A time step of 0 repeats the
/// previous timestamp (frames at one nanosecond are counted, as Docker's are).
fn log() -> impl Strategy<Value = Vec<(u8, i64, usize)>> {
    prop::collection::vec((1u8..=2, 0i64..3, 0..VOCABULARY.len()), 0..60)
}

fn body_of(lines: &[(u8, i64, usize)]) -> Vec<u8> {
    let mut t = 0;
    lines
        .iter()
        .flat_map(|&(stream, step, word)| {
            t += step;
            line(stream, t, VOCABULARY[word])
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any split of the body into reads gives the same records.
    #[test]
    fn reads_of_any_size_give_the_same_records(
        lines in log(),
        reads in prop::collection::vec(1usize..200, 1..8),
    ) {
        let body = body_of(&lines);
        let whole = run(&body, None, &[], &spec(Preset::Auto));
        let split = run(&body, None, &reads, &spec(Preset::Auto));
        prop_assert_eq!(whole, split);
    }

    /// Resuming from any record's position gives exactly the records after it: none lost,
    /// none repeated, each open one read again whole.
    #[test]
    fn resume_from_any_record_gives_exactly_the_rest(lines in log()) {
        resume_is_exact(&lines)?;
    }
}

fn resume_is_exact(lines: &[(u8, i64, usize)]) -> Result<(), TestCaseError> {
    let body = body_of(lines);
    let s = spec(Preset::Auto);
    let all = run(&body, None, &[], &s);
    let n: usize = all.iter().map(|r| r.text.split('\n').count()).sum();
    prop_assert_eq!(n, lines.len(), "every line in a record");
    for (k, r) in all.iter().enumerate() {
        let rest = run(&body, Some(r.position), &[], &s);
        prop_assert_eq!(texts(&rest), texts(&all[k + 1..]), "after record {}", k);
    }
    Ok(())
}
