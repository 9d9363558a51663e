//! A container's `json-file` log on disk: `<docker_root>/containers/<id>/<id>-json.log`
//! and its rotated files `.1` (newest) .. `.N` (oldest). `LogPaths` lists the chain with
//! each file's identity (device, inode), because rotation renames files; `LogFile` is one
//! open file read line by line with the byte offset of every line. Docker rotates by
//! closing the file, renaming it to `.1`, and creating a new one, so once the current name
//! points to another inode, the file we hold is complete.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::record::FilePos;

/// Longest json-file line accepted: a 16 KiB piece escaped as `\uXXXX` is about 100 KiB;
/// attrs add a little. Longer lines are skipped (and reported), never buffered.
pub const MAX_JSON_LINE: usize = 1 << 20;

/// How much is read at once.
const CHUNK: usize = 64 * 1024;

/// Rotated files looked at, at most.
const MAX_ROTATED: u32 = 1000;

/// The paths of one container's log files.
#[derive(Clone, Debug)]
pub struct LogPaths {
    dir: PathBuf,
    current: PathBuf,
}

/// One file of the chain and its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

impl Member {
    pub fn is(&self, f: &FilePos) -> bool {
        self.dev == f.dev && self.ino == f.ino
    }

    /// Opens it, if its name still holds this very file (rotation renames files).
    pub fn open(&self) -> Option<LogFile> {
        LogFile::open(&self.path).ok().filter(|f| f.is(self))
    }
}

impl LogPaths {
    pub fn new(docker_root: &Path, id: &str) -> LogPaths {
        let dir = docker_root.join("containers").join(id);
        let current = dir.join(format!("{id}-json.log"));
        LogPaths { dir, current }
    }

    /// The container's directory: its log files and Docker's metadata.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn current(&self) -> &Path {
        &self.current
    }

    /// Docker's copy of the container's configuration (it holds `Config.Tty`).
    pub fn config_v2(&self) -> PathBuf {
        self.dir.join("config.v2.json")
    }

    fn rotated(&self, k: u32) -> PathBuf {
        let mut name = self.current.as_os_str().to_os_string();
        name.push(format!(".{k}"));
        PathBuf::from(name)
    }

    /// The files that exist now, oldest first (`.N` .. `.1`, then the current one).
    /// Compressed rotated files (`log-opt compress=true`) are not read; `compressed` says
    /// whether any were seen.
    pub fn chain(&self) -> (Vec<Member>, bool) {
        let mut members = Vec::new();
        let mut compressed = false;
        for k in 1..=MAX_ROTATED {
            let path = self.rotated(k);
            match fs::metadata(&path) {
                Ok(m) => members.push(Member {
                    path,
                    dev: m.dev(),
                    ino: m.ino(),
                }),
                Err(_) => {
                    let mut gz = path.into_os_string();
                    gz.push(".gz");
                    compressed = Path::new(&gz).exists();
                    break;
                }
            }
        }
        members.reverse();
        if let Ok(m) = fs::metadata(&self.current) {
            members.push(Member {
                path: self.current.clone(),
                dev: m.dev(),
                ino: m.ino(),
            });
        }
        (members, compressed)
    }
}

/// One open log file, read in whole lines.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// File offset of `buf[0]`.
    offset: u64,
    buf: Vec<u8>,
    /// Inside a line longer than `MAX_JSON_LINE`: skipping to its end.
    skipping: bool,
}

