//! Which rule applies to a container or a host file, and what it does, compiled: the
//! first `[[rules]]` entry whose selectors all match, with a container's
//! `log-capturer.*` labels overriding its keys (README, Rules). Resolved once, when a
//! follower starts; a container or file that no rule shapes gets no stage at all, so its
//! lines cost nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::detect::Preset;
use super::parse::Parser;
use crate::capture::record::Fields;
use crate::config::{InvalidValue, Multiline, ParseMode, Pattern, RuleConfig};

/// The labels that override a rule's keys, and the key each overrides.
pub const LABELS: [(&str, &str); 5] = [
    ("log-capturer.multiline", "multiline"),
    ("log-capturer.multiline_start", "multiline_start"),
    ("log-capturer.parse", "parse"),
    ("log-capturer.parse_regex", "parse_regex"),
    ("log-capturer.drop", "drop"),
];

/// What is done to the lines of one container or file.
#[derive(Debug)]
pub struct Shaping {
    pub multiline: Option<MultilineSpec>,
    pub parser: Option<Parser>,
    pub drop: Vec<Regex>,
    pub keep: Vec<Regex>,
}

impl Shaping {
    /// What the rule makes of a record's message: its fields (when parsed), and whether it
    /// is dropped (by a `drop` regex, or by matching no `keep` regex). A dropped message is
    /// not parsed; a message that does not parse counts in `parse_errors`.
    pub fn shape(&self, message: &str, parse_errors: &prometheus::IntCounter) -> (Fields, bool) {
        let dropped = self.drop.iter().any(|re| re.is_match(message))
            || (!self.keep.is_empty() && !self.keep.iter().any(|re| re.is_match(message)));
        if dropped {
            return (Fields::None, true);
        }
        let fields = match &self.parser {
            None => return (Fields::None, false),
            // A one-line JSON object is its own fields: checked, not copied.
            Some(Parser::Json) if json_on_one_line(message) => Fields::Message,
            Some(p) => p
                .parse(message)
                .map_or(Fields::None, |map| Fields::of_map(&map)),
        };
        if fields.is_none() {
            parse_errors.inc();
        }
        (fields, false)
    }
}

