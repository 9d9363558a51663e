//! The capturer under strain, with the faults made real: a sink outage while a container
//! prints big lines (memory stays within `pipeline.queue_bytes`, the gauges stay live), a
//! file sink on a full filesystem (a small tmpfs, then grown: nothing lost, duplicated or
//! torn), a positions file on a filesystem remounted read-only (capture goes on, /health
//! says why, saving resumes), and the file sink's output renamed away by an operator.
//!
//! The tmpfs mounts need root, like the Docker daemon these tests run against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::receivers::{Mode, Receiver};
use crate::util::{http_get, read_records, shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;

/// A tmpfs mounted by the test, unmounted (lazily) when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ],
            path,
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Remounts with `options` (e.g. "size=64m", "ro", "rw"). A read-only remount fails
    /// with EBUSY while a file is open for writing (the capturer rewrites its positions
    /// about once a second, for a moment): tried again until it goes through.
    fn remount(&self, options: &str) {
        let args = ["-o".to_owned(), format!("remount,{options}")];
        for _ in 0..200 {
            let out = Command::new("mount")
                .args(&args)
                .arg(&self.path)
                .output()
                .expect("mount(8) must be installed");
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        mount(&["-o", &format!("remount,{options}")], &self.path);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn mount(args: &[&str], path: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(path)
        .output()
        .expect("mount(8) must be installed");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {} (these tests run as root, like dockerd)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (missing, duplicated) among the records' "n <i>" messages, 1..=n.
fn tally(records: &[Value], n: usize) -> (usize, usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for r in records {
        let message = r["message"].as_str().unwrap_or("");
        let i = message.split(' ').nth(1).and_then(|s| s.parse().ok());
        if let Some(i) = i.filter(|_| message.starts_with("n ")) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing = (1..=n).filter(|i| !seen.contains_key(i)).count();
    (missing, seen.values().map(|c| c - 1).sum())
}

/// Lines of a JSON-lines file that are not one whole JSON object (torn or garbled).
fn torn_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .count()
}

/// Like [`torn_lines`], but for a file a sink may be writing (and cutting back) right now:
/// its last line may be a batch caught half-way; every line before it must be whole.
fn torn_lines_before_the_last(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let before = lines.len().saturating_sub(1);
    lines[..before]
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .count()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn health(cap: &Capturer) -> (u16, String) {
    http_get(cap.port, "/health").unwrap_or((0, String::new()))
}

/// Loki refuses connections while three containers print 100 lines of 256 KiB each
/// (75 MiB) with `queue_bytes` = 8 MiB: the queue never holds more than its bound, the
/// peak RSS stays within base + queue bound + batches, the gauges show the stuck records
/// and a growing lag; when Loki is back, every line reaches it and the file exactly once.
/// (Three: one stream may hold only a quarter of the queue, README "Guarantees".)
#[test]
fn an_outage_with_big_lines_stays_within_the_byte_bound() {
    let _daemon = shared_daemon();
    let loki = Receiver::loki();
    loki.set_mode(Mode::Refuse);
    let name = unique("bigout");
    let queue_bytes = 8 * MIB;
    let cap = Capturer::start(
        &format!("{name}-*"),
        &format!(
            "[pipeline]\nqueue_bytes = \"8MiB\"\n[[sinks]]\ntype = \"loki\"\nurl = \"{}\"\n",
            loki.url()
        ),
    );
    let base_kib = status_kib(cap.pid(), "VmRSS:");
    let (n, per) = (300, 100);
    let containers: Vec<Container> = (0..n / per)
        .map(|k| {
            Container::run(
                &format!("{name}-{k}"),
                &[],
                &format!(
                    "l=$(head -c 262144 /dev/zero | tr '\\0' x); i={}; \
                     while [ $i -lt {} ]; do i=$((i+1)); echo \"n $i $l\"; done",
                    k * per,
                    (k + 1) * per
                ),
            )
        })
        .collect();
    let all_records = || -> Vec<Value> {
        (0..n / per)
            .flat_map(|k| cap.records_of(&format!("{name}-{k}")))
            .collect()
    };
    // The queue fills up to its byte bound, and stays there.
    let full = wait_for(WAIT, "the queue full to its byte bound", || {
        let m = cap.metrics();
        let bytes = crate::util::metric_value(&m, "log_capturer_queue_bytes");
        (bytes as u64 > queue_bytes / 2).then_some(m)
    });
    std::thread::sleep(Duration::from_secs(2));
    let later = cap.metrics();
    let value = |text: &str, name: &str| crate::util::metric_value(text, name);
    let (lag1, lag2) = (
        value(&full, "log_capturer_lag_seconds"),
        value(&later, "log_capturer_lag_seconds"),
    );
    let peak_kib = status_kib(cap.pid(), "VmHWM:");
    let file_during = all_records().len();
    eprintln!(
        "outage with 256 KiB lines, queue_bytes 8 MiB: queue {} records / {:.1} MiB, lag {lag1:.2} s \
         then {lag2:.2} s, file {file_during} of {n}; RSS base {:.1} MiB, peak {:.1} MiB",
        value(&later, "log_capturer_queue_records"),
        value(&later, "log_capturer_queue_bytes") / MIB as f64,
        base_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    for m in [&full, &later] {
        let bytes = value(m, "log_capturer_queue_bytes") as u64;
        assert!(
            bytes <= queue_bytes,
            "queue_bytes gauge {bytes} over the bound"
        );
        assert!(value(m, "log_capturer_queue_records") >= 1.0);
    }
    assert!(
        lag2 >= lag1 + 1.5,
        "lag_seconds must grow with the outage: {lag1} then {lag2} two seconds later"
    );
    assert!(
        file_during < n,
        "backpressure: the file sink waits for Loki too"
    );
    // Base + queue bound + the batch in flight (about 1 MiB of records, its JSON and gzip)
    // + one 256 KiB line being merged per stream, with room for the allocator: 3x the bound.
    let bound_kib = base_kib + 3 * queue_bytes / 1024;
    assert!(
        peak_kib <= bound_kib,
        "peak RSS {peak_kib} KiB over base {base_kib} KiB + 3 x queue_bytes"
    );

    loki.set_mode(Mode::Ok);
    containers.iter().for_each(Container::wait);
    loki.wait_for("every line in Loki", WAIT, |r| r.loki_entries().len() >= n);
    let file = wait_for(WAIT, "every line in the file", || {
        let all = all_records();
        (all.len() >= n).then_some(all)
    });
    std::thread::sleep(Duration::from_millis(500));
    let lines: Vec<Value> = loki
        .loki_entries()
        .iter()
        .map(|e| serde_json::json!({ "message": e.line }))
        .collect();
    assert_eq!(tally(&lines, n), (0, 0), "Loki: (missing, duplicated)");
    assert_eq!(tally(&file, n), (0, 0), "file: (missing, duplicated)");
    let idle = wait_for(WAIT, "the gauges back to zero", || {
        let m = cap.metrics();
        (value(&m, "log_capturer_queue_bytes") == 0.0
            && value(&m, "log_capturer_lag_seconds") == 0.0)
            .then_some(m)
    });
    assert_eq!(value(&idle, "log_capturer_queue_records"), 0.0);
}

/// The file sink's filesystem is full (a 2 MiB tmpfs) while a container prints 60,000
/// lines: the sink fails with ENOSPC, /health says so at once, nothing is duplicated or
/// torn; once the filesystem grows, every line is there exactly once.
#[test]
fn a_full_disk_neither_duplicates_nor_tears() {
    let _daemon = shared_daemon();
    let name = unique("diskfull");
    let mount_dir = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(&mount_dir.path().join("small"), "2m");
    let out = fs.path.join("out.jsonl");
    let cap = Capturer::start(
        &name,
        &format!("[[sinks]]\ntype = \"file\"\npath = \"{}\"\n", out.display()),
    );
    let n = 60_000;
    let c = Container::run(&name, &[], &format!("seq 1 {n} | sed 's/^/n /'"));
    let body = wait_for(WAIT, "/health degraded by the full disk", || {
        let (status, body) = health(&cap);
        (status == 503 && body.contains("No space left on device")).then_some(body)
    });
    assert!(body.contains("is failing"), "{body}");
    c.wait();
    let during = read_records(&out).len();
    assert!(during < n, "2 MiB cannot hold {n} records");
    assert_eq!(
        torn_lines_before_the_last(&out),
        0,
        "no torn line while full"
    );
    assert!(cap.metric("log_capturer_sink_retries_total") >= 1.0);
    fs.remount("size=64m");
    wait_for(WAIT, "every line in the grown filesystem", || {
        (read_records(&out).len() >= n).then_some(())
    });
    wait_for(WAIT, "/health ok again", || {
        (health(&cap).0 == 200).then_some(())
    });
    let records = read_records(&out);
    let counts = tally(&records, n);
    eprintln!(
        "full disk: {during} records written while full; after growing: {} records, \
         (missing, duplicated) = {counts:?}, torn = {}",
        records.len(),
        torn_lines(&out)
    );
    assert_eq!(counts, (0, 0));
    assert_eq!(records.len(), n);
    assert_eq!(torn_lines(&out), 0);
    assert_eq!(
        tally(&cap.records_of(&name), n),
        (0, 0),
        "the other file sink"
    );
}

/// The positions file's filesystem is remounted read-only: capture goes on, the failures
/// are counted, /health is degraded with the reason; remounted read-write, saving resumes
/// by itself and /health is ok again.
#[test]
fn positions_on_a_read_only_filesystem() {
    let _daemon = shared_daemon();
    let name = unique("posro");
    let mount_dir = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(&mount_dir.path().join("pos"), "1m");
    let positions = fs.path.join("positions.json");
    let cap = Capturer::start(
        &name,
        &format!("[positions]\npath = \"{}\"\n", positions.display()),
    );
    fs.remount("ro");
    let n = 400;
    let c = Container::run(
        &name,
        &[],
        &format!("for i in $(seq 1 {n}); do echo \"n $i\"; sleep 0.01; done"),
    );
    let body = wait_for(WAIT, "/health degraded by the read-only positions", || {
        let (status, body) = health(&cap);
        (status == 503 && body.contains("positions cannot be saved")).then_some(body)
    });
    assert!(body.contains("Read-only file system"), "{body}");
    c.wait();
    let records = cap.wait_records(&name, n, WAIT);
    assert_eq!(tally(&records, n), (0, 0), "capture went on");
    let errors = cap.metric("log_capturer_positions_errors_total");
    assert!(errors >= 1.0, "positions_errors_total = {errors}");
    let saved_before = std::fs::read_to_string(&positions).unwrap_or_default();
    assert!(
        !saved_before.contains(&c.id),
        "nothing of it could be saved"
    );

    fs.remount("rw");
    wait_for(WAIT, "/health ok again", || {
        (health(&cap).0 == 200).then_some(())
    });
    let saved = wait_for(WAIT, "the position saved", || {
        std::fs::read_to_string(&positions)
            .ok()
            .filter(|t| t.contains(&c.id))
    });
    eprintln!(
        "read-only positions: {errors} failed writes, then saved: {} bytes",
        saved.len()
    );
}

/// An operator renames the file sink's output away while a container writes: the next
/// batch goes to a new file at the path, and the two files hold every line exactly once.
#[test]
fn an_output_renamed_away_is_reopened() {
    let _daemon = shared_daemon();
    let name = unique("renamed");
    let cap = Capturer::start(&name, "");
    let n = 2_000;
    // The container prints 300 lines, then waits for the test's go (a file in a bind
    // mount) before the rest: the rename lands between the two halves, whatever the speed.
    let gate = tempfile::tempdir().expect("tempdir");
    let volume = format!("{}:/gate", gate.path().display());
    let c = Container::run(
        &name,
        &["-v", &volume],
        &format!(
            "for i in $(seq 1 300); do echo \"n $i\"; done; \
             while [ ! -e /gate/go ]; do sleep 0.05; done; \
             for i in $(seq 301 {n}); do echo \"n $i\"; done"
        ),
    );
    cap.wait_records(&name, 300, WAIT);
    let moved = cap.dir.path().join("moved.jsonl");
    std::fs::rename(&cap.out, &moved).expect("rename the output");
    std::fs::write(gate.path().join("go"), "").expect("the go file");
    c.wait();
    let all = wait_for(WAIT, "every line in the two files", || {
        let mut all = read_records(&moved);
        all.extend(read_records(&cap.out));
        all.retain(|r| r["container_name"] == name.as_str());
        (all.len() >= n).then_some(all)
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = cap.records_of(&name).len();
    eprintln!(
        "output renamed: {} records in the moved file, {after} in the new one",
        all.len() - after
    );
    assert!(after > 0, "the new file at the path got the rest");
    assert_eq!(tally(&all, n), (0, 0));
    assert!(
        cap.log().contains("was removed or replaced"),
        "{}",
        cap.log()
    );
}
