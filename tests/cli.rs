//! The command line (README, Command line): exit codes, --check-config, clear config errors.

use std::process::{Command, Output};

fn capturer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_log-capturer"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("LOG_CAPTURER_TEST_IMAGE")
        .env_remove("LOG_CAPTURER_IMAGE")
        .output()
        .expect("run log-capturer")
}

#[test]
fn version_and_help() {
    let out = capturer(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("log-capturer "));
    let out = capturer(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--check-config"));
}

#[test]
fn bad_argument_is_a_usage_error() {
    let out = capturer(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

#[test]
fn check_config_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[docker]\nread_timeout = \"2s\"\n").unwrap();
    let out = capturer(&["--check-config", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let value: toml::Value = toml::from_str(&text).expect("valid TOML");
    assert_eq!(value["docker"]["read_timeout"].as_str(), Some("2s"));
    assert_eq!(value["server"]["listen"].as_str(), Some("127.0.0.1:8401"));
}

#[test]
fn unknown_key_exits_2_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[docker]\nhots = \"unix:///x\"\n").unwrap();
    let out = capturer(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hots"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn check_config_checks_tls_files_and_warns_of_insecure_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.toml");
    let sink = "[[sinks]]\ntype = \"loki\"\nurl = \"https://127.0.0.1:3100\"\n";
    let missing = dir.path().join("no-ca.pem");
    let text = format!("{sink}tls = {{ ca_file = \"{}\" }}\n", missing.display());
    std::fs::write(&path, text).unwrap();
    let out = capturer(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sinks[0].tls.ca_file: cannot read"), "{err}");

    std::fs::write(
        &path,
        format!("{sink}tls = {{ insecure_skip_verify = true }}\n"),
    )
    .unwrap();
    let out = capturer(&["--check-config", "--config", path.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: sinks[0] (loki): tls.insecure_skip_verify = true"),
        "{err}"
    );
    let printed: toml::Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let tls = &printed["sinks"][0]["tls"];
    assert_eq!(
        tls["insecure_skip_verify"].as_bool(),
        Some(true),
        "{printed}"
    );
}

#[test]
fn taken_listen_address_is_fatal_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[[sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.path().join("o.jsonl").display()
        ),
    )
    .unwrap();
    let out = capturer(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen = \"127.0.0.1:"));
}

#[test]
fn unwritable_positions_file_is_fatal_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"\"\n[positions]\npath = \"{}\"\n[[sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            blocker.join("positions.json").display(),
            dir.path().join("o.jsonl").display()
        ),
    )
    .unwrap();
    let out = capturer(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("positions file") && err.contains("not-a-dir"),
        "{err}"
    );
}
