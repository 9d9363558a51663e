//! Reading a TOML document into a `Config`. The document is parsed into a generic
//! table first and each section deserialized on its own, so every error can name the
//! dotted key at fault (`docker.read_timeout`, `sinks[1].max_files`): when a section
//! fails, its keys are retried one at a time to find the culprit. Sinks are picked by
//! their `type` key by hand, so a missing or unknown type gets its own message.

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::{Config, ConfigError, Origin, RuleConfig, SinkConfig};

/// The top-level keys, in the order of the documented example.
const SECTIONS: [&str; 8] = [
    "docker",
    "containers",
    "files",
    "positions",
    "pipeline",
    "server",
    "rules",
    "sinks",
];

/// The sink `type`s, in the order of the README's Sinks section.
const SINK_TYPES: [&str; 6] = ["file", "stdout", "loki", "elasticsearch", "http", "syslog"];

/// Parses `text` over the defaults, without validating. Errors carry no origin yet.
pub(super) fn parse_document(text: &str) -> Result<Config, ConfigError> {
    let document: Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(Origin::Unknown, None, e.to_string().trim_end())
    })?;
    let mut config = Config::default();
    for (name, value) in document {
        match name.as_str() {
            "docker" => config.docker = section(&name, value)?,
            "containers" => config.containers = section(&name, value)?,
            "files" => config.files = section(&name, value)?,
            "positions" => config.positions = section(&name, value)?,
            "pipeline" => config.pipeline = section(&name, value)?,
            "server" => config.server = section(&name, value)?,
            "rules" => config.rules = rules(value)?,
            "sinks" => config.sinks = sinks(value)?,
            _ => {
                let message = format!(
                    "unknown key `{name}`, expected one of {}",
                    quoted(&SECTIONS)
                );
                return Err(ConfigError::at(name, message));
            }
        }
    }
    Ok(config)
}

/// Deserializes the table at `path` into `T`, blaming the first key that fails.
fn section<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, ConfigError> {
    let Value::Table(table) = value else {
        let message = format!("expected a table, found {}", value.type_str());
        return Err(ConfigError::at(path, message));
    };
    T::deserialize(Value::Table(table.clone())).map_err(|whole| blame_key::<T>(path, table, &whole))
}

/// Retries `table` one key at a time (the rest defaulted) to find the key at fault.
fn blame_key<T: DeserializeOwned>(
    path: &str,
    table: Table,
    whole: &toml::de::Error,
) -> ConfigError {
    for (key, value) in table {
        let single = Table::from_iter([(key.clone(), value)]);
        if let Err(e) = T::deserialize(Value::Table(single)) {
            return ConfigError::at(format!("{path}.{key}"), user_message(e.message()));
        }
    }
    ConfigError::at(path, user_message(whole.message()))
}

/// Serde says "field"; a config file has keys.
pub(super) fn user_message(message: &str) -> String {
    match message.strip_prefix("unknown field") {
        Some(rest) => format!(
            "unknown key{}",
            rest.replace("there are no fields", "no keys are allowed here")
        ),
        None => message.to_owned(),
    }
}

fn rules(value: Value) -> Result<Vec<RuleConfig>, ConfigError> {
    let Value::Array(entries) = value else {
        let message = format!(
            "expected an array of tables ([[rules]]), found {}",
            value.type_str()
        );
        return Err(ConfigError::at("rules", message));
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| section(&format!("rules[{index}]"), entry))
        .collect()
}

fn sinks(value: Value) -> Result<Vec<SinkConfig>, ConfigError> {
    let Value::Array(entries) = value else {
        let message = format!(
            "expected an array of tables ([[sinks]]), found {}",
            value.type_str()
        );
        return Err(ConfigError::at("sinks", message));
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| sink(&format!("sinks[{index}]"), entry))
        .collect()
}

