//! The Elasticsearch / OpenSearch sink: `POST <url>/_bulk` with NDJSON `create` actions
//! (data streams accept only `create`), into an index named from a date pattern over each
//! record's time. The per-item results are read: items refused with 429 or 5xx are retried
//! alone (a partial failure), items refused otherwise are counted, logged once per batch
//! with the server's reason, and dropped; a 409 means the document is already there.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use super::http::{classify, reason, Auth, HttpClient};
use super::{Batch, Sink, SinkError};
use crate::capture::record::Record;
use crate::config::{parse_index_pattern, ElasticsearchSinkConfig, IndexPart};
use crate::metrics::Metrics;
use crate::tls::ClientTls;

/// `(year, month, day, hour)` of a record's time, what an index name depends on.
type CivilHour = (i64, u32, u32, u32);

pub struct ElasticsearchSink {
    name: String,
    http: HttpClient,
    index: Vec<IndexPart>,
    metrics: Arc<Metrics>,
}

#[derive(Deserialize)]
struct BulkReply {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl ElasticsearchSink {
    pub fn new(
        name: String,
        cfg: &ElasticsearchSinkConfig,
        metrics: Arc<Metrics>,
    ) -> Result<ElasticsearchSink, String> {
        let url = format!("{}/_bulk", cfg.url.trim_end_matches('/'));
        let token = cfg
            .api_key
            .as_ref()
            .map(|t| Auth::ApiKey(t.expose().to_string()));
        let auth = Auth::choose(token, &cfg.username, &cfg.password);
        let index = parse_index_pattern(&cfg.index).map_err(|e| format!("index: {e}"))?;
        let tls = ClientTls::new(&cfg.tls).map_err(|e| format!("tls.{e}"))?;
        Ok(ElasticsearchSink {
            name,
            http: HttpClient::new(url, auth, Vec::new(), cfg.timeout.get(), tls),
            index,
            metrics,
        })
    }

    /// The index for a record's time. Records of one batch nearly always share an hour,
    /// so the name is rendered once per distinct hour, not once per record.
    fn index_of<'a>(&self, r: &Record, cache: &'a mut Option<(CivilHour, String)>) -> &'a str {
        let (y, m, d, h) = r.time.civil();
        if cache.as_ref().map(|(k, _)| *k) != Some((y, m, d, h)) {
            let mut name = String::with_capacity(32);
            for part in &self.index {
                match part {
                    IndexPart::Literal(s) => name.push_str(s),
                    IndexPart::Year => name.push_str(&format!("{y:04}")),
                    IndexPart::Month => name.push_str(&format!("{m:02}")),
                    IndexPart::Day => name.push_str(&format!("{d:02}")),
                    IndexPart::Hour => name.push_str(&format!("{h:02}")),
                }
            }
            *cache = Some(((y, m, d, h), name));
        }
        cache
            .as_ref()
            .map(|(_, name)| name.as_str())
            .unwrap_or_default()
    }

    /// NDJSON: an action line and a document line per record; the document is the record
    /// with `@timestamp` first (data streams require it).
    pub fn encode(&self, batch: &Batch) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(batch.records.iter().map(|r| r.approx_bytes() + 120).sum());
        let mut doc = Vec::new();
        let mut index = None;
        for r in &batch.records {
            out.extend_from_slice(b"{\"create\":{\"_index\":");
            crate::capture::record::write_str(&mut out, self.index_of(r, &mut index));
            out.extend_from_slice(b"}}\n{\"@timestamp\":\"");
            out.extend_from_slice(&r.time.rfc3339_bytes());
            out.extend_from_slice(b"\",");
            doc.clear();
            r.write_json(&mut doc);
            out.extend_from_slice(doc.get(1..).unwrap_or_default());
        }
        out
    }

    /// Reads the per-item results of a 200 answer.
    fn items(&self, batch: &Batch, body: &[u8]) -> Result<(), SinkError> {
        let reply: BulkReply = serde_json::from_slice(body).map_err(|e| {
            SinkError::transient(format!("{}: unreadable bulk answer: {e}", self.http.url()))
        })?;
        if !reply.errors {
            return Ok(());
        }
        if reply.items.len() != batch.records.len() {
            return Err(SinkError::transient(format!(
                "{}: bulk answer lists {} items for {} documents",
                self.http.url(),
                reply.items.len(),
                batch.records.len()
            )));
        }
        let mut retry = Vec::new();
        let mut rejected = 0u64;
        let mut first_reason: Option<String> = None;
        for (i, item) in reply.items.iter().enumerate() {
            let Some(result) = item.values().next() else {
                continue;
            };
            match result.status {
                200..=299 | 409 => {}
                429 | 500..=599 => retry.push(i),
                status => {
                    rejected += 1;
                    if first_reason.is_none() {
                        let why = result
                            .error
                            .as_ref()
                            .map(|e| reason(e.to_string().as_bytes()))
                            .unwrap_or_default();
                        first_reason = Some(format!("HTTP {status}: {why}"));
                    }
                }
            }
        }
        if rejected > 0 {
            self.metrics
                .sink_rejected_records
                .with_label_values(&[&self.name])
                .inc_by(rejected);
            log::error!(
                "sink {}: {rejected} of {} documents rejected and dropped, e.g. {}",
                self.name,
                batch.records.len(),
                first_reason.unwrap_or_default()
            );
        }
        if retry.is_empty() {
            return Ok(());
        }
        Err(SinkError::Partial {
            message: format!(
                "{}: {} items refused for now (429/5xx)",
                self.http.url(),
                retry.len()
            ),
            retry,
            // Counted above, with their reasons.
            rejected: 0,
            retry_after: None,
        })
    }
}

