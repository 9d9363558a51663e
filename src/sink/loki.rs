//! The Grafana Loki sink: `POST <url>/loki/api/v1/push` with a JSON body. Records are
//! grouped into streams by their rendered label set (templates over record fields), and
//! each stream's entries are sent in time order, as Loki requires. Optional gzip, tenant
//! header, basic or bearer authentication. A 400 that names how many entries Loki refused
//! (it keeps the rest of the push) is a partial rejection (`loki_refusal.rs`).

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use super::http::{classify, Auth, HttpClient};
use super::template::render;
use super::{Batch, Sink, SinkError};

#[path = "loki_refusal.rs"]
mod refusal;
use crate::capture::record::{write_str, Record};
use crate::config::{parse_template, LineFormat, LokiSinkConfig, TemplatePart};
use crate::tls::ClientTls;

pub struct LokiSink {
    name: String,
    http: HttpClient,
    /// Label name and its parsed template, sorted by name.
    labels: Vec<(String, Vec<TemplatePart>)>,
    /// Structured metadata: name and template, sorted by name.
    metadata: Vec<(String, Vec<TemplatePart>)>,
    line_format: LineFormat,
    gzip: bool,
    /// Most records per push: halved at each 429 to a push of several records (Loki
    /// refuses a push larger than its ingestion burst for ever; a smaller one passes),
    /// doubled at each push taken.
    push_limit: usize,
    told_cut_down: bool,
}

impl LokiSink {
    pub fn new(name: String, cfg: &LokiSinkConfig) -> Result<LokiSink, String> {
        let url = format!("{}/loki/api/v1/push", cfg.url.trim_end_matches('/'));
        let token = cfg
            .bearer_token
            .as_ref()
            .map(|t| Auth::Bearer(t.expose().to_string()));
        let auth = Auth::choose(token, &cfg.username, &cfg.password);
        let headers = cfg
            .tenant_id
            .iter()
            .map(|t| ("X-Scope-OrgID".to_string(), t.clone()))
            .collect();
        let mut labels = Vec::new();
        for (label, template) in &cfg.labels {
            let parts = parse_template(template).map_err(|e| format!("labels.{label}: {e}"))?;
            labels.push((label.clone(), parts));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut metadata = Vec::new();
        for (name, template) in &cfg.structured_metadata {
            let parts =
                parse_template(template).map_err(|e| format!("structured_metadata.{name}: {e}"))?;
            metadata.push((name.clone(), parts));
        }
        let tls = ClientTls::new(&cfg.tls).map_err(|e| format!("tls.{e}"))?;
        Ok(LokiSink {
            name,
            http: HttpClient::new(url, auth, headers, cfg.timeout.get(), tls),
            labels,
            metadata,
            line_format: cfg.line_format,
            gzip: cfg.gzip,
            push_limit: usize::MAX,
            told_cut_down: false,
        })
    }

    /// The stream's label set as the JSON object Loki wants; empty values are left out
    /// (Loki treats an empty label as absent).
    fn stream_key(&self, r: &Record) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(b'{');
        let mut first = true;
        let mut value = String::new();
        for (label, parts) in &self.labels {
            value.clear();
            render(parts, r, &mut value);
            if value.is_empty() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(&mut out, label);
            out.push(b':');
            write_str(&mut out, &value);
        }
        out.push(b'}');
        out
    }

    /// An entry's structured metadata (`,{"name":"value",...}`), values that render empty
    /// left out; nothing when none is left.
    fn write_metadata(&self, r: &Record, out: &mut Vec<u8>) {
        let mut value = String::new();
        let mut first = true;
        for (name, parts) in &self.metadata {
            value.clear();
            render(parts, r, &mut value);
            if value.is_empty() {
                continue;
            }
            out.extend_from_slice(if first { b",{" } else { b"," });
            first = false;
            write_str(out, name);
            out.push(b':');
            write_str(out, &value);
        }
        if !first {
            out.push(b'}');
        }
    }

