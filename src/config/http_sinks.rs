//! The Loki, Elasticsearch and generic HTTP sinks' entries and their defaults (those of
//! `config/log-capturer.toml`). Credentials (and the HTTP sink's header values) are typed
//! [`Secret`], so neither `Debug` nor `--check-config` shows them, and optional keys that
//! are unset are left out of `--check-config` output rather than printed empty.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::sections::secs;
use super::units::{deserialize_from_str, HumanDuration, InvalidValue};
use super::{Secret, TlsConfig};

/// Grafana Loki: batches pushed to `<url>/loki/api/v1/push`, one stream per distinct
/// label set. `Default` has an empty `url`, which validation rejects: the file must name
/// one. Validation guarantees at most one of basic auth and `bearer_token`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LokiSinkConfig {
    /// Base URL, `http(s)://host[:port][/prefix]`, possibly ending in `/`; the sink
    /// appends the push path.
    pub url: String,
    /// Sent as `X-Scope-OrgID`, for multi-tenant Loki.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    /// Label name -> template (see [`parse_template`](super::parse_template)). A file's
    /// `labels` table replaces the default set as a whole.
    pub labels: BTreeMap<String, String>,
    /// Loki 3 structured metadata: name -> template, sent with each entry (empty values
    /// left out). Empty by default.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub structured_metadata: BTreeMap<String, String>,
    pub line_format: LineFormat,
    /// Gzip the request body (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Per request.
    pub timeout: HumanDuration,
    /// HTTPS: extra CA, client certificate, name to verify (README, Sinks).
    #[serde(skip_serializing_if = "TlsConfig::is_default")]
    pub tls: TlsConfig,
}

impl Default for LokiSinkConfig {
    fn default() -> Self {
        let labels = [
            ("job", "docker"),
            ("container", "{container_name}"),
            ("stream", "{stream}"),
            ("host", "{host}"),
        ];
        LokiSinkConfig {
            url: String::new(),
            tenant_id: None,
            username: None,
            password: None,
            bearer_token: None,
            labels: labels
                .into_iter()
                .map(|(name, template)| (name.to_owned(), template.to_owned()))
                .collect(),
            structured_metadata: BTreeMap::new(),
            line_format: LineFormat::Message,
            gzip: true,
            timeout: secs(10),
            tls: TlsConfig::default(),
        }
    }
}

/// What a Loki log line holds: the record's message, or the whole record as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LineFormat {
    #[default]
    Message,
    Json,
}

impl FromStr for LineFormat {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text {
            "message" => Ok(LineFormat::Message),
            "json" => Ok(LineFormat::Json),
            _ => Err(InvalidValue(format!(
                "invalid line_format {text:?}: expected \"message\" or \"json\""
            ))),
        }
    }
}

impl fmt::Display for LineFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFormat::Message => "message",
            LineFormat::Json => "json",
        })
    }
}

impl<'de> Deserialize<'de> for LineFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "\"message\" or \"json\"")
    }
}

impl Serialize for LineFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Elasticsearch: batches sent to `<url>/_bulk`, each record to the index named by
/// `index` (see [`parse_index_pattern`](super::parse_index_pattern)) at its time, UTC.
/// `Default` has an empty `url`, which validation rejects. Validation guarantees at
/// most one of basic auth and `api_key`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    /// Base URL, `http(s)://host[:port][/prefix]`, possibly ending in `/`.
    pub url: String,
    pub index: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Sent as `Authorization: ApiKey <api_key>` (the base64 "encoded" form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Per request.
    pub timeout: HumanDuration,
    /// HTTPS: extra CA, client certificate, name to verify (README, Sinks).
    #[serde(skip_serializing_if = "TlsConfig::is_default")]
    pub tls: TlsConfig,
}

impl Default for ElasticsearchSinkConfig {
    fn default() -> Self {
        ElasticsearchSinkConfig {
            url: String::new(),
            index: "logs-%Y.%m.%d".to_owned(),
            username: None,
            password: None,
            api_key: None,
            timeout: secs(10),
            tls: TlsConfig::default(),
        }
    }
}

