//! Checks of values that parse but cannot work: a TCP `docker.host`, a zero read
//! timeout, an unparsable listen address, a file sink that keeps no files (the HTTP
//! sinks: `validate_http.rs`). Each error names the dotted key; the caller adds the
//! origin. Values are only checked, never changed, so `--check-config` prints exactly
//! what will run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::validate_http;
use super::{
    ByteSize, Config, ConfigError, ContainersConfig, DockerConfig, Glob, HumanDuration,
    PipelineConfig, SinkConfig,
};

const MIN_BYTES: ByteSize = ByteSize(1024);

pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    docker(&config.docker)?;
    containers(&config.containers)?;
    check(
        !config.positions.path.as_os_str().is_empty(),
        "positions.path",
        || "must not be empty".to_owned(),
    )?;
    positive(config.positions.flush_interval, "positions.flush_interval")?;
    files(&config.files.paths)?;
    pipeline(&config.pipeline)?;
    let listen = &config.server.listen;
    check(
        listen.is_empty() || listen.parse::<SocketAddr>().is_ok(),
        "server.listen",
        || {
            format!("invalid address {listen:?}: expected ip:port like \"127.0.0.1:8401\", or \"\" to disable")
        },
    )?;
    for (i, rule) in config.rules.iter().enumerate() {
        rule.check(&|k| format!("rules[{i}].{k}"))
            .map_err(|(key, message)| ConfigError::at(key, message))?;
    }
    sinks(&config.sinks)
}

/// The socket path of a `unix:///absolute/path` Docker host.
pub(super) fn socket_path(host: &str) -> Result<PathBuf, ConfigError> {
    let example = "e.g. \"unix:///var/run/docker.sock\"";
    let Some(path) = host.strip_prefix("unix://") else {
        let message =
            format!("{host:?} is not supported: expected unix:// and a socket path, {example}");
        return Err(ConfigError::at("docker.host", message));
    };
    let path = Path::new(path);
    check(path.is_absolute(), "docker.host", || {
        format!("{host:?}: the socket path must be absolute, {example}")
    })?;
    Ok(path.to_path_buf())
}

fn docker(docker: &DockerConfig) -> Result<(), ConfigError> {
    socket_path(&docker.host)?;
    let version = &docker.api_version;
    let numeric = version.strip_prefix("1.").is_some_and(|minor| {
        (1..=3).contains(&minor.len()) && minor.bytes().all(|b| b.is_ascii_digit())
    });
    check(version == "auto" || numeric, "docker.api_version", || {
        format!("invalid version {version:?}: expected \"auto\" or a version like \"1.41\"")
    })?;
    positive(docker.request_timeout, "docker.request_timeout")?;
    positive(docker.read_timeout, "docker.read_timeout")
}

fn containers(containers: &ContainersConfig) -> Result<(), ConfigError> {
    for (name, filters) in [
        ("include_labels", &containers.include_labels),
        ("exclude_labels", &containers.exclude_labels),
    ] {
        for (index, filter) in filters.iter().enumerate() {
            check(
                !filter.key.is_empty(),
                &format!("containers.{name}[{index}]"),
                || {
                    let filter = filter.to_string();
                    format!("{filter:?} has no label key: expected \"key\" or \"key=glob\"")
                },
            )?;
        }
    }
    at_least(
        containers.max_line_bytes,
        MIN_BYTES,
        "containers.max_line_bytes",
    )?;
    check(
        containers.max_streams >= 1,
        "containers.max_streams",
        || "must be at least 1".to_owned(),
    )?;
    check(
        containers.read_from == super::ReadFrom::Api || containers.docker_root.is_absolute(),
        "containers.docker_root",
        || {
            format!(
                "{:?} must be an absolute path when read_from is {:?}",
                containers.docker_root.display().to_string(),
                containers.read_from.to_string()
            )
        },
    )
}

/// Host-file globs: absolute, and valid glob syntax.
fn files(paths: &[String]) -> Result<(), ConfigError> {
    for p in paths {
        check(Path::new(p).is_absolute(), "files.paths", || {
            format!("{p:?} must be an absolute path (a glob like \"/var/log/*.log\")")
        })?;
        if let Err(e) = p.parse::<Glob>() {
            return Err(ConfigError::at("files.paths", e.0));
        }
    }
    Ok(())
}

