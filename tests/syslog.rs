//! The syslog sink against a real rsyslogd (tests/rsyslog.rs) and real containers: TCP
//! with octet counting and with newline framing, UDP, RFC 3164, and TLS; every line once
//! (UDP: what arrived is counted and printed), multi-line and non-ASCII messages intact,
//! and the RFC 5424 fields as rsyslog parsed them (`app-name`, `hostname`,
//! `timereported`, `structured-data`) equal to what was sent; an rsyslog restart under
//! load: the sink reconnects, and what was lost (if anything) is measured and printed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::rsyslog::Rsyslog;
use crate::tls_support::Pki;
use crate::util::{shared_daemon, unique, wait_for, Capturer, Container};

const WAIT: Duration = Duration::from_secs(60);
const LINES: usize = 200;

fn syslog_sink(port: u16, scheme: &str, extra: &str) -> String {
    format!("[[sinks]]\ntype = \"syslog\"\naddress = \"{scheme}://127.0.0.1:{port}\"\n{extra}\n")
}

/// `n <i> ünïcødé 漢字`, and every 10th record two lines longer (joined by a rule).
fn script(n: usize) -> String {
    format!(
        "for i in $(seq 1 {n}); do echo \"n $i ünïcødé 漢字\"; \
         if [ $((i % 10)) -eq 0 ]; then echo '  at one'; echo '  at two'; fi; done; \
         trap 'exit 0' TERM; sleep 600 & wait"
    )
}

const RULE: &str = "[[rules]]\nmultiline = \"start\"\nmultiline_start = '^n '\n";

/// The messages whose app-name is `app`, by their number: (number -> message), duplicates.
fn by_number<'a>(msgs: &'a [Value], app: &str) -> (BTreeMap<usize, &'a Value>, usize) {
    let mut seen = BTreeMap::new();
    let mut dups = 0;
    for m in msgs.iter().filter(|m| m["app"] == app) {
        let n = msg(m)
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(n) = n {
            if seen.insert(n, m).is_some() {
                dups += 1;
            }
        }
    }
    (seen, dups)
}

/// The message rsyslog kept, without our BOM (RFC 5424) or the space after the tag that
/// rsyslog keeps (RFC 3164).
fn msg(m: &Value) -> &str {
    let text = m["msg"].as_str().unwrap_or("");
    text.strip_prefix('\u{feff}')
        .or_else(|| text.strip_prefix(' '))
        .unwrap_or(text)
}

#[test]
fn tcp_udp_and_rfc3164_reach_rsyslog_with_their_fields() {
    let _daemon = shared_daemon();
    let rs = Rsyslog::start();
    let base = unique("sl");
    let sinks = [
        syslog_sink(rs.port, "tcp", "app_name = \"oc-{container_name}\""),
        syslog_sink(
            rs.port,
            "tcp",
            "framing = \"newline\"\napp_name = \"nl-{container_name}\"",
        ),
        syslog_sink(rs.port, "udp", "app_name = \"udp-{container_name}\""),
        syslog_sink(
            rs.port,
            "tcp",
            "format = \"rfc3164\"\nframing = \"newline\"\napp_name = \"bsd-{container_name}\"",
        ),
    ];
    let cap = Capturer::start(&format!("{base}-*"), &format!("{}{RULE}", sinks.concat()));
    let names = [format!("{base}-a"), format!("{base}-b")];
    let _containers: Vec<Container> = names
        .iter()
        .map(|n| Container::run(n, &[], &script(LINES)))
        .collect();
    let mut udp_arrived = 0;
    for name in &names {
        udp_arrived += check_container(&rs, &cap, name);
    }
    let all = 2 * LINES;
    eprintln!(
        "rsyslog, 2 containers: TCP octet counting {all}/{all}, TCP newline {all}/{all}, \
         RFC 3164 {all}/{all}, UDP {udp_arrived}/{all} arrived"
    );
    assert!(udp_arrived > 0, "UDP datagrams arrived");
    assert_eq!(cap.metric("log_capturer_sink_rejected_records_total"), 0.0);
}

