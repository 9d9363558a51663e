//! The network sinks over TLS, end to end: the real capturer and real containers, the
//! fake Loki and Elasticsearch receivers behind a rustls proxy (tests/tls_support.rs)
//! with certificates generated per test. What works (a private CA, mutual TLS with EC and
//! RSA keys in each PEM form, `server_name`, `insecure_skip_verify` with its warnings)
//! delivers every line exactly once; what fails (unknown CA, client certificate
//! required, name mismatch, expired certificate) is named in the log and on `/health`,
//! loses nothing, and delivers everything once fixed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::receivers::Receiver;
use crate::tls_support::{Pki, ServerCert, TlsProxy};
use crate::util::{http_get, shared_daemon, unique, Capturer, Container};

const WAIT: Duration = Duration::from_secs(60);
const LINES: usize = 100;
const LOCAL: &[&str] = &["127.0.0.1", "localhost"];

fn backend_port(r: &Receiver) -> u16 {
    let url = r.url();
    let port = url.rsplit(':').next().and_then(|p| p.parse().ok());
    port.expect("receiver port")
}

/// `tls = { key = "value", ... }` (values are paths or names; booleans as given).
fn tls_line(pairs: &[(&str, String)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| match v.as_str() {
            "true" | "false" => format!("{k} = {v}"),
            _ => format!("{k} = \"{v}\""),
        })
        .collect();
    format!("tls = {{ {} }}", items.join(", "))
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A Loki (or Elasticsearch) sink on `url` with `tls`.
fn sink(kind: &str, url: &str, tls: &str) -> String {
    format!("[[sinks]]\ntype = \"{kind}\"\nurl = \"{url}\"\n{tls}\n")
}

/// Counts of "n i" lines: (missing, duplicated).
fn tally<'a>(lines: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for l in lines {
        if let Some(i) = l.strip_prefix("n ").and_then(|s| s.parse().ok()) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing = (1..=LINES).filter(|i| !seen.contains_key(i)).count();
    (missing, seen.values().map(|c| c - 1).sum())
}

fn loki_lines(r: &Receiver) -> Vec<String> {
    r.loki_entries().into_iter().map(|e| e.line).collect()
}