fn sink(path: &str, entry: Value) -> Result<SinkConfig, ConfigError> {
    let Value::Table(mut table) = entry else {
        let message = format!("expected a table, found {}", entry.type_str());
        return Err(ConfigError::at(path, message));
    };
    let type_key = format!("{path}.type");
    let valid = quoted(&SINK_TYPES);
    let kind = match table.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            let message = format!(
                "expected a string, one of {valid}; found {}",
                other.type_str()
            );
            return Err(ConfigError::at(type_key, message));
        }
        None => {
            return Err(ConfigError::at(
                type_key,
                format!("missing; expected one of {valid}"),
            ))
        }
    };
    match kind.as_str() {
        "file" => section(path, Value::Table(table)).map(SinkConfig::File),
        "stdout" => section(path, Value::Table(table)).map(SinkConfig::Stdout),
        "loki" => http_sink(path, table).map(SinkConfig::Loki),
        "elasticsearch" => http_sink(path, table).map(SinkConfig::Elasticsearch),
        "http" => http_sink(path, table).map(SinkConfig::Http),
        "syslog" => syslog_sink(path, table).map(SinkConfig::Syslog),
        _ => Err(ConfigError::at(
            type_key,
            format!("unknown sink type {kind:?}, expected one of {valid}"),
        )),
    }
}

/// A Loki, Elasticsearch or HTTP sink, whose `url` has no default. Its presence is checked
/// after the other keys, so a misspelt `urll` is reported as unknown, not `url` as missing.
fn http_sink<T: DeserializeOwned>(path: &str, table: Table) -> Result<T, ConfigError> {
    let has_url = table.contains_key("url");
    let sink = section(path, Value::Table(table))?;
    match has_url {
        true => Ok(sink),
        false => Err(ConfigError::at(format!("{path}.url"), "required")),
    }
}

