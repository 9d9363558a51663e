//! The host-files thread's polls against real files in a temporary directory: where files
//! start, rotation by rename, `copytruncate`, deletion, and resuming from acknowledged
//! positions across "runs" (a fresh `HostFiles` over the same positions).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::capture::timestamp::Timestamp;
use crate::sink::queue::{bounded, Consumer};

/// One "run": the thread's settings and state, polled by hand, and the queue's far end.
struct Run {
    hf: HostFiles,
    st: State,
    rx: Consumer,
}

impl Run {
    fn new(dir: &Path, first_run: bool, positions: &Arc<Positions>) -> Run {
        Run::with_pattern(&format!("{}/*.log", dir.display()), first_run, positions)
    }

    fn with_pattern(pattern: &str, first_run: bool, positions: &Arc<Positions>) -> Run {
        let (tx, rx) = bounded(10_000);
        let hf = HostFiles {
            patterns: vec![pattern.to_string()],
            host: Arc::from("node-7"),
            max_line_bytes: 16,
            poll: Duration::from_millis(10),
            first_run,
            positions: positions.clone(),
            tx,
            metrics: Arc::new(Metrics::new().unwrap()),
            shutdown: Shutdown::new(),
        };
        Run {
            hf,
            st: State::new(),
            rx,
        }
    }

    /// One poll; returns the records it queued.
    fn poll(&mut self) -> Vec<Record> {
        self.hf.poll(&mut self.st).unwrap();
        self.rx.take_batch(usize::MAX, usize::MAX, Instant::now())
    }

    /// One poll; its records are acknowledged; returns their messages.
    fn poll_ack(&mut self) -> Vec<String> {
        let records = self.poll();
        self.hf.positions.ack(&records);
        messages(&records)
    }
}

fn messages(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.message.clone()).collect()
}

fn append(path: &Path, bytes: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes.as_bytes()).unwrap();
}

fn positions() -> Arc<Positions> {
    Arc::new(Positions::in_memory(Timestamp::now()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[test]
fn first_run_starts_old_files_at_their_end_and_new_ones_at_their_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    append(&a, "old 1\nold 2\n");
    let mut run = Run::new(dir.path(), true, &positions());
    assert!(run.poll().is_empty(), "old content is not shipped");
    append(&a, "new 1\n");
    let b = dir.path().join("b.log");
    append(&b, "b 1\nb 2\n");
    fs::write(dir.path().join("c.txt"), "not matched\n").unwrap();
    let records = run.poll();
    assert_eq!(messages(&records), ["new 1", "b 1", "b 2"]);
    let r = &records[0];
    assert_eq!((r.stream, r.truncated, r.continues), (None, false, false));
    assert!(r.meta.host_file);
    assert_eq!(r.meta.id.as_str(), a.to_str().unwrap());
    let file = r.position.file.unwrap();
    assert_eq!(file.offset, 18, "just past the line");
    assert_eq!(records[2].position.file.unwrap().offset, 8);
    assert_eq!(run.hf.metrics.files_followed.get(), 2);
    assert_eq!(
        run.hf
            .metrics
            .records
            .with_label_values(&[RECORDS_LABEL])
            .get(),
        3
    );
}

#[test]
fn a_last_line_without_newline_waits_for_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let mut run = Run::new(dir.path(), false, &positions());
    append(&a, "one\npar");
    assert_eq!(run.poll_ack(), ["one"]);
    assert!(run.poll().is_empty());
    append(&a, "tial\r\n");
    assert_eq!(run.poll_ack(), ["partial"]);
    assert_eq!(
        run.hf
            .positions
            .get_file(a.to_str().unwrap())
            .unwrap()
            .offset,
        13
    );
}

#[test]
fn long_lines_are_cut_and_invalid_utf8_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let mut run = Run::new(dir.path(), false, &positions());
    fs::write(&a, b"0123456789abcdefXYZ\nok\xff\n").unwrap();
    let records = run.poll();
    assert_eq!(messages(&records), ["0123456789abcdef", "ok\u{fffd}"]);
    assert_eq!((records[0].truncated, records[1].truncated), (true, false));
    assert_eq!(records[0].position.file.unwrap().offset, 20);
    assert_eq!(run.hf.metrics.lines_truncated.get(), 1);
    assert_eq!(run.hf.metrics.bytes.get(), 16 + 5);
}

#[test]
fn rename_rotation_reads_every_line_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    // The glob also matches the rotated name: it must not be read again.
    let pattern = format!("{}/*.log*", dir.path().display());
    let mut run = Run::with_pattern(&pattern, false, &positions());
    append(&a, "1\n2\n");
    let mut got = run.poll_ack();
    append(&a, "3\nlast, no newline");
    fs::rename(&a, with_suffix(&a, ".1")).unwrap();
    append(&a, "4\n5\n");
    got.extend(run.poll_ack());
    append(&a, "6\n");
    got.extend(run.poll_ack());
    assert_eq!(got, ["1", "2", "3", "last, no newline", "4", "5", "6"]);
    assert_eq!(run.st.files.len(), 2, "a.log and a.log.1");
    // A second rotation: .1 is replaced; what a.log had is read before.
    append(&a, "7\n");
    fs::rename(&a, with_suffix(&a, ".1")).unwrap();
    append(&a, "8\n");
    assert_eq!(run.poll_ack(), ["7", "8"]);
}