/// Whether `message`, trimmed, is one JSON object with no line break (so its text can be
/// written as it is into a JSON line). Checked without building it.
fn json_on_one_line(message: &str) -> bool {
    let text = message.trim_ascii();
    text.starts_with('{')
        && !text.contains(['\n', '\r'])
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// How lines are joined into records.
#[derive(Debug, Clone)]
pub struct MultilineSpec {
    pub preset: Preset,
    pub max_lines: usize,
    pub timeout: Duration,
}

impl Shaping {
    /// From one rule's keys; `None` when they do nothing.
    fn of(rule: &RuleConfig) -> Option<Arc<Shaping>> {
        if rule.is_noop() {
            return None;
        }
        let preset = match rule.multiline {
            Multiline::None => None,
            Multiline::Auto => Some(Preset::Auto),
            Multiline::Java => Some(Preset::Java),
            Multiline::Python => Some(Preset::Python),
            Multiline::Go => Some(Preset::Go),
            Multiline::Start => rule.multiline_start.get().cloned().map(Preset::Start),
        };
        let parser = match rule.parse {
            ParseMode::None => None,
            ParseMode::Json => Some(Parser::Json),
            ParseMode::Logfmt => Some(Parser::Logfmt),
            ParseMode::Regex => rule.parse_regex.get().cloned().map(Parser::Regex),
        };
        let regexes = |list: &[Pattern]| list.iter().filter_map(|p| p.get().cloned()).collect();
        Some(Arc::new(Shaping {
            multiline: preset.map(|preset| MultilineSpec {
                preset,
                max_lines: rule.multiline_max_lines,
                timeout: rule.multiline_timeout.get(),
            }),
            parser,
            drop: regexes(&rule.drop),
            keep: regexes(&rule.keep),
        }))
    }
}

/// A container, as the rules select it.
pub struct ContainerFacts<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// What a container gets: its shaping, and why its labels were ignored, if they were.
pub struct Resolved {
    pub shaping: Option<Arc<Shaping>>,
    /// An invalid `log-capturer.*` label: the container gets its rule's settings.
    pub label_error: Option<String>,
}

/// The configured rules, compiled.
#[derive(Default)]
pub struct Rules {
    rules: Vec<(RuleConfig, Option<Arc<Shaping>>)>,
}

impl Rules {
    pub fn new(rules: &[RuleConfig]) -> Rules {
        Rules {
            rules: rules.iter().map(|r| (r.clone(), Shaping::of(r))).collect(),
        }
    }

    /// The first rule whose container selectors all match (a rule that names only
    /// `match_paths` never does; one with no selector at all always does).
    fn rule_for(&self, c: &ContainerFacts<'_>) -> Option<&(RuleConfig, Option<Arc<Shaping>>)> {
        self.rules.iter().find(|(r, _)| {
            if !r.selects_containers() && !r.match_paths.is_empty() {
                return false;
            }
            (r.match_names.is_empty() || r.match_names.iter().any(|g| g.matches(c.name)))
                && (r.match_images.is_empty() || r.match_images.iter().any(|g| g.matches(c.image)))
                && (r.match_labels.is_empty() || r.match_labels.iter().any(|f| f.matches(c.labels)))
        })
    }

    /// The shaping of a container: its rule's, with its labels' overrides.
    pub fn for_container(&self, c: &ContainerFacts<'_>) -> Resolved {
        let rule = self.rule_for(c);
        let labelled = LABELS
            .iter()
            .any(|(label, _)| c.labels.contains_key(*label));
        if !labelled {
            return Resolved {
                shaping: rule.and_then(|(_, s)| s.clone()),
                label_error: None,
            };
        }
        let base = rule.map(|(r, _)| r.clone()).unwrap_or_default();
        match overridden(base, c.labels) {
            Ok(r) => Resolved {
                shaping: Shaping::of(&r),
                label_error: None,
            },
            Err(e) => Resolved {
                shaping: rule.and_then(|(_, s)| s.clone()),
                label_error: Some(e),
            },
        }
    }

    /// The shaping of a host file: the first rule whose `match_paths` matches it (a rule
    /// with only container selectors never applies; one with no selector always does).
    pub fn for_path(&self, path: &str) -> Option<Arc<Shaping>> {
        self.rules
            .iter()
            .find(|(r, _)| {
                if r.match_paths.is_empty() {
                    !r.selects_containers()
                } else {
                    r.match_paths.iter().any(|g| g.matches(path))
                }
            })
            .and_then(|(_, s)| s.clone())
    }
}

/// `rule` with the container's `log-capturer.*` labels applied, checked as a config rule.
fn overridden(
    mut rule: RuleConfig,
    labels: &BTreeMap<String, String>,
) -> Result<RuleConfig, String> {
    let bad = |label: &str, e: InvalidValue| format!("label {label}: {}", e.0);
    for (label, key) in LABELS {
        let Some(value) = labels.get(label) else {
            continue;
        };
        match key {
            "multiline" => rule.multiline = value.parse().map_err(|e| bad(label, e))?,
            "multiline_start" => rule.multiline_start = value.parse().map_err(|e| bad(label, e))?,
            "parse" => rule.parse = value.parse().map_err(|e| bad(label, e))?,
            "parse_regex" => rule.parse_regex = value.parse().map_err(|e| bad(label, e))?,
            _ => rule.drop = vec![value.parse().map_err(|e| bad(label, e))?],
        }
    }
    let label_of = |key: &str| {
        LABELS.iter().find(|(_, k)| *k == key).map_or_else(
            || format!("key {key}"),
            |(label, _)| format!("label {label}"),
        )
    };
    rule.check(&label_of)
        .map_err(|(what, message)| format!("{what}: {message}"))?;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rules(toml: &str) -> Rules {
        Rules::new(&Config::from_toml_str(toml, "t.toml").unwrap().rules)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn facts<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> ContainerFacts<'a> {
        ContainerFacts {
            name,
            image: "img:1",
            labels,
        }
    }

    #[test]
    fn the_first_matching_rule_applies_and_selectors_keep_to_their_kind() {
        let r = rules(
            "[[rules]]\nmatch_names = [\"api-*\"]\nmultiline = \"java\"\n\
             [[rules]]\nmatch_paths = [\"/var/log/*.log\"]\nparse = \"logfmt\"\n\
             [[rules]]\nmatch_labels = [\"team=pay*\"]\nparse = \"json\"\n",
        );
        let none = labels(&[]);
        let api = r.for_container(&facts("api-1", &none)).shaping.unwrap();
        assert!(matches!(
            api.multiline.as_ref().unwrap().preset,
            Preset::Java
        ));
        assert!(api.parser.is_none());
        let pay = labels(&[("team", "payments")]);
        let web = r.for_container(&facts("web", &pay)).shaping.unwrap();
        assert!(matches!(web.parser, Some(Parser::Json)));
        assert!(r.for_container(&facts("web", &none)).shaping.is_none());
        // Paths only for files; container selectors never for files.
        assert!(matches!(
            r.for_path("/var/log/app.log").unwrap().parser,
            Some(Parser::Logfmt)
        ));
        assert!(r.for_path("/srv/x.txt").is_none());
        let catch_all = rules("[[rules]]\ndrop = [\"noise\"]\n");
        assert!(catch_all.for_path("/srv/x.txt").is_some());
        assert!(catch_all
            .for_container(&facts("any", &none))
            .shaping
            .is_some());
    }

    #[test]
    fn drop_keep_and_parse_shape_a_message() {
        let r = rules(
            "[[rules]]\nparse = \"logfmt\"\ndrop = [\"healthz\"]\nkeep = [\"level=(warn|error)\", \"healthz\"]\n",
        );
        let none = labels(&[]);
        let s = r.for_container(&facts("x", &none)).shaping.unwrap();
        let errors = prometheus::IntCounter::new("e", "e").unwrap();
        assert_eq!(
            s.shape("GET /healthz level=error", &errors),
            (Fields::None, true),
            "drop wins"
        );
        assert_eq!(
            s.shape("level=info msg=x", &errors),
            (Fields::None, true),
            "kept by none"
        );
        let (fields, dropped) = s.shape("level=warn msg=\"disk low\"", &errors);
        assert!(!dropped);
        assert_eq!(
            fields,
            Fields::Json(r#"{"level":"warn","msg":"disk low"}"#.into())
        );
        assert_eq!(errors.get(), 0);
        assert_eq!(
            s.shape("level=error \"unterminated", &errors),
            (Fields::None, false)
        );
        assert_eq!(
            errors.get(),
            1,
            "a message that does not parse is kept and counted"
        );
    }

    #[test]
    fn a_one_line_json_object_is_its_own_fields() {
        let r = rules("[[rules]]\nparse = \"json\"\n");
        let none = labels(&[]);
        let s = r.for_container(&facts("x", &none)).shaping.unwrap();
        let errors = prometheus::IntCounter::new("e", "e").unwrap();
        assert_eq!(s.shape(r#" {"a":1} "#, &errors), (Fields::Message, false));
        // Joined lines: the object is rewritten compact, on one line.
        assert_eq!(
            s.shape("{\"a\":\n  1}", &errors),
            (Fields::Json(r#"{"a":1}"#.into()), false)
        );
        assert_eq!(
            s.shape("{\"a\":1} trailing", &errors),
            (Fields::None, false)
        );
        assert_eq!(s.shape("[1]", &errors), (Fields::None, false));
        assert_eq!(errors.get(), 2);
    }

    #[test]
    fn labels_override_the_rule_or_the_defaults() {
        let r = rules("[[rules]]\nmatch_names = [\"api-*\"]\nmultiline = \"java\"\n");
        let l = labels(&[
            ("log-capturer.multiline", "start"),
            ("log-capturer.multiline_start", "^\\d{4}-"),
            ("log-capturer.parse", "logfmt"),
            ("log-capturer.drop", "healthz"),
        ]);
        let got = r.for_container(&facts("api-1", &l));
        assert!(got.label_error.is_none());
        let s = got.shaping.unwrap();
        assert!(matches!(
            s.multiline.as_ref().unwrap().preset,
            Preset::Start(_)
        ));
        assert!(matches!(s.parser, Some(Parser::Logfmt)));
        assert_eq!(s.drop.len(), 1);
        // No rule matches "web": the labels apply over the defaults.
        let p = labels(&[("log-capturer.parse", "json")]);
        let web = r.for_container(&facts("web", &p)).shaping.unwrap();
        assert!(matches!(web.parser, Some(Parser::Json)));
        assert!(web.multiline.is_none());
    }

    #[test]
    fn an_invalid_label_is_reported_and_the_rule_applies() {
        let r = rules("[[rules]]\nmatch_names = [\"api-*\"]\nmultiline = \"java\"\n");
        for bad in [
            labels(&[("log-capturer.multiline", "cobol")]),
            labels(&[("log-capturer.drop", "(")]),
            labels(&[("log-capturer.multiline", "start")]),
            labels(&[
                ("log-capturer.parse", "regex"),
                ("log-capturer.parse_regex", "x"),
            ]),
        ] {
            let got = r.for_container(&facts("api-1", &bad));
            let error = got.label_error.expect("an error");
            assert!(error.contains("label log-capturer."), "{error}");
            let s = got.shaping.expect("the rule's shaping");
            assert!(
                matches!(s.multiline.as_ref().unwrap().preset, Preset::Java),
                "{error}"
            );
        }
    }
}
