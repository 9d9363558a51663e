//! One follower thread per container: it owns its logs stream (dropped = closed), decodes
//! it into records, and pushes them into the bounded queue (blocking when full). A
//! transport error reconnects with backoff from the last consumed frame; a clean end of
//! stream means the container stopped, and is followed by one non-follow re-read because
//! the daemon can drop the final chunk from a follow stream. The follower's final state
//! comes back through `join()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::decode::{LogDecoder, Notice, Output};
use super::record::{ContainerMeta, Position, Record, Stream};
use super::streams::StreamStats;
use super::timestamp::Timestamp;
use crate::backoff::Backoff;
use crate::docker::client::{BodyStream, DockerClient, LogsQuery, ReadOutcome};
use crate::docker::error::DockerError;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sink::queue::Producer;

/// A read smaller than this, soon after the previous one, means a busy stream read too
/// eagerly.
const COALESCE_BELOW: usize = 8 * 1024;
const BUSY_GAP: Duration = Duration::from_millis(1);
const COALESCE_PAUSE: Duration = Duration::from_micros(500);
/// A body that lasted this long resets the reconnect backoff.
const STABLE_STREAM: Duration = Duration::from_secs(10);

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

/// Everything a follower needs.
pub struct Follower {
    pub client: Arc<DockerClient>,
    pub meta: Arc<RwLock<Arc<ContainerMeta>>>,
    /// `None`: decided from the first byte of the body.
    pub tty: Option<bool>,
    pub start: StartFrom,
    pub stdout: bool,
    pub stderr: bool,
    pub max_line_bytes: usize,
    pub tx: Producer,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<StreamStats>,
    pub shutdown: Shutdown,
    pub stop: Arc<AtomicBool>,
    pub counters: Counters,
    pub gate: Arc<super::gate::Gate>,
    /// `read_from = "files" | "auto"`: read the json-file log from disk when there is one.
    pub files: Option<FilesMode>,
    /// Set by the supervisor when the container exited (files mode ends at the log's end
    /// then; an API stream ends by itself).
    pub exited: Arc<AtomicBool>,
}

/// Reading json-file logs from disk.
#[derive(Clone, Debug)]
pub struct FilesMode {
    /// `containers.docker_root`.
    pub root: Arc<std::path::Path>,
    /// `read_from = "files"`: falling back to the API is worth a warning.
    pub required: bool,
}

/// Metric handles resolved once per follower, not once per line.
pub struct Counters {
    /// `records_total{stream="stdout"}`, `{stream="stderr"}`.
    pub records: [prometheus::IntCounter; 2],
}

impl Counters {
    pub fn new(metrics: &Metrics) -> Counters {
        Counters {
            records: [
                metrics.records.with_label_values(&["stdout"]),
                metrics.records.with_label_values(&["stderr"]),
            ],
        }
    }
}

/// How one request's body ended.
enum BodyEnd {
    Eof,
    Error(DockerError),
    Stopped,
    QueueClosed,
}

impl Follower {
    pub(super) fn stopping(&self) -> bool {
        self.shutdown.is_triggered() || self.stop.load(Ordering::Relaxed)
    }

    pub fn run(self) -> FollowerOutcome {
        if let Some(files) = &self.files {
            let id = self.meta.read().id.clone();
            match super::filefollow::open_log(&files.root, id.as_str()) {
                Ok(log) => return self.run_files(log),
                Err(e) if files.required => log::warn!(
                    "follower {}: no json-file log to read ({e}); following it through the API",
                    id.short()
                ),
                Err(e) => log::debug!("follower {}: through the API ({e})", id.short()),
            }
        }
        let resume = match self.start {
            StartFrom::After(p) => Some(p),
            _ => None,
        };
        let mut dec = LogDecoder::new(self.tty, self.max_line_bytes, resume);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut first = true;
        let reason = loop {
            if self.stopping() {
                break EndReason::Stopped;
            }
            let query = self.query(&dec, first, true);
            let Some(permit) = self.gate.acquire(&self.shutdown) else {
                break EndReason::Stopped;
            };
            let opened = self.client.logs(self.meta.read().id.as_str(), &query);
            drop(permit);
            let body_started = Instant::now();
            let end = match opened {
                Ok(body) => {
                    first = false;
                    self.stats.set_state("following");
                    self.pump(body, &mut dec)
                }
                Err(e) => BodyEnd::Error(e),
            };
            // Only a stream that stayed up a while earns a quick reconnect; one that breaks
            // at once (corrupt body, reset) keeps backing off instead of looping.
            if body_started.elapsed() >= STABLE_STREAM {
                backoff.reset();
            }
            match end {
                BodyEnd::Eof => break self.finish(&mut dec),
                BodyEnd::Stopped => break EndReason::Stopped,
                BodyEnd::QueueClosed => break EndReason::QueueClosed,
                BodyEnd::Error(e) if e.is_not_found() || e.is_conflict() => {
                    // Deliver what was read; the container is gone.
                    let _ = self.emit_flush(&mut dec);
                    break EndReason::Gone;
                }
                BodyEnd::Error(e) if e.is_not_implemented() => {
                    log::warn!(
                        "not following {}: {e} (label it log-capturer.exclude=true to skip it)",
                        self.meta.read().name
                    );
                    break EndReason::Unsupported;
                }
                BodyEnd::Error(_) if self.stopping() => break EndReason::Stopped,
                BodyEnd::Error(e) => {
                    let delay = backoff.next_delay();
                    log::warn!(
                        "follower {}: {e}; reconnecting in {delay:?}",
                        self.meta.read().id.short()
                    );
                    self.stats.set_state("reconnecting");
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    dec.restart();
                    if self.shutdown.wait_timeout(delay) {
                        break EndReason::Stopped;
                    }
                }
            }
        };
        self.stats.set_state(reason.as_str());
        FollowerOutcome {
            reason,
            position: dec.position(),
        }
    }

