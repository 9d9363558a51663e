//! Sinks: where records go. A sink takes a whole batch and either acknowledges it (the
//! records are handed to the destination) or fails with a classified error; the
//! dispatcher retries transient failures. Batches are encoded once as JSON lines and
//! shared by the sinks that write that format.

pub mod dispatcher;
pub mod file;
pub mod queue;
pub mod stdout;

use std::fmt;

use crate::capture::record::Record;
use crate::config::SinkConfig;

/// A batch of records, in queue order, with its JSON-lines encoding.
pub struct Batch {
    pub records: Vec<Record>,
    pub json_lines: Vec<u8>,
}

impl Batch {
    pub fn new(records: Vec<Record>) -> Batch {
        let mut json_lines =
            Vec::with_capacity(records.iter().map(|r| r.approx_bytes() + 64).sum());
        for r in &records {
            r.write_json(&mut json_lines);
        }
        Batch {
            records,
            json_lines,
        }
    }
}

/// A sink failure.
#[derive(Debug)]
pub enum SinkError {
    /// Worth retrying (disk full, pipe busy, connection refused...).
    Transient(String),
    /// The destination rejected the batch; retrying would not help.
    Rejected(String),
}

impl SinkError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Transient(_))
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Transient(m) => write!(f, "transient: {m}"),
            SinkError::Rejected(m) => write!(f, "rejected: {m}"),
        }
    }
}

impl std::error::Error for SinkError {}

/// A destination for batches.
pub trait Sink: Send {
    /// Short fixed name, used as the `sink` metric label (e.g. `file-0`).
    fn name(&self) -> &str;
    /// Hands the whole batch to the destination, or fails without partial effect where the
    /// destination allows.
    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError>;
}

/// Opens every configured sink. Fails (fatal at start) when a file cannot be opened.
pub fn open_all(configs: &[SinkConfig]) -> Result<Vec<Box<dyn Sink>>, String> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for (i, cfg) in configs.iter().enumerate() {
        match cfg {
            SinkConfig::File(f) => {
                let sink = file::FileSink::open(format!("file-{i}"), f)
                    .map_err(|e| format!("sinks[{i}]: cannot open {}: {e}", f.path.display()))?;
                sinks.push(Box::new(sink));
            }
            SinkConfig::Stdout(_) => {
                sinks.push(Box::new(stdout::StdoutSink::new(format!("stdout-{i}"))))
            }
        }
    }
    Ok(sinks)
}
