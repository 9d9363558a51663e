//! Keeping credentials out of printed configuration. A sink key that holds a
//! credential is typed [`Secret`], whose `Debug` and `Serialize` print `"<redacted>"`;
//! as a second line of defence, `Config::to_toml` passes its output through
//! [`redact`], which blanks any key named like a credential whatever its type.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What a credential prints as.
pub const REDACTED: &str = "<redacted>";

/// Key names that always hold credentials (Loki and Elasticsearch sinks).
pub const SECRET_KEYS: [&str; 4] = ["password", "bearer_token", "api_key", "token"];

/// Whether a config key holds a credential and must never be printed.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
        || ["_password", "_token", "_secret"]
            .iter()
            .any(|suffix| key.ends_with(suffix))
}

/// A credential read from the config file. Only [`Secret::expose`] gives the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Replaces the value of every credential-named key in `table`, at any depth, with
/// `"<redacted>"`. Returns whether anything was replaced.
pub fn redact(table: &mut toml::Table) -> bool {
    let mut changed = false;
    for (key, value) in table.iter_mut() {
        if is_secret_key(key) {
            if value.as_str() != Some(REDACTED) {
                *value = toml::Value::String(REDACTED.to_owned());
                changed = true;
            }
        } else {
            changed |= redact_value(value);
        }
    }
    changed
}

fn redact_value(value: &mut toml::Value) -> bool {
    match value {
        toml::Value::Table(table) => redact(table),
        toml::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| redact_value(item) | changed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        let table = toml::Table::try_from(std::collections::BTreeMap::from([("password", secret)]))
            .unwrap();
        assert_eq!(table["password"].as_str(), Some(REDACTED));
        let parsed: std::collections::BTreeMap<String, Secret> =
            toml::from_str("password = \"pw\"").unwrap();
        assert_eq!(parsed["password"].expose(), "pw");
    }

    #[test]
    fn redact_blanks_credential_keys_at_any_depth() {
        let text = "[[sinks]]\ntype = \"loki\"\nusername = \"u\"\npassword = \"p\"\n\
                    [sinks.auth]\nbearer_token = \"t\"\n[[sinks]]\napi_key = \"k\"\nindex = \"logs\"\n\
                    [other]\nclient_secret = \"s\"\ntoken = 5\n";
        let mut table: toml::Table = text.parse().unwrap();
        assert!(redact(&mut table));
        let shown = toml::to_string(&table).unwrap();
        for leaked in ["\"p\"", "\"t\"", "\"k\"", "\"s\"", "5"] {
            assert!(!shown.contains(leaked), "{leaked} leaked in {shown}");
        }
        assert!(
            shown.contains("username = \"u\"") && shown.contains("index = \"logs\""),
            "{shown}"
        );
        assert!(!redact(&mut table), "already redacted");
    }

    /// The credentials of both HTTP sinks, through `to_toml` and `Debug` of the whole config.
    #[test]
    fn credentials_never_print() {
        use crate::config::{Config, ElasticsearchSinkConfig, LokiSinkConfig, SinkConfig};

        let loki = LokiSinkConfig {
            url: "http://loki:3100".into(),
            username: Some("loki-user".into()),
            password: Some(Secret::new("loki-pw-1")),
            ..LokiSinkConfig::default()
        };
        let es = ElasticsearchSinkConfig {
            url: "http://es:9200".into(),
            api_key: Some(Secret::new("es-key-2")),
            ..ElasticsearchSinkConfig::default()
        };
        let mut config = Config::default();
        config.sinks.push(SinkConfig::Loki(loki));
        config.sinks.push(SinkConfig::Elasticsearch(es));
        config.sinks.push(SinkConfig::Loki(LokiSinkConfig {
            url: "http://loki-2:3100".into(),
            bearer_token: Some(Secret::new("loki-tok-3")),
            ..LokiSinkConfig::default()
        }));
        config
            .sinks
            .push(SinkConfig::Elasticsearch(ElasticsearchSinkConfig {
                url: "http://es-2:9200".into(),
                username: Some("es-user".into()),
                password: Some(Secret::new("es-pw-4")),
                ..ElasticsearchSinkConfig::default()
            }));
        config.validate().unwrap();
        let text = config.to_toml();
        let debug = format!("{config:?} {config:#?}");
        for secret in ["loki-pw-1", "es-key-2", "loki-tok-3", "es-pw-4"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert_eq!(text.matches(REDACTED).count(), 4, "{text}");
        assert!(text.contains("username = \"loki-user\""), "{text}");

        // Documented: credentials round-trip to the redacted text, all else is equal.
        let printed = Config::from_toml_str(&text, "printed").unwrap();
        let redacted = || Some(Secret::new(REDACTED));
        for sink in &mut config.sinks {
            match sink {
                SinkConfig::Loki(l) if l.password.is_some() => l.password = redacted(),
                SinkConfig::Loki(l) => l.bearer_token = redacted(),
                SinkConfig::Elasticsearch(e) if e.password.is_some() => e.password = redacted(),
                SinkConfig::Elasticsearch(e) => e.api_key = redacted(),
                _ => {}
            }
        }
        assert_eq!(printed, config);
    }
}