fn pipeline(pipeline: &PipelineConfig) -> Result<(), ConfigError> {
    check(
        pipeline.queue_records >= 1,
        "pipeline.queue_records",
        || "must be at least 1".to_owned(),
    )?;
    at_least(pipeline.queue_bytes, ByteSize(1), "pipeline.queue_bytes")?;
    check(
        pipeline.batch_records >= 1,
        "pipeline.batch_records",
        || "must be at least 1".to_owned(),
    )?;
    at_least(pipeline.batch_bytes, ByteSize(1), "pipeline.batch_bytes")?;
    positive(pipeline.batch_timeout, "pipeline.batch_timeout")
}

fn sinks(sinks: &[SinkConfig]) -> Result<(), ConfigError> {
    check(!sinks.is_empty(), "sinks", || {
        "at least one [[sinks]] entry is required".to_owned()
    })?;
    // Two sinks appending to one file would interleave and rotate each other's output.
    let mut paths = HashMap::new();
    for (index, sink) in sinks.iter().enumerate() {
        let key = |name: &str| format!("sinks[{index}].{name}");
        let file = match sink {
            SinkConfig::File(file) => file,
            SinkConfig::Stdout(_) => continue,
            SinkConfig::Loki(loki) => {
                validate_http::loki(loki, &key)?;
                continue;
            }
            SinkConfig::Elasticsearch(es) => {
                validate_http::elasticsearch(es, &key)?;
                continue;
            }
            SinkConfig::Http(http) => {
                validate_http::http(http, &key)?;
                continue;
            }
            SinkConfig::Syslog(sl) => {
                validate_http::syslog(sl, &key)?;
                continue;
            }
        };
        check(!file.path.as_os_str().is_empty(), &key("path"), || {
            "must not be empty".to_owned()
        })?;
        if let Some(first) = paths.insert(&file.path, index) {
            let message = format!("{:?} is already the path of sinks[{first}]", file.path);
            return Err(ConfigError::at(key("path"), message));
        }
        at_least(file.max_bytes, MIN_BYTES, &key("max_bytes"))?;
        check(file.max_files >= 1, &key("max_files"), || {
            "must be at least 1".to_owned()
        })?;
    }
    Ok(())
}

pub(super) fn check(
    ok: bool,
    key: &str,
    message: impl FnOnce() -> String,
) -> Result<(), ConfigError> {
    match ok {
        true => Ok(()),
        false => Err(ConfigError::at(key, message())),
    }
}

pub(super) fn positive(duration: HumanDuration, key: &str) -> Result<(), ConfigError> {
    check(!duration.get().is_zero(), key, || {
        "must be greater than 0".to_owned()
    })
}

