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
}
