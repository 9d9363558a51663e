//! The seam between a follower and its source. A source (the API logs stream in
//! `api.rs`, the json-file log on disk in `file.rs`) gets a [`Context`]: where to start,
//! which streams, the stop flags, and the way out — decoder outputs become records here
//! and go to the bounded queue. Neither source knows the other; both end with an
//! [`EndReason`] and the last position they consumed.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::capture::decode::{LogDecoder, Notice, Output};
use crate::capture::record::{ContainerMeta, Origin, Position, Record, Stream};
use crate::capture::streams::StreamStats;
use crate::capture::timestamp::Timestamp;
use crate::capture::watch::Wake;
use crate::metrics::Metrics;
use crate::process::joiner::{JoinLine, Joined};
use crate::process::rules::Shaping;
use crate::process::stage::Stage;
use crate::shutdown::Shutdown;
use crate::sink::queue::Producer;

/// Where a follower starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    Beginning,
    /// Resume after an acknowledged or produced position.
    After(Position),
    /// Only lines stamped at or after this time.
    Since(Timestamp),
    /// The last N lines, then follow.
    Tail(u64),
}

impl StartFrom {
    /// The position a decoder resumes after, if any.
    pub fn resume(self) -> Option<Position> {
        match self {
            StartFrom::After(p) => Some(p),
            _ => None,
        }
    }
}

/// Why a follower ended (the `reason` label of `stream_ends_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The stream ended cleanly: the container stopped.
    Eof,
    /// The container is gone (404) or being removed (409).
    Gone,
    /// Capturer shutdown or the supervisor stopped it.
    Stopped,
    /// The queue's consumer is gone.
    QueueClosed,
    /// The daemon cannot serve this container's logs (e.g. log driver `none`).
    Unsupported,
}

impl EndReason {
    pub const ALL: [EndReason; 5] = [
        EndReason::Eof,
        EndReason::Gone,
        EndReason::Stopped,
        EndReason::QueueClosed,
        EndReason::Unsupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Eof => "eof",
            EndReason::Gone => "gone",
            EndReason::Stopped => "stopped",
            EndReason::QueueClosed => "queue_closed",
            EndReason::Unsupported => "unsupported",
        }
    }
}

/// What `join()` returns.
#[derive(Debug)]
pub struct FollowerOutcome {
    pub reason: EndReason,
    /// Last frame consumed (records up to it are in the queue).
    pub position: Option<Position>,
}

/// The queue's consumer is gone: nothing more can be delivered.
#[derive(Debug)]
pub struct QueueClosed;

/// Which of the container's streams are captured (`containers.stdout`, `.stderr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streams {
    pub stdout: bool,
    pub stderr: bool,
}

