//! The generic HTTP sink (`type = "http"`): each batch POSTed to the configured URL as
//! newline-delimited JSON (`application/x-ndjson`) or as one JSON array
//! (`application/json`), the records exactly as the file sink writes them, for intakes
//! such as VictoriaLogs, OpenObserve, Quickwit or a webhook. Optional gzip, extra headers
//! (their values are secrets: never logged), basic or bearer authentication. The answer
//! is classified as for the other HTTP sinks: 2xx taken, 429/5xx and connection errors
//! retried, any other status a rejection of the whole batch.

use std::time::Instant;

use super::http::{classify, Auth, HttpClient};
use super::{Batch, Sink, SinkError};
use crate::config::{BodyFormat, HttpSinkConfig};
use crate::tls::ClientTls;

pub struct HttpSink {
    name: String,
    http: HttpClient,
    format: BodyFormat,
    gzip: bool,
}

impl HttpSink {
    pub fn new(name: String, cfg: &HttpSinkConfig) -> Result<HttpSink, String> {
        let token = cfg
            .bearer_token
            .as_ref()
            .map(|t| Auth::Bearer(t.expose().to_string()));
        let auth = Auth::choose(token, &cfg.username, &cfg.password);
        let headers = cfg
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_string()))
            .collect();
        let tls = ClientTls::new(&cfg.tls).map_err(|e| format!("tls.{e}"))?;
        Ok(HttpSink {
            name,
            http: HttpClient::new(cfg.url.clone(), auth, headers, cfg.timeout.get(), tls),
            format: cfg.format,
            gzip: cfg.gzip,
        })
    }
}

/// The request body and its content type. NDJSON is the batch's JSON lines as they are
/// (shared with the file sink); the array holds the same objects, in the same order.
pub fn encode(batch: &Batch, format: BodyFormat) -> (Vec<u8>, &'static str) {
    let lines = batch.json_lines();
    match format {
        BodyFormat::Ndjson => (lines.to_vec(), "application/x-ndjson"),
        BodyFormat::JsonArray => {
            let mut out = Vec::with_capacity(lines.len() + 2);
            out.push(b'[');
            // A record's JSON never holds a raw newline (strings escape it), so each `\n`
            // of the lines ends one object.
            for (i, object) in lines
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .enumerate()
            {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(object);
            }
            out.push(b']');
            (out, "application/json")
        }
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn interrupter(&self) -> Option<super::Interrupter> {
        Some(self.http.interrupter())
    }

    fn write_batch(&mut self, batch: &Batch, deadline: Option<Instant>) -> Result<(), SinkError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let (body, content_type) = encode(batch, self.format);
        let reply = self.http.post(&body, content_type, self.gzip, deadline)?;
        classify(self.http.url(), &reply)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::capture::record::sample_records;

    fn batch() -> Batch {
        let mut records = sample_records(3, "m");
        records[1].message = "two\nlines, \"quoted\", ünïcode\u{1}".into();
        Batch::new(records)
    }

    fn parse_lines(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn ndjson_is_the_file_sinks_bytes() {
        let batch = batch();
        let (body, content_type) = encode(&batch, BodyFormat::Ndjson);
        assert_eq!(content_type, "application/x-ndjson");
        assert_eq!(body, batch.json_lines());
        let records = parse_lines(&body);
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[1]["message"],
            "two\nlines, \"quoted\", ünïcode\u{1}"
        );
    }

    #[test]
    fn json_array_holds_the_same_objects_in_order() {
        let batch = batch();
        let (body, content_type) = encode(&batch, BodyFormat::JsonArray);
        assert_eq!(content_type, "application/json");
        let array: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(array, Value::Array(parse_lines(batch.json_lines())));
        assert!(body.starts_with(b"[{") && body.ends_with(b"}]"));
        assert!(!body.contains(&b'\n'));
    }

    #[test]
    fn json_array_of_one_record_and_of_none() {
        let one = Batch::new(sample_records(1, "m"));
        let (body, _) = encode(&one, BodyFormat::JsonArray);
        let array: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(array.as_array().map(Vec::len), Some(1));
        let (body, _) = encode(&Batch::new(Vec::new()), BodyFormat::JsonArray);
        assert_eq!(body, b"[]");
    }

    #[test]
    fn an_empty_batch_sends_nothing() {
        // Port 1 on loopback refuses: any request would fail.
        let cfg = HttpSinkConfig {
            url: "http://127.0.0.1:1/ingest".into(),
            ..HttpSinkConfig::default()
        };
        let mut sink = HttpSink::new("http-0".into(), &cfg).unwrap();
        assert!(sink.write_batch(&Batch::new(Vec::new()), None).is_ok());
        let err = sink.write_batch(&batch(), None).unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}
