//! The file sink: JSON lines appended to `path`, rotated by size to `path.1` .. `path.N`
//! (`max_files` kept). A batch is acknowledged once it is written to the kernel; a crash of
//! this process loses nothing that was acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
    size: u64,
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

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, batch: &Batch, _deadline: Option<Instant>) -> Result<(), SinkError> {
        let shown = self.path.display().to_string();
        let transient = |e: io::Error| SinkError::transient(format!("{shown}: {e}"));
        if self.size > 0 && self.size + batch.json_lines().len() as u64 > self.max_bytes {
            self.rotate().map_err(transient)?;
        }
        if self.file.is_none() {
            self.reopen().map_err(transient)?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(SinkError::transient("file not open"));
        };
        if let Err(e) = file.write_all(batch.json_lines()) {
            // A partial write leaves a torn line; reopen at the new end next time.
            self.file = None;
            return Err(transient(e));
        }
        self.size += batch.json_lines().len() as u64;
        Ok(())
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
