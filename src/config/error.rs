//! `ConfigError`: what is wrong with the configuration, at which dotted key
//! (`docker.read_timeout`, `sinks[0].max_files`) and where the value came from (a
//! file, or an environment variable), so an operator can fix it without guessing.

use std::fmt;

/// Where an offending value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Not known: `Config::validate` on a value built in code.
    Unknown,
    /// A config file (or another named TOML text), as given to the loader.
    File(String),
    /// An environment variable, by name.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Unknown => f.write_str("config"),
            Origin::File(name) => f.write_str(name),
            Origin::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// A configuration error; `Display` reads `<origin>: <key>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    origin: Origin,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    pub(super) fn new(origin: Origin, key: Option<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin,
            key,
            message: message.into(),
        }
    }

    /// An error about `key`, origin not known yet (see `or_origin`).
    pub(super) fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::new(Origin::Unknown, Some(key.into()), message)
    }

    /// Sets the origin unless one is already known.
    pub(super) fn or_origin(mut self, origin: impl FnOnce() -> Origin) -> Self {
        if self.origin == Origin::Unknown {
            self.origin = origin();
        }
        self
    }

    /// Where the offending value came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The dotted key at fault (`docker.read_timeout`, `sinks[0].max_files`), if any:
    /// a TOML syntax error or an unreadable file names no key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong, without origin and key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_origin_and_key() {
        let err = ConfigError::at("docker.read_timeout", "must be greater than 0");
        assert_eq!(
            err.to_string(),
            "config: docker.read_timeout: must be greater than 0"
        );
        let err = err.or_origin(|| Origin::File("etc/lc.toml".into()));
        assert_eq!(
            err.to_string(),
            "etc/lc.toml: docker.read_timeout: must be greater than 0"
        );
        let err = err.or_origin(|| Origin::Env("X".into()));
        assert_eq!(err.origin(), &Origin::File("etc/lc.toml".into()));
        let env = ConfigError::new(Origin::Env("LOG_CAPTURER_X".into()), None, "bad");
        assert_eq!(env.to_string(), "environment variable LOG_CAPTURER_X: bad");
    }
}
