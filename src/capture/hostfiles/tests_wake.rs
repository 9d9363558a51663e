//! The host-files thread running on its own, woken by inotify (no daemon): with the safety
//! re-check at 60 s, a line appended and a file rotated twice in quick succession still
//! arrive within 10 s (so events woke it), shutdown wakes it, and without inotify it polls
//! (the fallback counted).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::capture::watch::Watcher;
use crate::sink::queue::{bounded, Consumer};

/// Long enough for a loaded machine; far shorter than the 60 s re-check.
const WITHIN: Duration = Duration::from_secs(10);

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Messages queued until `n` arrived or [`WITHIN`] passed.
fn collect(rx: &Consumer, n: usize, got: &mut Vec<String>) {
    let deadline = Instant::now() + WITHIN;
    while got.len() < n && Instant::now() < deadline {
        let batch = rx.take_batch(usize::MAX, usize::MAX, Instant::now());
        got.extend(batch.into_iter().map(|r| r.message));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the thread over `<dir>/*.log` (polling every `poll` without inotify) while `f`
/// writes; then shutdown, which must end it within [`WITHIN`].
fn run_thread(
    dir: &Path,
    inotify: bool,
    metrics: Arc<Metrics>,
    poll: Duration,
    f: impl FnOnce(&Consumer, &Watcher),
) {
    let (tx, rx) = bounded(10_000, usize::MAX);
    let positions = Arc::new(Positions::in_memory(
        crate::capture::timestamp::Timestamp::now(),
    ));
    let shutdown = Shutdown::new();
    let fallbacks = metrics.inotify_fallbacks.clone();
    let watcher = if inotify {
        Watcher::start(fallbacks, &shutdown)
    } else {
        let fail = || Err(std::io::Error::from_raw_os_error(24));
        Watcher::start_with(fail, fallbacks, &shutdown)
    };
    let hf = HostFiles {
        patterns: vec![format!("{}/*.log", dir.display())],
        host: Arc::from("node-7"),
        max_line_bytes: 1024,
        poll,
        watching: Some(watcher.watching()),
        recheck: Duration::from_secs(60),
        first_run: false,
        positions,
        tx,
        metrics,
        shutdown: shutdown.clone(),
        rules: Arc::default(),
    };
    let (done_tx, done) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            hf.run();
            let _ = done_tx.send(());
        });
        f(&rx, &watcher);
        shutdown.trigger();
        done.recv_timeout(WITHIN).expect("shutdown woke the thread");
    });
}

#[test]
fn a_write_wakes_the_thread_without_waiting_for_the_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "one\n");
    let metrics = Arc::new(Metrics::new().unwrap());
    run_thread(
        dir.path(),
        true,
        metrics.clone(),
        Duration::from_secs(60),
        |rx, w| {
            let mut got = Vec::new();
            collect(rx, 1, &mut got);
            assert_eq!(w.watching().readers(), 1, "the directory is watched");
            append(&path, "two\n");
            collect(rx, 2, &mut got);
            // A new file is found at once too (its name appeared in a watched directory).
            append(&dir.path().join("new.log"), "three\n");
            collect(rx, 3, &mut got);
            assert_eq!(got, ["one", "two", "three"]);
        },
    );
    assert_eq!(metrics.inotify_fallbacks.get(), 0);
}

#[test]
fn a_file_rotated_twice_in_quick_succession_loses_nothing_when_watched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let rotated = |k: u32| dir.path().join(format!("app.log.{k}.old"));
    append(&path, "a\n");
    let metrics = Arc::new(Metrics::new().unwrap());
    // Polls every 250 ms only during a rotation wait; the first rotation must be seen by
    // its event (the re-check is 60 s away), or the file in between is lost.
    run_thread(
        dir.path(),
        true,
        metrics.clone(),
        Duration::from_millis(250),
        |rx, _| {
            let mut got = Vec::new();
            collect(rx, 1, &mut got);
            fs::rename(&path, dir.path().join("app.log.1")).unwrap();
            append(&path, "b\n");
            std::thread::sleep(Duration::from_millis(200));
            fs::rename(dir.path().join("app.log.1"), rotated(2)).unwrap();
            fs::rename(&path, dir.path().join("app.log.1")).unwrap();
            append(&path, "c\n");
            collect(rx, 3, &mut got);
            assert_eq!(got, ["a", "b", "c"]);
        },
    );
}

#[test]
fn without_inotify_the_thread_polls_and_the_fallback_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "one\n");
    let metrics = Arc::new(Metrics::new().unwrap());
    run_thread(
        dir.path(),
        false,
        metrics.clone(),
        Duration::from_millis(50),
        |rx, _| {
            let mut got = Vec::new();
            collect(rx, 1, &mut got);
            append(&path, "two\n");
            collect(rx, 2, &mut got);
            assert_eq!(got, ["one", "two"]);
        },
    );
    assert!(metrics.inotify_fallbacks.get() >= 1);
}
