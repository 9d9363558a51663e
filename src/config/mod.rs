//! The configuration: typed sections read from an optional TOML file over built-in
//! defaults (those of `config/log-capturer.toml`), then `LOG_CAPTURER_<SECTION>_<KEY>`
//! and `DOCKER_HOST` overrides, then validated. Every error names the dotted key and the
//! file or variable it came from; unknown keys and variables are errors, never ignored.
//!
//! # Layout
//! - `sections.rs`: the section structs, `Initial`, `ReadFrom`, and defaults.
//! - `sinks.rs`: `SinkConfig`, the file and stdout sinks, and defaults.
//! - `http_sinks.rs`: the Loki, Elasticsearch and generic HTTP sinks, and defaults;
//!   `syslog.rs`: the syslog sink, its address, format, framing and facility.
//! - `patterns.rs`: `Glob` and `LabelFilter`, the container filters' globs.
//! - `rules.rs`: `[[rules]]`, the processing rules, with their regexes compiled.
//! - `template.rs`: Loki label templates and Elasticsearch index patterns, parsed for
//!   validation and for the sinks alike.
//! - `units.rs`: `HumanDuration` and `ByteSize`, parsed and printed as strings.
//! - `parse.rs`: TOML text to `Config`, blaming the exact key that fails.
//! - `env.rs`: environment overrides (scalar keys of the sections; never sinks).
//! - `validate.rs`, `validate_http.rs`: checks of values that parse but cannot work;
//!   `url.rs`: the base URLs of the HTTP sinks; `headers.rs`: the HTTP sink's headers.
//! - `tls.rs`: the `tls` table of the network sinks (files checked by `crate::tls`).
//! - `secret.rs`: keeping credentials out of `--check-config` output and `Debug`.
//! - `error.rs`: `ConfigError`.

mod env;
mod error;
mod headers;
mod http_sinks;
mod parse;
mod patterns;
mod rules;
mod secret;
mod sections;
mod sinks;
mod syslog;
mod template;
mod tls;
pub mod units;
mod url;
mod validate;
mod validate_http;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::{ConfigError, Origin};
pub use http_sinks::{
    BodyFormat, ElasticsearchSinkConfig, HttpSinkConfig, LineFormat, LokiSinkConfig,
};
#[cfg(test)]
pub(crate) use patterns::parse_all;
pub use patterns::{Glob, LabelFilter};
pub use rules::{Multiline, ParseMode, Pattern, RuleConfig};
pub use secret::{is_secret_key, Secret, REDACTED};
pub use sections::{
    ContainersConfig, DockerConfig, FilesConfig, Initial, PipelineConfig, PositionsConfig,
    ReadFrom, ServerConfig,
};
pub use sinks::{FileSinkConfig, SinkConfig, StdoutSinkConfig};
pub use syslog::{
    facility_code, Framing, SyslogAddress, SyslogFormat, SyslogSinkConfig, Transport,
};
pub use template::{parse_index_pattern, parse_template, IndexPart, TemplateField, TemplatePart};
pub use tls::TlsConfig;
pub use units::{ByteSize, HumanDuration, InvalidValue};

/// The whole configuration; `Default` is the documented `config/log-capturer.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    pub docker: DockerConfig,
    pub containers: ContainersConfig,
    pub files: FilesConfig,
    pub positions: PositionsConfig,
    pub pipeline: PipelineConfig,
    pub server: ServerConfig,
    /// `[[rules]]`, none by default (then not printed by `--check-config`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
    pub sinks: Vec<SinkConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            docker: DockerConfig::default(),
            containers: ContainersConfig::default(),
            files: FilesConfig::default(),
            positions: PositionsConfig::default(),
            pipeline: PipelineConfig::default(),
            server: ServerConfig::default(),
            rules: Vec::new(),
            sinks: vec![SinkConfig::default()],
        }
    }
}

