//! The watcher against real directories (no daemon): writes, renames and deletions raise
//! the watching reader's [`Wake`], a queue overflow raises every reader, a failed inotify
//! start or watch falls back (counted), shutdown wakes readers, and `close` joins the
//! thread. Waits are long (10 s): a wake-up must come from the event, not the timeout.

use std::fs;
use std::io::Write;
use std::time::Duration;

use inotify::EventMask;

use super::*;
use crate::shutdown::Shutdown;

const LONG: Duration = Duration::from_secs(10);

fn counter() -> prometheus::IntCounter {
    prometheus::IntCounter::new("fallbacks", "test").unwrap()
}

fn watcher() -> (Watcher, prometheus::IntCounter, Shutdown) {
    let c = counter();
    let shutdown = Shutdown::new();
    (Watcher::start(c.clone(), &shutdown), c, shutdown)
}

#[test]
fn a_write_in_the_watched_directory_wakes_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    fs::write(&path, "").unwrap();
    let (w, fallbacks, _s) = watcher();
    let wake = Wake::new();
    let _watch = w.watching().watch(dir.path(), &wake, "test").unwrap();
    assert!(
        wake.wait(Duration::from_millis(1)).timed_out(),
        "nothing yet"
    );
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"line\n").unwrap();
    let woken = wake.wait(LONG);
    assert!(woken.content(), "{woken:?}");
    assert_eq!(fallbacks.get(), 0);
}

#[test]
fn a_rename_and_a_new_file_wake_the_reader_for_a_full_look() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    fs::write(&path, "x\n").unwrap();
    let (w, _, _s) = watcher();
    let wake = Wake::new();
    let _watch = w.watching().watch(dir.path(), &wake, "test").unwrap();
    fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    assert!(wake.wait(LONG).names());
    fs::write(&path, "").unwrap();
    assert!(wake.wait(LONG).names());
}

#[test]
fn two_readers_of_one_directory_are_both_woken_and_one_leaving_keeps_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _, _s) = watcher();
    let (a, b) = (Wake::new(), Wake::new());
    let watching = w.watching();
    let wa = watching.watch(dir.path(), &a, "a").unwrap();
    let _wb = watching.watch(dir.path(), &b, "b").unwrap();
    fs::write(dir.path().join("x"), "1").unwrap();
    assert!(!a.wait(LONG).timed_out());
    assert!(!b.wait(LONG).timed_out());
    drop(wa);
    b.wait(Duration::from_millis(50));
    fs::write(dir.path().join("y"), "2").unwrap();
    assert!(!b.wait(LONG).timed_out(), "the kernel watch stayed for b");
}

#[test]
fn the_watched_directory_deleted_tells_the_reader_to_poll() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("c");
    fs::create_dir(&sub).unwrap();
    let (w, _, _s) = watcher();
    let wake = Wake::new();
    let watch = w.watching().watch(&sub, &wake, "test").unwrap();
    fs::remove_dir(&sub).unwrap();
    let mut lost = false;
    for _ in 0..5 {
        let woken = wake.wait(LONG);
        assert!(!woken.timed_out());
        if woken.lost() {
            lost = true;
            break;
        }
    }
    assert!(lost, "IN_IGNORED after the directory's deletion");
    drop(watch);
}

#[test]
fn a_queue_overflow_wakes_every_reader_for_a_full_look() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (w, _, _s) = watcher();
    let (a, b) = (Wake::new(), Wake::new());
    let watching = w.watching();
    let _wa = watching.watch(one.path(), &a, "a").unwrap();
    let _wb = watching.watch(two.path(), &b, "b").unwrap();
    let hub = watching.hub.clone().unwrap();
    // What the kernel sends when its queue overflowed: wd -1, IN_Q_OVERFLOW.
    hub.dispatch([(-1, EventMask::Q_OVERFLOW)].into_iter());
    for wake in [&a, &b] {
        let woken = wake.wait(Duration::ZERO);
        assert!(woken.names() && !woken.lost(), "{woken:?}");
    }
}

#[test]
fn without_inotify_every_watch_falls_back_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let c = counter();
    let shutdown = Shutdown::new();
    let w = Watcher::start_with(
        || Err(std::io::Error::from_raw_os_error(24)),
        c.clone(),
        &shutdown,
    );
    let wake = Wake::new();
    assert!(w.watching().watch(dir.path(), &wake, "a").is_none());
    assert!(w.watching().watch(dir.path(), &wake, "b").is_none());
    assert_eq!(c.get(), 2);
}

#[test]
fn a_directory_that_cannot_be_watched_falls_back_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (w, fallbacks, _s) = watcher();
    let wake = Wake::new();
    assert!(w
        .watching()
        .watch(&dir.path().join("missing"), &wake, "test")
        .is_none());
    assert_eq!(fallbacks.get(), 1);
}

#[test]
fn shutdown_wakes_every_watched_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _, shutdown) = watcher();
    let wake = Wake::new();
    let _watch = w.watching().watch(dir.path(), &wake, "test").unwrap();
    let waiter = {
        let wake = wake.clone();
        std::thread::spawn(move || wake.wait(LONG))
    };
    shutdown.trigger();
    assert!(!waiter.join().unwrap().timed_out());
}

#[test]
fn close_joins_the_thread_blocked_in_its_read() {
    let (mut w, _, _s) = watcher();
    std::thread::sleep(Duration::from_millis(20));
    w.close();
    w.close();
    assert!(w.thread.is_none());
}

#[test]
fn a_file_is_watched_where_its_directory_cannot_be() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    fs::write(&path, "").unwrap();
    let (w, fallbacks, _s) = watcher();
    let wake = Wake::new();
    let unreadable = dir.path().join("missing");
    let (_watch, i) = w
        .watching()
        .watch_first(&[&unreadable, &path], &wake, "test")
        .unwrap();
    assert_eq!(i, 1);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"line\n").unwrap();
    assert!(wake.wait(LONG).content());
    fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    assert!(wake.wait(LONG).names(), "IN_MOVE_SELF: rotated");
    assert_eq!(fallbacks.get(), 0);
}