/// Every line of `name` once through each TCP sink, with its fields; the UDP count.
fn check_container(rs: &Rsyslog, cap: &Capturer, name: &str) -> usize {
    let records = cap.wait_records(name, LINES, WAIT);
    let app = |prefix: &str| format!("{prefix}-{name}");
    let counts = || {
        let msgs = rs.messages();
        ["oc", "nl", "bsd"].map(|p| by_number(&msgs, &app(p)).0.len())
    };
    let arrived = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        counts().iter().all(|c| *c >= LINES)
    });
    assert!(
        arrived,
        "every TCP line in rsyslog: {:?} of {LINES}",
        counts()
    );
    std::thread::sleep(Duration::from_millis(500));
    let msgs = rs.messages();
    let host = records[0]["host"].as_str().expect("host").to_owned();
    for prefix in ["oc", "nl"] {
        let (seen, dups) = by_number(&msgs, &app(prefix));
        assert_eq!((seen.len(), dups), (LINES, 0), "{prefix}: every line once");
        for r in &records {
            let text = r["message"].as_str().expect("message");
            let n: usize = text
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .expect("n");
            let m = seen[&n];
            let sent = match prefix {
                "nl" => text.replace('\n', "\\n"),
                _ => text.to_owned(),
            };
            assert_eq!(msg(m), sent, "{prefix}: the message intact");
            assert_eq!(m["host"], host.as_str(), "{prefix}: hostname");
            let time = r["time"].as_str().expect("time");
            let want = format!("{}Z", &time[..26]);
            assert_eq!(
                m["time"].as_str(),
                Some(want.as_str()),
                "{prefix}: timereported"
            );
            let sd = m["sd"].as_str().expect("structured-data");
            let id = r["container_id"].as_str().expect("id");
            assert!(sd.contains(&format!("container_id=\"{id}\"")), "{sd}");
            assert!(sd.contains(&format!("container_name=\"{name}\"")), "{sd}");
            assert_eq!(m["pri"], "14", "user.info");
        }
        let joined = seen[&10];
        assert!(
            msg(joined).contains("  at one"),
            "{prefix}: {}",
            msg(joined)
        );
    }
    let (bsd, bsd_dups) = by_number(&msgs, &app("bsd"));
    assert_eq!(
        (bsd.len(), bsd_dups),
        (LINES, 0),
        "RFC 3164: every line once"
    );
    assert!(
        msg(bsd[&1]).starts_with("n 1 ünïcødé 漢字"),
        "{}",
        msg(bsd[&1])
    );
    by_number(&msgs, &app("udp")).0.len()
}

#[test]
fn tls_to_rsyslog_delivers_every_line_once() {
    let _daemon = shared_daemon();
    let pki = Pki::new("rsyslog");
    let (cert, key) = pki.server_files("rsyslog", &["127.0.0.1", "localhost"]);
    let rs = Rsyslog::start_tls(&pki.ca_file(), &cert, &key);
    let name = unique("sl-tls");
    let tls = format!(
        "app_name = \"tls-{{container_name}}\"\ntls = {{ ca_file = \"{}\" }}",
        pki.ca_file().display()
    );
    let _cap = Capturer::start(&name, &syslog_sink(rs.port, "tls", &tls));
    let _c = Container::run(&name, &[], &script(LINES));
    let app = format!("tls-{name}");
    wait_for(WAIT, "every TLS line in rsyslog", || {
        (by_number(&rs.messages(), &app).0.len() >= LINES).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let msgs = rs.messages();
    let (seen, dups) = by_number(&msgs, &app);
    assert_eq!((seen.len(), dups), (LINES, 0));
    assert!(msg(seen[&1]).starts_with("n 1 ünïcødé 漢字"));
}

#[test]
fn an_rsyslog_restart_under_load_is_reconnected() {
    let _daemon = shared_daemon();
    let mut rs = Rsyslog::start();
    let name = unique("sl-restart");
    let cap = Capturer::start(&name, &syslog_sink(rs.port, "tcp", ""));
    let n = 3000;
    let _c = Container::run(
        &name,
        &[],
        &format!(
            "for i in $(seq 1 {n}); do echo \"n $i\"; sleep 0.002; done; \
             trap 'exit 0' TERM; sleep 600 & wait"
        ),
    );
    wait_for(WAIT, "500 lines in rsyslog", || {
        (by_number(&rs.messages(), &name).0.len() >= 500).then_some(())
    });
    rs.stop();
    std::thread::sleep(Duration::from_secs(2));
    rs.run();
    cap.wait_records(&name, n, WAIT);
    wait_for(WAIT, "the last line in rsyslog", || {
        by_number(&rs.messages(), &name)
            .0
            .contains_key(&n)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let msgs = rs.messages();
    let (seen, dups) = by_number(&msgs, &name);
    let missing = (1..=n).filter(|i| !seen.contains_key(i)).count();
    eprintln!(
        "rsyslog restarted under load: {} of {n} lines arrived, {missing} lost, {dups} twice; \
         file sink {} records",
        seen.len(),
        cap.records_of(&name).len()
    );
    assert!(seen.contains_key(&n), "reconnected after the restart");
    assert_eq!(
        cap.records_of(&name).len(),
        n,
        "the file sink has every line"
    );
}
