//! The two small languages of the HTTP sinks, parsed once at start: Loki label
//! templates (`"{container_name}"`, `"app-{labels.com.example.app}"`) and
//! Elasticsearch index patterns (`"logs-%Y.%m.%d"`). Validation and the sinks use the
//! same parsers, so a config that passes `--check-config` is one the sink can run.

/// One piece of a parsed label template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text copied as is (`{{` and `}}` already unescaped).
    Literal(String),
    /// A record field substituted per record.
    Field(TemplateField),
}

/// A record field a label template can name (README, Sinks: `loki` labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateField {
    ContainerId,
    ContainerName,
    Image,
    Stream,
    Host,
    /// A host file's path (empty for containers).
    Path,
    /// `labels.<key>`: a container label, by its key.
    Label(String),
    /// `fields.<key>`: a field a rule's `parse` found in the message.
    Field(String),
}

const FIELDS: &str =
    "container_id, container_name, image, stream, host, path, labels.<key> or fields.<key>";

/// Parses a label template: literal text with `{field}` placeholders, where `{{` and
/// `}}` stand for literal braces. Adjacent literal text comes back as one part.
pub fn parse_template(s: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.next_if(|&(_, c)| c == '{').is_some() => literal.push('{'),
            '}' if chars.next_if(|&(_, c)| c == '}').is_some() => literal.push('}'),
            '{' => {
                let rest = &s[at + 1..];
                let Some(end) = rest
                    .find(['{', '}'])
                    .filter(|&end| rest[end..].starts_with('}'))
                else {
                    return Err(format!(
                        "unbalanced '{{' at byte {at} in {s:?}: close it with '}}', \
                         or write {{{{ for a literal brace"
                    ));
                };
                let field = field(&rest[..end]).map_err(|e| format!("{e} in {s:?}"))?;
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Field(field));
                // Skip the field name and its closing brace.
                while chars.next_if(|&(i, _)| i <= at + 1 + end).is_some() {}
            }
            '}' => {
                return Err(format!(
                    "unbalanced '}}' at byte {at} in {s:?}: write }}}} for a literal brace"
                ))
            }
            _ => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(parts)
}

fn field(name: &str) -> Result<TemplateField, String> {
    Ok(match name {
        "container_id" => TemplateField::ContainerId,
        "container_name" => TemplateField::ContainerName,
        "image" => TemplateField::Image,
        "stream" => TemplateField::Stream,
        "host" => TemplateField::Host,
        "path" => TemplateField::Path,
        _ => {
            if let Some(key) = name.strip_prefix("labels.") {
                if key.is_empty() {
                    return Err("empty label key in {labels.}".to_owned());
                }
                TemplateField::Label(key.to_owned())
            } else if let Some(key) = name.strip_prefix("fields.") {
                if key.is_empty() {
                    return Err("empty field key in {fields.}".to_owned());
                }
                TemplateField::Field(key.to_owned())
            } else {
                return Err(format!(
                    "unknown field {{{name}}}, expected one of {FIELDS}"
                ));
            }
        }
    })
}

/// One piece of a parsed index pattern; dates are of each record's time, in UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexPart {
    /// Text copied as is (`%%` already unescaped).
    Literal(String),
    /// `%Y`: four-digit year.
    Year,
    /// `%m`: two-digit month, `01`..`12`.
    Month,
    /// `%d`: two-digit day of the month, `01`..`31`.
    Day,
    /// `%H`: two-digit hour, `00`..`23`.
    Hour,
}

