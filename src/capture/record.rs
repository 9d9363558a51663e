//! The record: one logical line, where it came from (a container or a host file, told
//! apart by [`Origin`]) and its stream position, serialised as one JSON object in the
//! field order the README's "Records" section gives.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::timestamp::Timestamp;

/// A Docker container ID (64 hex characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(Arc<str>);

impl ContainerId {
    pub fn new(id: &str) -> ContainerId {
        ContainerId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` is a full Docker container ID (64 hex digits): the only form used to
    /// build paths or accepted from the events stream.
    pub fn is_docker_id(id: &str) -> bool {
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The 12-character form the docker CLI shows.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `stdout` or `stderr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub const BOTH: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    /// 0 for stdout, 1 for stderr: the index of per-stream arrays.
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A container, as its records carry it. Replaced (not mutated) on rename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMeta {
    pub id: ContainerId,
    pub name: String,
    pub image: String,
    /// Already filtered by `containers.record_labels`.
    pub labels: BTreeMap<String, String>,
    pub host: Arc<str>,
    /// The record's JSON from `,"container_id"` to the closing brace, encoded once.
    json_tail: Box<str>,
}

impl ContainerMeta {
    pub fn new(
        id: ContainerId,
        name: String,
        image: String,
        labels: BTreeMap<String, String>,
        host: Arc<str>,
    ) -> ContainerMeta {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b",\"container_id\":");
        write_str(&mut out, id.as_str());
        out.extend_from_slice(b",\"container_name\":");
        write_str(&mut out, &name);
        out.extend_from_slice(b",\"image\":");
        write_str(&mut out, &image);
        out.extend_from_slice(b",\"labels\":{");
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, k);
            out.push(b':');
            write_str(&mut out, v);
        }
        out.extend_from_slice(b"},\"host\":");
        write_str(&mut out, &host);
        out.extend_from_slice(b"}\n");
        ContainerMeta {
            id,
            name,
            image,
            labels,
            host,
            json_tail: String::from_utf8_lossy(&out).into(),
        }
    }

    /// The same container under a new name.
    pub fn renamed(&self, name: String) -> ContainerMeta {
        ContainerMeta::new(
            self.id.clone(),
            name,
            self.image.clone(),
            self.labels.clone(),
            self.host.clone(),
        )
    }
}

/// A host file of `files.paths`: its records carry `path` and `host`, and no stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFileMeta {
    /// The path as the glob expansion found it (the key of its position).
    pub path: Arc<str>,
    pub host: Arc<str>,
    /// The record's JSON from `,"path"` to the closing brace, encoded once.
    json_tail: Box<str>,
}

impl HostFileMeta {
    pub fn new(path: &str, host: Arc<str>) -> HostFileMeta {
        let mut out = Vec::with_capacity(64 + path.len());
        out.extend_from_slice(b",\"path\":");
        write_str(&mut out, path);
        out.extend_from_slice(b",\"host\":");
        write_str(&mut out, &host);
        out.extend_from_slice(b"}\n");
        HostFileMeta {
            path: Arc::from(path),
            host,
            json_tail: String::from_utf8_lossy(&out).into(),
        }
    }
}

/// Where a record comes from. Positions are kept per origin: a container's by its ID, a
/// host file's by its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Container(Arc<ContainerMeta>),
    HostFile(Arc<HostFileMeta>),
}

impl Origin {
    pub fn host(&self) -> &str {
        match self {
            Origin::Container(c) => &c.host,
            Origin::HostFile(f) => &f.host,
        }
    }

    fn json_tail(&self) -> &str {
        match self {
            Origin::Container(c) => &c.json_tail,
            Origin::HostFile(f) => &f.json_tail,
        }
    }
}

/// Where a record sits in its container's log: the Docker time of its last frame and how
/// many frames with exactly that time had been read up to and including it. Resuming
/// with `since=time` (inclusive) skips `frames_at_time` frames. When read from a file
/// (json-file logs, host files), also the file and the byte offset just past it.
///
/// `marks`: while a multiline record is still open on one stream, a record of the other
/// stream can be complete and delivered. The position then stays before the open record
/// (so it is read again, whole, after a restart), and `marks` say, per stream (stdout,
/// stderr), up to which frame that stream was delivered already: a resume skips a
/// stream's frames up to its mark. Both `None` in every other case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub time: Timestamp,
    pub frames_at_time: u32,
    pub file: Option<FilePos>,
    pub marks: [Option<Mark>; 2],
}

/// A frame's place: in the counting of [`Position`], and, read from a file, the byte
/// offset just past it. For marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub time: Timestamp,
    pub frames_at_time: u32,
    pub file: Option<FilePos>,
}

