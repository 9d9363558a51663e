//! Host files (`files.paths`): one thread follows every file the globs match. It sleeps
//! until inotify reports a change in a watched directory (`watched`: the files'
//! directories and the patterns'), or `recheck` passed; where inotify falls back, and
//! during a rotation wait, it polls every `poll`. Every round it reads what each followed
//! file gained from its open fd, notices rotation by rename and deletion (the path names
//! another file, or none) and `copytruncate` (the file shrank), then re-expands the globs
//! to pick up new files (when names changed in a watched directory, a file was left, or
//! `recheck` passed; every round when polling). A renamed or deleted file stays
//! the path's source, its fd read like a live file's, until it has not grown for
//! [`ROTATE_WAIT`]: its writer appends to it until it reopens the path. Only then is the
//! next file read, from its start. Records carry the path and the offset just past their
//! line, so a restart goes on exactly after the last acknowledged line (in `<path>.1` if
//! it stopped during the wait).
//!
//! `lines` splits bytes into lines and `start` decides where a file is first read from
//! (both pure); `tail` owns one open file; `rotate` decides when a rotated file is left
//! and opens the next; `discover` expands the globs and applies `start`; `watched` keeps
//! the inotify watches.

mod discover;
mod lines;
mod rotate;
mod start;
mod tail;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wake;
mod watched;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::rotate::Leaving;
use self::start::FileId;
use self::tail::Tailed;
use crate::capture::record::{FilePos, Record};
use crate::capture::watch::{self, Wake, Watching, Woken};
use crate::config::FilesConfig;
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::process::rules::Rules;
use crate::process::stage::Stage;
use crate::shutdown::Shutdown;
use crate::sink::queue::Producer;

/// The `stream` label of `log_capturer_records_total` for host-file records.
pub const RECORDS_LABEL: &str = "file";
/// Bytes asked for per `read(2)`.
const CHUNK: usize = 64 * 1024;
/// Read at most this much of one file per poll, so one busy file does not hold back the
/// others; the next poll then comes at once.
const MAX_READ_PER_POLL: u64 = 8 * 1024 * 1024;
/// How long a file renamed away (or deleted) must go without growing before it is left for
/// the next one. logrotate renames, then signals the writer (`postrotate`), which reopens
/// the path milliseconds to seconds later; Fluent Bit waits 5 s.
pub const ROTATE_WAIT: Duration = Duration::from_secs(2);

/// Everything the host-files thread needs.
pub struct HostFiles {
    /// Absolute glob patterns, validated by the config.
    pub patterns: Vec<String>,
    /// The host name put in every record.
    pub host: Arc<str>,
    pub max_line_bytes: usize,
    /// How often files are polled for new bytes and globs re-expanded, without inotify.
    pub poll: Duration,
    /// inotify on the files' directories; `None`: poll.
    pub watching: Option<Watching>,
    /// How often a watched thread looks at everything with no event ([`watch::RECHECK`]).
    pub recheck: Duration,
    /// No earlier run recorded: files found at start are read from their end.
    pub first_run: bool,
    pub positions: Arc<Positions>,
    pub tx: Producer,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    /// `[[rules]]`: what is done to a file's lines (those with `match_paths`).
    pub rules: Arc<Rules>,
}

impl HostFiles {
    /// With the `[[rules]]` that shape the files' lines.
    pub fn with_rules(mut self, rules: Arc<Rules>) -> HostFiles {
        self.rules = rules;
        self
    }

    /// The thread wakes on inotify through `watching` (polling where it falls back).
    pub fn with_watching(mut self, watching: Watching) -> HostFiles {
        self.watching = Some(watching);
        self
    }

    /// The rule stage of the file at `path`, if a rule shapes it.
    fn shaping_for(&self, path: &str) -> Option<tail::FileShaping> {
        self.rules.for_path(path).map(|shaping| tail::FileShaping {
            stage: Stage::new(shaping.clone(), self.max_line_bytes, None),
            shaper: tail::Shaper {
                shaping,
                parse_errors: self.metrics.parse_errors.clone(),
                dropped: self.metrics.records_dropped.with_label_values(&["rule"]),
            },
        })
    }
    /// The files thread of `[files]`; `None` when `paths` is empty. Without inotify it
    /// polls every 250 ms.
    pub fn new(
        f: &FilesConfig,
        max_line_bytes: usize,
        host: Arc<str>,
        positions: Arc<Positions>,
        tx: Producer,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Option<HostFiles> {
        if f.paths.is_empty() {
            return None;
        }
        Some(HostFiles {
            patterns: f.paths.clone(),
            host,
            max_line_bytes,
            poll: Duration::from_millis(250),
            watching: None,
            recheck: watch::RECHECK,
            first_run: positions.last_run_at().is_none(),
            positions,
            tx,
            metrics,
            shutdown,
            rules: Arc::default(),
        })
    }
}

/// Why the thread stops.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Shutdown,
    /// The queue's consumer is gone.
    Closed,
}

