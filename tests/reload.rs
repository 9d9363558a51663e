//! Reload on SIGHUP against the real daemon, producers writing throughout (README,
//! Reload): a container excluded, then included again, exactly once across both; a second
//! file sink added (it gets what is read after the reload; the first loses and repeats
//! nothing); an invalid file or a changed `positions.path` (nothing changes, the error on
//! `/metrics` and `/health`); 50 reloads in a row under load: nothing lost or repeated,
//! and threads and FDs back to where they were.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::util::{
    http_get, read_records, shared_daemon, signal, unique, wait_for, Capturer, Container,
};

const WAIT: Duration = Duration::from_secs(90);

/// Prints `n 1` .. `n N`, one every `pause` seconds, then stays up.
fn producer(name: &str, n: usize, pause: &str) -> Container {
    let script = format!(
        "trap 'exit 0' TERM; for i in $(seq 1 {n}); do echo \"n $i\"; sleep {pause}; done; \
         sleep 600 & wait"
    );
    Container::run(name, &[], &script)
}

/// (missing, duplicated) of `n 1` .. `n N` among `records` of `name`.
fn tally(records: &[Value], name: &str, n: usize) -> (usize, usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r["container_name"] == name) {
        let i = r["message"].as_str().and_then(|m| m.strip_prefix("n "));
        if let Some(i) = i.and_then(|i| i.parse().ok()) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing = (1..=n).filter(|i| !seen.contains_key(i)).count();
    (missing, seen.values().map(|c| c - 1).sum())
}

fn config_path(cap: &Capturer) -> PathBuf {
    cap.dir.path().join("config.toml")
}

/// Rewrites the capturer's config file with `edit`, then sends SIGHUP.
fn reload_with(cap: &Capturer, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(config_path(cap)).expect("read config");
    std::fs::write(config_path(cap), edit(text)).expect("write config");
    signal(cap.pid(), "HUP");
}

