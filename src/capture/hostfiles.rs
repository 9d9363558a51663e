//! Host files (`files.paths`): one thread tails every file the globs match.
//! (Being written: see issue 5.)

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::shutdown::Shutdown;
use crate::sink::queue::Producer;

/// Everything the host-files thread needs.
pub struct HostFiles {
    /// Absolute glob patterns, validated by the config.
    pub patterns: Vec<String>,
    /// The host name put in every record.
    pub host: Arc<str>,
    pub max_line_bytes: usize,
    /// How often files are polled for new bytes and globs re-expanded.
    pub poll: Duration,
    /// No earlier run recorded: files found at start are read from their end.
    pub first_run: bool,
    pub positions: Arc<Positions>,
    pub tx: Producer,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
}

impl HostFiles {
    /// Runs until shutdown.
    pub fn run(self) {
        let _ = (&self.patterns, &self.host, self.max_line_bytes, self.first_run);
        let _ = (&self.positions, &self.tx, &self.metrics);
        while !self.shutdown.wait_timeout(self.poll) {}
    }
}
