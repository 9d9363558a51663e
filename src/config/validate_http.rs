//! Checks of Loki, Elasticsearch, HTTP and syslog sinks that parse but cannot work: a URL the
//! sink cannot use, half-configured or doubly-configured credentials, labels Loki would
//! reject, an index pattern Elasticsearch would reject, headers that are no valid HTTP or
//! that the sink sets itself. Each error names the key, down to
//! `sinks[1].labels.container`. The `tls` files are read and checked here, as the sink
//! will use them.

use super::template::{parse_index_pattern, parse_template, IndexPart};
use super::url::{check_base_url, check_endpoint_url};
use super::validate::{check, positive};
use super::{
    facility_code, ConfigError, ElasticsearchSinkConfig, HttpSinkConfig, LokiSinkConfig, Secret,
    SyslogAddress, SyslogSinkConfig, TlsConfig, Transport,
};
use crate::tls::ClientTls;

pub(super) fn loki(loki: &LokiSinkConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    base_url(&loki.url, &key("url"))?;
    header_value(loki.tenant_id.as_deref(), &key("tenant_id"))?;
    let token = loki.bearer_token.as_ref().map(Secret::expose);
    header_value(token, &key("bearer_token"))?;
    credentials(
        loki.username.as_deref(),
        loki.password.as_ref(),
        token,
        "bearer_token",
        key,
    )?;
    check(!loki.labels.is_empty(), &key("labels"), || {
        "at least one label is required: Loki rejects a stream without labels".to_owned()
    })?;
    for (name, template) in &loki.labels {
        let label_key = key(&format!("labels.{name}"));
        check(label_name(name), &label_key, || {
            format!("invalid label name {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*")
        })?;
        let parts = parse_template(template).map_err(|e| ConfigError::at(&label_key, e))?;
        // Loki treats a label with an empty value as absent.
        check(!parts.is_empty(), &label_key, || {
            "the template must not be empty".to_owned()
        })?;
    }
    for (name, template) in &loki.structured_metadata {
        let meta_key = key(&format!("structured_metadata.{name}"));
        check(label_name(name), &meta_key, || {
            format!("invalid name {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*")
        })?;
        let parts = parse_template(template).map_err(|e| ConfigError::at(&meta_key, e))?;
        check(!parts.is_empty(), &meta_key, || {
            "the template must not be empty".to_owned()
        })?;
    }
    positive(loki.timeout, &key("timeout"))?;
    tls(&loki.tls, &loki.url, key)
}

pub(super) fn elasticsearch(
    es: &ElasticsearchSinkConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    base_url(&es.url, &key("url"))?;
    let api_key = es.api_key.as_ref().map(Secret::expose);
    header_value(api_key, &key("api_key"))?;
    credentials(
        es.username.as_deref(),
        es.password.as_ref(),
        api_key,
        "api_key",
        key,
    )?;
    index(&es.index).map_err(|e| ConfigError::at(key("index"), e))?;
    positive(es.timeout, &key("timeout"))?;
    tls(&es.tls, &es.url, key)
}

pub(super) fn syslog(
    sl: &SyslogSinkConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    check(!sl.address.is_empty(), &key("address"), || {
        "required".to_owned()
    })?;
    let address =
        SyslogAddress::parse(&sl.address).map_err(|e| ConfigError::at(key("address"), e))?;
    check(
        facility_code(&sl.facility).is_some(),
        &key("facility"),
        || {
            format!(
            "unknown facility {:?}: expected kern, user, mail, daemon, auth, syslog, lpr, news, \
             uucp, cron, authpriv, ftp, ntp, security, console, solaris-cron or local0..local7",
            sl.facility
        )
        },
    )?;
    for (name, template) in [("app_name", &sl.app_name), ("hostname", &sl.hostname)] {
        parse_template(template).map_err(|e| ConfigError::at(key(name), e))?;
    }
    positive(sl.timeout, &key("timeout"))?;
    positive(sl.idle_timeout, &key("idle_timeout"))?;
    if address.transport != Transport::Tls {
        check(sl.tls.is_default(), &key("tls"), || {
            "is set, but address is not tls://: TLS applies to tls:// addresses only".to_owned()
        })?;
        return Ok(());
    }
    tls(&sl.tls, "", key)
}

pub(super) fn http(http: &HttpSinkConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    match http.url.is_empty() {
        true => Err(ConfigError::at(key("url"), "required")),
        false => check_endpoint_url(&http.url).map_err(|e| ConfigError::at(key("url"), e)),
    }?;
    let token = http.bearer_token.as_ref().map(Secret::expose);
    header_value(token, &key("bearer_token"))?;
    credentials(
        http.username.as_deref(),
        http.password.as_ref(),
        token,
        "bearer_token",
        key,
    )?;
    super::headers::check(&http.headers, &key("headers"))?;
    positive(http.timeout, &key("timeout"))?;
    tls(&http.tls, &http.url, key)
}