/// A syslog sink, whose `address` has no default (checked after the other keys, as
/// [`http_sink`] does with `url`).
fn syslog_sink<T: DeserializeOwned>(path: &str, table: Table) -> Result<T, ConfigError> {
    let has_address = table.contains_key("address");
    let sink = section(path, Value::Table(table))?;
    match has_address {
        true => Ok(sink),
        false => Err(ConfigError::at(format!("{path}.address"), "required")),
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileSinkConfig, Initial, StdoutSinkConfig};

    fn error(text: &str) -> ConfigError {
        Config::from_toml_str(text, "etc/lc.toml").expect_err(text)
    }

    fn assert_error(text: &str, key: &str, needle: &str) {
        let err = error(text);
        assert_eq!(err.key(), Some(key), "{err}");
        assert_eq!(err.origin(), &Origin::File("etc/lc.toml".into()));
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("etc/lc.toml: {key}: ")),
            "{shown}"
        );
        assert!(shown.contains(needle), "{shown:?} lacks {needle:?}");
    }

    #[test]
    fn unknown_key_in_docker_names_key_and_file() {
        assert_error(
            "[docker]\nread_timeout = \"2s\"\nraed_timeout = \"2s\"\n",
            "docker.raed_timeout",
            "unknown key `raed_timeout`",
        );
        assert_error(
            "[docker.tls]\nverify = true\n",
            "docker.tls",
            "unknown key `tls`",
        );
    }

    #[test]
    fn unknown_top_level_key_names_key_and_file() {
        assert_error(
            "log_level = \"debug\"\n",
            "log_level",
            "expected one of `docker`",
        );
        assert_error("[dockr]\nhost = \"x\"\n", "dockr", "unknown key `dockr`");
    }

    #[test]
    fn unknown_key_in_a_sink_names_key_and_file() {
        let text = "[[sinks]]\ntype = \"stdout\"\n[[sinks]]\ntype = \"file\"\nmax_file = 3\n";
        assert_error(
            text,
            "sinks[1].max_file",
            "unknown key `max_file`, expected one of `path`",
        );
        assert_error(
            "[[sinks]]\ntype = \"stdout\"\npath = \"x\"\n",
            "sinks[0].path",
            "no keys are allowed",
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_error(
            "[docker]\nread_timeout = \"10 parsecs\"\n",
            "docker.read_timeout",
            "invalid duration \"10 parsecs\"",
        );
        assert_error(
            "[pipeline]\nbatch_timeout = 5\n",
            "pipeline.batch_timeout",
            "duration string",
        );
        assert_error(
            "[pipeline]\nbatch_bytes = \"1 bucket\"\n",
            "pipeline.batch_bytes",
            "invalid size \"1 bucket\"",
        );
        assert_error(
            "[[sinks]]\ntype = \"file\"\nmax_bytes = \"ten\"\n",
            "sinks[0].max_bytes",
            "invalid size",
        );
        assert_error(
            "[containers]\nstdout = \"yes\"\n",
            "containers.stdout",
            "expected a boolean",
        );
        assert_error(
            "[containers]\ninclude_names = [\"web\", 7]\n",
            "containers.include_names",
            "expected a string",
        );
        assert_error(
            "[containers]\ninclude_images = [\"nginx:*\", \"redis:[7\"]\n",
            "containers.include_images",
            "\"redis:[7\" is not a valid glob",
        );
        assert_error(
            "[containers]\nread_from = \"disk\"\n",
            "containers.read_from",
            "\"api\", \"files\" or \"auto\"",
        );
        assert_error("docker = 5\n", "docker", "expected a table");
    }

    #[test]
    fn bad_initial_is_an_error() {
        assert_error(
            "[containers]\ninitial = \"tail:-5\"\n",
            "containers.initial",
            "non-negative integer",
        );
        assert_error(
            "[containers]\ninitial = \"end\"\n",
            "containers.initial",
            "\"now\", \"beginning\" or \"tail:N\"",
        );
    }

    #[test]
    fn initial_tail_n_parses() {
        let config = Config::from_toml_str("[containers]\ninitial = \"tail:100\"\n", "t").unwrap();
        assert_eq!(config.containers.initial, Initial::Tail(100));
    }

    #[test]
    fn http_sink_url_is_required() {
        let loki = "[[sinks]]\ntype = \"file\"\n[[sinks]]\ntype = \"loki\"\n";
        let err = error(loki);
        assert_eq!(err.to_string(), "etc/lc.toml: sinks[1].url: required");
        let es = "[[sinks]]\ntype = \"elasticsearch\"\nindex = \"x\"\n";
        assert_error(es, "sinks[0].url", "required");
    }

    #[test]
    fn http_sink_keys_are_checked() {
        let loki = |line: &str| format!("[[sinks]]\ntype = \"loki\"\nurl = \"http://l\"\n{line}\n");
        let es = |line: &str| {
            format!("[[sinks]]\ntype = \"elasticsearch\"\nurl = \"http://e\"\n{line}\n")
        };
        let check = |text: String, key: &str, needle: &str| {
            assert_error(&text, &format!("sinks[0].{key}"), needle);
        };
        // An unknown key is reported before a missing url: it may be the url, misspelt.
        let misspelt = "[[sinks]]\ntype = \"loki\"\nurll = \"x\"\n".to_owned();
        check(
            misspelt,
            "urll",
            "unknown key `urll`, expected one of `url`",
        );
        check(loki("api_key = \"k\""), "api_key", "unknown key `api_key`");
        check(es("bearer_token = \"k\""), "bearer_token", "unknown key");
        check(es("labels = {}"), "labels", "unknown key `labels`");
        check(loki("line_format = \"xml\""), "line_format", "\"json\"");
        check(loki("gzip = \"yes\""), "gzip", "expected a boolean");
        check(loki("labels = { job = 1 }"), "labels", "expected a string");
        check(loki("labels = [\"a\"]"), "labels", "expected a map");
        check(es("timeout = 10"), "timeout", "duration string");
        check(es("password = 5"), "password", "expected a string");
    }

    #[test]
    fn unknown_or_missing_sink_type_lists_valid_types() {
        assert_error(
            "[[sinks]]\ntype = \"kafka\"\n",
            "sinks[0].type",
            "\"kafka\", expected one of `file`, `stdout`, `loki`, `elasticsearch`",
        );
        assert_error(
            "[[sinks]]\npath = \"x\"\n",
            "sinks[0].type",
            "missing; expected one of `file`, `stdout`",
        );
        assert_error(
            "[[sinks]]\ntype = 1\n",
            "sinks[0].type",
            "expected a string",
        );
        assert_error("sinks = 1\n", "sinks", "array of tables");
    }

    #[test]
    fn sinks_replace_the_default_and_default_their_keys() {
        let text =
            "[[sinks]]\ntype = \"stdout\"\n[[sinks]]\ntype = \"file\"\npath = \"/tmp/x.jsonl\"\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let file = FileSinkConfig {
            path: "/tmp/x.jsonl".into(),
            ..FileSinkConfig::default()
        };
        assert_eq!(
            config.sinks,
            [
                SinkConfig::Stdout(StdoutSinkConfig {}),
                SinkConfig::File(file)
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let err = error("[docker]\nhost = \n");
        assert_eq!(err.key(), None);
        assert!(
            err.to_string()
                .starts_with("etc/lc.toml: TOML parse error at line 2"),
            "{err}"
        );
    }
}