impl Config {
    /// The configuration to run with: the file at `path` over the defaults (or the
    /// defaults alone for `None`), then the process environment, then validated.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(path, process_env()?)
    }

    fn load_with(path: Option<&Path>, vars: Vec<(String, String)>) -> Result<Config, ConfigError> {
        let (mut config, origin) = match path {
            None => (Config::default(), Origin::Unknown),
            Some(path) => {
                let origin = Origin::File(path.display().to_string());
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        origin.clone(),
                        None,
                        format!("cannot read the config file: {e}"),
                    )
                })?;
                let config =
                    parse::parse_document(&text).map_err(|e| e.or_origin(|| origin.clone()))?;
                (config, origin)
            }
        };
        let applied = env::apply(&mut config, vars)?;
        config.validate().map_err(|e| {
            // A bad value set by a variable is blamed on the variable, not the file.
            let var = applied.iter().find(|a| Some(a.key.as_str()) == e.key());
            let origin = var.map_or(origin, |a| Origin::Env(a.var.clone()));
            e.or_origin(|| origin)
        })?;
        Ok(config)
    }

    /// Parses and validates a TOML text; `origin` (usually the file name) is used in
    /// error messages. The environment is not consulted.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let origin = || Origin::File(origin.to_owned());
        let config = parse::parse_document(text).map_err(|e| e.or_origin(origin))?;
        config.validate().map_err(|e| e.or_origin(origin))?;
        Ok(config)
    }

    /// Applies `LOG_CAPTURER_<SECTION>_<KEY>` and `DOCKER_HOST` overrides found in
    /// `vars`; other variables are ignored. Does not validate. On error, `self` is
    /// unchanged and the error names the variable.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut updated = self.clone();
        env::apply(&mut updated, vars)?;
        *self = updated;
        Ok(())
    }

    /// Checks values that parse but cannot work; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// One warning per sink that verifies no certificate (`tls.insecure_skip_verify`):
    /// logged at every start, listed on `/health`, printed by `--check-config`.
    pub fn insecure_sinks(&self) -> Vec<String> {
        let insecure = |(i, s): (usize, &SinkConfig)| {
            let tls = s.tls()?;
            tls.insecure_skip_verify.then(|| {
                format!(
                    "sinks[{i}] ({}): tls.insecure_skip_verify = true: the server's certificate \
                     is not verified, anyone on the path can read and change what is sent",
                    s.type_name()
                )
            })
        };
        self.sinks.iter().enumerate().filter_map(insecure).collect()
    }

    /// The effective configuration as TOML, for `--check-config`: every key, except
    /// optional sink keys that are unset. It parses back to an equal `Config`, except
    /// that credentials (`password`, `bearer_token`, `api_key`) are printed as
    /// `"<redacted>"`, so a printed config with credentials parses back to one whose
    /// credentials are the literal text `<redacted>`.
    pub fn to_toml(&self) -> String {
        let text = match toml::to_string(self) {
            Ok(text) => text,
            Err(e) => return format!("# cannot print the configuration as TOML: {e}\n"),
        };
        // Second line of defence for a credential-named key not typed `Secret`: blank it
        // and re-print, with alphabetical key order, which beats printing the credential.
        let Ok(mut table) = text.parse::<toml::Table>() else {
            return text;
        };
        if !secret::redact(&mut table) {
            return text;
        }
        toml::to_string(&table)
            .unwrap_or_else(|e| format!("# cannot print the configuration as TOML: {e}\n"))
    }
}

impl DockerConfig {
    /// The filesystem path of the Docker socket named by `host`.
    pub fn socket_path(&self) -> Result<PathBuf, ConfigError> {
        validate::socket_path(&self.host)
    }
}