impl Mark {
    /// Which place comes first. Two places in the same file compare by offset (exact:
    /// lines stamped out of order across the streams count at the same place, but never
    /// end at the same offset); others by the counting.
    pub fn place_cmp(&self, other: &Mark) -> std::cmp::Ordering {
        match (self.file, other.file) {
            (Some(a), Some(b)) if a.same_file(&b) => a.offset.cmp(&b.offset),
            _ => (self.time, self.frames_at_time).cmp(&(other.time, other.frames_at_time)),
        }
    }

    /// At or before `other`.
    pub fn not_after(&self, other: &Mark) -> bool {
        self.place_cmp(other).is_le()
    }
}

impl Position {
    /// The frame this position stands at, as a mark.
    pub fn mark(&self) -> Mark {
        Mark {
            time: self.time,
            frames_at_time: self.frames_at_time,
            file: self.file,
        }
    }

    /// Whether a frame counted at `at` of `stream` was delivered by this position: at or
    /// before it, or at or before the stream's mark.
    #[cfg(test)]
    pub fn covers(&self, stream: Stream, at: Mark) -> bool {
        at.not_after(&self.mark()) || self.marks[stream.index()].is_some_and(|m| at.not_after(&m))
    }

    /// Whether any mark is at or past the position itself (one at the same place still
    /// says which of two frames counted there was delivered).
    pub fn has_marks(&self) -> bool {
        self.marks
            .iter()
            .flatten()
            .any(|m| self.mark().not_after(m))
    }
}

/// A byte offset in one file, identified by device and inode (names change on rotation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FilePos {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

impl FilePos {
    /// Whether `self` is in the same file as `other`.
    pub fn same_file(&self, other: &FilePos) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// One line on its way to the sinks.
#[derive(Clone, Debug)]
pub struct Record {
    pub time: Timestamp,
    /// `None` for host files.
    pub stream: Option<Stream>,
    pub message: String,
    pub truncated: bool,
    pub origin: Origin,
    pub position: Position,
    /// The next record of this container belongs to the same group (lines held while a
    /// long line was pending); a batch is not cut between them, so an acknowledged
    /// position never covers a line not yet delivered.
    pub continues: bool,
    /// What a rule's `parse` made of the message (written as `"fields"`, after `host`).
    pub fields: Fields,
    /// Dropped by a rule: no sink gets it, but its position is acknowledged with the
    /// batch (a dropped line is not read again after a restart).
    pub dropped: bool,
}

/// What a record costs besides its message and fields, for the byte bounds: the record
/// itself (176 bytes) and its allocations' headers.
pub const RECORD_OVERHEAD: usize = 200;

/// Parsed fields of a message, kept as the text of one JSON object on one line: made once
/// on the follower's thread, written as they are by the sinks. (A map per record, made on
/// one thread and freed on another, costs more in allocator locks than the parsing.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fields {
    #[default]
    None,
    /// The message itself, trimmed, is the object (`parse = "json"` of a one-line message).
    Message,
    /// A JSON object's text, compact.
    Json(Box<str>),
}

impl Fields {
    /// The compact text of `map`.
    pub fn of_map(map: &serde_json::Map<String, serde_json::Value>) -> Fields {
        match serde_json::to_string(map) {
            Ok(text) => Fields::Json(text.into_boxed_str()),
            Err(_) => Fields::None,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Fields::None)
    }
}

impl Record {
    /// Appends the record as one JSON line (with the trailing `\n`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        out.extend_from_slice(&self.time.rfc3339_bytes());
        if let Some(stream) = self.stream {
            out.extend_from_slice(b"\",\"stream\":\"");
            out.extend_from_slice(stream.as_str().as_bytes());
        }
        out.extend_from_slice(b"\",\"message\":");
        write_str(out, &self.message);
        if self.truncated {
            out.extend_from_slice(b",\"truncated\":true");
        }
        let tail = self.origin.json_tail().as_bytes();
        let Some(fields) = self.fields_text() else {
            out.extend_from_slice(tail);
            return;
        };
        // The tail ends with "}\n": the fields go in before it.
        out.extend_from_slice(&tail[..tail.len().saturating_sub(2)]);
        out.extend_from_slice(b",\"fields\":");
        out.extend_from_slice(fields.as_bytes());
        out.extend_from_slice(b"}\n");
    }

    /// The JSON text of the fields, if any.
    pub fn fields_text(&self) -> Option<&str> {
        match &self.fields {
            Fields::None => None,
            Fields::Message => Some(self.message.trim_ascii()),
            Fields::Json(text) => Some(text),
        }
    }

    /// Rough in-memory size, for batch and queue byte limits.
    pub fn approx_bytes(&self) -> usize {
        let fields = match &self.fields {
            Fields::Json(text) => text.len(),
            Fields::None | Fields::Message => 0,
        };
        self.message.len() + RECORD_OVERHEAD + fields
    }

    /// A field's value as text, for templates: strings as they are, other values as JSON.
    /// Reads the fields' text (a sink that names fields in templates pays for it).
    pub fn field_text(&self, key: &str) -> Option<String> {
        // Keys as owned strings: a key with an escape cannot be borrowed from the text.
        let map: std::collections::HashMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(self.fields_text()?).ok()?;
        let raw = map.get(key)?.get();
        match serde_json::from_str::<serde_json::Value>(raw).ok()? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => None,
            _ => Some(raw.to_owned()),
        }
    }
}

