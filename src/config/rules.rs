//! `[[rules]]`: how the lines of a container or host file are shaped into records
//! (multiline joining, parsing into fields, drop and keep). The first rule whose selectors
//! all match applies; container labels (`log-capturer.multiline`, ...) override its keys
//! for one container (README, Rules). Regexes are compiled here, once, when the config
//! is read, so an invalid one is a config error naming its key; the same parsers read
//! the label values at run time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::{deserialize_from_str, HumanDuration, InvalidValue};
use super::{Glob, LabelFilter};

/// One `[[rules]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    pub match_names: Vec<Glob>,
    pub match_labels: Vec<LabelFilter>,
    pub match_images: Vec<Glob>,
    /// Globs on host-file paths (`files.paths`).
    pub match_paths: Vec<Glob>,
    pub multiline: Multiline,
    /// With `multiline = "start"`: a line matching it begins a record.
    pub multiline_start: Pattern,
    pub multiline_max_lines: usize,
    pub multiline_timeout: HumanDuration,
    pub parse: ParseMode,
    /// With `parse = "regex"`: its named groups become fields.
    pub parse_regex: Pattern,
    /// A record whose message matches one of these is dropped.
    pub drop: Vec<Pattern>,
    /// When not empty, only records matching one of these are kept.
    pub keep: Vec<Pattern>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            match_names: Vec::new(),
            match_labels: Vec::new(),
            match_images: Vec::new(),
            match_paths: Vec::new(),
            multiline: Multiline::None,
            multiline_start: Pattern::default(),
            multiline_max_lines: 500,
            multiline_timeout: super::sections::secs(1),
            parse: ParseMode::None,
            parse_regex: Pattern::default(),
            drop: Vec::new(),
            keep: Vec::new(),
        }
    }
}

impl RuleConfig {
    /// Whether the rule names any container selector.
    pub fn selects_containers(&self) -> bool {
        !(self.match_names.is_empty()
            && self.match_labels.is_empty()
            && self.match_images.is_empty())
    }

    /// Whether the rule does nothing to a record (no multiline, no parse, no drop/keep).
    pub fn is_noop(&self) -> bool {
        self.multiline == Multiline::None
            && self.parse == ParseMode::None
            && self.drop.is_empty()
            && self.keep.is_empty()
    }

    /// Checks that the keys fit together; `key` makes the dotted key of a field.
    pub fn check(&self, key: &dyn Fn(&str) -> String) -> Result<(), (String, String)> {
        if self.multiline == Multiline::Start && self.multiline_start.get().is_none() {
            return Err((
                key("multiline_start"),
                "required with multiline = \"start\": the regex a record's first line matches"
                    .to_owned(),
            ));
        }
        if self.multiline_max_lines == 0 {
            return Err((key("multiline_max_lines"), "must be at least 1".to_owned()));
        }
        if self.multiline_timeout.get().is_zero() {
            return Err((
                key("multiline_timeout"),
                "must be greater than 0".to_owned(),
            ));
        }
        if self.parse == ParseMode::Regex {
            match self.parse_regex.get() {
                None => {
                    return Err((
                        key("parse_regex"),
                        "required with parse = \"regex\": a regex with named groups".to_owned(),
                    ))
                }
                Some(re) if re.capture_names().flatten().next().is_none() => {
                    return Err((
                        key("parse_regex"),
                        format!(
                            "{:?} has no named group (?P<name>...): no field to make",
                            re.as_str()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        for (name, list) in [("drop", &self.drop), ("keep", &self.keep)] {
            if let Some(i) = list.iter().position(|p| p.get().is_none()) {
                return Err((
                    format!("{}[{i}]", key(name)),
                    "must not be empty".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

/// `multiline`: which lines continue a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Multiline {
    #[default]
    None,
    /// The continuation lines of the Java, Python and Go presets, and nothing else.
    Auto,
    Java,
    Python,
    Go,
    /// Records begin at lines matching `multiline_start`.
    Start,
}

impl FromStr for Multiline {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        Ok(match text {
            "none" => Multiline::None,
            "auto" => Multiline::Auto,
            "java" => Multiline::Java,
            "python" => Multiline::Python,
            "go" => Multiline::Go,
            "start" => Multiline::Start,
            _ => {
                return Err(InvalidValue(format!(
                    "invalid multiline {text:?}: expected \"none\", \"auto\", \"java\", \"python\", \"go\" or \"start\""
                )))
            }
        })
    }
}

impl fmt::Display for Multiline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Multiline::None => "none",
            Multiline::Auto => "auto",
            Multiline::Java => "java",
            Multiline::Python => "python",
            Multiline::Go => "go",
            Multiline::Start => "start",
        })
    }
}

/// `parse`: what a message is parsed as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParseMode {
    #[default]
    None,
    Json,
    Logfmt,
    Regex,
}

impl FromStr for ParseMode {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        Ok(match text {
            "none" => ParseMode::None,
            "json" => ParseMode::Json,
            "logfmt" => ParseMode::Logfmt,
            "regex" => ParseMode::Regex,
            _ => {
                return Err(InvalidValue(format!(
                    "invalid parse {text:?}: expected \"none\", \"json\", \"logfmt\" or \"regex\""
                )))
            }
        })
    }
}

impl fmt::Display for ParseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseMode::None => "none",
            ParseMode::Json => "json",
            ParseMode::Logfmt => "logfmt",
            ParseMode::Regex => "regex",
        })
    }
}

