//! The typed sections of the config file (the sinks are in `sinks.rs`) and their
//! defaults, which are exactly the values documented in `config/log-capturer.toml`. Each
//! section is `#[serde(default, deny_unknown_fields)]`: a file overrides only what it
//! names, and a misspelt key is an error rather than silently ignored.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::patterns::{Glob, LabelFilter};
use super::units::{deserialize_from_str, ByteSize, HumanDuration, InvalidValue};

pub(super) const MIB: u64 = 1024 * 1024;

pub(super) fn secs(secs: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(secs))
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    pub host: String,
    pub max_idle_connections: usize,
    pub idle_timeout: HumanDuration,
    pub request_timeout: HumanDuration,
    pub read_timeout: HumanDuration,
    pub api_version: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: "unix:///var/run/docker.sock".to_owned(),
            max_idle_connections: 4,
            idle_timeout: secs(30),
            request_timeout: secs(10),
            read_timeout: secs(1),
            api_version: "auto".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainersConfig {
    pub include_names: Vec<Glob>,
    pub exclude_names: Vec<Glob>,
    pub include_labels: Vec<LabelFilter>,
    pub exclude_labels: Vec<LabelFilter>,
    pub include_images: Vec<Glob>,
    pub stdout: bool,
    pub stderr: bool,
    pub initial: Initial,
    pub record_labels: Vec<Glob>,
    pub max_line_bytes: ByteSize,
    pub max_streams: usize,
    pub read_from: ReadFrom,
    pub docker_root: PathBuf,
}

impl ContainersConfig {
    /// `max_line_bytes` as a length in memory.
    pub fn max_line_bytes(&self) -> usize {
        usize::try_from(self.max_line_bytes.get()).unwrap_or(usize::MAX)
    }
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            include_names: Vec::new(),
            exclude_names: Vec::new(),
            include_labels: Vec::new(),
            exclude_labels: Vec::new(),
            include_images: Vec::new(),
            stdout: true,
            stderr: true,
            initial: Initial::Now,
            record_labels: vec!["*".parse().expect("\"*\" is a valid glob")],
            max_line_bytes: ByteSize(MIB),
            max_streams: 1024,
            read_from: ReadFrom::Api,
            docker_root: PathBuf::from("/var/lib/docker"),
        }
    }
}

/// Where to start reading a container that was already running before any recorded run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Initial {
    #[default]
    Now,
    Beginning,
    /// The last N lines.
    Tail(u64),
}

impl FromStr for Initial {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text {
            "now" => Ok(Initial::Now),
            "beginning" => Ok(Initial::Beginning),
            _ => match text.strip_prefix("tail:").map(|n| (n, n.parse::<u64>())) {
                Some((n, Ok(lines))) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(Initial::Tail(lines))
                }
                Some(_) => Err(InvalidValue(format!(
                    "invalid initial {text:?}: N in \"tail:N\" must be a non-negative integer"
                ))),
                None => Err(InvalidValue(format!(
                    "invalid initial {text:?}: expected \"now\", \"beginning\" or \"tail:N\""
                ))),
            },
        }
    }
}

impl fmt::Display for Initial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Initial::Now => f.write_str("now"),
            Initial::Beginning => f.write_str("beginning"),
            Initial::Tail(lines) => write!(f, "tail:{lines}"),
        }
    }
}

/// How container logs are read: through the Docker API, or from json-file logs on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadFrom {
    #[default]
    Api,
    Files,
    Auto,
}

impl FromStr for ReadFrom {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text {
            "api" => Ok(ReadFrom::Api),
            "files" => Ok(ReadFrom::Files),
            "auto" => Ok(ReadFrom::Auto),
            _ => Err(InvalidValue(format!(
                "invalid read_from {text:?}: expected \"api\", \"files\" or \"auto\""
            ))),
        }
    }
}

impl fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadFrom::Api => "api",
            ReadFrom::Files => "files",
            ReadFrom::Auto => "auto",
        })
    }
}

impl<'de> Deserialize<'de> for Initial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "\"now\", \"beginning\" or \"tail:N\"")
    }
}

impl Serialize for Initial {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReadFrom {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "\"api\", \"files\" or \"auto\"")
    }
}

impl Serialize for ReadFrom {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    pub paths: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PositionsConfig {
    pub path: PathBuf,
    pub flush_interval: HumanDuration,
    /// The longest a delivered batch's positions may wait before the file is rewritten
    /// (0: after every batch). Never more than one batch's worth waits (README, Guarantees).
    pub write_interval: HumanDuration,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        PositionsConfig {
            path: PathBuf::from("data/positions.json"),
            flush_interval: secs(1),
            write_interval: HumanDuration(Duration::from_millis(250)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub queue_records: usize,
    /// The queue's bound in bytes of messages (plus a fixed overhead per record).
    pub queue_bytes: ByteSize,
    pub batch_records: usize,
    pub batch_bytes: ByteSize,
    pub batch_timeout: HumanDuration,
    pub shutdown_timeout: HumanDuration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_records: 16384,
            queue_bytes: ByteSize(64 * MIB),
            batch_records: 2048,
            batch_bytes: ByteSize(MIB),
            batch_timeout: secs(1),
            shutdown_timeout: secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `ip:port` of the HTTP endpoints; `""` disables the server.
    pub listen: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8401".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_parses_tail_n() {
        assert_eq!("now".parse(), Ok(Initial::Now));
        assert_eq!("beginning".parse(), Ok(Initial::Beginning));
        assert_eq!("tail:0".parse(), Ok(Initial::Tail(0)));
        assert_eq!("tail:250".parse(), Ok(Initial::Tail(250)));
        assert_eq!(Initial::Tail(250).to_string(), "tail:250");
    }

    #[test]
    fn bad_initial_is_rejected() {
        for text in [
            "tail:", "tail:-1", "tail:+5", "tail:x", "tail: 5", "Now", "end", "",
        ] {
            let err = text.parse::<Initial>().expect_err(text);
            assert!(err.0.contains(&format!("{text:?}")), "{err}");
        }
        let err = "tail:-1".parse::<Initial>().unwrap_err();
        assert!(err.0.contains("non-negative integer"), "{err}");
    }

    #[test]
    fn read_from_round_trips() {
        for mode in [ReadFrom::Api, ReadFrom::Files, ReadFrom::Auto] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
        assert!("disk".parse::<ReadFrom>().is_err());
    }
}