/// What the thread knows between polls.
struct State {
    /// Followed files by path (the positions key).
    files: BTreeMap<String, Tailed>,
    /// Followed files the path no longer names, by path, until they are left (`rotate`).
    leaving: HashMap<String, Leaving>,
    /// Paths followed earlier in this run: a file found there again is new, read from 0,
    /// whatever the positions say (they may still hold the old file's acks).
    seen: HashSet<String>,
    /// Files left in this poll (rotated away, deleted) and the offset they were read to:
    /// a glob that also matches the rotated name goes on there instead of from 0. They stay
    /// open until the poll ends, so no new file can get their inode meanwhile.
    retired: HashMap<FileId, Tailed>,
    /// Deleted paths and the position of their last record: forgotten once acknowledged.
    gone: HashMap<String, FilePos>,
    /// Paths (or patterns) already warned about; their next failures are debug-level.
    warned: HashSet<String>,
    /// The globs were expanded once: files found from now on are new.
    expanded: bool,
    buf: Vec<u8>,
    out: Vec<Record>,
}

impl State {
    fn new() -> State {
        State {
            files: BTreeMap::new(),
            leaving: HashMap::new(),
            seen: HashSet::new(),
            retired: HashMap::new(),
            gone: HashMap::new(),
            warned: HashSet::new(),
            expanded: false,
            buf: vec![0; CHUNK],
            out: Vec::new(),
        }
    }

    /// Whether a rotation wait holds `id`, as the file waited on or the next one: it is not
    /// followed under another name meanwhile (a glob matching `<path>.1`).
    fn held(&self, id: FileId) -> bool {
        self.leaving.iter().any(|(path, l)| {
            l.next() == Some(id) || self.files.get(path).is_some_and(|t| t.id() == id)
        })
    }
}

impl HostFiles {
    /// Runs until shutdown (or until the queue is closed).
    pub fn run(self) {
        self.metrics.records.with_label_values(&[RECORDS_LABEL]);
        let mut st = State::new();
        let wake = Wake::new();
        let mut watched = watched::Watched::default();
        let mut expanded_at: Option<Instant> = None;
        let mut woken = Woken::default();
        loop {
            let now = Instant::now();
            let expand = woken.names()
                || !watched.complete()
                || expanded_at.is_none_or(|t| now.duration_since(t) >= self.recheck);
            let busy = match self.round(&mut st, now, expand) {
                Ok(busy) => busy,
                Err(stop) => {
                    log::debug!("files: stopping ({stop:?})");
                    break;
                }
            };
            let mut added = false;
            if expand {
                expanded_at = Some(now);
                if let Some(w) = &self.watching {
                    let dirs = watched::wanted_dirs(&self.patterns, st.files.keys().map(|k| &**k));
                    added = watched.update(w, &wake, dirs);
                }
            }
            woken = Woken::default();
            // A new watch sees only what comes after it: one more round at once.
            if busy || added {
                if self.shutdown.is_triggered() {
                    break;
                }
            } else if watched.complete() {
                // A rotation wait is timed: look again every `poll` meanwhile. Shutdown
                // raises `wake` too (every watched reader's), once it is watched.
                if self.shutdown.is_triggered() {
                    break;
                }
                woken = wake.wait(if st.leaving.is_empty() {
                    self.recheck
                } else {
                    self.poll.min(self.recheck)
                });
                if self.shutdown.is_triggered() {
                    break;
                }
            } else if self.shutdown.wait_timeout(self.poll) {
                break;
            }
            if woken.timed_out() {
                // What inotify reported meanwhile (a new name during a rotation wait).
                woken = wake.wait(Duration::ZERO);
            }
            if woken.lost() {
                watched.forget();
            }
        }
        // Pending text without a newline is not sent: the next run reads it again.
        self.metrics.files_followed.set(0);
    }

    /// One round over the followed files, then the globs.
    #[cfg(test)]
    fn poll(&self, st: &mut State, now: Instant) -> Result<bool, Stop> {
        self.round(st, now, true)
    }