/// The `tls` table: files read and checked as the sink will use them; TLS settings on an
/// `http://` URL would silently do nothing, so they are refused.
fn tls(tls: &TlsConfig, url: &str, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if tls.is_default() {
        return Ok(());
    }
    check(!url.starts_with("http://"), &key("tls"), || {
        "is set, but url is http://: TLS applies to https:// URLs only".to_owned()
    })?;
    match ClientTls::new(tls) {
        Ok(_) => Ok(()),
        Err(e) if e.key == "tls" => Err(ConfigError::at(key("tls"), e.message)),
        Err(e) => Err(ConfigError::at(key(&format!("tls.{}", e.key)), e.message)),
    }
}

/// Basic auth needs both halves, and excludes the sink's token (`token_key`).
fn credentials(
    username: Option<&str>,
    password: Option<&Secret>,
    token: Option<&str>,
    token_key: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match (username, password) {
        (None, Some(_)) => Err(ConfigError::at(
            key("username"),
            "required when password is set",
        )),
        (Some(_), None) => Err(ConfigError::at(
            key("password"),
            "required when username is set",
        )),
        (Some(user), Some(_)) => {
            // RFC 7617: the user-id of basic auth cannot contain a colon.
            check(
                !user.is_empty() && !user.contains(':'),
                &key("username"),
                || "must be non-empty and must not contain ':'".to_owned(),
            )?;
            check(token.is_none(), &key(token_key), || {
                "cannot be combined with username/password: configure one of them".to_owned()
            })
        }
        (None, None) => Ok(()),
    }
}

/// A value sent verbatim in an HTTP header: present means non-empty and one line.
fn header_value(value: Option<&str>, key: &str) -> Result<(), ConfigError> {
    let Some(value) = value else {
        return Ok(());
    };
    check(!value.is_empty(), key, || {
        "must not be empty: leave the key out instead".to_owned()
    })?;
    check(!value.chars().any(char::is_control), key, || {
        "must not contain control characters".to_owned()
    })
}

fn base_url(url: &str, key: &str) -> Result<(), ConfigError> {
    match url.is_empty() {
        true => Err(ConfigError::at(key, "required")),
        false => check_base_url(url).map_err(|e| ConfigError::at(key, e)),
    }
}

fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Elasticsearch's rules for index names, applied to the literal text of the pattern
/// (the date tokens only ever produce digits).
fn index(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let parts = parse_index_pattern(pattern)?;
    let literal = |part: &IndexPart| match part {
        IndexPart::Literal(text) => Some(text.clone()),
        _ => None,
    };
    let text: String = parts.iter().filter_map(literal).collect();
    if text.chars().any(char::is_uppercase) {
        return Err(format!("{pattern:?} must be lowercase"));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("{pattern:?} must not contain spaces"));
    }
    if let Some(c) = text.chars().find(|c| "\\/*?\"<>|,#:".contains(*c)) {
        return Err(format!(
            "{pattern:?} must not contain {c:?}: Elasticsearch forbids \\ / * ? \" < > | , # :"
        ));
    }
    match parts.first().and_then(literal) {
        Some(first) if first.starts_with(['-', '_', '+']) => {
            Err(format!("{pattern:?} must not start with '-', '_' or '+'"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HumanDuration, SinkConfig, StdoutSinkConfig};

    /// Validates `[stdout, sink]`, so errors must name `sinks[1]`.
    fn validate(sink: SinkConfig) -> Result<(), ConfigError> {
        let config = Config {
            sinks: vec![SinkConfig::Stdout(StdoutSinkConfig {}), sink],
            ..Config::default()
        };
        config.validate()
    }

    fn loki(edit: impl FnOnce(&mut LokiSinkConfig)) -> SinkConfig {
        let mut loki = LokiSinkConfig {
            url: "http://loki:3100".into(),
            ..LokiSinkConfig::default()
        };
        edit(&mut loki);
        SinkConfig::Loki(loki)
    }

    fn es(edit: impl FnOnce(&mut ElasticsearchSinkConfig)) -> SinkConfig {
        let mut es = ElasticsearchSinkConfig {
            url: "https://es:9200".into(),
            ..ElasticsearchSinkConfig::default()
        };
        edit(&mut es);
        SinkConfig::Elasticsearch(es)
    }

    fn http(edit: impl FnOnce(&mut HttpSinkConfig)) -> SinkConfig {
        let mut http = HttpSinkConfig {
            url: "https://intake.example/insert?_msg_field=message".into(),
            ..HttpSinkConfig::default()
        };
        edit(&mut http);
        SinkConfig::Http(http)
    }

    fn header(name: &str, value: &str) -> SinkConfig {
        http(|h| h.headers = [(name.to_owned(), Secret::new(value))].into())
    }

    #[track_caller]
    fn assert_invalid(sink: SinkConfig, key: &str, needle: &str) {
        let err = validate(sink).expect_err(key);
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(err.message().contains(needle), "{err} lacks {needle:?}");
    }

    fn secret(value: &str) -> Option<Secret> {
        Some(Secret::new(value))
    }

    #[test]
    fn valid_http_sinks_pass() {
        for url in [
            "http://loki:3100",
            "https://loki.example.com/",
            "http://127.0.0.1:3100/tenant-a/prefix",
            "http://[::1]:3100",
            "https://[fd00::1]/",
        ] {
            validate(loki(|l| l.url = url.into())).expect(url);
            validate(es(|e| e.url = url.into())).expect(url);
        }
        validate(loki(|l| {
            l.tenant_id = Some("team-a".into());
            l.username = Some("u".into());
            l.password = secret("p");
            l.labels = [("_x9".to_owned(), "{{{labels.app}}}".to_owned())].into();
        }))
        .unwrap();
        validate(loki(|l| l.bearer_token = secret("t"))).unwrap();
        validate(es(|e| e.api_key = secret("k"))).unwrap();
        validate(es(|e| e.index = "logs-docker-default".into())).unwrap();
    }

    #[test]
    fn url_is_required_and_must_be_http_with_a_host() {
        assert_invalid(loki(|l| l.url.clear()), "sinks[1].url", "required");
        assert_invalid(es(|e| e.url.clear()), "sinks[1].url", "required");
        let url = "ftp://loki";
        let needle = "\"ftp://loki\": must start with http:// or https://";
        assert_invalid(loki(|l| l.url = url.into()), "sinks[1].url", needle);
        assert_invalid(
            es(|e| e.url = "http://:9200".into()),
            "sinks[1].url",
            "no host",
        );
    }

    #[test]
    fn basic_auth_needs_both_halves() {
        let needle = "required when password is set";
        assert_invalid(
            loki(|l| l.password = secret("p")),
            "sinks[1].username",
            needle,
        );
        assert_invalid(
            es(|e| e.password = secret("p")),
            "sinks[1].username",
            needle,
        );
        let needle = "required when username is set";
        let user = Some("u".to_owned());
        assert_invalid(
            loki(|l| l.username = user.clone()),
            "sinks[1].password",
            needle,
        );
        assert_invalid(
            es(|e| e.username = user.clone()),
            "sinks[1].password",
            needle,
        );
        for bad in ["", "a:b"] {
            let sink = es(|e| {
                e.username = Some(bad.into());
                e.password = secret("p");
            });
            assert_invalid(sink, "sinks[1].username", "':'");
        }
    }

    #[test]
    fn basic_auth_excludes_the_token() {
        let needle = "cannot be combined with username/password";
        let sink = loki(|l| {
            l.username = Some("u".into());
            l.password = secret("p");
            l.bearer_token = secret("t");
        });
        assert_invalid(sink, "sinks[1].bearer_token", needle);
        let sink = es(|e| {
            e.username = Some("u".into());
            e.password = secret("p");
            e.api_key = secret("k");
        });
        assert_invalid(sink, "sinks[1].api_key", needle);
    }

    #[test]
    fn header_values_are_one_nonempty_line() {
        let tenant = |t: &str| loki(|l| l.tenant_id = Some(t.into()));
        assert_invalid(tenant(""), "sinks[1].tenant_id", "must not be empty");
        assert_invalid(tenant("a\r\nX-Evil: 1"), "sinks[1].tenant_id", "control");
        let token = loki(|l| l.bearer_token = secret(""));
        assert_invalid(token, "sinks[1].bearer_token", "must not be empty");
        let api_key = es(|e| e.api_key = secret("k\n"));
        assert_invalid(api_key, "sinks[1].api_key", "control");
    }

    #[test]
    fn loki_labels_are_checked() {
        let labels = |name: &str, template: &str| {
            let pair = (name.to_owned(), template.to_owned());
            loki(|l| l.labels = [pair].into())
        };
        assert_invalid(
            loki(|l| l.labels.clear()),
            "sinks[1].labels",
            "at least one",
        );
        for bad in ["9lives", "app-name", "app.name", "", "ünï"] {
            let key = format!("sinks[1].labels.{bad}");
            assert_invalid(labels(bad, "x"), &key, "invalid label name");
        }
        let key = "sinks[1].labels.container";
        assert_invalid(labels("container", "{name}"), key, "unknown field {name}");
        assert_invalid(
            labels("container", "{container_name"),
            key,
            "unbalanced '{'",
        );
        assert_invalid(labels("container", "x}"), key, "unbalanced '}'");
        assert_invalid(labels("container", ""), key, "must not be empty");
    }

    #[test]
    fn timeouts_must_be_positive() {
        let zero = HumanDuration(std::time::Duration::ZERO);
        assert_invalid(
            loki(|l| l.timeout = zero),
            "sinks[1].timeout",
            "greater than 0",
        );
        assert_invalid(
            es(|e| e.timeout = zero),
            "sinks[1].timeout",
            "greater than 0",
        );
    }

    #[test]
    fn elasticsearch_index_is_checked() {
        for (index, needle) in [
            ("", "must not be empty"),
            ("Logs-%Y", "lowercase"),
            ("logs %Y", "spaces"),
            ("logs-%y.%m", "unsupported token %y"),
            ("logs-%M", "unsupported token %M"),
            ("logs-%", "lone '%'"),
            ("logs/%Y", "must not contain '/'"),
            ("logs,other", "must not contain ','"),
            ("logs*", "must not contain '*'"),
            ("_logs", "must not start with"),
            ("-logs-%Y", "must not start with"),
        ] {
            assert_invalid(es(|e| e.index = index.into()), "sinks[1].index", needle);
        }
        for good in [
            "logs-%Y.%m.%d",
            "logs-%Y.%m.%d-%H",
            "a%%b",
            "%Y-logs",
            "logs.docker",
        ] {
            validate(es(|e| e.index = good.into())).expect(good);
        }
    }

    #[test]
    fn tls_is_checked_with_its_files() {
        assert_invalid(
            loki(|l| l.tls.server_name = "loki.internal".into()),
            "sinks[1].tls",
            "https:// URLs only",
        );
        let missing = "/nonexistent/ca.pem";
        assert_invalid(
            es(|e| e.tls.ca_file = missing.into()),
            "sinks[1].tls.ca_file",
            "cannot read /nonexistent/ca.pem",
        );
        assert_invalid(
            es(|e| e.tls.cert_file = missing.into()),
            "sinks[1].tls.key_file",
            "required when cert_file is set",
        );
        validate(es(|e| e.tls.insecure_skip_verify = true)).expect("insecure is allowed");
    }

    #[test]
    fn http_sink_url_may_carry_a_query() {
        validate(http(|_| {})).unwrap();
        validate(http(|h| h.url = "http://[::1]:9428".into())).unwrap();
        assert_invalid(http(|h| h.url.clear()), "sinks[1].url", "required");
        assert_invalid(
            http(|h| h.url = "https://intake/#x".into()),
            "sinks[1].url",
            "fragment",
        );
        assert_invalid(
            http(|h| h.url = "https://u:pw@intake/".into()),
            "sinks[1].url",
            "credentials",
        );
        let plain = http(|h| {
            h.url = "http://intake/".into();
            h.tls.ca_file = "/etc/ca.pem".into();
        });
        assert_invalid(plain, "sinks[1].tls", "https:// URLs only");
        let zero = HumanDuration(std::time::Duration::ZERO);
        assert_invalid(http(|h| h.timeout = zero), "sinks[1].timeout", "than 0");
    }

    #[test]
    fn http_sink_credentials_are_checked() {
        validate(http(|h| h.bearer_token = secret("t"))).unwrap();
        validate(http(|h| {
            h.username = Some("u".into());
            h.password = secret("p");
        }))
        .unwrap();
        let half = http(|h| h.password = secret("p"));
        assert_invalid(half, "sinks[1].username", "required when password is set");
        let both = http(|h| {
            h.username = Some("u".into());
            h.password = secret("p");
            h.bearer_token = secret("t");
        });
        assert_invalid(both, "sinks[1].bearer_token", "cannot be combined");
        let token = http(|h| h.bearer_token = secret("t\r\nX: 1"));
        assert_invalid(token, "sinks[1].bearer_token", "control");
    }

    #[test]
    fn http_sink_headers_are_checked() {
        validate(header("X-Api-Key", "k3y")).unwrap();
        let key = "sinks[1].headers.Authorization";
        assert_invalid(header("Authorization", "v"), key, "bearer_token");
        assert_invalid(
            header("X-Api-Key", ""),
            "sinks[1].headers.X-Api-Key",
            "empty",
        );
    }
}