fn wait_exactly_once(what: &str, r: &Receiver, lines: impl Fn(&Receiver) -> Vec<String>) {
    r.wait_for(&format!("{what}: {LINES} lines"), WAIT, |r| {
        lines(r).len() >= LINES
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = lines(r);
    assert_eq!(
        tally(got.iter().map(String::as_str)),
        (0, 0),
        "{what}: every line exactly once"
    );
    assert_eq!(got.len(), LINES, "{what}");
}

fn health(cap: &Capturer) -> (u16, String) {
    http_get(cap.port, "/health").expect("/health answers")
}

/// Prints the lines, then stays up (a restarted capturer follows running containers).
fn print_lines(name: &str) -> Container {
    let script = format!("for i in $(seq 1 {LINES}); do echo \"n $i\"; done; sleep 600");
    Container::run(name, &[], &script)
}

/// [`Capturer::start`], telling the capturer's log when it does not become healthy.
fn start(name: &str, toml: &str) -> Capturer {
    let cap = Capturer::spawn(name, toml);
    for _ in 0..200 {
        if http_get(cap.port, "/health").is_some_and(|(s, _)| s == 200) {
            return cap;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("capturer not healthy after 20 s; its log:\n{}", cap.log());
}

struct Case {
    what: &'static str,
    receiver: Receiver,
    proxy: TlsProxy,
    cap: Capturer,
}

fn loki_case(
    what: &'static str,
    name: &str,
    proxy_for: impl FnOnce(u16) -> TlsProxy,
    tls: String,
) -> Case {
    let receiver = Receiver::loki();
    let proxy = proxy_for(backend_port(&receiver));
    let cap = start(name, &sink("loki", &proxy.url(), &tls));
    Case {
        what,
        receiver,
        proxy,
        cap,
    }
}

#[test]
fn private_ca_client_certificates_and_server_name_deliver_exactly_once() {
    let _daemon = shared_daemon();
    let pki = Pki::new("tls-ok");
    let stranger = Pki::new("tls-unknown");
    let name = unique("tls-ok");
    let ca = || ("ca_file", path(&pki.ca_file()));
    let plain = |names| {
        pki.server(
            ServerCert {
                names,
                expired: false,
            },
            None,
        )
    };
    let mutual = || {
        pki.server(
            ServerCert {
                names: LOCAL,
                expired: false,
            },
            Some(&pki),
        )
    };

    let (ec_cert, ec_key) = pki.client("client-ec");
    let (rsa_cert, rsa_key) = pki.client_rsa("client-rsa");
    let (sec1_cert, sec1_pkcs8) = pki.client("client-sec1");
    let sec1_key = pki.sec1_key(&sec1_pkcs8);
    let client = |cert: &std::path::Path, key: &std::path::Path| {
        tls_line(&[ca(), ("cert_file", path(cert)), ("key_file", path(key))])
    };
    let cases = vec![
        loki_case(
            "private CA",
            &name,
            |b| TlsProxy::start(b, plain(LOCAL)),
            tls_line(&[ca()]),
        ),
        loki_case(
            "mutual TLS, EC key (PKCS#8)",
            &name,
            |b| TlsProxy::start(b, mutual()),
            client(&ec_cert, &ec_key),
        ),
        loki_case(
            "mutual TLS, RSA key (PKCS#1)",
            &name,
            |b| TlsProxy::start(b, mutual()),
            client(&rsa_cert, &rsa_key),
        ),
        loki_case(
            "mutual TLS, EC key (SEC1)",
            &name,
            |b| TlsProxy::start(b, mutual()),
            client(&sec1_cert, &sec1_key),
        ),
        loki_case(
            "server_name",
            &name,
            |b| TlsProxy::start(b, plain(&["loki.internal"])),
            tls_line(&[ca(), ("server_name", "loki.internal".into())]),
        ),
        loki_case(
            "insecure_skip_verify",
            &name,
            |b| {
                let config = stranger.server(
                    ServerCert {
                        names: &["elsewhere"],
                        expired: true,
                    },
                    None,
                );
                TlsProxy::start(b, config)
            },
            tls_line(&[("insecure_skip_verify", "true".into())]),
        ),
    ];
    let es = Receiver::elasticsearch();
    let es_proxy = TlsProxy::start(backend_port(&es), plain(LOCAL));
    let es_cap = start(
        &name,
        &sink("elasticsearch", &es_proxy.url(), &tls_line(&[ca()])),
    );

    let _container = print_lines(&name);
    for case in &cases {
        wait_exactly_once(case.what, &case.receiver, loki_lines);
        assert!(
            case.proxy.refused().is_empty(),
            "{}: {:?}",
            case.what,
            case.proxy.refused()
        );
    }
    wait_exactly_once("elasticsearch, private CA", &es, |r| {
        r.es_docs()
            .iter()
            .filter_map(|d| d.doc["message"].as_str().map(str::to_string))
            .collect()
    });
    drop(es_cap);

    let insecure = &cases[5].cap;
    assert!(
        insecure.log().contains("tls.insecure_skip_verify = true"),
        "warned at start: {}",
        insecure.log()
    );
    let (status, body) = health(insecure);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("insecure_skip_verify"),
        "listed on /health: {body}"
    );
    let (_, secure) = health(&cases[0].cap);
    assert!(!secure.contains("warnings"), "{secure}");
}

/// One failure: how the capturer names it, and how it is fixed.
struct Failing {
    case: Case,
    cause: &'static str,
    fixed_tls: Option<String>,
    tls: String,
}

#[test]
fn tls_failures_are_named_and_lose_nothing_once_fixed() {
    let _daemon = shared_daemon();
    let pki = Pki::new("tls-fail");
    let name = unique("tls-fail");
    let ca = || ("ca_file", path(&pki.ca_file()));
    let (cert, key) = pki.client("client");
    let server = |names, expired| pki.server(ServerCert { names, expired }, None);
    let failing = |what, cause, server_config, tls: String, fixed_tls: Option<String>| {
        let case = loki_case(
            what,
            &name,
            |b| TlsProxy::start(b, server_config),
            tls.clone(),
        );
        Failing {
            case,
            cause,
            fixed_tls,
            tls,
        }
    };
    let mut cases = vec![
        failing(
            "no ca_file",
            "unknown CA",
            server(LOCAL, false),
            tls_line(&[("insecure_skip_verify", "false".into())]),
            Some(tls_line(&[ca()])),
        ),
        failing(
            "no client certificate",
            "client certificate required",
            pki.server(
                ServerCert {
                    names: LOCAL,
                    expired: false,
                },
                Some(&pki),
            ),
            tls_line(&[ca()]),
            Some(tls_line(&[
                ca(),
                ("cert_file", path(&cert)),
                ("key_file", path(&key)),
            ])),
        ),
        failing(
            "wrong name",
            "name mismatch",
            server(&["loki.internal"], false),
            tls_line(&[ca()]),
            Some(tls_line(&[ca(), ("server_name", "loki.internal".into())])),
        ),
        failing(
            "expired server certificate",
            "expired certificate",
            server(LOCAL, true),
            tls_line(&[ca()]),
            None,
        ),
    ];

    let _container = print_lines(&name);
    for f in &cases {
        let what = f.case.what;
        let logged = (0..300).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            f.case.cap.log().contains(f.cause)
        });
        assert!(
            logged,
            "{what}: no {:?} in the log:\n{}",
            f.cause,
            f.case.cap.log()
        );
        let (status, body) = health(&f.case.cap);
        assert_eq!(
            status, 200,
            "{what}: a sink failing for less than 60 s: {body}"
        );
        assert!(
            body.contains(f.cause),
            "{what}: the cause on /health: {body}"
        );
        assert!(f.case.receiver.loki_entries().is_empty(), "{what}");
    }
    assert!(
        cases[1]
            .case
            .proxy
            .refused()
            .iter()
            .any(|r| r.contains("no certificates")),
        "the server refused for want of a client certificate: {:?}",
        cases[1].case.proxy.refused()
    );

    for f in &mut cases {
        match &f.fixed_tls {
            Some(fixed) => {
                let cap = &mut f.case.cap;
                cap.terminate(Duration::from_secs(20));
                let config_path = cap.dir.path().join("config.toml");
                let text = std::fs::read_to_string(&config_path).expect("read config");
                assert!(text.contains(&f.tls), "{text}");
                std::fs::write(&config_path, text.replace(&f.tls, fixed)).expect("fix config");
                cap.restart();
            }
            None => {
                // The server gets a valid certificate on the same port: the sink
                // recovers by itself. (A stand-in holds the slot while the port is freed.)
                let port = f.case.proxy.port();
                let backend = backend_port(&f.case.receiver);
                let stand_in = TlsProxy::start(backend, server(LOCAL, false));
                drop(std::mem::replace(&mut f.case.proxy, stand_in));
                f.case.proxy = TlsProxy::restart_on(port, backend, server(LOCAL, false));
            }
        }
    }
    for f in &cases {
        wait_exactly_once(f.case.what, &f.case.receiver, loki_lines);
    }
}