/// The process environment as strings. A variable of ours that is not UTF-8 is an
/// error (`std::env::vars` would panic); other such variables are skipped.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) if name.starts_with(env::PREFIX) || name == "DOCKER_HOST" => {
                return Err(ConfigError::new(
                    Origin::Env(name),
                    None,
                    "value is not valid UTF-8",
                ));
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const EXAMPLE: &str = include_str!("../../config/log-capturer.toml");
    const LOKI_EXAMPLE: &str = include_str!("../../config/examples/loki.toml");
    const ES_EXAMPLE: &str = include_str!("../../config/examples/elasticsearch.toml");
    const HTTP_EXAMPLE: &str = include_str!("../../config/examples/http.toml");
    const SYSLOG_EXAMPLE: &str = include_str!("../../config/examples/syslog.toml");

    #[test]
    fn documented_example_equals_defaults() {
        let config = Config::from_toml_str(EXAMPLE, "config/log-capturer.toml").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn example_names_every_key() {
        let example: toml::Table = EXAMPLE.parse().unwrap();
        let defaults: toml::Table = Config::default().to_toml().parse().unwrap();
        assert_eq!(example, defaults, "the example must spell out every key");
    }

    /// The commented `[[rules]]` block of the example, uncommented, is one rule with
    /// every key, each at its default.
    #[test]
    fn example_rule_block_names_every_key_at_its_default() {
        let block: String = EXAMPLE
            .lines()
            .skip_while(|l| *l != "# [[rules]]")
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let config = Config::from_toml_str(&block, "the [[rules]] block").unwrap();
        assert_eq!(config.rules, vec![RuleConfig::default()]);
        let written: toml::Table = block.parse().unwrap();
        let keys = written["rules"][0].as_table().unwrap().len();
        let printed: toml::Table = config.to_toml().parse().unwrap();
        assert_eq!(
            keys,
            printed["rules"][0].as_table().unwrap().len(),
            "every key"
        );
    }

    /// The commented `tls` lines of the example are the defaults.
    #[test]
    fn example_tls_lines_are_the_defaults() {
        let lines: Vec<&str> = EXAMPLE
            .lines()
            .filter_map(|l| l.strip_prefix("# tls = "))
            .collect();
        assert_eq!(
            lines.len(),
            4,
            "the Loki, Elasticsearch, HTTP and syslog blocks"
        );
        for line in lines {
            let table: toml::Table = format!("tls = {line}").parse().unwrap();
            let tls: TlsConfig = table["tls"].clone().try_into().unwrap();
            assert!(tls.is_default(), "{line}");
        }
    }

    /// The commented syslog block of the example, uncommented, is the sink's defaults
    /// with its address.
    #[test]
    fn example_syslog_block_is_at_the_defaults() {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let start = lines
            .windows(2)
            .position(|w| w == ["# [[sinks]]", "# type = \"syslog\""])
            .expect("the syslog sink block");
        let text: String = lines[start..]
            .iter()
            .map_while(|l| l.strip_prefix("# "))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = Config::from_toml_str(&text, "the syslog sink block").unwrap();
        let SinkConfig::Syslog(syslog) = &config.sinks[0] else {
            panic!("{config:?}");
        };
        let defaults = SyslogSinkConfig {
            address: syslog.address.clone(),
            ..SyslogSinkConfig::default()
        };
        assert_eq!(syslog, &defaults);
        let keys = text
            .lines()
            .filter(|l| l.starts_with(char::is_alphabetic))
            .count();
        assert_eq!(keys, 10, "type and the 9 keys: {text}");
    }

    /// The commented HTTP sink block of the example, uncommented, is the sink's defaults
    /// with its url, and names every key (those unset by default as `# # key`).
    #[test]
    fn example_http_block_names_every_key_at_its_default() {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let start = lines
            .windows(2)
            .position(|w| w == ["# [[sinks]]", "# type = \"http\""])
            .expect("the HTTP sink block");
        let block: Vec<&str> = lines[start..]
            .iter()
            .map_while(|l| l.strip_prefix("# "))
            .collect();
        let text: String = block.iter().map(|l| format!("{l}\n")).collect();
        let config = Config::from_toml_str(&text, "the HTTP sink block").unwrap();
        let SinkConfig::Http(http) = &config.sinks[0] else {
            panic!("{config:?}");
        };
        let defaults = HttpSinkConfig {
            url: http.url.clone(),
            ..HttpSinkConfig::default()
        };
        assert_eq!(http, &defaults);
        let key = |line: &&str| {
            Some(
                line.split_once(" = ")?
                    .0
                    .trim_start_matches("# ")
                    .to_owned(),
            )
        };
        let mut written: Vec<String> = block.iter().filter_map(key).collect();
        written.sort();
        // Every option set, so that none is left out of the printed keys.
        let full = HttpSinkConfig {
            headers: [("X-A".to_owned(), Secret::new("v"))].into(),
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            bearer_token: Some(Secret::new("t")),
            tls: TlsConfig {
                server_name: "x".into(),
                ..TlsConfig::default()
            },
            ..defaults
        };
        let mut all: Vec<String> = toml::Table::try_from(full)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        all.push("type".into());
        all.sort();
        assert_eq!(written, all, "every key of the HTTP sink");
    }

    #[test]
    fn example_sink_files_are_valid() {
        for (text, name, type_name) in [
            (LOKI_EXAMPLE, "config/examples/loki.toml", "loki"),
            (
                ES_EXAMPLE,
                "config/examples/elasticsearch.toml",
                "elasticsearch",
            ),
            (HTTP_EXAMPLE, "config/examples/http.toml", "http"),
            (SYSLOG_EXAMPLE, "config/examples/syslog.toml", "syslog"),
        ] {
            let config = Config::from_toml_str(text, name).unwrap();
            let types: Vec<_> = config.sinks.iter().map(SinkConfig::type_name).collect();
            assert_eq!(types, [type_name, "file"], "{name}");
        }
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(
            Config::from_toml_str("", "empty.toml").unwrap(),
            Config::default()
        );
        assert_eq!(
            Config::from_toml_str("# nothing\n[docker]\n", "t").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn file_overrides_only_what_it_names() {
        let text = "[docker]\nread_timeout = \"250ms\"\n[pipeline]\nbatch_bytes = \"4MiB\"\n\
                    [containers]\ninclude_names = [\"web-*\"]\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let mut expected = Config::default();
        expected.docker.read_timeout = HumanDuration(Duration::from_millis(250));
        expected.pipeline.batch_bytes = ByteSize(4 << 20);
        expected.containers.include_names = parse_all(&["web-*"]);
        assert_eq!(config, expected);
    }

    #[test]
    fn validation_errors_name_the_file() {
        let err = Config::from_toml_str("[[sinks]]\ntype = \"file\"\nmax_files = 0\n", "lc.toml")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "lc.toml: sinks[0].max_files: must be at least 1"
        );
        let err = Config::from_toml_str("sinks = []\n", "lc.toml").unwrap_err();
        assert_eq!(err.key(), Some("sinks"));
    }

    #[test]
    fn to_toml_round_trips() {
        let mut config = Config::default();
        config.docker.api_version = "1.41".into();
        config.containers.initial = Initial::Tail(50);
        config.containers.read_from = ReadFrom::Api;
        config.containers.exclude_labels = parse_all(&["com.example.skip", "tier=db*"]);
        config.pipeline.batch_timeout = HumanDuration(Duration::from_micros(1500));
        config.pipeline.batch_bytes = ByteSize(10_000);
        config.server.listen = String::new();
        config.sinks.push(SinkConfig::Stdout(StdoutSinkConfig {}));
        for config in [Config::default(), config] {
            let text = config.to_toml();
            assert_eq!(
                Config::from_toml_str(&text, "printed").unwrap(),
                config,
                "{text}"
            );
        }
        let text = Config::default().to_toml();
        assert!(text.starts_with("[docker]\nhost = "), "{text}");
        assert!(text.contains("[[sinks]]\ntype = \"file\"\n"), "{text}");
        assert!(!text.contains(REDACTED), "{text}");
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lc.toml");
        std::fs::write(&path, "[pipeline]\nbatch_records = 7\n").unwrap();
        // `load_with` without variables, so a DOCKER_HOST of the test host cannot interfere.
        let loaded = Config::load_with(Some(&path), Vec::new()).unwrap();
        assert_eq!(loaded.pipeline.batch_records, 7);

        std::fs::write(&path, "[pipeline]\nbatch_records = 0\n").unwrap();
        let err = Config::load_with(Some(&path), Vec::new()).unwrap_err();
        assert_eq!(err.origin(), &Origin::File(path.display().to_string()));
        assert_eq!(err.key(), Some("pipeline.batch_records"));

        let missing = dir.path().join("missing.toml");
        let err = Config::load(Some(&missing)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn load_blames_a_bad_override_on_its_variable() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let config = Config::load_with(None, vars(&[("LOG_CAPTURER_SERVER_LISTEN", "")])).unwrap();
        assert_eq!(config.server.listen, "");

        let err =
            Config::load_with(None, vars(&[("DOCKER_HOST", "tcp://10.0.0.1:2375")])).unwrap_err();
        assert_eq!(err.origin(), &Origin::Env("DOCKER_HOST".into()));
        assert!(
            err.to_string()
                .starts_with("environment variable DOCKER_HOST: docker.host: "),
            "{err}"
        );

        let err = Config::load_with(None, vars(&[("LOG_CAPTURER_DOCKER_READ_TIMEOUT", "0s")]))
            .unwrap_err();
        assert_eq!(
            err.origin(),
            &Origin::Env("LOG_CAPTURER_DOCKER_READ_TIMEOUT".into())
        );
    }
}