    /// The push body: `{"streams":[{"stream":{...},"values":[["<ns>","<line>"],...]}]}`.
    pub fn encode(&self, batch: &Batch) -> Vec<u8> {
        let mut streams: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for (i, r) in batch.records.iter().enumerate() {
            let key = self.stream_key(r);
            let at = *index.entry(key.clone()).or_insert_with(|| {
                streams.push((key, Vec::new()));
                streams.len() - 1
            });
            streams[at].1.push(i);
        }
        let mut out = Vec::with_capacity(batch.records.iter().map(|r| r.approx_bytes()).sum());
        out.extend_from_slice(b"{\"streams\":[");
        let mut line = Vec::new();
        for (s, (key, mut entries)) in streams.into_iter().enumerate() {
            if s > 0 {
                out.push(b',');
            }
            entries.sort_by_key(|&i| batch.records[i].time);
            out.extend_from_slice(b"{\"stream\":");
            out.extend_from_slice(&key);
            out.extend_from_slice(b",\"values\":[");
            for (n, &i) in entries.iter().enumerate() {
                let r = &batch.records[i];
                if n > 0 {
                    out.push(b',');
                }
                // Writing into a Vec cannot fail.
                let _ = write!(out, "[\"{}\",", r.time.as_nanos());
                match self.line_format {
                    LineFormat::Message => write_str(&mut out, &r.message),
                    LineFormat::Json => {
                        line.clear();
                        r.write_json(&mut line);
                        let text = String::from_utf8_lossy(&line);
                        write_str(&mut out, text.trim_end_matches('\n'));
                    }
                }
                self.write_metadata(r, &mut out);
                out.push(b']');
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b"]}");
        out
    }
}

impl Sink for LokiSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn interrupter(&self) -> Option<super::Interrupter> {
        Some(self.http.interrupter())
    }

