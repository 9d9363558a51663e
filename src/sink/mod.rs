//! Sinks: where records go. A sink takes a whole batch and either acknowledges it (the
//! records are handed to the destination) or fails with a classified error: transient
//! (retry the batch later), partial (retry only these records), rejected (retrying
//! would not help: count, log, drop), or partly rejected (the destination kept the rest
//! and said how many it refused). The dispatcher owns the retry loop.
//!
//! # Layout
//! - `queue`: the bounded record queue between the producers (followers, the files
//!   thread) and the dispatcher; producers block when it is full.
//! - `dispatcher`: cuts batches, hands each to every sink in turn, retries with backoff,
//!   acknowledges positions once every sink took a batch.
//! - The sinks: `file` (rotating JSON lines), `stdout`, `loki`, `elasticsearch`,
//!   `syslog`; `http` is what the HTTP sinks share (client, auth, gzip, the
//!   classification of answers); `ndjson` is the generic HTTP sink (`type = "http"`),
//!   records as NDJSON or a JSON array; `template` renders label-like templates over a
//!   record.

pub mod dispatcher;
pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod loki;
pub mod ndjson;
pub mod queue;
pub mod stdout;
pub mod syslog;
mod template;

#[cfg(test)]
mod deep_tests;

use std::cell::OnceCell;
use std::fmt;
use std::time::{Duration, Instant};

use crate::capture::record::Record;
use crate::config::SinkConfig;
use crate::metrics::Metrics;

/// A batch of records, in queue order. Its JSON-lines encoding is made once, on first
/// use, and shared by the sinks that write that format.
pub struct Batch {
    pub records: Vec<Record>,
    json_lines: OnceCell<Vec<u8>>,
}

impl Batch {
    pub fn new(records: Vec<Record>) -> Batch {
        Batch {
            records,
            json_lines: OnceCell::new(),
        }
    }

    /// One JSON object per record, each ending in `\n` (README, Records).
    pub fn json_lines(&self) -> &[u8] {
        self.json_lines.get_or_init(|| {
            let mut out =
                Vec::with_capacity(self.records.iter().map(|r| r.approx_bytes() + 64).sum());
            for r in &self.records {
                r.write_json(&mut out);
            }
            out
        })
    }

    /// The records at `indices` (a sink's partial failure), as a new batch.
    pub fn subset(&self, indices: &[usize]) -> Batch {
        Batch::new(
            indices
                .iter()
                .filter_map(|&i| self.records.get(i).cloned())
                .collect(),
        )
    }
}

/// A sink failure.
#[derive(Debug)]
pub enum SinkError {
    /// Worth retrying the whole batch (connection refused, timeout, 429, 5xx, disk full).
    Transient {
        message: String,
        /// The server's Retry-After, a floor for the next delay (up to the backoff's cap).
        retry_after: Option<Duration>,
    },
    /// Some records were taken; these (indices into the batch) failed transiently, and
    /// `rejected` others were refused for good (counted, never sent again).
    Partial {
        retry: Vec<usize>,
        rejected: usize,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The destination refused the batch; retrying would not help.
    Rejected(String),
    /// The destination kept the batch but for `rejected` records, which retrying would
    /// not help (Loki's 400 stores the acceptable entries of a push). Sending the batch
    /// again would repeat the records it kept.
    PartlyRejected { rejected: usize, message: String },
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> SinkError {
        SinkError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            SinkError::Rejected(_) | SinkError::PartlyRejected { .. }
        )
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Transient { message, .. } => write!(f, "{message}"),
            SinkError::Partial { retry, message, .. } => {
                write!(f, "{} records to retry: {message}", retry.len())
            }
            SinkError::Rejected(m) => write!(f, "rejected: {m}"),
            SinkError::PartlyRejected { rejected, message } => {
                write!(f, "{rejected} records rejected: {message}")
            }
        }
    }
}

impl std::error::Error for SinkError {}

/// A destination for batches.
pub trait Sink: Send {
    /// Short fixed name, used as the `sink` metric label (e.g. `file-0`).
    fn name(&self) -> &str;
    /// Hands the batch to the destination. `deadline`, during a shutdown, bounds how long
    /// the attempt may block.
    fn write_batch(&mut self, batch: &Batch, deadline: Option<Instant>) -> Result<(), SinkError>;
    /// Whether `/health` reports this sink's failure at once rather than after 60 s: a
    /// local sink (the file sink) fails for local reasons (a full disk, a read-only
    /// filesystem) that no wait cures, unlike a network blip.
    fn degrades_at_once(&self) -> bool {
        false
    }
    /// Something that aborts a write blocked in another thread (a hung HTTP request), for
    /// when the shutdown budget is spent. `None` for sinks that never block for long.
    fn interrupter(&self) -> Option<Interrupter> {
        None
    }
}

/// A sink's per-request `timeout`, shortened to what is left before `deadline` (a
/// shutdown's drain budget), never below 10 ms.
pub fn timeout_until(timeout: Duration, deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => timeout
            .min(d.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(10)),
        None => timeout,
    }
}

/// Aborts blocked writes of one sink; called once, at the end of the shutdown budget.
pub type Interrupter = Box<dyn Fn() + Send + Sync>;

/// Opens every configured sink. Fails (fatal at start) when one cannot be set up.
pub fn open_all(
    configs: &[SinkConfig],
    metrics: &std::sync::Arc<Metrics>,
) -> Result<Vec<Box<dyn Sink>>, String> {
    let open = |(i, cfg)| open_one(i, cfg, metrics);
    configs.iter().enumerate().map(open).collect()
}

/// Opens `sinks[i]`, named `<type>-<i>`.
pub fn open_one(
    i: usize,
    cfg: &SinkConfig,
    metrics: &std::sync::Arc<Metrics>,
) -> Result<Box<dyn Sink>, String> {
    let name = format!("{}-{i}", cfg.type_name());
    Ok(match cfg {
        SinkConfig::File(f) => Box::new(
            file::FileSink::open(name, f)
                .map_err(|e| format!("sinks[{i}]: cannot open {}: {e}", f.path.display()))?,
        ),
        SinkConfig::Stdout(_) => Box::new(stdout::StdoutSink::new(name)),
        SinkConfig::Loki(l) => {
            Box::new(loki::LokiSink::new(name, l).map_err(|e| format!("sinks[{i}]: {e}"))?)
        }
        SinkConfig::Elasticsearch(e) => Box::new(
            elasticsearch::ElasticsearchSink::new(name, e, metrics.clone())
                .map_err(|e| format!("sinks[{i}]: {e}"))?,
        ),
        SinkConfig::Http(h) => {
            Box::new(ndjson::HttpSink::new(name, h).map_err(|e| format!("sinks[{i}]: {e}"))?)
        }
        SinkConfig::Syslog(sl) => Box::new(
            syslog::SyslogSink::new(name, sl, metrics.clone())
                .map_err(|e| format!("sinks[{i}]: {e}"))?,
        ),
    })
}
