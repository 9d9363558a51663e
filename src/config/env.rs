//! Environment overrides: `LOG_CAPTURER_<SECTION>_<KEY>` sets a scalar key of one of
//! the six sections, and `DOCKER_HOST` sets `docker.host` unless
//! `LOG_CAPTURER_DOCKER_HOST` is also set. A value is converted by the same
//! deserializer as the file, typed by the key's current value, so the two cannot
//! drift apart. An unknown `LOG_CAPTURER_*` variable is an error: a typo must not be
//! silently ignored.

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::{Table, Value};

use super::parse::user_message;
use super::{Config, ConfigError, Origin};

pub(super) const PREFIX: &str = "LOG_CAPTURER_";
const DOCKER_HOST: &str = "DOCKER_HOST";

/// An override that was applied: the dotted key and the variable that set it.
pub(super) struct Applied {
    pub key: String,
    pub var: String,
}

/// Applies the overrides found in `vars` to `config`; other variables are ignored.
pub(super) fn apply(
    config: &mut Config,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Applied>, ConfigError> {
    let mut ours: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(var, _)| var.starts_with(PREFIX) || var == DOCKER_HOST)
        .collect();
    // Sorted, so that with several bad variables the same one is reported each time.
    ours.sort();
    let mut applied = Vec::new();
    let mut docker_host = None;
    for (var, value) in ours {
        if var == DOCKER_HOST {
            docker_host = Some(value);
            continue;
        }
        let key = set_from_env(config, &var, &value)?;
        log::debug!("{var} overrides {key}");
        applied.push(Applied { key, var });
    }
    // Like the Docker CLI, an empty DOCKER_HOST counts as unset.
    if let Some(host) = docker_host.filter(|host| !host.is_empty()) {
        if applied.iter().any(|a| a.key == "docker.host") {
            log::debug!("{DOCKER_HOST} ignored: {PREFIX}DOCKER_HOST is set");
        } else {
            config.docker.host = host;
            applied.push(Applied {
                key: "docker.host".to_owned(),
                var: DOCKER_HOST.to_owned(),
            });
        }
    }
    Ok(applied)
}

/// Sets the key named by `var`; returns its dotted path.
fn set_from_env(config: &mut Config, var: &str, value: &str) -> Result<String, ConfigError> {
    let error = |key: Option<String>, message: String| {
        ConfigError::new(Origin::Env(var.to_owned()), key, message)
    };
    let rest = var[PREFIX.len()..].to_ascii_lowercase();
    let (section, key) = rest.split_once('_').unwrap_or((&rest, ""));
    let dotted = format!("{section}.{key}");
    let result = match if key.is_empty() { "" } else { section } {
        "docker" => set_key(&mut config.docker, key, value),
        "containers" => set_key(&mut config.containers, key, value),
        "files" => set_key(&mut config.files, key, value),
        "positions" => set_key(&mut config.positions, key, value),
        "pipeline" => set_key(&mut config.pipeline, key, value),
        "server" => set_key(&mut config.server, key, value),
        _ => {
            let message = format!(
                "unknown variable: expected {PREFIX}<SECTION>_<KEY> with SECTION one of \
                 DOCKER, CONTAINERS, FILES, POSITIONS, PIPELINE, SERVER"
            );
            return Err(error(None, message));
        }
    };
    result
        .map(|()| dotted.clone())
        .map_err(|message| error(Some(dotted), message))
}

