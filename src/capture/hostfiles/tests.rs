//! The host-files thread's polls against real files in a temporary directory: where files
//! start, rotation by rename (with the rotate wait, on a clock of the test's own),
//! `copytruncate`, deletion, and resuming from acknowledged positions across "runs" (a
//! fresh `HostFiles` over the same positions).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::capture::record::Origin;
use crate::capture::timestamp::Timestamp;
use crate::sink::queue::{bounded, Consumer};

/// One "run": the thread's settings and state, polled by hand at `now`, and the queue's
/// far end.
struct Run {
    hf: HostFiles,
    st: State,
    rx: Consumer,
    now: Instant,
}

impl Run {
    fn new(dir: &Path, first_run: bool, positions: &Arc<Positions>) -> Run {
        Run::with_pattern(&format!("{}/*.log", dir.display()), first_run, positions)
    }

    fn with_pattern(pattern: &str, first_run: bool, positions: &Arc<Positions>) -> Run {
        let (tx, rx) = bounded(10_000, usize::MAX);
        let hf = HostFiles {
            patterns: vec![pattern.to_string()],
            host: Arc::from("node-7"),
            max_line_bytes: 16,
            poll: Duration::from_millis(10),
            watching: None,
            recheck: Duration::from_secs(60),
            first_run,
            positions: positions.clone(),
            tx,
            metrics: Arc::new(Metrics::new().unwrap()),
            shutdown: Shutdown::new(),
            rules: Arc::default(),
        };
        Run {
            hf,
            st: State::new(),
            rx,
            now: Instant::now(),
        }
    }

    /// Moves the run's clock on.
    fn later(&mut self, by: Duration) -> &mut Run {
        self.now += by;
        self
    }

    /// One poll; returns the records it queued.
    fn poll(&mut self) -> Vec<Record> {
        self.hf.poll(&mut self.st, self.now).unwrap();
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
    writer(path).write_all(bytes.as_bytes()).unwrap();
}

/// A writer's fd on `path`, which it keeps after a rename.
fn writer(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
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
    match &r.origin {
        Origin::HostFile(h) => assert_eq!(&*h.path, a.to_str().unwrap()),
        Origin::Container(c) => panic!("a host file's record from container {}", c.id),
    }
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
    assert_eq!(got, ["1", "2", "3"], "the old file is waited on");
    assert_eq!(run.st.files.len(), 1, "a.log.1 is not followed twice");
    append(&a, "6\n");
    got.extend(run.later(ROTATE_WAIT).poll_ack());
    assert_eq!(got, ["1", "2", "3", "last, no newline", "4", "5", "6"]);
    assert_eq!(run.st.files.len(), 2, "a.log and a.log.1");
    assert_eq!(run.hf.metrics.file_rotations.get(), 1);
    // A second rotation: .1 is replaced; what a.log had is read before.
    append(&a, "7\n");
    fs::rename(&a, with_suffix(&a, ".1")).unwrap();
    append(&a, "8\n");
    let mut got = run.poll_ack();
    got.extend(run.later(ROTATE_WAIT).poll_ack());
    assert_eq!(got, ["7", "8"]);
}

#[test]
fn lines_appended_to_the_renamed_file_until_the_writer_reopens_are_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let key = a.to_str().unwrap().to_string();
    let mut run = Run::new(dir.path(), false, &positions());
    let mut old = writer(&a);
    old.write_all(b"old 1\n").unwrap();
    assert_eq!(run.poll_ack(), ["old 1"]);
    // logrotate `create`: rename, create; the writer reopens only later (`postrotate`).
    old.write_all(b"old 2\n").unwrap();
    fs::rename(&a, with_suffix(&a, ".1")).unwrap();
    append(&a, "new 1\n");
    assert_eq!(run.poll_ack(), ["old 2"], "rotation noticed");
    old.write_all(b"old 3\nold 4 pending").unwrap();
    assert_eq!(run.later(ROTATE_WAIT / 2).poll_ack(), ["old 3"]);
    let pos = run.hf.positions.get_file(&key).unwrap();
    assert_eq!(
        pos.offset, 18,
        "still in the old file: a restart finishes a.log.1"
    );
    // Idle for less than ROTATE_WAIT since it last grew: still waited on.
    assert!(run.later(ROTATE_WAIT / 2).poll().is_empty());
    drop(old);
    append(&a, "new 2\n");
    let mut got = run.later(ROTATE_WAIT / 2).poll_ack();
    assert_eq!(got, ["old 4 pending", "new 1", "new 2"]);
    got = run.poll_ack();
    assert!(got.is_empty(), "{got:?}");
    let new = run.hf.positions.get_file(&key).unwrap();
    assert!(!new.same_file(&pos));
    assert_eq!(new.offset, 12);
}

