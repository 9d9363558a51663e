//! The `[[sinks]]` entries: `SinkConfig`, picked by the `type` key, and the file and
//! stdout sinks with their defaults (those of `config/log-capturer.toml`); the HTTP sinks
//! are in `http_sinks.rs`. Like the sections, each is `#[serde(default,
//! deny_unknown_fields)]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::sections::MIB;
use super::units::ByteSize;
use super::{ElasticsearchSinkConfig, HttpSinkConfig, LokiSinkConfig, SyslogSinkConfig, TlsConfig};

/// One `[[sinks]]` entry, selected by its `type` key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    File(FileSinkConfig),
    Stdout(StdoutSinkConfig),
    Loki(LokiSinkConfig),
    Elasticsearch(ElasticsearchSinkConfig),
    Http(HttpSinkConfig),
    Syslog(SyslogSinkConfig),
}

impl SinkConfig {
    /// The `type` value that selects this sink.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::Stdout(_) => "stdout",
            SinkConfig::Loki(_) => "loki",
            SinkConfig::Elasticsearch(_) => "elasticsearch",
            SinkConfig::Http(_) => "http",
            SinkConfig::Syslog(_) => "syslog",
        }
    }

    /// The `tls` table of a network sink.
    pub fn tls(&self) -> Option<&TlsConfig> {
        match self {
            SinkConfig::Loki(l) => Some(&l.tls),
            SinkConfig::Elasticsearch(e) => Some(&e.tls),
            SinkConfig::Http(h) => Some(&h.tls),
            SinkConfig::Syslog(s) => Some(&s.tls),
            SinkConfig::File(_) | SinkConfig::Stdout(_) => None,
        }
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig::File(FileSinkConfig::default())
    }
}

/// JSON lines appended to `path`, rotated to `path.1` .. `path.N` at `max_bytes`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    pub max_bytes: ByteSize,
    pub max_files: usize,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            path: PathBuf::from("data/logs/containers.jsonl"),
            max_bytes: ByteSize(100 * MIB),
            max_files: 5,
        }
    }
}

/// JSON lines written to the process's stdout; it has no keys besides `type`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StdoutSinkConfig {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        let names: Vec<_> = [
            SinkConfig::default(),
            SinkConfig::Stdout(StdoutSinkConfig {}),
            SinkConfig::Loki(LokiSinkConfig::default()),
            SinkConfig::Elasticsearch(ElasticsearchSinkConfig::default()),
            SinkConfig::Http(HttpSinkConfig::default()),
        ]
        .iter()
        .map(SinkConfig::type_name)
        .collect();
        assert_eq!(names, ["file", "stdout", "loki", "elasticsearch", "http"]);
    }
}