/// Any HTTP endpoint taking JSON records: each batch POSTed to `url` as is (query
/// included), as newline-delimited JSON or one JSON array, the records exactly as the file
/// sink writes them. `Default` has an empty `url`, which validation rejects. Validation
/// guarantees at most one of basic auth and `bearer_token`, and header names that are
/// HTTP tokens and not set by the sink itself.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The full endpoint, `http(s)://host[:port][/path][?query]`.
    pub url: String,
    pub format: BodyFormat,
    /// Gzip the request body (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Extra request headers, name -> value. The values often are API keys, so all of
    /// them are secrets: `Debug` and `--check-config` show the names only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    /// Per request.
    pub timeout: HumanDuration,
    /// HTTPS: extra CA, client certificate, name to verify (README, Sinks).
    #[serde(skip_serializing_if = "TlsConfig::is_default")]
    pub tls: TlsConfig,
}

impl Default for HttpSinkConfig {
    fn default() -> Self {
        HttpSinkConfig {
            url: String::new(),
            format: BodyFormat::Ndjson,
            gzip: true,
            headers: BTreeMap::new(),
            username: None,
            password: None,
            bearer_token: None,
            timeout: secs(10),
            tls: TlsConfig::default(),
        }
    }
}

/// The body of an HTTP sink's request: one JSON record per line, or a JSON array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BodyFormat {
    #[default]
    Ndjson,
    JsonArray,
}

impl FromStr for BodyFormat {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text {
            "ndjson" => Ok(BodyFormat::Ndjson),
            "json_array" => Ok(BodyFormat::JsonArray),
            _ => Err(InvalidValue(format!(
                "invalid format {text:?}: expected \"ndjson\" or \"json_array\""
            ))),
        }
    }
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyFormat::Ndjson => "ndjson",
            BodyFormat::JsonArray => "json_array",
        })
    }
}

impl<'de> Deserialize<'de> for BodyFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "\"ndjson\" or \"json_array\"")
    }
}