impl Sink for ElasticsearchSink {
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
        let body = self.encode(batch);
        let reply = self
            .http
            .post(&body, "application/x-ndjson", false, deadline)?;
        classify(self.http.url(), &reply)?;
        self.items(batch, &reply.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::sample_records;
    use crate::capture::timestamp::Timestamp;

    fn sink(index: &str) -> ElasticsearchSink {
        let cfg = ElasticsearchSinkConfig {
            url: "http://127.0.0.1:1".into(),
            index: index.into(),
            ..ElasticsearchSinkConfig::default()
        };
        ElasticsearchSink::new(
            "elasticsearch-0".into(),
            &cfg,
            Arc::new(Metrics::new().unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn bulk_body_is_create_actions_with_dated_index_and_timestamp() {
        let mut records = sample_records(2, "m");
        records[0].time = Timestamp::parse(b"2026-11-26T17:55:29.5Z").unwrap();
        records[1].time = Timestamp::parse(b"2026-12-01T03:00:00Z").unwrap();
        let body = sink("logs-%Y.%m.%d-%H").encode(&Batch::new(records));
        let text = String::from_utf8(body).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["create"]["_index"], "logs-2026.11.26-17");
        assert_eq!(lines[1]["@timestamp"], "2026-11-26T17:55:29.500000000Z");
        assert_eq!(lines[1]["message"], "m 0");
        assert_eq!(lines[2]["create"]["_index"], "logs-2026.12.01-03");
        assert!(text.lines().nth(1).unwrap().starts_with("{\"@timestamp\":"));
    }

    /// A document carries the fields a rule parsed, as an object.
    #[test]
    fn documents_carry_parsed_fields() {
        let mut records = sample_records(1, "m");
        records[0].message = r#"{"level":"error","code":500}"#.into();
        records[0].fields = crate::capture::record::Fields::Message;
        let body = sink("logs").encode(&Batch::new(records));
        let text = String::from_utf8(body).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(doc["fields"]["code"], 500);
        assert_eq!(doc["fields"]["level"], "error");
        assert_eq!(doc["message"], r#"{"level":"error","code":500}"#);
    }

    #[test]
    fn item_results_split_into_retry_and_rejected() {
        let s = sink("logs");
        let batch = Batch::new(sample_records(4, "m"));
        let reply = br#"{"took":1,"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}},
            {"create":{"status":409}}]}"#;
        match s.items(&batch, reply) {
            Err(SinkError::Partial { retry, .. }) => assert_eq!(retry, vec![1]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.metrics
                .sink_rejected_records
                .with_label_values(&["elasticsearch-0"])
                .get(),
            1
        );
        assert!(s.items(&batch, br#"{"errors":false,"items":[]}"#).is_ok());
        assert!(s.items(&batch, b"not json").unwrap_err().is_transient());
        assert!(s
            .items(
                &batch,
                br#"{"errors":true,"items":[{"create":{"status":201}}]}"#
            )
            .is_err());
    }
}
