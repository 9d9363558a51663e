//! Host files (`files.paths`; README, Reading from disk and Records): lines appended to files matching a glob reach
//! the sink exactly once with `path` and without container fields, across rename
//! rotation (also with the writer appending to the renamed file until it reopens),
//! truncation, a graceful restart (with a rotation while down) and SIGKILL.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::resume::tally;
use crate::util::{shared_daemon, unique, wait_for, Capturer};

const WAIT: Duration = Duration::from_secs(30);

/// The capturer following `dir/*.log` (and no container), once it has expanded the glob
/// and follows `files` files.
fn start(dir: &Path, files: usize, extra: &str) -> Capturer {
    let toml = format!("{extra}\n[files]\npaths = [\"{}/*.log\"]\n", dir.display());
    let cap = Capturer::start(&unique("no-container"), &toml);
    wait_followed(&cap, files);
    cap
}

fn wait_followed(cap: &Capturer, files: usize) {
    wait_for(WAIT, &format!("{files} files followed"), || {
        (cap.metric("log_capturer_files_followed") == files as f64).then_some(())
    });
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

fn lines(tag: &str, range: std::ops::RangeInclusive<usize>) -> String {
    range.map(|i| format!("{tag} {i}\n")).collect()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn records_of_path(cap: &Capturer, path: &Path) -> Vec<Value> {
    let path = path.to_str().expect("a UTF-8 temp path");
    cap.records()
        .into_iter()
        .filter(|r| r["path"] == path)
        .collect()
}

fn messages(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r["message"]
                .as_str()
                .unwrap_or("<not a string>")
                .to_string()
        })
        .collect()
}

