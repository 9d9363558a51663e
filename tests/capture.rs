//! Exact capture: every line once, in order, with the right stream and metadata, for the
//! shapes containers really print (stderr, TTY, 100 KB lines, no final newline, invalid
//! UTF-8, containers that exit at once), and the name/label filters.

use std::time::Duration;

use crate::util::{image, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(30);

fn messages(records: &[serde_json::Value], stream: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["stream"] == stream)
        .map(|r| {
            r["message"]
                .as_str()
                .unwrap_or("<not a string>")
                .to_string()
        })
        .collect()
}

#[test]
fn several_containers_stdout_and_stderr_exactly_once_in_order() {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("several");
    let cap = Capturer::start(&format!("{prefix}-*"), "");
    let script = "for i in $(seq 1 500); do echo \"out $i\"; echo \"err $i\" >&2; done";
    let containers: Vec<Container> = (0..3)
        .map(|i| Container::run(&format!("{prefix}-{i}"), &[], script))
        .collect();
    for c in &containers {
        c.wait();
    }
    for c in &containers {
        cap.wait_records(&c.name, 1000, WAIT);
        // Let any straggler (a duplicate) arrive before counting.
        std::thread::sleep(Duration::from_millis(300));
        let recs = cap.records_of(&c.name);
        assert_eq!(recs.len(), 1000, "{}: every line exactly once", c.name);
        let want_out: Vec<String> = (1..=500).map(|i| format!("out {i}")).collect();
        let want_err: Vec<String> = (1..=500).map(|i| format!("err {i}")).collect();
        assert_eq!(messages(&recs, "stdout"), want_out);
        assert_eq!(messages(&recs, "stderr"), want_err);
        for r in &recs {
            assert_eq!(r["container_id"], c.id.as_str());
            assert_eq!(r["image"], image().as_str());
            let time = r["time"].as_str().unwrap();
            assert_eq!(
                time.len(),
                "2026-11-26T17:55:29.376306023Z".len(),
                "9 fraction digits: {time}"
            );
            assert!(r.get("truncated").is_none());
        }
        // Field order of the README's Records section, checked on the raw line.
        let text = std::fs::read_to_string(&cap.out).unwrap();
        let line = text.lines().find(|l| l.contains(&c.id)).unwrap();
        let at: Vec<usize> = [
            "time",
            "stream",
            "message",
            "container_id",
            "container_name",
            "image",
            "labels",
            "host",
        ]
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
        .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "field order in {line}");
    }
}

#[test]
fn tty_container_lines_without_crlf() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("tty");
    let cap = Capturer::start(&name, "");
    let c = Container::run(&name, &["-t"], "echo first; echo second; echo third >&2");
    c.wait();
    let recs = cap.wait_records(&name, 3, WAIT);
    assert_eq!(messages(&recs, "stdout"), ["first", "second", "third"]);
}

#[test]
fn a_100_kb_line_is_one_record() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("long");
    let cap = Capturer::start(&name, "");
    let c = Container::run(
        &name,
        &[],
        "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after",
    );
    c.wait();
    let recs = cap.wait_records(&name, 2, WAIT);
    assert_eq!(recs.len(), 2, "pieces merged into one record");
    assert_eq!(recs[0]["message"].as_str().unwrap(), "x".repeat(100_000));
    assert!(recs[0].get("truncated").is_none());
    assert_eq!(recs[1]["message"], "after");
    // One line was rebuilt from partial frames ("after" is whole).
    assert_eq!(cap.metric("log_capturer_partial_lines_merged_total"), 1.0);
}

#[test]
fn long_line_is_cut_at_max_line_bytes() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("cut");
    let cap = Capturer::start(&name, "[containers]\nmax_line_bytes = \"1KiB\"\n");
    let c = Container::run(
        &name,
        &[],
        "head -c 40000 /dev/zero | tr '\\0' y; echo; echo short",
    );
    c.wait();
    let recs = cap.wait_records(&name, 2, WAIT);
    assert_eq!(recs[0]["message"].as_str().unwrap(), "y".repeat(1024));
    assert_eq!(recs[0]["truncated"], true);
    assert_eq!(recs[1]["message"], "short");
    assert!(recs[1].get("truncated").is_none());
    assert_eq!(cap.metric("log_capturer_lines_truncated_total"), 1.0);
}

