//! The base URL of an HTTP sink, `http(s)://host[:port][/prefix]`, checked by hand:
//! the sink appends its own path (`/loki/api/v1/push`, `/_bulk`) to the text as written,
//! so only the shape that makes that append correct is accepted. The generic HTTP sink
//! posts to its URL as written, so there a query is allowed too.

/// Checks `url`; the error says what is wrong, quoting the URL.
pub(super) fn check_base_url(url: &str) -> Result<(), String> {
    let fail = |message: &str| Err(format!("{url:?}: {message}"));
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return fail("must start with http:// or https://");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("must not contain spaces or control characters");
    }
    if rest.contains(['?', '#']) {
        return fail("must not have a query or fragment: the sink appends its path");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    // Credentials in the URL would be printed by --check-config; `password` is not.
    if authority.contains('@') {
        return fail("must not contain credentials: use username and password");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => (host, Some(after.strip_prefix(':').unwrap_or(after))),
            None => return fail("unclosed '[' in the host"),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return fail("has no host");
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(0) | Err(_)) => fail("the port must be a number from 1 to 65535"),
        _ => Ok(()),
    }
}

/// Checks the full endpoint of the HTTP sink: a base URL and an optional query (many
/// intakes take their options there); a fragment is never sent, so it is refused.
pub(super) fn check_endpoint_url(url: &str) -> Result<(), String> {
    let fail = |message: &str| Err(format!("{url:?}: {message}"));
    if url.contains('#') {
        return fail("must not have a fragment: it is never sent to the server");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("must not contain spaces or control characters");
    }
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    check_base_url(base).or_else(|e| {
        let quoted = format!("{base:?}: ");
        fail(e.strip_prefix(&quoted).unwrap_or(&e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_base_urls() {
        for url in [
            "http://loki:3100",
            "https://loki.example.com/",
            "http://127.0.0.1:3100/tenant-a/prefix",
            "http://[::1]:3100",
            "https://[fd00::1]/",
            "https://es",
        ] {
            assert_eq!(check_base_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn bad_base_urls() {
        for (url, needle) in [
            ("", "http:// or https://"),
            ("loki:3100", "http:// or https://"),
            ("ftp://loki", "http:// or https://"),
            ("HTTP://loki", "http:// or https://"),
            ("http://", "no host"),
            ("http:///loki", "no host"),
            ("https://:3100", "no host"),
            ("http://[]:3100", "no host"),
            ("http://[::1", "unclosed '['"),
            ("http://loki:", "port"),
            ("http://loki:0", "port"),
            ("http://loki:70000", "port"),
            ("http://loki:3100x", "port"),
            ("http://[::1]x", "port"),
            ("http://loki host", "spaces"),
            ("http://loki\n", "control"),
            ("http://loki:3100/?x=1", "query"),
            ("http://loki#frag", "query or fragment"),
            ("http://user:pw@loki:3100", "credentials"),
        ] {
            let err = check_base_url(url).expect_err(url);
            assert!(err.starts_with(&format!("{url:?}: ")), "{err}");
            assert!(err.contains(needle), "{url:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn endpoint_urls_may_have_a_query() {
        let url = "http://[::1]:9428/insert/jsonline?_msg_field=message&_stream_fields=a,b";
        assert_eq!(check_endpoint_url(url), Ok(()));
        assert_eq!(check_endpoint_url("https://intake.example/?"), Ok(()));
        for (url, needle) in [
            ("http://intake/#top", "fragment"),
            ("http://intake/?a=1#top", "fragment"),
            ("http://intake:0/?a=1", "port"),
            ("http://u:p@intake/?a=1", "credentials"),
            ("http://intake/?a=b c", "spaces"),
            ("intake/?a=1", "http:// or https://"),
        ] {
            let err = check_endpoint_url(url).expect_err(url);
            assert!(err.starts_with(&format!("{url:?}: ")), "{err}");
            assert!(err.contains(needle), "{url:?}: {err:?} lacks {needle:?}");
        }
    }
}