/// What one `read_lines` call did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Bytes read from the file (0: at its end).
    pub bytes: usize,
    /// Lines longer than `MAX_JSON_LINE`, skipped.
    pub oversized: u32,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            offset: 0,
            buf: Vec::new(),
            skipping: false,
        })
    }

    /// Continues at `offset` (a position just past a line).
    pub fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.buf.clear();
        self.skipping = false;
        Ok(())
    }

    /// The position just past the last whole line handed out.
    pub fn position(&self) -> FilePos {
        self.pos(self.offset)
    }

    fn pos(&self, offset: u64) -> FilePos {
        FilePos {
            dev: self.dev,
            ino: self.ino,
            offset,
        }
    }

    /// Where the next read starts: past the whole lines handed out and the bytes of an
    /// unfinished one held back.
    pub fn read_offset(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    /// The line that ends just before `offset` (without its `\n`): `None` when `offset`
    /// is not just past a `\n` of this file (or past a line longer than `MAX_JSON_LINE`).
    /// Used to check that a saved position still points into the file it was taken in:
    /// inode numbers are reused once a rotated-out file is deleted.
    pub fn line_ending_at(&self, offset: u64) -> io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        if offset == 0 || offset > self.size()? {
            return Ok(None);
        }
        // Most lines are short: look 64 KiB back first, then as far as a line can be.
        for window in [CHUNK, MAX_JSON_LINE] {
            let from = offset.saturating_sub(window as u64 + 1);
            let mut buf = vec![0u8; (offset - from) as usize];
            self.file.read_exact_at(&mut buf, from)?;
            if buf.pop() != Some(b'\n') {
                return Ok(None);
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(nl) => return Ok(Some(buf.split_off(nl + 1))),
                None if from == 0 => return Ok(Some(buf)),
                None => {}
            }
        }
        Ok(None)
    }

    /// How many lines the file holds (`tail:N` counts them), read through this handle.
    pub fn count_lines(&self) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; CHUNK];
        let (mut at, mut n) = (0u64, 0u64);
        loop {
            let got = self.file.read_at(&mut buf, at)?;
            if got == 0 {
                return Ok(n);
            }
            at += got as u64;
            n += memchr::memchr_iter(b'\n', &buf[..got]).count() as u64;
        }
    }

    /// The file's size now.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether `m` is this file.
    pub fn is(&self, m: &Member) -> bool {
        m.dev == self.dev && m.ino == self.ino
    }

    /// Reads up to one chunk and hands out each complete line (without its `\n`) with
    /// where it starts and where the next one starts.
    pub fn read_lines(
        &mut self,
        mut line: impl FnMut(&[u8], FilePos, FilePos),
    ) -> io::Result<ReadReport> {
        let mut report = ReadReport::default();
        // Appends at most one chunk without zero-filling it first.
        let n = (&mut self.file)
            .take(CHUNK as u64)
            .read_to_end(&mut self.buf)?;
        report.bytes = n;
        let mut from = 0;
        while let Some(nl) = memchr::memchr(b'\n', &self.buf[from..]) {
            let end = from + nl;
            let start_off = self.offset + from as u64;
            let next_off = self.offset + end as u64 + 1;
            if self.skipping {
                self.skipping = false;
            } else {
                line(
                    &self.buf[from..end],
                    self.pos(start_off),
                    self.pos(next_off),
                );
            }
            from = end + 1;
        }
        self.buf.drain(..from);
        self.offset += from as u64;
        if self.buf.len() > MAX_JSON_LINE {
            if !self.skipping {
                report.oversized += 1;
            }
            self.skipping = true;
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(f: &mut LogFile) -> (Vec<(String, u64, u64)>, ReadReport) {
        let mut out = Vec::new();
        let mut total = ReadReport::default();
        loop {
            let r = f
                .read_lines(|l, s, e| {
                    out.push((String::from_utf8_lossy(l).into_owned(), s.offset, e.offset))
                })
                .unwrap();
            total.oversized += r.oversized;
            if r.bytes == 0 {
                return (out, total);
            }
            total.bytes += r.bytes;
        }
    }

    #[test]
    fn lines_with_offsets_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        fs::write(&p, b"one\ntwo\nthr").unwrap();
        let mut f = LogFile::open(&p).unwrap();
        let (lines, _) = collect(&mut f);
        assert_eq!(lines, vec![("one".into(), 0, 4), ("two".into(), 4, 8)]);
        assert_eq!(f.position().offset, 8);
        assert_eq!(
            f.read_offset(),
            11,
            "the torn tail was read, not handed out"
        );
        fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"ee\n")
            .unwrap();
        let (lines, _) = collect(&mut f);
        assert_eq!(lines, vec![("three".into(), 8, 14)]);
        assert_eq!(f.line_ending_at(8).unwrap(), Some(b"two".to_vec()));
        assert_eq!(f.line_ending_at(4).unwrap(), Some(b"one".to_vec()));
        assert_eq!(
            f.line_ending_at(5).unwrap(),
            None,
            "not just past a newline"
        );
        assert_eq!(f.line_ending_at(0).unwrap(), None);
        assert_eq!(f.line_ending_at(99).unwrap(), None, "past the end");
        let long = dir.path().join("long.log");
        let mut bytes = b"first\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', CHUNK * 3));
        bytes.push(b'\n');
        fs::write(&long, &bytes).unwrap();
        let lf = LogFile::open(&long).unwrap();
        let line = lf.line_ending_at(bytes.len() as u64).unwrap().unwrap();
        assert_eq!(line.len(), CHUNK * 3, "a line longer than the first window");
        f.seek(4).unwrap();
        let (lines, _) = collect(&mut f);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1, 4);
    }

    #[test]
    fn an_oversized_line_is_skipped_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut bytes = vec![b'x'; MAX_JSON_LINE + 3 * CHUNK];
        bytes.extend_from_slice(b"\nok\n");
        fs::write(&p, &bytes).unwrap();
        let mut f = LogFile::open(&p).unwrap();
        let (lines, report) = collect(&mut f);
        assert_eq!(report.oversized, 1);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].0, "ok");
        assert_eq!(lines[0].2, bytes.len() as u64);
    }

    #[test]
    fn the_chain_is_oldest_first_and_follows_renames() {
        let dir = tempfile::tempdir().unwrap();
        let id = "c".repeat(64);
        let paths = LogPaths::new(dir.path(), &id);
        fs::create_dir_all(paths.current().parent().unwrap()).unwrap();
        fs::write(paths.current(), b"a\n").unwrap();
        let first = LogFile::open(paths.current()).unwrap();
        fs::rename(paths.current(), paths.rotated(1)).unwrap();
        fs::write(paths.current(), b"b\n").unwrap();
        let (chain, compressed) = paths.chain();
        assert!(!compressed);
        assert_eq!(chain.len(), 2);
        assert!(first.is(&chain[0]), "the renamed file is the older one");
        assert_eq!(chain[1].path, paths.current());
        fs::write(paths.rotated(3).with_extension("3.gz"), b"").unwrap();
        assert!(
            !paths.chain().1,
            ".3.gz after a gap is not part of the chain"
        );
        fs::write(
            dir.path()
                .join(format!("containers/{id}/{id}-json.log.2.gz")),
            b"",
        )
        .unwrap();
        assert!(paths.chain().1);
    }
}