impl Streams {
    pub fn wants(self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// Metric handles resolved once per follower, not once per line.
struct Counters {
    /// `records_total{stream="stdout"}`, `{stream="stderr"}`.
    records: [prometheus::IntCounter; 2],
    /// `records_dropped_total{reason="rule"}`.
    dropped: prometheus::IntCounter,
}

/// One container's follower as its source sees it.
pub struct Context {
    /// Replaced by the supervisor on rename.
    pub meta: Arc<RwLock<Arc<ContainerMeta>>>,
    pub start: StartFrom,
    pub streams: Streams,
    pub max_line_bytes: usize,
    pub stats: Arc<StreamStats>,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    /// Set by the supervisor to stop this follower alone.
    stop: Arc<AtomicBool>,
    /// Set by the supervisor when the container exited (a file source ends at the log's
    /// end then; an API stream ends by itself).
    exited: Arc<AtomicBool>,
    /// Where a file source sleeps between reads; raised by its directory's inotify
    /// events and by the supervisor when it sets `stop` or `exited`.
    pub wake: Arc<Wake>,
    tx: Producer,
    counters: Counters,
    /// The container's rule stage; `None` when no rule shapes it (no cost per line).
    stage: RefCell<Option<Stage>>,
    shaping: Option<Arc<Shaping>>,
}

/// The per-container parts of a [`Context`]; the rest is shared by every follower.
pub struct Container {
    pub meta: Arc<RwLock<Arc<ContainerMeta>>>,
    pub start: StartFrom,
    pub stats: Arc<StreamStats>,
    pub stop: Arc<AtomicBool>,
    pub exited: Arc<AtomicBool>,
    /// Raised with `stop` and `exited` (see [`Context::wake`]).
    pub wake: Arc<Wake>,
    /// What its rule (and labels) do to its lines; `None`: nothing.
    pub shaping: Option<Arc<Shaping>>,
}

impl Context {
    pub fn new(
        container: Container,
        streams: Streams,
        max_line_bytes: usize,
        tx: Producer,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Context {
        let counters = Counters {
            records: [
                metrics.records.with_label_values(&["stdout"]),
                metrics.records.with_label_values(&["stderr"]),
            ],
            dropped: metrics.records_dropped.with_label_values(&["rule"]),
        };
        let stage = container
            .shaping
            .clone()
            .map(|s| Stage::new(s, max_line_bytes, container.start.resume()));
        Context {
            meta: container.meta,
            start: container.start,
            streams,
            max_line_bytes,
            stats: container.stats,
            metrics,
            shutdown,
            stop: container.stop,
            exited: container.exited,
            wake: container.wake,
            tx,
            counters,
            stage: RefCell::new(stage),
            shaping: container.shaping,
        }
    }

    /// Shutdown, or the supervisor stopped this follower.
    pub fn stopping(&self) -> bool {
        self.shutdown.is_triggered() || self.stop.load(Ordering::Relaxed)
    }

    /// Whether the supervisor saw the container exit.
    pub fn exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// The container's metadata as of now (a rename replaces it).
    pub fn meta(&self) -> Arc<ContainerMeta> {
        self.meta.read().clone()
    }

    /// The 12-character ID, for log lines.
    pub fn short(&self) -> String {
        self.meta.read().id.short().to_owned()
    }

    /// Queues every record of `batch` (blocking while the queue is full).
    pub fn send(&self, batch: &mut Vec<Record>) -> Result<(), QueueClosed> {
        self.tx.send_all(batch).map_err(|_| QueueClosed)
    }

    /// The log ended: hands out what the decoder still holds (text without a final
    /// newline) and every multiline record still open, and queues them.
    pub fn flush(&self, dec: &mut LogDecoder) -> Result<(), QueueClosed> {
        let meta = self.meta();
        let mut batch = Vec::new();
        dec.flush(&mut |o| self.output(&meta, o, &mut batch));
        if let Some(stage) = self.stage.borrow_mut().as_mut() {
            stage.finish(&mut |r, c| self.record(&meta, r, c, &mut batch));
        }
        self.send(&mut batch)
    }

    /// Whether a multiline rule joins this container's lines: then `tick` must run while
    /// the stream is quiet.
    pub fn joins_lines(&self) -> bool {
        self.stage.borrow().as_ref().is_some_and(Stage::joins)
    }

    /// Queues the multiline records whose stream has been quiet for the timeout. Called
    /// by the sources between reads (at least every `docker.read_timeout`).
    pub fn tick(&self) -> Result<(), QueueClosed> {
        let mut batch = Vec::new();
        if let Some(stage) = self.stage.borrow_mut().as_mut() {
            let meta = self.meta();
            stage.tick(Instant::now(), &mut |r, c| {
                self.record(&meta, r, c, &mut batch)
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.send(&mut batch)
    }

    /// Whether a multiline record is open, so `tick` must come within its timeout.
    pub fn has_open_records(&self) -> bool {
        self.stage.borrow().as_ref().is_some_and(Stage::has_open)
    }

    /// The position a new follower of this container resumes from: before the multiline
    /// records still open (they were not handed out), else the decoder's last frame.
    pub fn resume_position(&self, decoded: Option<Position>) -> Option<Position> {
        self.stage
            .borrow()
            .as_ref()
            .and_then(Stage::open_position)
            .or(decoded)
    }

    /// [`Context::flush`] as the follower's last act: `Eof`, or `QueueClosed`.
    pub fn finish(&self, dec: &mut LogDecoder) -> EndReason {
        match self.flush(dec) {
            Ok(()) => EndReason::Eof,
            Err(QueueClosed) => EndReason::QueueClosed,
        }
    }

    /// Handles one decoder output: a line becomes a record in `batch` (through the rule
    /// stage, when a rule shapes this container).
    pub fn output(&self, meta: &Arc<ContainerMeta>, o: Output, batch: &mut Vec<Record>) {
        match o {
            Output::Line { continues, .. } => {
                let Some(line) = JoinLine::from_output(o) else {
                    return;
                };
                if line.truncated {
                    self.metrics.lines_truncated.inc();
                }
                match self.stage.borrow_mut().as_mut() {
                    None => self.record(meta, Joined::from(line), continues, batch),
                    Some(stage) => stage.push(line, continues, Instant::now(), &mut |r, c| {
                        self.record(meta, r, c, batch)
                    }),
                }
            }
            Output::Notice(Notice::DaemonError(text)) => {
                self.metrics.daemon_error_frames.inc();
                log::warn!("follower {}: daemon reports: {text}", meta.id.short());
            }
            Output::Notice(Notice::BadTimestamp) => {
                log::warn!(
                    "follower {}: frame without timestamp skipped",
                    meta.id.short()
                );
            }
            Output::Notice(Notice::DuplicateSkipped) => {
                self.metrics.duplicates_skipped.inc();
            }
            Output::Notice(Notice::Merged) => {
                self.metrics.partial_lines_merged.inc();
            }
        }
    }

    /// A record made: counted, shaped by the rule (fields, or dropped) and put in `batch`.
    /// A dropped record stays in the batch only to carry its position, and only until the
    /// next record, whose position covers it.
    fn record(
        &self,
        meta: &Arc<ContainerMeta>,
        r: Joined,
        continues: bool,
        batch: &mut Vec<Record>,
    ) {
        let (fields, dropped) = match &self.shaping {
            Some(s) => s.shape(&r.text, &self.metrics.parse_errors),
            None => (crate::capture::record::Fields::None, false),
        };
        if dropped {
            self.counters.dropped.inc();
        } else {
            self.counters.records[r.stream.index()].inc();
            self.metrics.bytes.inc_by(r.text.len() as u64);
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes
                .fetch_add(r.text.len() as u64, Ordering::Relaxed);
            self.stats
                .last_time
                .store(r.time.as_nanos(), Ordering::Relaxed);
        }
        if batch
            .last()
            .is_some_and(|last| last.dropped && !last.continues)
        {
            batch.pop();
        }
        batch.push(Record {
            time: r.time,
            stream: Some(r.stream),
            message: if dropped { String::new() } else { r.text },
            truncated: r.truncated,
            origin: Origin::Container(meta.clone()),
            position: r.position,
            continues,
            fields,
            dropped,
        });
    }
}