/// Parses an index pattern: literal text with the strftime-style tokens `%Y`, `%m`,
/// `%d`, `%H` and `%%` (a literal `%`); any other `%` sequence is an error.
pub fn parse_index_pattern(s: &str) -> Result<Vec<IndexPart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let token = match chars.next() {
            Some('%') => {
                literal.push('%');
                continue;
            }
            Some('Y') => IndexPart::Year,
            Some('m') => IndexPart::Month,
            Some('d') => IndexPart::Day,
            Some('H') => IndexPart::Hour,
            Some(other) => {
                return Err(format!(
                    "unsupported token %{other} in {s:?}: expected %Y, %m, %d, %H or %%"
                ))
            }
            None => {
                return Err(format!(
                    "{s:?} ends with a lone '%': write %% for a literal %"
                ))
            }
        };
        if !literal.is_empty() {
            parts.push(IndexPart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(token);
    }
    if !literal.is_empty() {
        parts.push(IndexPart::Literal(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::TemplateField::*;
    use super::TemplatePart::{Field, Literal};
    use super::*;

    fn lit(s: &str) -> TemplatePart {
        Literal(s.to_owned())
    }

    #[test]
    fn template_literals_and_fields() {
        assert_eq!(parse_template(""), Ok(vec![]));
        assert_eq!(parse_template("docker"), Ok(vec![lit("docker")]));
        assert_eq!(
            parse_template("{container_name}"),
            Ok(vec![Field(ContainerName)])
        );
        assert_eq!(
            parse_template("{host}/{container_id}:{image}-{stream}"),
            Ok(vec![
                Field(Host),
                lit("/"),
                Field(ContainerId),
                lit(":"),
                Field(Image),
                lit("-"),
                Field(Stream),
            ])
        );
        assert_eq!(
            parse_template("née {stream}é"),
            Ok(vec![lit("née "), Field(Stream), lit("é")])
        );
    }

    #[test]
    fn template_container_labels() {
        assert_eq!(
            parse_template("svc-{labels.com.docker.compose.service}"),
            Ok(vec![
                lit("svc-"),
                Field(Label("com.docker.compose.service".into()))
            ])
        );
        assert_eq!(
            parse_template("{labels.a b}{labels.labels.x}"),
            Ok(vec![
                Field(Label("a b".into())),
                Field(Label("labels.x".into()))
            ])
        );
    }

    #[test]
    fn template_escaped_braces() {
        assert_eq!(parse_template("{{}}"), Ok(vec![lit("{}")]));
        assert_eq!(
            parse_template("{{{stream}}}"),
            Ok(vec![lit("{"), Field(Stream), lit("}")])
        );
        assert_eq!(
            parse_template("a{{host}}b"),
            Ok(vec![lit("a{host}b")]),
            "escaped braces make no placeholder"
        );
    }

    #[test]
    fn template_errors() {
        for (template, needle) in [
            ("{", "unbalanced '{' at byte 0"),
            ("x{host", "unbalanced '{' at byte 1"),
            ("{ho{st}", "unbalanced '{' at byte 0"),
            ("host}", "unbalanced '}' at byte 4"),
            ("{host}}", "unbalanced '}' at byte 6"),
            ("{}", "unknown field {}"),
            (
                "{name}",
                "unknown field {name}, expected one of container_id",
            ),
            ("{Host}", "unknown field {Host}"),
            ("{ host }", "unknown field { host }"),
            ("{labels}", "unknown field {labels}"),
            ("{labels.}", "empty label key"),
        ] {
            let err = parse_template(template).expect_err(template);
            assert!(
                err.contains(needle),
                "{template:?}: {err:?} lacks {needle:?}"
            );
            assert!(err.contains(&format!("{template:?}")), "{err:?}");
        }
    }

    #[test]
    fn index_pattern_tokens() {
        use IndexPart::*;
        let lit = |s: &str| IndexPart::Literal(s.to_owned());
        assert_eq!(
            parse_index_pattern("logs-docker-default"),
            Ok(vec![lit("logs-docker-default")])
        );
        assert_eq!(
            parse_index_pattern("logs-%Y.%m.%d"),
            Ok(vec![lit("logs-"), Year, lit("."), Month, lit("."), Day])
        );
        assert_eq!(
            parse_index_pattern("%Y%m%d%H"),
            Ok(vec![Year, Month, Day, Hour])
        );
        assert_eq!(
            parse_index_pattern("a%%b-%H%%"),
            Ok(vec![lit("a%b-"), Hour, lit("%")])
        );
        assert_eq!(parse_index_pattern(""), Ok(vec![]));
    }

    #[test]
    fn index_pattern_errors() {
        for (pattern, needle) in [
            ("logs-%y", "unsupported token %y"),
            ("logs-%M", "unsupported token %M"),
            ("%j", "unsupported token %j"),
            ("logs-%", "lone '%'"),
            ("logs-%%%", "lone '%'"),
        ] {
            let err = parse_index_pattern(pattern).expect_err(pattern);
            assert!(
                err.contains(needle),
                "{pattern:?}: {err:?} lacks {needle:?}"
            );
        }
    }
}