#[test]
fn text_without_final_newline_at_exit_is_a_record() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("nonl");
    let cap = Capturer::start(&name, "");
    let c = Container::run(&name, &[], "echo one; printf 'last words'");
    c.wait();
    let recs = cap.wait_records(&name, 2, WAIT);
    assert_eq!(messages(&recs, "stdout"), ["one", "last words"]);
}

#[test]
fn container_that_exits_at_once_is_captured() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("quick");
    let cap = Capturer::start(&name, "");
    let c = Container::run(&name, &[], "echo quick");
    c.wait();
    let recs = cap.wait_records(&name, 1, WAIT);
    assert_eq!(messages(&recs, "stdout"), ["quick"]);
}

#[test]
fn invalid_utf8_is_replaced() {
    let _daemon = crate::util::shared_daemon();
    let name = unique("utf8");
    let cap = Capturer::start(&name, "");
    let c = Container::run(
        &name,
        &[],
        "printf 'a\\377\\376b\\n'; printf 'ok \\303\\251\\n'",
    );
    c.wait();
    let recs = cap.wait_records(&name, 2, WAIT);
    assert_eq!(messages(&recs, "stdout"), ["a\u{fffd}\u{fffd}b", "ok é"]);
}

#[test]
fn include_exclude_and_opt_out_label_filters() {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("filter");
    let cap = Capturer::start(
        &format!("{prefix}-*"),
        "[containers]\nexclude_names = [\"*-skip\"]\nexclude_labels = [\"tier=secret*\"]\n",
    );
    let skip = Container::run(&format!("{prefix}-skip"), &[], "echo skipped");
    let label = Container::run(
        &format!("{prefix}-label"),
        &["--label", "tier=secret-db"],
        "echo hidden",
    );
    let opt_out = Container::run(
        &format!("{prefix}-optout"),
        &["--label", "log-capturer.exclude=true"],
        "echo opted out",
    );
    let other = Container::run(&unique("elsewhere"), &[], "echo not included");
    let keep = Container::run(&format!("{prefix}-keep"), &[], "echo kept");
    for c in [&skip, &label, &opt_out, &other, &keep] {
        c.wait();
    }
    cap.wait_records(&keep.name, 1, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let names: Vec<String> = cap
        .records()
        .iter()
        .map(|r| r["container_name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, vec![keep.name.clone()]);
}

#[test]
fn a_10_mib_line_without_newline_and_binary_garbage_stay_bounded() {
    let _daemon = crate::util::shared_daemon();
    let prefix = unique("huge");
    let cap = Capturer::start(&format!("{prefix}-*"), "");
    let huge = Container::run(
        &format!("{prefix}-line"),
        &[],
        "head -c 10485760 /dev/zero | tr '\\0' z",
    );
    let garbage = Container::run(
        &format!("{prefix}-binary"),
        &[],
        "head -c 1000000 /dev/urandom; echo; echo after",
    );
    huge.wait();
    garbage.wait();
    let recs = cap.wait_records(&huge.name, 1, WAIT);
    let msg = recs[0]["message"].as_str().unwrap();
    assert_eq!(msg.len(), 1024 * 1024, "cut at max_line_bytes");
    assert!(msg.bytes().all(|b| b == b'z'));
    assert_eq!(recs[0]["truncated"], true);
    let bin = wait_for(WAIT, "the line after the garbage", || {
        let r = cap.records_of(&garbage.name);
        (r.last().and_then(|r| r["message"].as_str()) == Some("after")).then_some(r)
    });
    assert!(bin.len() > 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cap.records_of(&huge.name).len(),
        1,
        "one record for the one line"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", cap.pid())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    eprintln!(
        "10 MiB line + 1 MB of binary garbage: peak RSS {:.1} MiB",
        hwm_kib as f64 / 1024.0
    );
    assert!(hwm_kib < 64 * 1024, "peak RSS {hwm_kib} KiB");
    assert_eq!(cap.metric("log_capturer_lines_truncated_total"), 1.0);
}
