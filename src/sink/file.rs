//! The file sink: JSON lines appended to `path`, rotated by size to `path.1` .. `path.N`
//! (`max_files` kept). A batch is acknowledged once it is written to the kernel; a crash of
//! this process loses nothing that was acknowledged.
//!
//! A batch is written all or nothing: when a write fails part way (a full disk, a quota,
//! an I/O error), the file is cut back to where the batch began before the error is
//! returned, and the dispatcher retries the whole batch later, so a full disk neither
//! duplicates nor tears lines (on local filesystems, which report it when written; no
//! fsync is made per batch, so an error only reported at writeback is not seen). Should that cut fail too, it is tried again before the next
//! write. Before each batch the sink checks that `path` is still the file it has open: an
//! operator who removed or renamed it gets a new file at `path`, and nothing is written to
//! a deleted inode. (Only a crash of the process in the middle of a write leaves a torn
//! line; the next start ends it with a newline, and its batch, unacknowledged, is written
//! again.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Batch, Sink, SinkError};
use crate::config::FileSinkConfig;

pub struct FileSink {
    name: String,
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    file: Option<File>,
    /// Bytes in `file`: where the next batch begins.
    size: u64,
    /// Where a failed batch began, while the cut back to it is still to be made.
    cut_to: Option<u64>,
}

impl FileSink {
    pub fn open(name: String, cfg: &FileSinkConfig) -> io::Result<FileSink> {
        let mut sink = FileSink {
            name,
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes.get(),
            max_files: cfg.max_files,
            file: None,
            size: 0,
            cut_to: None,
        };
        sink.reopen()?;
        Ok(sink)
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        if self.size > 0 && !ends_with_newline(&mut file)? {
            // A crash mid-write left a torn last line; its batch was not acknowledged and
            // will be written again. End the fragment so the next record starts a line.
            file.write_all(b"\n")?;
            self.size += 1;
        }
        self.file = Some(file);
        Ok(())
    }

    /// path.(N-1) -> path.N, ..., path -> path.1; the oldest falls off.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: usize| -> PathBuf {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..self.max_files).rev() {
            let from = numbered(n);
            if from.exists() {
                fs::rename(&from, numbered(n + 1))?;
            }
        }
        if self.max_files >= 1 {
            rename_if_exists(&self.path, &numbered(1))?;
        }
        let _ = fs::remove_file(numbered(self.max_files + 1));
        self.reopen()
    }
}

/// Logs can hold secrets a container printed: owner read-write, group read, no others.
pub const FILE_MODE: u32 = 0o640;
pub const DIR_MODE: u32 = 0o750;

