//! The stdout sink: JSON lines on the process's standard output (our own logs go to
//! stderr, so the two never mix).

use std::io::Write;
use std::time::Instant;

use super::{Batch, Sink, SinkError};

pub struct StdoutSink {
    name: String,
}

impl StdoutSink {
    pub fn new(name: String) -> StdoutSink {
        StdoutSink { name }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, batch: &Batch, _deadline: Option<Instant>) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        out.write_all(batch.json_lines())
            .and_then(|()| out.flush())
            .map_err(|e| SinkError::transient(format!("stdout: {e}")))
    }
}
