//! The glob patterns of the `[containers]` filters (names, labels, images, record
//! labels), in the dialect of the `glob` crate that `files.paths` uses too: `*`, `?`,
//! `[abc]`, `[a-z]`, `[!abc]`, and `[*]` for a literal `*`. `*` and `?` also match `/`
//! (image names such as `library/nginx:1.27`). Compiled once, when the config is read:
//! an invalid pattern is a config error naming its key.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::{deserialize_from_str, InvalidValue};

/// A compiled glob; prints as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(glob::Pattern);

impl Glob {
    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.0.matches(text)
    }
}

impl FromStr for Glob {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        glob::Pattern::new(text)
            .map(Glob)
            .map_err(|e| InvalidValue(format!("{text:?} is not a valid glob: {e}")))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "a string: a glob such as \"web-*\"")
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A label filter: `"key"` (the label is present) or `"key=glob"` (its value matches).
/// The key is literal; everything after the first `=` is the glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<Glob>,
}

impl LabelFilter {
    /// Whether `labels` has the key (with a matching value, when there is a glob).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (Some(value), Some(glob)) => glob.matches(value),
            (found, None) => found.is_some(),
            (None, Some(_)) => false,
        }
    }
}

impl FromStr for LabelFilter {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        Ok(match text.split_once('=') {
            Some((key, glob)) => LabelFilter {
                key: key.to_owned(),
                value: Some(glob.parse()?),
            },
            None => LabelFilter {
                key: text.to_owned(),
                value: None,
            },
        })
    }
}

impl fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        match &self.value {
            Some(glob) => write!(f, "={glob}"),
            None => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for LabelFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(
            deserializer,
            "a string: a label filter, \"key\" or \"key=glob\"",
        )
    }
}

impl Serialize for LabelFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses each of `patterns`, for tests and defaults written in code.
#[cfg(test)]
pub(crate) fn parse_all<T: FromStr>(patterns: &[&str]) -> Vec<T>
where
    T::Err: fmt::Debug,
{
    patterns
        .iter()
        .map(|p| p.parse().expect("a valid pattern"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str, text: &str) -> bool {
        pattern.parse::<Glob>().unwrap().matches(text)
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("web-*", "web-1"));
        assert!(!glob("web-*", "db-1"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*a*b", "xxaxxbxx"));
        assert!(glob("exact", "exact"));
        assert!(glob("é*", "éa"));
        assert!(glob("*nginx:*", "library/nginx:1.27"), "* matches /");
        assert!(glob("web-[0-9]", "web-7"));
        assert!(!glob("web-[!0-9]", "web-7"));
        assert!(glob("a[*]", "a*") && !glob("a[*]", "ab"));
    }

    #[test]
    fn invalid_globs_are_errors() {
        for bad in ["web-[", "a**"] {
            let err = bad.parse::<Glob>().unwrap_err();
            assert!(err.0.contains("not a valid glob"), "{err}");
        }
        assert!("tier=[".parse::<LabelFilter>().is_err());
    }

    #[test]
    fn label_filters() {
        let labels = BTreeMap::from([("tier".to_owned(), "front=end".to_owned())]);
        for (filter, matches) in [
            ("tier", true),
            ("tier=front*", true),
            ("tier=front=end", true),
            ("tier=back*", false),
            ("app", false),
            ("app=*", false),
        ] {
            let parsed: LabelFilter = filter.parse().unwrap();
            assert_eq!(parsed.matches(&labels), matches, "{filter}");
            assert_eq!(parsed.to_string(), filter, "prints as written");
        }
    }
}