/// Waits until `path` has every line "n 1..N" (then a little longer, for stragglers).
fn wait_complete(cap: &Capturer, path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (lost, _) = tally(&records_of_path(cap, path), n);
        if lost.is_empty() {
            std::thread::sleep(Duration::from_millis(600));
            return records_of_path(cap, path);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines never arrived (first: {:?}); log:\n{}",
            lost.len(),
            &lost[..lost.len().min(10)],
            cap.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_in_order(records: &[Value]) {
    let numbers: Vec<usize> = records
        .iter()
        .filter_map(|r| r["message"].as_str()?.strip_prefix("n ")?.parse().ok())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[test]
fn host_file_lines_arrive_once_with_path_and_new_files_from_their_start() {
    let _d = shared_daemon();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append(&old, &lines("before start", 1..=3));
    let cap = start(dir.path(), 1, "");
    append(&old, &lines("n", 1..=100));
    let later = dir.path().join("later.log");
    append(&later, &lines("later", 1..=50));
    fs::write(dir.path().join("other.txt"), "not matched\n").unwrap();

    let recs = wait_complete(&cap, &old, 100);
    assert_eq!(
        messages(&recs),
        lines("n", 1..=100).lines().collect::<Vec<_>>()
    );
    let later_recs = wait_for(WAIT, "50 records of later.log", || {
        let r = records_of_path(&cap, &later);
        (r.len() >= 50).then_some(r)
    });
    assert_eq!(
        messages(&later_recs),
        lines("later", 1..=50).lines().collect::<Vec<_>>(),
        "a file created after start is read from its beginning"
    );
    assert_eq!(
        cap.records().len(),
        150,
        "nothing else: not the old lines, not other.txt"
    );
    for r in recs.iter().chain(&later_recs) {
        for absent in [
            "stream",
            "container_id",
            "container_name",
            "image",
            "labels",
        ] {
            assert!(r.get(absent).is_none(), "{absent} in {r}");
        }
        assert!(r["host"].as_str().is_some_and(|h| !h.is_empty()));
        let time = r["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-11-26T17:55:29.376306023Z".len(), "{time}");
    }
    // Field order of the README's Records section on the raw line: time, message, path, host.
    let text = fs::read_to_string(&cap.out).unwrap();
    let line = text.lines().find(|l| l.contains("\"n 1\"")).unwrap();
    assert!(line.starts_with("{\"time\":\""), "{line}");
    let at = |k: &str| line.find(k).unwrap_or_else(|| panic!("{k} in {line}"));
    assert!(at(",\"message\":") < at(",\"path\":") && at(",\"path\":") < at(",\"host\":"));
    assert_eq!(cap.metric("log_capturer_files_followed"), 2.0);
}

#[test]
fn rename_rotation_under_a_writer_and_truncation_lose_and_duplicate_nothing() {
    let _d = shared_daemon();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    File::create(&app).unwrap();
    let cap = start(dir.path(), 1, "");
    let n = 4000;
    let writer = {
        let app = app.clone();
        std::thread::spawn(move || {
            let open = || OpenOptions::new().create(true).append(true).open(&app);
            let mut f = open().expect("open app.log");
            for i in 1..=n {
                writeln!(f, "n {i}").expect("write");
                std::thread::sleep(Duration::from_millis(1));
                // logrotate `create`: rename, then the writer reopens the path.
                if i % 1000 == 0 && i < n {
                    fs::rename(&app, with_suffix(&app, ".1")).expect("rotate");
                    f = open().expect("reopen app.log");
                }
            }
        })
    };
    writer.join().expect("writer");
    let recs = wait_complete(&cap, &app, n);
    assert_eq!(tally(&recs, n), (vec![], 0), "after 3 rotations");
    assert_in_order(&recs);

    // copytruncate: the file is cut to 0 under its writer, which goes on appending.
    let mut f = OpenOptions::new().append(true).open(&app).unwrap();
    f.set_len(0).unwrap();
    f.write_all(lines("t", 1..=5).as_bytes()).unwrap();
    let after = wait_for(WAIT, "5 lines after the truncation", || {
        let r = records_of_path(&cap, &app);
        (r.len() >= n + 5).then_some(r)
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(records_of_path(&cap, &app).len(), n + 5, "no duplicates");
    assert_eq!(
        messages(&after[n..]),
        lines("t", 1..=5).lines().collect::<Vec<_>>()
    );
    let rotations = cap.metric("log_capturer_file_rotations_total");
    assert!(
        rotations >= 4.0,
        "{rotations} rotations; log:\n{}",
        cap.log()
    );
}

#[test]
fn lines_appended_to_the_renamed_file_until_the_writer_reopens_are_not_lost() {
    let _d = shared_daemon();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&app)
        .unwrap();
    let cap = start(dir.path(), 1, "");
    f.write_all(lines("n", 1..=100).as_bytes()).unwrap();
    wait_complete(&cap, &app, 100);
    // logrotate `create`: rename, create the new file; `postrotate` signals the writer,
    // which goes on writing to the renamed file for a second before it reopens the path.
    fs::rename(&app, with_suffix(&app, ".1")).unwrap();
    File::create(&app).unwrap();
    for i in 101..=200 {
        writeln!(f, "n {i}").unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    write!(f, "n 201").unwrap();
    f = OpenOptions::new().append(true).open(&app).unwrap();
    f.write_all(lines("n", 202..=300).as_bytes()).unwrap();
    let recs = wait_complete(&cap, &app, 300);
    assert_eq!(tally(&recs, 300), (vec![], 0), "log:\n{}", cap.log());
    assert_in_order(&recs);
    assert_eq!(cap.metric("log_capturer_file_rotations_total"), 1.0);
}

#[test]
fn sigterm_restart_with_a_rotation_while_down_loses_and_duplicates_nothing() {
    let _d = shared_daemon();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    File::create(&app).unwrap();
    let mut cap = start(dir.path(), 1, "");
    append(&app, &lines("n", 1..=500));
    append(&app, "n 50");
    wait_complete(&cap, &app, 500);
    let (status, _) = cap.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");

    // While down: the pending line is finished, more lines, then a rename rotation.
    append(&app, "1\n");
    append(&app, &lines("n", 502..=700));
    fs::rename(&app, with_suffix(&app, ".1")).unwrap();
    append(&app, &lines("n", 701..=800));
    cap.restart();
    let recs = wait_complete(&cap, &app, 800);
    assert_eq!(tally(&recs, 800), (vec![], 0), "log:\n{}", cap.log());
    assert_in_order(&recs);
    assert_eq!(
        recs[500]["message"], "n 501",
        "begun before the stop, ended after it"
    );
}

#[test]
fn sigkill_and_restart_lose_nothing_and_duplicate_at_most_a_batch() {
    let _d = shared_daemon();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    File::create(&app).unwrap();
    let batch = 200;
    let mut cap = start(
        dir.path(),
        1,
        &format!("[pipeline]\nbatch_records = {batch}\n"),
    );
    let n = 8000;
    let writer = {
        let app = app.clone();
        std::thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&app).expect("open");
            for i in 1..=n {
                writeln!(f, "n {i}").expect("write");
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };
    let kills = 2;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(1200));
        cap.kill9();
        std::thread::sleep(Duration::from_millis(300));
        cap.restart();
    }
    writer.join().expect("writer");
    let recs = wait_complete(&cap, &app, n);
    let (lost, dup) = tally(&recs, n);
    eprintln!("SIGKILL x{kills}: lost {}, duplicated {dup}", lost.len());
    assert!(lost.is_empty());
    assert!(
        dup <= kills * batch,
        "{dup} duplicates after {kills} kills, batch {batch}"
    );
}