/// Creates `dir` and its missing parents with `DIR_MODE` (existing ones are left as they are).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl FileSink {
    /// The open file's length, if `path` still names it (an operator may have removed or
    /// renamed it, or truncated it: the length is taken afresh); `None` when the path is
    /// gone or names another file. Any other failure to look is an error (the handle is
    /// kept: it may still be the right file).
    fn length_at_path(&self) -> io::Result<Option<u64>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let open = file.metadata()?;
        let named = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok((open.dev() == named.dev() && open.ino() == named.ino()).then_some(open.len()))
    }

    /// Lets go of the open file (replaced underneath us): a failed batch's tail is cut
    /// from it first, so the renamed file holds no torn line.
    fn let_go(&mut self) {
        if let Err(e) = self.cut_back() {
            log::warn!(
                "sink {}: cannot cut the replaced file back to {} bytes: {e}",
                self.name,
                self.cut_to.unwrap_or(self.size)
            );
        }
        self.file = None;
        self.cut_to = None;
    }

    /// Makes the open file end where the last good batch ended (never longer than it is).
    fn cut_back(&mut self) -> io::Result<()> {
        let (Some(to), Some(file)) = (self.cut_to, &self.file) else {
            return Ok(());
        };
        let len = file.metadata()?.len();
        if len > to {
            file.set_len(to)?;
        }
        self.size = len.min(to);
        self.cut_to = None;
        Ok(())
    }

    /// Appends the batch, or leaves the file as it was before it.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.cut_back()?;
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("file not open"));
        };
        let written = file.write_all(bytes).and_then(|()| {
            // Deleted while we wrote (after the check before the batch): those bytes are
            // gone with the inode; say so, so the batch goes to the file at the path.
            if file.metadata()?.nlink() == 0 {
                return Err(io::Error::other("the file was deleted during the write"));
            }
            Ok(())
        });
        if let Err(e) = written {
            self.cut_to = Some(self.size);
            if let Err(cut) = self.cut_back() {
                log::warn!(
                    "sink {}: cannot cut {} back to {} bytes after a failed write: {cut}; trying again before the next write",
                    self.name,
                    self.path.display(),
                    self.size
                );
            }
            return Err(e);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn degrades_at_once(&self) -> bool {
        true
    }

    fn write_batch(&mut self, batch: &Batch, _deadline: Option<Instant>) -> Result<(), SinkError> {
        let shown = self.path.display().to_string();
        let transient = |e: io::Error| SinkError::transient(format!("{shown}: {e}"));
        if self.file.is_some() {
            match self.length_at_path().map_err(transient)? {
                // A failed batch's tail waits to be cut: the length is not the batch start.
                Some(len) if self.cut_to.is_none() => self.size = len,
                Some(_) => {}
                None => {
                    log::warn!(
                        "sink {}: {shown} was removed or replaced; writing to a new file at that path",
                        self.name
                    );
                    self.let_go();
                }
            }
        }
        if self.file.is_none() {
            self.cut_to = None;
            self.reopen().map_err(transient)?;
        }
        let bytes = batch.json_lines();
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.cut_back().map_err(transient)?;
            self.rotate().map_err(transient)?;
        }
        self.append(bytes).map_err(transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::sample_records;
    use crate::config::ByteSize;

    fn open(path: &Path, max_bytes: u64, max_files: usize) -> FileSink {
        let cfg = FileSinkConfig {
            path: path.to_path_buf(),
            max_bytes: ByteSize(max_bytes),
            max_files,
        };
        FileSink::open("file-0".into(), &cfg).unwrap()
    }

    fn batch(n: usize, tag: &str) -> Batch {
        let mut records = sample_records(n, tag);
        for r in &mut records {
            r.message.push_str(&"x".repeat(100));
        }
        Batch::new(records)
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let mut sink = open(&path, 4096, 2);
        for round in 0..6 {
            sink.write_batch(&batch(10, &format!("r{round}")), None)
                .unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        let one = read(&dir.path().join("sub/out.jsonl.1"));
        let two = read(&dir.path().join("sub/out.jsonl.2"));
        assert!(current.contains("r5 0"), "newest batch in the live file");
        assert!(one.contains("r4 0") || one.contains("r3 0"));
        assert!(!two.is_empty());
        assert!(
            !dir.path().join("sub/out.jsonl.3").exists(),
            "max_files kept"
        );
        for text in [&current, &one, &two] {
            assert!(text.len() as u64 <= 4096 + batch(10, "r0").json_lines().len() as u64);
            assert!(text
                .lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        }
    }

    #[test]
    fn a_torn_last_line_is_ended_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"whole\":1}\n{\"torn\":").unwrap();
        let mut sink = open(&path, 1 << 20, 1);
        sink.write_batch(&batch(1, "new"), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "{\"torn\":");
        assert!(serde_json::from_str::<serde_json::Value>(lines[2]).is_ok());
    }

    #[test]
    fn new_files_and_dirs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sub/out.jsonl");
        open(&path, 1 << 20, 1);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(&dir.path().join("new/sub")), 0o750);
        assert_eq!(mode(&dir.path().join("new")), 0o750);
    }

    /// An operator removes the output, then renames it away: each time the next batch goes
    /// to a new file at the path, and the old inode gets nothing more.
    #[test]
    fn a_removed_or_renamed_output_is_reopened_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = open(&path, 1 << 20, 1);
        sink.write_batch(&batch(2, "first"), None).unwrap();
        std::fs::remove_file(&path).unwrap();
        sink.write_batch(&batch(3, "second"), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("second 0") && !text.contains("first"));

        let moved = dir.path().join("moved.jsonl");
        std::fs::rename(&path, &moved).unwrap();
        sink.write_batch(&batch(1, "third"), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&moved).unwrap(),
            text,
            "old file untouched"
        );
        let now = std::fs::read_to_string(&path).unwrap();
        assert_eq!(now.lines().count(), 1);
        assert!(now.contains("third 0"));
    }

    /// A truncation by someone else (logrotate's copytruncate) is seen: the size is taken
    /// afresh, so rotation and the cut after a failed write work from the real length.
    #[test]
    fn an_outside_truncation_resets_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let one = batch(10, "a").json_lines().len() as u64;
        let mut sink = open(&path, one * 2, 1);
        sink.write_batch(&batch(10, "a"), None).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        sink.write_batch(&batch(10, "b"), None).unwrap();
        sink.write_batch(&batch(10, "c"), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains('\0'), "no hole of zeros");
        assert_eq!(text.lines().count(), 20, "b and c fit without a rotation");
        assert!(!dir.path().join("out.jsonl.1").exists());
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let mut sink = open(&path, 1 << 20, 1);
        sink.write_batch(&batch(2, "new"), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"old\":1}\n"));
        assert_eq!(text.lines().count(), 3);
    }
}
