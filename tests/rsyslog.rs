//! A real rsyslogd of the test's own (Debian's `rsyslog`, with `rsyslog-gnutls` for TLS;
//! scripts/test.sh installs both): its own config, port on 127.0.0.1 (TCP and UDP), work
//! directory and output file; never the system's. What it receives is written as one
//! JSON object per message, with the properties it parsed: `app-name`, `hostname`,
//! `timereported` (RFC 3339), `structured-data`, `msg`, `pri`. Drop stops it (SIGTERM) and
//! waits for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{free_port, read_records};

pub struct Rsyslog {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Rsyslog {
    /// Plain TCP (octet counting or newline framing, told apart by rsyslog) and UDP.
    pub fn start() -> Rsyslog {
        Rsyslog::launch(None)
    }

    /// TLS on TCP (gtls), with this CA, server certificate and key.
    pub fn start_tls(ca: &Path, cert: &Path, key: &Path) -> Rsyslog {
        Rsyslog::launch(Some((ca.into(), cert.into(), key.into())))
    }

    fn launch(tls: Option<(PathBuf, PathBuf, PathBuf)>) -> Rsyslog {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Rsyslog {
            dir,
            port: free_port(),
            child: None,
            tls,
        };
        r.run();
        r
    }

    /// Starts rsyslogd (again, on the same port and output) and waits until it listens.
    pub fn run(&mut self) {
        let d = self.dir.path();
        let out = self.out();
        let (global, tcp_module) = match &self.tls {
            None => (String::new(), "module(load=\"imtcp\")".to_owned()),
            Some((ca, cert, key)) => (
                format!(
                    "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
                     DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")",
                    ca.display(),
                    cert.display(),
                    key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
                 StreamDriver.AuthMode=\"anon\")"
                    .to_owned(),
            ),
        };
        let udp = match self.tls {
            None => format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{}\" ruleset=\"out\")",
                self.port
            ),
            Some(_) => String::new(),
        };
        let conf = format!(
            r#"global(workDirectory="{dir}" parser.escapeControlCharactersOnReceive="off" maxMessageSize="256k")
{global}
{tcp_module}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="out")
{udp}
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="app" name="app-name" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
ruleset(name="out") {{
  action(type="omfile" file="{out}" template="fields" flushOnTXEnd="on" asyncWriting="off")
}}
"#,
            dir = d.display(),
            port = self.port,
            out = out.display(),
        );
        let conf_path = d.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("write rsyslog.conf");
        let log = std::fs::File::create(d.join("rsyslogd.log")).expect("rsyslogd.log");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("run rsyslogd (Debian package rsyslog; scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log = std::fs::read_to_string(d.join("rsyslogd.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "rsyslogd did not listen: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::util::signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out.jsonl")
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Value> {
        read_records(&self.out())
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
