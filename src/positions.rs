//! Positions: per container, the position of the last record every sink acknowledged,
//! persisted to `positions.path`. Only the dispatcher advances them, and only after a
//! batch reached every sink. The file is replaced atomically (write a temporary file,
//! rename it over the old one): after a crash of this process it holds the last persisted
//! state, never a torn one. It also records when the capturer first ran and when it last
//! persisted (`updated_at`), which decides where containers without a position start.
//!
//! File format (JSON): `{"version":1,"first_run_at":"<rfc3339>","updated_at":"<rfc3339>",
//! "containers":{"<id>":{"time":"<rfc3339>","frames":N,"file":{"dev":D,"ino":I,"offset":O}}},
//! "files":{"<path>":{"dev":D,"ino":I,"offset":O}}}`. A container's `file` is present when
//! it was read from its json-file log (`read_from = "files"`); `files` holds the host files
//! of `files.paths`. A container's `marks` (`{"stdout":{"time":..,"frames":N},"stderr":..}`)
//! are there only while a multiline record was open at the position (see
//! `record::Position`). All three are optional, so files written before them still load.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::capture::record::{ContainerId, FilePos, Mark, Origin, Position, Record};
use crate::capture::timestamp::Timestamp;

const VERSION: u32 = 1;

/// The positions file could not be read, parsed or written.
#[derive(Debug)]
pub struct PositionsError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for PositionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "positions file {}: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for PositionsError {}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    time: String,
    frames: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marks: Option<MarksRef>,
}

#[derive(Serialize, Deserialize)]
struct MarksRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdout: Option<MarkRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stderr: Option<MarkRef>,
}

#[derive(Serialize, Deserialize)]
struct MarkRef {
    time: String,
    frames: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileRef>,
}

impl MarkRef {
    fn new(m: Mark) -> MarkRef {
        MarkRef {
            time: m.time.to_rfc3339(),
            frames: m.frames_at_time,
            file: m.file.map(FileRef::from),
        }
    }
}