/// A regex (the `regex` crate's syntax), compiled when read; `""` is no regex.
#[derive(Clone, Debug, Default)]
pub struct Pattern(Option<regex::Regex>);

impl Pattern {
    pub fn get(&self) -> Option<&regex::Regex> {
        self.0.as_ref()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", regex::Regex::as_str)
    }
}

/// Bound of a compiled regex (the `regex` crate's default is 10 MiB; a rule applies to
/// every line of a container, a huge automaton is a mistake).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl FromStr for Pattern {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        if text.is_empty() {
            return Ok(Pattern(None));
        }
        regex::RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(|re| Pattern(Some(re)))
            .map_err(|e| InvalidValue(format!("{text:?} is not a valid regex: {e}")))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "a string: a regex such as \"^\\\\d{4}-\"")
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Multiline {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(
            deserializer,
            "\"none\", \"auto\", \"java\", \"python\", \"go\" or \"start\"",
        )
    }
}

impl Serialize for Multiline {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ParseMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer, "\"none\", \"json\", \"logfmt\" or \"regex\"")
    }
}

impl Serialize for ParseMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> String {
        format!("rules[0].{k}")
    }

    #[test]
    fn keys_that_do_not_fit_together_are_named() {
        let start = RuleConfig {
            multiline: Multiline::Start,
            ..RuleConfig::default()
        };
        assert_eq!(start.check(&key).unwrap_err().0, "rules[0].multiline_start");
        let regex = RuleConfig {
            parse: ParseMode::Regex,
            parse_regex: "^(\\d+) (.*)$".parse().unwrap(),
            ..RuleConfig::default()
        };
        let (k, message) = regex.check(&key).unwrap_err();
        assert_eq!(k, "rules[0].parse_regex");
        assert!(message.contains("no named group"), "{message}");
        let drop = RuleConfig {
            drop: vec!["x".parse().unwrap(), "".parse().unwrap()],
            ..RuleConfig::default()
        };
        assert_eq!(drop.check(&key).unwrap_err().0, "rules[0].drop[1]");
        assert!(RuleConfig::default().check(&key).is_ok());
        assert!(RuleConfig::default().is_noop());
    }

    #[test]
    fn rules_parse_print_and_blame_their_keys() {
        use crate::config::Config;
        let text = "[[rules]]\nmatch_names = [\"api-*\"]\nmultiline = \"java\"\n\
                    parse = \"json\"\ndrop = [\"GET /health\"]\n\
                    [[rules]]\nmatch_paths = [\"/var/log/*.log\"]\nmultiline = \"start\"\n\
                    multiline_start = \"^\\\\d{4}-\"\n";
        let config = Config::from_toml_str(text, "t.toml").unwrap();
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.rules[0].multiline, Multiline::Java);
        assert_eq!(config.rules[0].drop[0].as_str(), "GET /health");
        assert!(config.rules[1].match_paths[0].matches("/var/log/app.log"));
        assert_eq!(config.rules[1].multiline_start.as_str(), "^\\d{4}-");
        let printed = config.to_toml();
        assert_eq!(
            Config::from_toml_str(&printed, "p.toml").unwrap(),
            config,
            "{printed}"
        );

        let bad = |text: &str, key: &str, needle: &str| {
            let err = Config::from_toml_str(text, "t.toml").unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        };
        bad(
            "[[rules]]\nmultiline = \"perl\"\n",
            "rules[0].multiline",
            "\"auto\"",
        );
        bad(
            "[[rules]]\n[[rules]]\ndrop = [\"(\"]\n",
            "rules[1].drop",
            "not a valid regex",
        );
        bad(
            "[[rules]]\nmultiline = \"start\"\n",
            "rules[0].multiline_start",
            "required",
        );
        bad(
            "[[rules]]\nmatch_nmes = []\n",
            "rules[0].match_nmes",
            "unknown key",
        );
        bad("rules = 3\n", "rules", "array of tables");
    }

    #[test]
    fn values_round_trip_and_bad_ones_are_explained() {
        for m in ["none", "auto", "java", "python", "go", "start"] {
            assert_eq!(m.parse::<Multiline>().unwrap().to_string(), m);
        }
        for p in ["none", "json", "logfmt", "regex"] {
            assert_eq!(p.parse::<ParseMode>().unwrap().to_string(), p);
        }
        assert!("Java"
            .parse::<Multiline>()
            .unwrap_err()
            .0
            .contains("\"auto\""));
        let err = "([".parse::<Pattern>().unwrap_err();
        assert!(err.0.contains("not a valid regex"), "{}", err.0);
        assert_eq!("a+".parse::<Pattern>().unwrap().as_str(), "a+");
    }
}