#[test]
fn a_rotation_during_the_wait_reads_the_file_in_between_from_dot_1() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let dot1 = with_suffix(&a, ".1");
    let mut run = Run::new(dir.path(), false, &positions());
    append(&a, "1\n");
    assert_eq!(run.poll_ack(), ["1"]);
    let mut old = writer(&a);
    fs::rename(&a, &dot1).unwrap();
    append(&a, "2\n");
    assert!(run.poll_ack().is_empty(), "waiting on the old file");
    old.write_all(b"1b\n").unwrap();
    // Rotated again before the wait ended: the file with "2" is now a.log.1.
    fs::rename(&a, &dot1).unwrap();
    append(&a, "3\n");
    let mut got = run.later(ROTATE_WAIT / 4).poll_ack();
    got.extend(run.later(ROTATE_WAIT).poll_ack());
    assert_eq!(got, ["1b", "2", "3"]);
    assert_eq!(run.hf.metrics.file_rotations.get(), 2);
}

#[test]
fn shutdown_during_the_wait_stops_without_flushing_the_pending_text() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let pos = positions();
    let mut run = Run::new(dir.path(), false, &pos);
    append(&a, "1\n");
    assert_eq!(run.poll_ack(), ["1"]);
    append(&a, "2 pending");
    fs::rename(&a, with_suffix(&a, ".1")).unwrap();
    append(&a, "3\n");
    assert!(run.poll_ack().is_empty());
    run.hf.shutdown.trigger();
    let now = run.now + ROTATE_WAIT;
    assert_eq!(run.hf.poll(&mut run.st, now), Err(Stop::Shutdown));
    assert!(run.rx.take_batch(9, 9, now).is_empty());
    drop(run);
    // The next run finishes a.log.1 first.
    let mut run = Run::new(dir.path(), false, &pos);
    assert_eq!(run.poll_ack(), ["2 pending", "3"]);
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
    let mut f = writer(&a);
    f.write_all(b"1\n").unwrap();
    assert_eq!(run.poll_ack(), ["1"]);
    f.write_all(b"2\n").unwrap();
    fs::remove_file(&a).unwrap();
    assert_eq!(run.poll_ack(), ["2"]);
    // Its writer may still write to it for a while.
    f.write_all(b"3\n").unwrap();
    drop(f);
    let in_flight = run.later(ROTATE_WAIT / 2).poll();
    assert_eq!(messages(&in_flight), ["3"]);
    assert!(run.later(ROTATE_WAIT).poll().is_empty());
    assert!(run.st.files.is_empty());
    assert!(
        run.hf.positions.get_file(&key).is_some(),
        "kept: '3' is not acked yet"
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

#[test]
fn a_position_not_after_a_line_end_is_another_file_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let pos = positions();
    let mut run = Run::new(dir.path(), false, &pos);
    append(&a, "aaaa\nbbbb\n");
    assert_eq!(run.poll_ack(), ["aaaa", "bbbb"]);
    drop(run);
    // While stopped, the file is replaced by one that has the same inode number (as after
    // a delete and a create), longer than the saved offset: the offset lands mid-line.
    fs::write(&a, "cccccccccccc\n").unwrap();
    let mut run = Run::new(dir.path(), false, &pos);
    assert_eq!(run.poll_ack(), ["cccccccccccc"]);
}

/// A rule on the file's path: a Python traceback becomes one record, a dropped line is
/// gone, and the record still open when the "run" ends is read again by the next one.
#[test]
fn a_rule_joins_drops_and_resumes_before_the_open_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let positions = Arc::new(Positions::in_memory(Timestamp::from_nanos(0)));
    let toml = format!(
        "[[rules]]\nmatch_paths = [\"{}/*.log\"]\nmultiline = \"python\"\ndrop = [\"noise\"]\n",
        dir.path().display()
    );
    let rules = Arc::new(crate::process::rules::Rules::new(
        &crate::config::Config::from_toml_str(&toml, "t.toml")
            .unwrap()
            .rules,
    ));
    append(
        &path,
        "noise\nstart\nTraceback (most recent call last):\n  File \"x.py\", line 1, in f\n    f()\nValueError: bad\nafter\n",
    );
    let mut run = Run::new(dir.path(), false, &positions);
    run.hf.max_line_bytes = 1024;
    run.hf.rules = rules.clone();
    assert_eq!(
        run.poll_ack(),
        vec![
            "start".to_owned(),
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    f()\nValueError: bad".to_owned(),
        ],
        "\"after\" is still open"
    );
    let dropped = run.hf.metrics.records_dropped.with_label_values(&["rule"]);
    assert_eq!(
        dropped.get(),
        1,
        "counted, though its position rode on \"start\""
    );
    drop(run);
    append(&path, "end\n");
    let mut again = Run::new(dir.path(), false, &positions);
    again.hf.max_line_bytes = 1024;
    again.hf.rules = rules;
    assert_eq!(
        again.poll_ack(),
        vec!["after".to_owned()],
        "read again, once"
    );
}