fn marks_ref(p: &Position) -> Option<MarksRef> {
    p.has_marks().then(|| MarksRef {
        stdout: p.marks[0].map(MarkRef::new),
        stderr: p.marks[1].map(MarkRef::new),
    })
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct FileRef {
    dev: u64,
    ino: u64,
    offset: u64,
}

impl From<FileRef> for FilePos {
    fn from(f: FileRef) -> FilePos {
        FilePos {
            dev: f.dev,
            ino: f.ino,
            offset: f.offset,
        }
    }
}

impl From<FilePos> for FileRef {
    fn from(f: FilePos) -> FileRef {
        FileRef {
            dev: f.dev,
            ino: f.ino,
            offset: f.offset,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    first_run_at: String,
    updated_at: String,
    containers: BTreeMap<String, FileEntry>,
    #[serde(default)]
    files: BTreeMap<String, FileRef>,
}

#[derive(Debug)]
struct State {
    map: HashMap<ContainerId, Position>,
    /// Host files by path.
    files: HashMap<String, FilePos>,
    dirty: bool,
}

#[derive(Debug)]
pub struct Positions {
    path: PathBuf,
    state: Mutex<State>,
    first_run_at: Timestamp,
    last_run_at: Option<Timestamp>,
}

impl Positions {
    /// In-memory only (tests, and the library used without a file).
    pub fn in_memory(now: Timestamp) -> Positions {
        Positions {
            path: PathBuf::new(),
            state: Mutex::new(State {
                map: HashMap::new(),
                files: HashMap::new(),
                dirty: false,
            }),
            first_run_at: now,
            last_run_at: None,
        }
    }

    /// Loads `path` (a missing file means a first run at `now`) and proves that it can be
    /// written, by writing it once. Any failure is fatal at start: guessing would lose or
    /// duplicate lines.
    pub fn open(path: &Path, now: Timestamp) -> Result<Positions, PositionsError> {
        let err = |message: String| PositionsError {
            path: path.to_path_buf(),
            message,
        };
        let mut positions = Positions::in_memory(now);
        positions.path = path.to_path_buf();
        match fs::read(path) {
            Ok(bytes) => {
                let file: FileFormat = serde_json::from_slice(&bytes).map_err(|e| {
                    err(format!(
                        "not a positions file ({e}); move it aside to start afresh"
                    ))
                })?;
                if file.version != VERSION {
                    return Err(err(format!("unsupported version {}", file.version)));
                }
                let parse = |s: &str| {
                    Timestamp::parse(s.as_bytes()).map_err(|e| err(format!("bad time {s:?}: {e}")))
                };
                positions.first_run_at = parse(&file.first_run_at)?;
                positions.last_run_at = Some(parse(&file.updated_at)?);
                let mut state = positions.state.lock();
                let mark = |m: Option<MarkRef>| -> Result<Option<Mark>, PositionsError> {
                    m.map(|m| {
                        Ok(Mark {
                            time: parse(&m.time)?,
                            frames_at_time: m.frames,
                            file: m.file.map(FilePos::from),
                        })
                    })
                    .transpose()
                };
                for (id, entry) in file.containers {
                    let time = parse(&entry.time)?;
                    let marks = match entry.marks {
                        Some(m) => [mark(m.stdout)?, mark(m.stderr)?],
                        None => [None; 2],
                    };
                    state.map.insert(
                        ContainerId::new(&id),
                        Position {
                            time,
                            frames_at_time: entry.frames,
                            file: entry.file.map(FilePos::from),
                            marks,
                        },
                    );
                }
                for (path, f) in file.files {
                    state.files.insert(path, f.into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        }
        positions
            .persist(true)
            .map_err(|e| err(format!("cannot write: {e}")))?;
        Ok(positions)
    }

    /// When the capturer first ran with this file.
    pub fn first_run_at(&self) -> Timestamp {
        self.first_run_at
    }

    /// When the previous run last persisted (None on a first run).
    pub fn last_run_at(&self) -> Option<Timestamp> {
        self.last_run_at
    }

    /// Advances every container in `records` (queue order, so the last one wins).
    pub fn ack(&self, records: &[Record]) {
        self.ack_each(records.iter().map(|r| (&r.origin, &r.position)));
    }

    /// Advances the origin of each position, in order (the last one of an origin wins).
    pub fn ack_each<'a>(&self, positions: impl Iterator<Item = (&'a Origin, &'a Position)>) {
        let mut state = self.state.lock();
        let mut any = false;
        for (origin, position) in positions {
            any = true;
            match origin {
                Origin::Container(c) => {
                    state.map.insert(c.id.clone(), *position);
                }
                Origin::HostFile(h) => {
                    if let Some(f) = position.file {
                        match state.files.get_mut(&*h.path) {
                            Some(at) => *at = f,
                            None => {
                                state.files.insert(h.path.to_string(), f);
                            }
                        }
                    }
                }
            }
        }
        state.dirty |= any;
    }

    pub fn get(&self, id: &ContainerId) -> Option<Position> {
        self.state.lock().map.get(id).copied()
    }

    /// A host file's acknowledged position.
    pub fn get_file(&self, path: &str) -> Option<FilePos> {
        self.state.lock().files.get(path).copied()
    }

    /// Records where a host file's reading starts when no line of it was delivered yet
    /// (a file found at the first start is read from its end): the next run starts there
    /// too, instead of shipping the old content. Never moves an existing position.
    pub fn start_file_at(&self, path: &str, at: FilePos) {
        let mut state = self.state.lock();
        if !state.files.contains_key(path) {
            state.files.insert(path.to_owned(), at);
            state.dirty = true;
        }
    }

    /// Forgets a host file that is gone.
    pub fn forget_file(&self, path: &str) {
        let mut state = self.state.lock();
        if state.files.remove(path).is_some() {
            state.dirty = true;
        }
    }

    /// Forgets a destroyed container.
    pub fn forget(&self, id: &ContainerId) {
        let mut state = self.state.lock();
        if state.map.remove(id).is_some() {
            state.dirty = true;
        }
    }

    /// Forgets every container not in `existing` (they were removed while we were down).
    pub fn retain(&self, existing: &HashSet<ContainerId>) -> usize {
        let mut state = self.state.lock();
        let before = state.map.len();
        state.map.retain(|id, _| existing.contains(id));
        let removed = before - state.map.len();
        state.dirty |= removed > 0;
        removed
    }

    pub fn len(&self) -> usize {
        self.state.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the positions are persisted (empty in memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_dirty(&self) -> bool {
        self.state.lock().dirty
    }

    /// Writes the file: temporary file, optional fsync, rename. With `sync`, also fsyncs
    /// the directory, so the state survives a machine crash, not only a process crash.
    pub fn persist(&self, sync: bool) -> io::Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let text = {
            let mut state = self.state.lock();
            state.dirty = false;
            let containers = state
                .map
                .iter()
                .map(|(id, p)| {
                    (
                        id.to_string(),
                        FileEntry {
                            time: p.time.to_rfc3339(),
                            frames: p.frames_at_time,
                            file: p.file.map(FileRef::from),
                            marks: marks_ref(p),
                        },
                    )
                })
                .collect();
            let files = state
                .files
                .iter()
                .map(|(path, f)| (path.clone(), FileRef::from(*f)))
                .collect();
            let file = FileFormat {
                version: VERSION,
                first_run_at: self.first_run_at.to_rfc3339(),
                updated_at: Timestamp::now().to_rfc3339(),
                containers,
                files,
            };
            serde_json::to_vec(&file).map_err(io::Error::other)?
        };
        let result = write_atomically(&self.path, &text, sync);
        if result.is_err() {
            self.state.lock().dirty = true;
        }
        result
    }
}

fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::sink::file::create_private_dir(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = write_new(&tmp, bytes, sync).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // A full disk: do not leave a partial copy taking space from the next try.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::sink::file::FILE_MODE)
        .open(path)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::sample_records;

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/positions.json");
        let t0 = Timestamp::from_nanos(1_000);
        let p = Positions::open(&path, t0).unwrap();
        assert_eq!(p.first_run_at(), t0);
        assert_eq!(p.last_run_at(), None);
        let mut records = sample_records(3, "x");
        records[2].position = Position {
            time: Timestamp::from_nanos(77),
            frames_at_time: 2,
            file: Some(FilePos {
                dev: 1,
                ino: 2,
                offset: 3,
            }),
            marks: [
                Some(Mark {
                    time: Timestamp::from_nanos(90),
                    frames_at_time: 1,
                    file: Some(FilePos {
                        dev: 1,
                        ino: 2,
                        offset: 9,
                    }),
                }),
                None,
            ],
        };
        let mut host = sample_records(1, "h");
        host[0].origin = Origin::HostFile(std::sync::Arc::new(
            crate::capture::record::HostFileMeta::new("/var/log/x.log", std::sync::Arc::from("h")),
        ));
        host[0].position.file = Some(FilePos {
            dev: 4,
            ino: 5,
            offset: 6,
        });
        p.ack(&host);
        p.ack(&records);
        assert!(p.is_dirty());
        p.persist(false).unwrap();
        assert!(!p.is_dirty());

        let again = Positions::open(&path, Timestamp::from_nanos(9_999)).unwrap();
        assert_eq!(again.first_run_at(), t0, "first run is kept");
        assert!(again.last_run_at().is_some());
        let id = ContainerId::new("c");
        assert_eq!(again.get(&id), Some(records[2].position), "marks included");
        assert_eq!(
            again.get_file("/var/log/x.log"),
            Some(FilePos {
                dev: 4,
                ino: 5,
                offset: 6
            })
        );
        assert_eq!(again.len(), 1, "host files are not containers");
        again.forget_file("/var/log/x.log");
        again.forget(&id);
        again.persist(true).unwrap();
        assert!(Positions::open(&path, t0).unwrap().is_empty());
        assert!(!dir.path().join("data/positions.json.tmp").exists());
    }

    #[test]
    fn a_file_without_file_positions_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let id = "a".repeat(64);
        fs::write(
            &path,
            format!(
                r#"{{"version":1,"first_run_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:01Z","containers":{{"{id}":{{"time":"2026-01-01T00:00:00.5Z","frames":3}}}}}}"#
            ),
        )
        .unwrap();
        let p = Positions::open(&path, Timestamp::from_nanos(0)).unwrap();
        let got = p.get(&ContainerId::new(&id)).unwrap();
        assert_eq!((got.frames_at_time, got.file), (3, None));
    }

    #[test]
    fn retain_prunes_containers_that_are_gone() {
        let p = Positions::in_memory(Timestamp::from_nanos(0));
        p.ack(&sample_records(1, "x"));
        assert_eq!(p.retain(&HashSet::from([ContainerId::new("other")])), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        fs::write(&path, b"{not json").unwrap();
        let e = Positions::open(&path, Timestamp::from_nanos(0)).unwrap_err();
        assert!(e.to_string().contains("positions.json"), "{e}");
        assert!(e.to_string().contains("move it aside"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"{not json", "left untouched");
    }

    #[test]
    fn an_unwritable_place_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"").unwrap();
        let e =
            Positions::open(&blocker.join("positions.json"), Timestamp::from_nanos(0)).unwrap_err();
        assert!(e.to_string().contains("cannot"), "{e}");
    }
}