    /// After a clean EOF: re-read once without follow from the last consumed frame, then
    /// hand out text left without a newline.
    fn finish(&self, dec: &mut LogDecoder) -> EndReason {
        dec.restart();
        let query = self.query(dec, false, false);
        match self.client.logs(self.meta.read().id.as_str(), &query) {
            Ok(body) => match self.pump(body, dec) {
                BodyEnd::QueueClosed => return EndReason::QueueClosed,
                BodyEnd::Error(e) => log::debug!("follower: final re-read: {e}"),
                BodyEnd::Eof | BodyEnd::Stopped => {}
            },
            Err(e) => log::debug!("follower: final re-read: {e}"),
        }
        match self.emit_flush(dec) {
            Ok(()) => EndReason::Eof,
            Err(()) => EndReason::QueueClosed,
        }
    }

    fn query(&self, dec: &LogDecoder, first: bool, follow: bool) -> LogsQuery {
        let mut q = LogsQuery {
            follow,
            stdout: self.stdout,
            stderr: self.stderr,
            since: None,
            tail: None,
        };
        match (dec.position(), first, self.start) {
            (Some(p), _, _) => q.since = Some(p.time.to_since_param()),
            (None, true, StartFrom::Since(t)) => q.since = Some(t.to_since_param()),
            (None, true, StartFrom::Tail(n)) => q.tail = Some(n.to_string()),
            _ => {}
        }
        q
    }

    /// Reads one body to its end (or error, or stop).
    fn pump(&self, mut body: BodyStream, dec: &mut LogDecoder) -> BodyEnd {
        let mut last_data = Instant::now();
        loop {
            let outcome = body.read(dec.buffer().spare());
            match outcome {
                Ok(ReadOutcome::Data(n)) => {
                    dec.buffer().filled(n);
                    // dockerd flushes every message: under load, reading each as it comes
                    // costs a wake-up per line. A short pause lets the socket fill instead;
                    // an idle stream (reads further apart) is never delayed.
                    let now = Instant::now();
                    if n < COALESCE_BELOW && now.duration_since(last_data) < BUSY_GAP {
                        std::thread::sleep(COALESCE_PAUSE);
                    }
                    last_data = now;
                    if let Err(e) = self.drain(dec, false) {
                        return e;
                    }
                }
                Ok(ReadOutcome::TimedOut) => {
                    if self.stopping() {
                        return BodyEnd::Stopped;
                    }
                }
                Ok(ReadOutcome::Eof) => {
                    if let Err(e) = self.drain(dec, true) {
                        return e;
                    }
                    let torn = dec.torn_bytes();
                    if torn > 0 {
                        // The daemon ended the body inside a frame: count it and read again
                        // from the last whole frame.
                        self.metrics.request_error(crate::metrics::Endpoint::Logs);
                        return BodyEnd::Error(DockerError::Protocol {
                            endpoint: crate::metrics::Endpoint::Logs,
                            message: format!("body ended inside a frame ({torn} bytes left)"),
                        });
                    }
                    return BodyEnd::Eof;
                }
                Err(e) => return BodyEnd::Error(e),
            }
        }
    }

    fn drain(&self, dec: &mut LogDecoder, at_eof: bool) -> Result<(), BodyEnd> {
        let meta = self.meta.read().clone();
        let mut batch = Vec::new();
        let result = dec.drain(at_eof, &mut |o| self.output(&meta, o, &mut batch));
        // Whatever was decoded goes to the queue, even when the body then turned out corrupt.
        if self.tx.send_all(&mut batch).is_err() {
            return Err(BodyEnd::QueueClosed);
        }
        result.map_err(|e| {
            self.metrics.request_error(crate::metrics::Endpoint::Logs);
            log::warn!("follower {}: {e}", meta.id.short());
            BodyEnd::Error(DockerError::Protocol {
                endpoint: crate::metrics::Endpoint::Logs,
                message: format!("corrupt logs stream: {e}"),
            })
        })
    }

    pub(super) fn emit_flush(&self, dec: &mut LogDecoder) -> Result<(), ()> {
        let meta = self.meta.read().clone();
        let mut batch = Vec::new();
        dec.flush(&mut |o| self.output(&meta, o, &mut batch));
        self.tx.send_all(&mut batch).map_err(|_| ())
    }

    /// Handles one decoder output: a line becomes a record in `batch`.
    pub(super) fn output(&self, meta: &Arc<ContainerMeta>, o: Output, batch: &mut Vec<Record>) {
        match o {
            Output::Line {
                stream,
                line,
                position,
                continues,
            } => {
                if line.truncated {
                    self.metrics.lines_truncated.inc();
                }
                let message = match String::from_utf8(line.text) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                self.counters.records[usize::from(stream == Stream::Stderr)].inc();
                self.metrics.bytes.inc_by(message.len() as u64);
                self.stats.records.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(message.len() as u64, Ordering::Relaxed);
                self.stats
                    .last_time
                    .store(line.time.as_nanos(), Ordering::Relaxed);
                let record = Record {
                    time: line.time,
                    stream: Some(stream),
                    message,
                    truncated: line.truncated,
                    meta: meta.clone(),
                    position,
                    continues,
                };
                batch.push(record);
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
}