impl Serialize for BodyFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, SinkConfig, REDACTED};

    #[test]
    fn line_format_round_trips() {
        for format in [LineFormat::Message, LineFormat::Json] {
            assert_eq!(format.to_string().parse(), Ok(format));
        }
        let err = "text".parse::<LineFormat>().unwrap_err();
        assert!(err.0.contains("\"message\" or \"json\""), "{err}");
    }

    #[test]
    fn debug_never_shows_a_credential() {
        let loki = LokiSinkConfig {
            password: Some(Secret::new("loki-pw-1")),
            bearer_token: Some(Secret::new("loki-tok-2")),
            ..LokiSinkConfig::default()
        };
        let es = ElasticsearchSinkConfig {
            password: Some(Secret::new("es-pw-3")),
            api_key: Some(Secret::new("es-key-4")),
            ..ElasticsearchSinkConfig::default()
        };
        let shown = format!(
            "{:?} {:#?}",
            SinkConfig::Loki(loki),
            SinkConfig::Elasticsearch(es)
        );
        for secret in ["loki-pw-1", "loki-tok-2", "es-pw-3", "es-key-4"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn loki_sink_with_only_a_url_has_the_defaults() {
        let text = "[[sinks]]\ntype = \"loki\"\nurl = \"http://loki:3100\"\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let SinkConfig::Loki(loki) = &config.sinks[0] else {
            panic!("{config:?}");
        };
        let labels = [
            ("container", "{container_name}"),
            ("host", "{host}"),
            ("job", "docker"),
            ("stream", "{stream}"),
        ];
        let expected = LokiSinkConfig {
            url: "http://loki:3100".into(),
            tenant_id: None,
            username: None,
            password: None,
            bearer_token: None,
            labels: labels.map(|(k, v)| (k.into(), v.into())).into(),
            structured_metadata: BTreeMap::new(),
            line_format: LineFormat::Message,
            gzip: true,
            timeout: HumanDuration(Duration::from_secs(10)),
            tls: TlsConfig::default(),
        };
        assert_eq!(loki, &expected);
        assert_eq!(config.sinks.len(), 1, "the default file sink is replaced");
    }

    #[test]
    fn elasticsearch_sink_with_only_a_url_has_the_defaults() {
        let text = "[[sinks]]\ntype = \"elasticsearch\"\nurl = \"https://es:9200\"\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let expected = ElasticsearchSinkConfig {
            url: "https://es:9200".into(),
            index: "logs-%Y.%m.%d".into(),
            username: None,
            password: None,
            api_key: None,
            timeout: HumanDuration(Duration::from_secs(10)),
            tls: TlsConfig::default(),
        };
        assert_eq!(config.sinks, [SinkConfig::Elasticsearch(expected)]);
    }

    #[test]
    fn http_sinks_read_every_key() {
        let text = "[[sinks]]\ntype = \"stdout\"\n[[sinks]]\ntype = \"loki\"\n\
                    url = \"https://loki/\"\ntenant_id = \"t1\"\nbearer_token = \"tok\"\n\
                    line_format = \"json\"\ngzip = false\ntimeout = \"2s\"\n\
                    labels = { app = \"{labels.app}\" }\n\
                    tls = { server_name = \"loki.internal\" }\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let SinkConfig::Loki(loki) = &config.sinks[1] else {
            panic!("{config:?}");
        };
        assert_eq!(loki.tenant_id.as_deref(), Some("t1"));
        assert_eq!(loki.bearer_token.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(loki.labels.len(), 1, "labels replace the default set");
        assert_eq!((loki.line_format, loki.gzip), (LineFormat::Json, false));
        assert_eq!(loki.timeout.get(), Duration::from_secs(2));
        assert_eq!(loki.tls.server_name(), Some("loki.internal"));
    }

    fn loki_and_es(loki: LokiSinkConfig, es: ElasticsearchSinkConfig) -> Config {
        let mut config = Config::default();
        config.sinks.push(SinkConfig::Loki(loki));
        config.sinks.push(SinkConfig::Elasticsearch(es));
        config
    }

    #[test]
    fn to_toml_round_trips_http_sinks_without_credentials() {
        let loki = LokiSinkConfig {
            url: "http://loki:3100/".into(),
            tenant_id: Some("team-a".into()),
            labels: [("app".into(), "{{{labels.com.example.app}}}".into())].into(),
            line_format: LineFormat::Json,
            gzip: false,
            timeout: secs(3),
            ..LokiSinkConfig::default()
        };
        let es = ElasticsearchSinkConfig {
            url: "https://es:9200".into(),
            index: "logs-docker-%Y.%m.%d-%H".into(),
            ..ElasticsearchSinkConfig::default()
        };
        let defaults = LokiSinkConfig {
            url: "http://loki:3100".into(),
            ..LokiSinkConfig::default()
        };
        let config = loki_and_es(loki, es);
        let mut with_defaults = config.clone();
        with_defaults.sinks.push(SinkConfig::Loki(defaults));
        for config in [config, with_defaults] {
            let text = config.to_toml();
            assert_eq!(
                Config::from_toml_str(&text, "printed"),
                Ok(config),
                "{text}"
            );
        }
    }

    #[test]
    fn to_toml_prints_every_key_and_omits_unset_options() {
        let loki = LokiSinkConfig {
            url: "http://loki:3100".into(),
            ..LokiSinkConfig::default()
        };
        let es = ElasticsearchSinkConfig {
            url: "http://es:9200".into(),
            ..ElasticsearchSinkConfig::default()
        };
        let text = loki_and_es(loki, es).to_toml();
        let printed: toml::Table = text.parse().expect(&text);
        let keys = |index: usize| -> Vec<String> {
            printed["sinks"][index]
                .as_table()
                .map(|t| {
                    let mut keys: Vec<String> = t.keys().cloned().collect();
                    keys.sort();
                    keys
                })
                .unwrap_or_default()
        };
        let loki_keys = ["gzip", "labels", "line_format", "timeout", "type", "url"];
        assert_eq!(keys(1), loki_keys);
        assert_eq!(keys(2), ["index", "timeout", "type", "url"]);
        assert_eq!(
            printed["sinks"][1]["labels"]["container"].as_str(),
            Some("{container_name}")
        );
        assert_eq!(printed["sinks"][2]["index"].as_str(), Some("logs-%Y.%m.%d"));
    }

    #[test]
    fn body_format_round_trips() {
        for format in [BodyFormat::Ndjson, BodyFormat::JsonArray] {
            assert_eq!(format.to_string().parse(), Ok(format));
        }
        let err = "json".parse::<BodyFormat>().unwrap_err();
        assert!(err.0.contains("\"ndjson\" or \"json_array\""), "{err}");
    }

    #[test]
    fn http_sink_with_only_a_url_has_the_defaults() {
        let text = "[[sinks]]\ntype = \"http\"\nurl = \"http://intake:9428/insert?a=1\"\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let expected = HttpSinkConfig {
            url: "http://intake:9428/insert?a=1".into(),
            format: BodyFormat::Ndjson,
            gzip: true,
            headers: BTreeMap::new(),
            username: None,
            password: None,
            bearer_token: None,
            timeout: HumanDuration(Duration::from_secs(10)),
            tls: TlsConfig::default(),
        };
        assert_eq!(config.sinks, [SinkConfig::Http(expected)]);
    }

    #[test]
    fn http_sink_reads_every_key() {
        let text = "[[sinks]]\ntype = \"http\"\nurl = \"https://intake/\"\n\
                    format = \"json_array\"\ngzip = false\ntimeout = \"3s\"\n\
                    headers = { \"X-Api-Key\" = \"k3y\", X-Org = \"o\" }\n\
                    username = \"u\"\npassword = \"p\"\n\
                    tls = { server_name = \"intake.internal\" }\n";
        let config = Config::from_toml_str(text, "t").unwrap();
        let SinkConfig::Http(http) = &config.sinks[0] else {
            panic!("{config:?}");
        };
        assert_eq!((http.format, http.gzip), (BodyFormat::JsonArray, false));
        let headers: Vec<(&str, &str)> = http
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("X-Api-Key", "k3y"), ("X-Org", "o")]);
        assert_eq!(http.username.as_deref(), Some("u"));
        assert_eq!(http.password.as_ref().map(Secret::expose), Some("p"));
        assert_eq!(http.timeout.get(), Duration::from_secs(3));
        assert_eq!(http.tls.server_name(), Some("intake.internal"));
    }

    /// Header values may be API keys: `Debug` and `--check-config` show the names only,
    /// and what `--check-config` prints parses back, values as `<redacted>`.
    #[test]
    fn http_sink_header_values_and_credentials_never_print() {
        let http = HttpSinkConfig {
            url: "https://intake/ingest".into(),
            headers: [
                ("X-Api-Key".to_owned(), Secret::new("hdr-val-1")),
                ("X-Org".to_owned(), Secret::new("hdr-val-2")),
            ]
            .into(),
            bearer_token: Some(Secret::new("http-tok-3")),
            ..HttpSinkConfig::default()
        };
        let mut config = Config::default();
        config.sinks.push(SinkConfig::Http(http));
        config.validate().unwrap();
        let text = config.to_toml();
        let debug = format!("{config:?} {config:#?}");
        for secret in ["hdr-val-1", "hdr-val-2", "http-tok-3"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("X-Api-Key"), "{debug}");
        let printed: toml::Table = text.parse().expect(&text);
        let sink = &printed["sinks"][1];
        assert_eq!(sink["headers"]["X-Api-Key"].as_str(), Some(REDACTED));
        assert_eq!(sink["bearer_token"].as_str(), Some(REDACTED));
        let mut keys: Vec<&String> = sink.as_table().map(|t| t.keys().collect()).unwrap();
        keys.sort();
        let expected = [
            "bearer_token",
            "format",
            "gzip",
            "headers",
            "timeout",
            "type",
            "url",
        ];
        assert_eq!(keys, expected, "unset options left out");
        let back = Config::from_toml_str(&text, "printed").unwrap();
        let SinkConfig::Http(back) = &back.sinks[1] else {
            panic!("{back:?}");
        };
        assert!(back.headers.values().all(|v| v.expose() == REDACTED));
        assert_eq!(back.format, BodyFormat::Ndjson);
    }
}