#[test]
fn copytruncate_reads_the_file_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let mut run = Run::new(dir.path(), false, &positions());
    append(&a, "1\n2\npending");
    assert_eq!(run.poll_ack(), ["1", "2"]);
    OpenOptions::new()
        .write(true)
        .open(&a)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&a, "3\n");
    let records = run.poll();
    assert_eq!(messages(&records), ["pending", "3"]);
    assert_eq!(records[1].position.file.unwrap().offset, 2);
}

#[test]
fn deletion_stops_following_and_forgets_the_position_once_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let key = a.to_str().unwrap().to_string();
    let mut run = Run::new(dir.path(), false, &positions());
    append(&a, "1\n");
    assert_eq!(run.poll_ack(), ["1"]);
    append(&a, "2\n");
    fs::remove_file(&a).unwrap();
    let in_flight = run.poll();
    assert_eq!(messages(&in_flight), ["2"]);
    assert!(run.st.files.is_empty());
    assert!(
        run.hf.positions.get_file(&key).is_some(),
        "kept: '2' is not acked yet"
    );
    run.hf.positions.ack(&in_flight);
    run.poll();
    assert_eq!(run.hf.positions.get_file(&key), None);
    // A file created there again is new: read from its start.
    append(&a, "again\n");
    assert_eq!(run.poll_ack(), ["again"]);
}

#[test]
fn a_new_run_resumes_after_the_last_acknowledged_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let pos = positions();
    let mut run = Run::new(dir.path(), true, &pos);
    append(&a, "");
    run.poll();
    append(&a, "1\n2\npar");
    assert_eq!(run.poll_ack(), ["1", "2"]);
    append(&a, "3\n");
    let _unacked = run.poll();
    drop(run);
    append(&a, "tial\n");
    let mut run = Run::new(dir.path(), false, &pos);
    assert_eq!(run.poll_ack(), ["par3", "tial"]);
    assert!(run.poll().is_empty());
}

#[test]
fn old_content_skipped_on_the_first_run_stays_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    append(&a, "old\n");
    let pos = positions();
    assert!(Run::new(dir.path(), true, &pos).poll().is_empty());
    append(&a, "new\n");
    assert_eq!(Run::new(dir.path(), false, &pos).poll_ack(), ["new"]);
}

#[test]
fn rotated_while_down_finishes_the_old_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let pos = positions();
    let mut run = Run::new(dir.path(), false, &pos);
    append(&a, "1\n");
    assert_eq!(run.poll_ack(), ["1"]);
    drop(run);
    append(&a, "2\n3 no newline");
    fs::rename(&a, with_suffix(&a, ".1")).unwrap();
    append(&a, "4\n");
    let mut run = Run::new(dir.path(), false, &pos);
    let records = run.poll();
    assert_eq!(messages(&records), ["2", "3 no newline", "4"]);
    let (old, new) = (
        records[1].position.file.unwrap(),
        records[2].position.file.unwrap(),
    );
    assert!(!old.same_file(&new));
    assert_eq!((old.offset, new.offset), (16, 2));
}

#[test]
fn replaced_or_truncated_while_down_starts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let pos = positions();
    let mut run = Run::new(dir.path(), false, &pos);
    append(&a, "1111\n");
    assert_eq!(run.poll_ack(), ["1111"]);
    drop(run);
    // Replaced, the old file gone.
    fs::remove_file(&a).unwrap();
    append(&a, "2\n");
    let mut run = Run::new(dir.path(), false, &pos);
    assert_eq!(run.poll_ack(), ["2"]);
    drop(run);
    // Truncated: shorter than the position.
    fs::write(&a, "").unwrap();
    let mut run = Run::new(dir.path(), false, &pos);
    assert!(run.poll().is_empty());
    append(&a, "3\n");
    assert_eq!(run.poll_ack(), ["3"]);
}

#[test]
fn shutdown_ends_the_thread_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::new(dir.path(), false, &positions());
    run.hf.poll = Duration::from_secs(60);
    let shutdown = run.hf.shutdown.clone();
    let hf = run.hf;
    let started = Instant::now();
    std::thread::scope(|s| {
        let t = s.spawn(move || hf.run());
        std::thread::sleep(Duration::from_millis(50));
        shutdown.trigger();
        t.join().unwrap();
    });
    assert!(started.elapsed() < Duration::from_secs(5));
}