/// `log_capturer_config_reloads_total{result="<result>"}`.
fn reloads(cap: &Capturer, result: &str) -> f64 {
    let text = cap.metrics();
    let series = format!("log_capturer_config_reloads_total{{result=\"{result}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series));
    line.and_then(|l| l[series.len()..].trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait_reloads(cap: &Capturer, result: &str, n: f64) {
    wait_for(WAIT, &format!("{n} reloads {result}"), || {
        (reloads(cap, result) >= n).then_some(())
    });
}

#[test]
fn a_container_excluded_then_included_again_is_captured_exactly_once() {
    let _daemon = shared_daemon();
    let base = unique("rl-sel");
    let (a, b) = (format!("{base}-a"), format!("{base}-b"));
    let cap = Capturer::start(&format!("{base}-*"), "");
    let n = 600;
    let _ca = producer(&a, n, "0.02");
    let _cb = producer(&b, n, "0.02");
    cap.wait_records(&b, 50, WAIT);
    let glob = format!("include_names = [\"{base}-*\"]");
    let only_a = format!("include_names = [\"{a}\"]");
    reload_with(&cap, |t| t.replace(&glob, &only_a));
    wait_reloads(&cap, "ok", 1.0);
    let streams = || {
        cap.streams()
            .iter()
            .map(|s| s["container_name"].to_string())
            .collect::<Vec<_>>()
    };
    wait_for(WAIT, "b no longer followed", || {
        (!streams().iter().any(|s| s.contains(&b))).then_some(())
    });
    let before = cap.records_of(&b).len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cap.records_of(&b).len(),
        before,
        "b is not captured while excluded"
    );
    reload_with(&cap, |t| t.replace(&only_a, &glob));
    wait_reloads(&cap, "ok", 2.0);
    cap.wait_records(&a, n, WAIT);
    cap.wait_records(&b, n, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let records = cap.records();
    assert_eq!(tally(&records, &a, n), (0, 0), "a: followed throughout");
    assert_eq!(
        tally(&records, &b, n),
        (0, 0),
        "b: excluded, then included again"
    );
    assert!(
        before < n,
        "b was excluded while it wrote ({before} of {n} before)"
    );
}

#[test]
fn a_sink_added_by_a_reload_gets_what_is_read_after_it() {
    let _daemon = shared_daemon();
    let name = unique("rl-sink");
    let cap = Capturer::start(&name, "");
    let n = 500;
    let _c = producer(&name, n, "0.02");
    cap.wait_records(&name, 100, WAIT);
    let second = cap.dir.path().join("second.jsonl");
    reload_with(&cap, |t| {
        format!(
            "{t}\n[[sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            second.display()
        )
    });
    wait_reloads(&cap, "ok", 1.0);
    cap.wait_records(&name, n, WAIT);
    wait_for(WAIT, "the second sink's last line", || {
        let r = read_records(&second);
        r.iter()
            .any(|r| r["message"] == format!("n {n}"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tally(&cap.records(), &name, n), (0, 0), "the first sink");
    let got: Vec<usize> = read_records(&second)
        .iter()
        .filter_map(|r| r["message"].as_str()?.strip_prefix("n ")?.parse().ok())
        .collect();
    let first = got[0];
    assert!(
        first > 100,
        "the second sink starts after the reload: {first}"
    );
    let want: Vec<usize> = (first..=n).collect();
    assert_eq!(got, want, "then every line once, in order");
}

#[test]
fn an_invalid_reload_changes_nothing_and_says_why() {
    let _daemon = shared_daemon();
    let name = unique("rl-bad");
    let cap = Capturer::start(&name, "");
    let n = 400;
    let _c = producer(&name, n, "0.02");
    cap.wait_records(&name, 20, WAIT);
    let good = std::fs::read_to_string(config_path(&cap)).expect("read config");
    reload_with(&cap, |t| {
        t.replace("[pipeline]", "[pipeline]\nbatch_timout = \"1s\"")
    });
    wait_reloads(&cap, "error", 1.0);
    assert_eq!(
        cap.metric("log_capturer_config_last_reload_successful"),
        0.0
    );
    let (status, body) = http_get(cap.port, "/health").expect("/health");
    assert_eq!(status, 200, "the running configuration is fine: {body}");
    assert!(body.contains("configuration reload refused"), "{body}");
    assert!(body.contains("batch_timout"), "the key is named: {body}");
    assert!(cap.log().contains("batch_timout"), "{}", cap.log());

    let moved = good.replace("positions.json", "elsewhere.json");
    assert_ne!(moved, good);
    std::fs::write(config_path(&cap), moved).expect("write config");
    signal(cap.pid(), "HUP");
    wait_reloads(&cap, "error", 2.0);
    let (_, body) = http_get(cap.port, "/health").expect("/health");
    assert!(body.contains("positions.path cannot change"), "{body}");

    std::fs::write(config_path(&cap), &good).expect("write config");
    signal(cap.pid(), "HUP");
    wait_reloads(&cap, "ok", 1.0);
    assert_eq!(
        cap.metric("log_capturer_config_last_reload_successful"),
        1.0
    );
    let (_, body) = http_get(cap.port, "/health").expect("/health");
    assert!(!body.contains("reload refused"), "{body}");
    cap.wait_records(&name, n, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tally(&cap.records(), &name, n), (0, 0));
}

#[test]
fn fifty_reloads_under_load_lose_nothing_and_leak_nothing() {
    let _daemon = shared_daemon();
    let base = unique("rl-churn");
    let cap = Capturer::start(&format!("{base}-*"), "");
    let n = 3000;
    let names: Vec<String> = (0..2).map(|i| format!("{base}-{i}")).collect();
    let _producers: Vec<Container> = names.iter().map(|c| producer(c, n, "0.005")).collect();
    for c in &names {
        cap.wait_records(c, 10, WAIT);
    }
    let (fds, threads) = (cap.fds(), cap.threads());
    for i in 1..=50 {
        signal(cap.pid(), "HUP");
        wait_reloads(&cap, "ok", f64::from(i));
    }
    for c in &names {
        cap.wait_records(c, n, WAIT);
    }
    std::thread::sleep(Duration::from_millis(500));
    let records = cap.records();
    for c in &names {
        assert_eq!(tally(&records, c, n), (0, 0), "{c}");
    }
    let settled = wait_for(Duration::from_secs(10), "threads and FDs back", || {
        let now = (cap.fds(), cap.threads());
        (now.0 <= fds && now.1 <= threads).then_some(now)
    });
    eprintln!(
        "50 reloads under load: FDs {fds} -> {}, threads {threads} -> {}; {} records",
        settled.0,
        settled.1,
        records.len()
    );
}

#[test]
fn a_new_listen_address_is_bound_or_the_reload_refused() {
    let _daemon = shared_daemon();
    let name = unique("rl-listen");
    let cap = Capturer::start(&name, "");
    let old = format!("listen = \"127.0.0.1:{}\"", cap.port);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    reload_with(&cap, |t| {
        t.replace(&old, &format!("listen = \"127.0.0.1:{taken_port}\""))
    });
    wait_reloads(&cap, "error", 1.0);
    let (_, body) = http_get(cap.port, "/health").expect("the old listener still answers");
    assert!(body.contains("cannot listen"), "{body}");
    drop(taken);

    let free = crate::util::free_port();
    reload_with(&cap, |t| {
        t.replace(
            &format!("listen = \"127.0.0.1:{taken_port}\""),
            &format!("listen = \"127.0.0.1:{free}\""),
        )
    });
    let answered = wait_for(WAIT, "the new listener", || {
        http_get(free, "/metrics").filter(|(s, _)| *s == 200)
    });
    assert!(
        answered
            .1
            .contains("log_capturer_config_reloads_total{result=\"ok\"} 1"),
        "{}",
        answered.1
    );
    wait_for(WAIT, "the old listener closed", || {
        http_get(cap.port, "/health").is_none().then_some(())
    });
}