    /// One round over the followed files, then the globs when `expand` (or a file was
    /// left: a glob may match its new name). Returns whether a file had more to read than
    /// one round takes.
    fn round(&self, st: &mut State, now: Instant, expand: bool) -> Result<bool, Stop> {
        let mut busy = false;
        let paths: Vec<String> = st.files.keys().cloned().collect();
        for path in paths {
            busy |= self.follow(st, path, now)?;
        }
        if expand || !st.retired.is_empty() || !st.expanded {
            busy |= self.discover(st)?;
        }
        st.expanded = true;
        st.retired.clear();
        self.forget_gone(st);
        self.metrics.files_followed.set(st.files.len() as i64);
        Ok(busy)
    }

    /// Reads what `path`'s file gained; handles truncation, rotation and deletion.
    fn follow(&self, st: &mut State, path: String, now: Instant) -> Result<bool, Stop> {
        let Some(mut t) = st.files.remove(&path) else {
            return Ok(false);
        };
        // Looked at before reading: what was written before a rename is then read below.
        let at_path = match tail::id_at(Path::new(&path)) {
            Ok(id) => Some(id),
            Err(e) => {
                log::debug!("{path}: cannot stat: {e}");
                None
            }
        };
        let was = st.leaving.remove(&path);
        let leaving = Leaving::observe(was, t.id(), at_path, now);
        if was.is_none() && leaving.is_some() {
            log::info!("{path}: rotated or deleted; reading on until idle for {ROTATE_WAIT:?}");
        }
        let before = t.offset();
        let truncated = match t.rewind_if_truncated(&mut st.out) {
            Ok(true) => {
                log::info!("{path}: truncated; reading it again from its start");
                self.metrics.file_rotations.inc();
                true
            }
            Ok(false) => false,
            Err(e) => {
                warn_once(&mut st.warned, &path, format_args!("{path}: {e}"));
                false
            }
        };
        let busy = self.drain(st, &mut t, MAX_READ_PER_POLL)?;
        t.tick(&mut st.out);
        self.send(&mut st.out)?;
        let Some(mut l) = leaving else {
            st.files.insert(path, t);
            return Ok(busy);
        };
        if truncated || t.offset() != before {
            l.grew(now);
        }
        if busy || !l.is_over(at_path, now) {
            st.leaving.insert(path.clone(), l);
            st.files.insert(path, t);
            return Ok(busy);
        }
        self.switch(st, path, t, l.next(), now)
    }

    /// Reads `t` until EOF or about `cap` bytes, sending the records of every chunk.
    /// Returns whether it stopped at the cap.
    fn drain(&self, st: &mut State, t: &mut Tailed, cap: u64) -> Result<bool, Stop> {
        let mut read = 0u64;
        loop {
            if self.shutdown.is_triggered() {
                return Err(Stop::Shutdown);
            }
            let n = match t.read_chunk(&mut st.buf, &mut st.out) {
                Ok(n) => n,
                Err(e) => {
                    let path = &*t.meta().path;
                    warn_once(
                        &mut st.warned,
                        path,
                        format_args!("cannot read {path}: {e}"),
                    );
                    0
                }
            };
            self.send(&mut st.out)?;
            if n == 0 {
                return Ok(false);
            }
            read += n as u64;
            if read >= cap {
                return Ok(true);
            }
        }
    }

    /// Counts and queues `out` (blocks while the queue is full).
    fn send(&self, out: &mut Vec<Record>) -> Result<(), Stop> {
        if out.is_empty() {
            return Ok(());
        }
        let bytes: usize = out.iter().map(|r| r.message.len()).sum();
        let truncated = out.iter().filter(|r| r.truncated).count();
        let dropped = out.iter().filter(|r| r.dropped).count();
        let m = &self.metrics;
        // Dropped records were counted when dropped (some never reach here).
        m.records
            .with_label_values(&[RECORDS_LABEL])
            .inc_by((out.len() - dropped) as u64);
        m.bytes.inc_by(bytes as u64);
        m.lines_truncated.inc_by(truncated as u64);
        self.tx.send_all(out).map_err(|_| Stop::Closed)
    }
}

/// Logs `msg` as a warning the first time for `key`, at debug level after that.
fn warn_once(warned: &mut HashSet<String>, key: &str, msg: fmt::Arguments<'_>) {
    if warned.insert(key.to_owned()) {
        log::warn!("{msg}");
    } else {
        log::debug!("{msg}");
    }
}