fn at_least(size: ByteSize, min: ByteSize, key: &str) -> Result<(), ConfigError> {
    check(size.get() >= min.get(), key, || {
        format!("{size} is too small, must be at least {min}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileSinkConfig, StdoutSinkConfig};

    fn invalid(edit: impl FnOnce(&mut Config)) -> ConfigError {
        let mut config = Config::default();
        edit(&mut config);
        config.validate().expect_err("should be invalid")
    }

    fn assert_invalid(key: &str, needle: &str, edit: impl FnOnce(&mut Config)) {
        let err = invalid(edit);
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn docker_host_must_be_an_absolute_unix_socket() {
        assert_invalid("docker.host", "not supported", |c| {
            c.docker.host = "tcp://127.0.0.1:2375".into()
        });
        assert_invalid("docker.host", "must be absolute", |c| {
            c.docker.host = "unix://docker.sock".into()
        });
        assert_invalid("docker.host", "not supported", |c| {
            c.docker.host = "/var/run/docker.sock".into()
        });
        let mut config = Config::default();
        config.docker.host = "unix:///run/docker.sock".into();
        assert_eq!(
            config.docker.socket_path().unwrap(),
            PathBuf::from("/run/docker.sock")
        );
        assert_eq!(
            Config::default().docker.socket_path().unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
    }

    #[test]
    fn api_version_is_auto_or_one_dot_minor() {
        for good in ["auto", "1.41", "1.24", "1.100"] {
            let mut config = Config::default();
            config.docker.api_version = good.into();
            config.validate().unwrap();
        }
        for bad in ["", "v1.41", "1.", "2.0", "1.41.0", "latest", "1.x"] {
            assert_invalid("docker.api_version", "\"1.41\"", |c| {
                c.docker.api_version = bad.into()
            });
        }
    }

    #[test]
    fn timeouts_and_counts_have_lower_bounds() {
        let zero = HumanDuration(std::time::Duration::ZERO);
        assert_invalid("docker.read_timeout", "greater than 0", |c| {
            c.docker.read_timeout = zero
        });
        assert_invalid("docker.request_timeout", "greater than 0", |c| {
            c.docker.request_timeout = zero
        });
        assert_invalid("positions.flush_interval", "greater than 0", |c| {
            c.positions.flush_interval = zero
        });
        assert_invalid("pipeline.batch_timeout", "greater than 0", |c| {
            c.pipeline.batch_timeout = zero
        });
        assert_invalid("pipeline.queue_records", "at least 1", |c| {
            c.pipeline.queue_records = 0
        });
        assert_invalid("pipeline.batch_records", "at least 1", |c| {
            c.pipeline.batch_records = 0
        });
        assert_invalid("pipeline.queue_bytes", "at least 1B", |c| {
            c.pipeline.queue_bytes = ByteSize(0)
        });
        assert_invalid("pipeline.batch_bytes", "at least 1B", |c| {
            c.pipeline.batch_bytes = ByteSize(0)
        });
        assert_invalid("containers.max_streams", "at least 1", |c| {
            c.containers.max_streams = 0
        });
        assert_invalid(
            "containers.max_line_bytes",
            "1023B is too small, must be at least 1KiB",
            |c| c.containers.max_line_bytes = ByteSize(1023),
        );
        assert_invalid("positions.path", "empty", |c| c.positions.path = "".into());
    }

    #[test]
    fn file_reading_needs_absolute_paths_and_valid_globs() {
        assert_invalid("containers.docker_root", "absolute", |c| {
            c.containers.read_from = super::super::ReadFrom::Files;
            c.containers.docker_root = "var/lib/docker".into();
        });
        assert_invalid("files.paths", "absolute", |c| {
            c.files.paths = vec!["var/log/*.log".into()];
        });
        assert_invalid("files.paths", "not a valid glob", |c| {
            c.files.paths = vec!["/var/log/[a.log".into()];
        });
    }

    #[test]
    fn label_filters_need_a_key() {
        assert_invalid("containers.exclude_labels[1]", "no label key", |c| {
            c.containers.exclude_labels = super::super::parse_all(&["a=b", "=b"])
        });
    }

    #[test]
    fn listen_is_empty_or_a_socket_address() {
        for good in ["", "0.0.0.0:8401", "[::1]:9000"] {
            let mut config = Config::default();
            config.server.listen = good.into();
            config.validate().unwrap();
        }
        assert_invalid("server.listen", "ip:port", |c| {
            c.server.listen = "localhost:8401".into()
        });
        assert_invalid("server.listen", "ip:port", |c| {
            c.server.listen = "8401".into()
        });
    }

    #[test]
    fn sinks_are_checked() {
        assert_invalid("sinks", "at least one", |c| c.sinks.clear());
        let file = |f: fn(&mut FileSinkConfig)| {
            let mut sink = FileSinkConfig::default();
            f(&mut sink);
            vec![
                SinkConfig::Stdout(StdoutSinkConfig {}),
                SinkConfig::File(sink),
            ]
        };
        assert_invalid("sinks[1].max_files", "at least 1", |c| {
            c.sinks = file(|s| s.max_files = 0)
        });
        assert_invalid("sinks[1].max_bytes", "at least 1KiB", |c| {
            c.sinks = file(|s| s.max_bytes = ByteSize(512))
        });
        assert_invalid("sinks[1].path", "empty", |c| {
            c.sinks = file(|s| s.path = "".into())
        });
        assert_invalid("sinks[1].path", "already the path of sinks[0]", |c| {
            c.sinks.push(SinkConfig::File(FileSinkConfig::default()))
        });
    }
}