/// Replaces the scalar `key` of `section` with `text`, converted to the key's type.
fn set_key<T: Serialize + DeserializeOwned>(
    section: &mut T,
    key: &str,
    text: &str,
) -> Result<(), String> {
    let mut table = Table::try_from(&*section).map_err(|e| e.to_string())?;
    let value = match table.get(key) {
        Some(Value::String(_)) => Value::String(text.to_owned()),
        Some(Value::Integer(_)) => text
            .trim()
            .parse()
            .map(Value::Integer)
            .map_err(|_| format!("invalid value {text:?}: expected an integer"))?,
        Some(Value::Boolean(_)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(format!("invalid value {text:?}: expected true or false")),
        },
        Some(_) => return Err("is a list, which can only be set in the config file".to_owned()),
        None => {
            let scalars: Vec<&str> = table
                .iter()
                .filter(|(_, value)| !value.is_array() && !value.is_table())
                .map(|(name, _)| name.as_str())
                .collect();
            return Err(match scalars.is_empty() {
                true => {
                    "unknown key: this section has no keys settable from the environment".to_owned()
                }
                false => format!("unknown key, expected one of {}", scalars.join(", ")),
            });
        }
    };
    table.insert(key.to_owned(), value);
    *section = T::deserialize(Value::Table(table)).map_err(|e| user_message(e.message()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{ByteSize, HumanDuration, Initial};

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn env_error(pairs: &[(&str, &str)]) -> ConfigError {
        Config::default()
            .apply_env(vars(pairs))
            .expect_err("should fail")
    }

    #[test]
    fn env_overrides_scalar_keys() {
        let mut config = Config::default();
        let env = [
            ("LOG_CAPTURER_DOCKER_READ_TIMEOUT", "2s"),
            ("LOG_CAPTURER_DOCKER_MAX_IDLE_CONNECTIONS", "8"),
            ("LOG_CAPTURER_SERVER_LISTEN", ""),
            ("LOG_CAPTURER_CONTAINERS_INITIAL", "beginning"),
            ("LOG_CAPTURER_CONTAINERS_STDERR", "false"),
            ("LOG_CAPTURER_CONTAINERS_MAX_LINE_BYTES", "2048"),
            ("LOG_CAPTURER_DOCKER_API_VERSION", "1.41"),
            ("LOG_CAPTURER_POSITIONS_PATH", "/var/lib/lc/positions.json"),
            ("HOME", "/root"),
            ("LOG_CAPTURE_TYPO", "ignored: not our prefix"),
        ];
        config.apply_env(vars(&env)).unwrap();
        let mut expected = Config::default();
        expected.docker.read_timeout = HumanDuration(Duration::from_secs(2));
        expected.docker.max_idle_connections = 8;
        expected.server.listen = String::new();
        expected.containers.initial = Initial::Beginning;
        expected.containers.stderr = false;
        expected.containers.max_line_bytes = ByteSize(2048);
        expected.docker.api_version = "1.41".to_owned();
        expected.positions.path = "/var/lib/lc/positions.json".into();
        assert_eq!(config, expected);
    }

    #[test]
    fn docker_host_is_used_unless_the_prefixed_variable_is_set() {
        let mut config = Config::default();
        config
            .apply_env(vars(&[(
                "DOCKER_HOST",
                "unix:///run/user/1000/docker.sock",
            )]))
            .unwrap();
        assert_eq!(config.docker.host, "unix:///run/user/1000/docker.sock");

        let both = [
            ("DOCKER_HOST", "unix:///a.sock"),
            ("LOG_CAPTURER_DOCKER_HOST", "unix:///b.sock"),
        ];
        let mut config = Config::default();
        config.apply_env(vars(&both)).unwrap();
        assert_eq!(config.docker.host, "unix:///b.sock");

        let mut config = Config::default();
        config.apply_env(vars(&[("DOCKER_HOST", "")])).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err = env_error(&[("LOG_CAPTURER_DOCKER_READ_TIMEOUT", "10 parsecs")]);
        assert_eq!(
            err.origin(),
            &Origin::Env("LOG_CAPTURER_DOCKER_READ_TIMEOUT".into())
        );
        assert_eq!(err.key(), Some("docker.read_timeout"));
        let shown = err.to_string();
        assert!(shown.starts_with("environment variable LOG_CAPTURER_DOCKER_READ_TIMEOUT: docker.read_timeout: invalid duration"), "{shown}");

        let err = env_error(&[("LOG_CAPTURER_PIPELINE_QUEUE_RECORDS", "lots")]);
        assert!(err.to_string().contains("expected an integer"), "{err}");
        let err = env_error(&[("LOG_CAPTURER_PIPELINE_QUEUE_RECORDS", "-1")]);
        assert_eq!(err.key(), Some("pipeline.queue_records"), "{err}");
        let err = env_error(&[("LOG_CAPTURER_CONTAINERS_STDOUT", "yes")]);
        assert!(err.to_string().contains("expected true or false"), "{err}");
        let err = env_error(&[("LOG_CAPTURER_CONTAINERS_INITIAL", "tail:x")]);
        assert!(err.to_string().contains("non-negative integer"), "{err}");
    }

    #[test]
    fn unknown_or_non_scalar_variables_are_errors() {
        let err = env_error(&[("LOG_CAPTURER_DOCKER_RAED_TIMEOUT", "2s")]);
        assert_eq!(err.key(), Some("docker.raed_timeout"));
        assert!(
            err.to_string().contains("LOG_CAPTURER_DOCKER_RAED_TIMEOUT"),
            "{err}"
        );
        assert!(err.to_string().contains("read_timeout"), "{err}");

        let err = env_error(&[("LOG_CAPTURER_DOKCER_HOST", "unix:///x")]);
        assert!(
            err.to_string()
                .starts_with("environment variable LOG_CAPTURER_DOKCER_HOST: unknown variable"),
            "{err}"
        );
        let err = env_error(&[("LOG_CAPTURER_SERVER", "x")]);
        assert_eq!(err.key(), None, "{err}");
        let err = env_error(&[("LOG_CAPTURER_SINKS_PATH", "x")]);
        assert!(err.to_string().contains("LOG_CAPTURER_SINKS_PATH"), "{err}");
        let err = env_error(&[("LOG_CAPTURER_CONTAINERS_INCLUDE_NAMES", "web")]);
        assert!(err.to_string().contains("is a list"), "{err}");
        let err = env_error(&[("LOG_CAPTURER_FILES_PATHS", "/var/log/*.log")]);
        assert!(err.to_string().contains("is a list"), "{err}");
        let err = env_error(&[("LOG_CAPTURER_FILES_X", "1")]);
        assert!(err.to_string().contains("no keys settable"), "{err}");
    }

    #[test]
    fn failed_apply_env_leaves_config_unchanged() {
        let mut config = Config::default();
        let env = [
            ("LOG_CAPTURER_DOCKER_READ_TIMEOUT", "2s"),
            ("LOG_CAPTURER_SERVER_LISTEN_ADDR", "x"),
        ];
        assert!(config.apply_env(vars(&env)).is_err());
        assert_eq!(config, Config::default());
    }
}