/// A line's bytes as a record's message: valid UTF-8 as it is (no copy), invalid bytes
/// replaced by U+FFFD.
pub fn message_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Bytes that need escaping in a JSON string.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static NEEDS_ESCAPE: [bool; 256] = escape_table();

/// Writes a JSON string literal, escaping per RFC 8259.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| NEEDS_ESCAPE[b as usize]) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// `n` records of one container, messages "`tag` i" (test fixtures).
#[cfg(test)]
pub(crate) fn sample_records(n: usize, tag: &str) -> Vec<Record> {
    let meta = Arc::new(ContainerMeta::new(
        ContainerId::new("c"),
        "n".into(),
        "i".into(),
        BTreeMap::new(),
        Arc::from("h"),
    ));
    (0..n)
        .map(|i| Record {
            time: Timestamp::from_nanos(i as i64),
            stream: Some(Stream::Stdout),
            message: format!("{tag} {i}"),
            truncated: false,
            origin: Origin::Container(meta.clone()),
            position: Position::default(),
            continues: false,
            fields: Fields::None,
            dropped: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str, truncated: bool) -> Record {
        let mut labels = BTreeMap::new();
        labels.insert("com.docker.compose.service".to_string(), "web".to_string());
        Record {
            time: Timestamp::parse(b"2026-11-26T17:55:29.376306023Z").unwrap(),
            stream: Some(Stream::Stdout),
            message: message.to_string(),
            truncated,
            origin: Origin::Container(Arc::new(ContainerMeta::new(
                ContainerId::new("3d45"),
                "web-1".into(),
                "nginx:1.27".into(),
                labels,
                Arc::from("node-7"),
            ))),
            position: Position::default(),
            continues: false,
            fields: Fields::None,
            dropped: false,
        }
    }

    #[test]
    fn field_order_matches_spec() {
        let mut out = Vec::new();
        record("GET / 200", false).write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2026-11-26T17:55:29.376306023Z\",\"stream\":\"stdout\",\"message\":\"GET / 200\",\
             \"container_id\":\"3d45\",\"container_name\":\"web-1\",\"image\":\"nginx:1.27\",\
             \"labels\":{\"com.docker.compose.service\":\"web\"},\"host\":\"node-7\"}\n"
        );
    }

    #[test]
    fn host_file_records_carry_the_path_and_no_stream() {
        let mut r = record("boot ok", false);
        r.stream = None;
        r.origin = Origin::HostFile(Arc::new(HostFileMeta::new(
            "/var/log/a \"b\".log",
            Arc::from("node-7"),
        )));
        let mut out = Vec::new();
        r.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2026-11-26T17:55:29.376306023Z\",\"message\":\"boot ok\",\
             \"path\":\"/var/log/a \\\"b\\\".log\",\"host\":\"node-7\"}\n"
        );
    }

    #[test]
    fn fields_come_last_after_host_and_truncated() {
        let mut r = record("level=warn msg=\"x\"", true);
        let mut fields = serde_json::Map::new();
        fields.insert("level".into(), "warn".into());
        fields.insert("n".into(), serde_json::json!(3));
        r.fields = Fields::of_map(&fields);
        let mut out = Vec::new();
        r.write_json(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(
                r#""host":"node-7","fields":{"level":"warn","n":3}}
"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""truncated":true,"container_id""#),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["fields"]["level"], "warn");
        assert_eq!(r.field_text("n").as_deref(), Some("3"));
        assert_eq!(r.field_text("level").as_deref(), Some("warn"));
        assert_eq!(r.field_text("missing"), None);
        r.message = r#"{"level":"warn","a\"b":1}"#.into();
        r.fields = Fields::Message;
        assert_eq!(
            r.field_text("level").as_deref(),
            Some("warn"),
            "an escaped key elsewhere"
        );
        assert_eq!(r.field_text("a\"b").as_deref(), Some("1"));
    }

    #[test]
    fn escaping_and_truncated_flag() {
        let mut out = Vec::new();
        record("a\"b\\c\td\u{1}é\u{fffd}", true).write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "a\"b\\c\td\u{1}é\u{fffd}");
        assert_eq!(v["truncated"], true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.find("\"truncated\"").unwrap() < text.find("\"container_id\"").unwrap());
    }
}