    /// One push: the whole batch, or, after Loki's 429s, its first `push_limit` records
    /// (the rest is returned for retry as a partial failure).
    fn write_batch(&mut self, batch: &Batch, deadline: Option<Instant>) -> Result<(), SinkError> {
        let n = batch.records.len();
        if n == 0 {
            return Ok(());
        }
        let part = n.min(self.push_limit);
        let body = match part == n {
            true => self.encode(batch),
            false => self.encode(&batch.subset(&(0..part).collect::<Vec<_>>())),
        };
        let reply = self
            .http
            .post(&body, "application/json", self.gzip, deadline)?;
        let rest = || (part..n).collect::<Vec<_>>();
        match classify(self.http.url(), &reply) {
            Ok(()) => {
                self.push_limit = self.push_limit.saturating_mul(2);
                match part == n {
                    true => Ok(()),
                    false => Err(SinkError::Partial {
                        retry: rest(),
                        rejected: 0,
                        message: format!(
                            "pushed {part} of {n} records (pushes are cut down after Loki's \
                             429 answers, in case a push exceeds its burst size)"
                        ),
                        retry_after: None,
                    }),
                }
            }
            Err(SinkError::Transient {
                message,
                retry_after,
            }) if reply.status == 429 => {
                // A push larger than Loki's ingestion burst is refused for ever: halve
                // the next one, down to a single record.
                self.push_limit = (part / 2).max(1);
                if part > 1 && !self.told_cut_down {
                    self.told_cut_down = true;
                    log::warn!(
                        "sink {}: Loki answered 429 to a push of {part} records; pushes are cut \
                         down (halved at each 429, doubled at each push taken) so that a push \
                         over Loki's ingestion burst can pass (logged once)",
                        self.name
                    );
                }
                Err(SinkError::Transient {
                    message,
                    retry_after,
                })
            }
            Err(SinkError::Rejected(message)) if reply.status == 400 => {
                let rejected = refusal::refused_entries(&reply.body, part).unwrap_or(part);
                match (part == n, rejected < part) {
                    (true, true) => Err(SinkError::PartlyRejected { rejected, message }),
                    (true, false) => Err(SinkError::Rejected(message)),
                    (false, _) => Err(SinkError::Partial {
                        retry: rest(),
                        rejected,
                        message,
                        retry_after: None,
                    }),
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::{sample_records, Stream};
    use crate::capture::timestamp::Timestamp;

    fn sink(line_format: LineFormat) -> LokiSink {
        let cfg = LokiSinkConfig {
            url: "http://127.0.0.1:1/".into(),
            line_format,
            ..LokiSinkConfig::default()
        };
        LokiSink::new("loki-0".into(), &cfg).unwrap()
    }

    #[test]
    fn streams_by_label_set_with_entries_in_time_order() {
        let mut records = sample_records(4, "m");
        // Out of order in the batch, and two streams (stdout/stderr).
        records[0].time = Timestamp::from_nanos(30);
        records[1].time = Timestamp::from_nanos(10);
        records[2].stream = Some(Stream::Stderr);
        records[3].time = Timestamp::from_nanos(20);
        let body = sink(LineFormat::Message).encode(&Batch::new(records));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let streams = v["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!(
            streams[0]["stream"],
            serde_json::json!({"container": "n", "host": "h", "job": "docker", "stream": "stdout"})
        );
        let values: Vec<(String, String)> = streams[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[0].as_str().unwrap().to_string(),
                    e[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            values,
            vec![
                ("10".into(), "m 1".into()),
                ("20".into(), "m 3".into()),
                ("30".into(), "m 0".into())
            ]
        );
        assert_eq!(streams[1]["stream"]["stream"], "stderr");
    }

    /// `{fields.<key>}` in a label, and structured metadata from fields: values present
    /// are sent, empty ones left out (an entry without any has no third element).
    #[test]
    fn fields_feed_labels_and_structured_metadata() {
        let cfg = LokiSinkConfig {
            url: "http://127.0.0.1:1/".into(),
            labels: [("level".into(), "{fields.level}".into())].into(),
            structured_metadata: [
                ("trace_id".into(), "{fields.trace_id}".into()),
                ("code".into(), "{fields.code}".into()),
            ]
            .into(),
            ..LokiSinkConfig::default()
        };
        let sink = LokiSink::new("loki-0".into(), &cfg).unwrap();
        let mut records = sample_records(2, "m");
        let mut fields = serde_json::Map::new();
        fields.insert("level".into(), "error".into());
        fields.insert("trace_id".into(), "abc".into());
        fields.insert("code".into(), serde_json::json!(500));
        records[0].fields = crate::capture::record::Fields::of_map(&fields);
        let body = sink.encode(&Batch::new(records));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let streams = v["streams"].as_array().unwrap();
        assert_eq!(streams[0]["stream"], serde_json::json!({"level": "error"}));
        assert_eq!(
            streams[0]["values"][0][2],
            serde_json::json!({"code": "500", "trace_id": "abc"})
        );
        assert_eq!(streams[1]["stream"], serde_json::json!({}));
        assert_eq!(streams[1]["values"][0].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_line_format_carries_the_whole_record() {
        let body = sink(LineFormat::Json).encode(&Batch::new(sample_records(1, "x")));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let line = v["streams"][0]["values"][0][1].as_str().unwrap();
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["message"], "x 0");
        assert_eq!(record["container_name"], "n");
    }

    #[test]
    fn empty_label_values_are_left_out() {
        let mut cfg = LokiSinkConfig {
            url: "http://127.0.0.1:1".into(),
            ..LokiSinkConfig::default()
        };
        cfg.labels.insert("team".into(), "{labels.team}".into());
        let s = LokiSink::new("loki-0".into(), &cfg).unwrap();
        let body = s.encode(&Batch::new(sample_records(1, "x")));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["streams"][0]["stream"].get("team").is_none());
    }

    /// A one-thread HTTP server on loopback that answers 429 to a push of more than
    /// `burst` entries and 204 to others; returns its URL and the entry counts it saw.
    fn burst_limited_loki(
        burst: usize,
        pushes: usize,
    ) -> (String, std::thread::JoinHandle<Vec<usize>>) {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming().take(pushes) {
                let mut reader = BufReader::new(stream.unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let entries = v["streams"][0]["values"].as_array().unwrap().len();
                seen.push(entries);
                let status = if entries > burst {
                    "429 Too Many Requests"
                } else {
                    "204 No Content"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                std::io::Write::write_all(reader.get_mut(), answer.as_bytes()).unwrap();
            }
            seen
        });
        (url, server)
    }

    #[test]
    fn a_push_over_the_burst_is_cut_down_until_it_passes() {
        let (url, server) = burst_limited_loki(3, 5);
        let cfg = LokiSinkConfig {
            url,
            gzip: false,
            ..LokiSinkConfig::default()
        };
        let mut s = LokiSink::new("loki-0".into(), &cfg).unwrap();
        let batch = Batch::new(sample_records(10, "m"));
        let err = s.write_batch(&batch, None).unwrap_err();
        assert!(
            err.is_transient() && err.to_string().contains("429"),
            "{err}"
        );
        assert!(s
            .write_batch(&batch, None)
            .unwrap_err()
            .to_string()
            .contains("429"));
        match s.write_batch(&batch, None) {
            Err(SinkError::Partial {
                retry, rejected: 0, ..
            }) => {
                assert_eq!(retry, (2..10).collect::<Vec<_>>(), "the first 2 taken")
            }
            other => panic!("{other:?}"),
        }
        // Doubled to 4 after a push taken, which is over the burst again: halved to 2.
        let rest = batch.subset(&(2..10).collect::<Vec<_>>());
        assert!(s
            .write_batch(&rest, None)
            .unwrap_err()
            .to_string()
            .contains("429"));
        match s.write_batch(&rest, None) {
            Err(SinkError::Partial { retry, .. }) => assert_eq!(retry, (2..8).collect::<Vec<_>>()),
            other => panic!("{other:?}"),
        }
        assert_eq!(server.join().unwrap(), vec![10, 5, 2, 4, 2]);
    }
}
