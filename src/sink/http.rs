//! HTTP for the network sinks: one ureq agent per sink (TCP, the sink's TLS from
//! [`crate::tls`], proxy from the usual environment variables), POST with authentication
//! and optional gzip, and the classification of what came back: 2xx taken; connect
//! errors, timeouts, 429 and 5xx transient (with the server's Retry-After); any other
//! status a rejection carrying the server's reason. Credentials live only in the header
//! values built here; nothing in this module logs them.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use flate2::write::GzEncoder;
use flate2::Compression;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::Agent;

use crate::tls::{ClientTls, TlsConnector};

use super::SinkError;

/// How a sink authenticates.
#[derive(Clone)]
pub enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
    ApiKey(String),
}

impl Auth {
    /// `token` (bearer token or API key) when configured, else basic authentication when a
    /// username is, else none.
    pub fn choose(
        token: Option<Auth>,
        username: &Option<String>,
        password: &Option<crate::config::Secret>,
    ) -> Auth {
        match (token, username) {
            (Some(t), _) => t,
            (None, Some(u)) => Auth::Basic {
                username: u.clone(),
                password: password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            },
            (None, None) => Auth::None,
        }
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64_STANDARD.encode(format!("{username}:{password}"))
            )),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::ApiKey(k) => Some(format!("ApiKey {k}")),
        }
    }
}

/// What a POST got back.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<Duration>,
}

pub struct HttpClient {
    agent: Agent,
    url: String,
    authorization: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

/// Largest response body read (Elasticsearch bulk answers list every item).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

impl HttpClient {
    /// `url` is the full endpoint; `headers` are fixed extra headers (e.g. X-Scope-OrgID);
    /// `tls` is used for `https://` URLs.
    pub fn new(
        url: String,
        auth: Auth,
        headers: Vec<(String, String)>,
        timeout: Duration,
        tls: ClientTls,
    ) -> HttpClient {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .proxy(ureq::Proxy::try_from_env())
            .user_agent(concat!("log-capturer/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(2)
            .max_idle_connections_per_host(2)
            .build();
        HttpClient {
            agent: Agent::with_parts(
                config,
                TlsConnector::chain(tls, &url),
                DefaultResolver::default(),
            ),
            url,
            authorization: auth.header(),
            headers,
            timeout,
        }
    }

    /// Aborts every request of this client in flight, and refuses new ones.
    pub fn interrupter(&self) -> super::Interrupter {
        let agent = self.agent.clone();
        Box::new(move || agent.clone().shutdown())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `body`; gzips it first when asked. `deadline` shortens the timeout.
    pub fn post(
        &self,
        body: &[u8],
        content_type: &str,
        gzip: bool,
        deadline: Option<Instant>,
    ) -> Result<Reply, SinkError> {
        let timeout = super::timeout_until(self.timeout, deadline);
        let mut req = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", content_type);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let result = if gzip {
            let compressed =
                gzip_bytes(body).map_err(|e| SinkError::transient(format!("gzip: {e}")))?;
            req.header("Content-Encoding", "gzip").send(&compressed[..])
        } else {
            req.send(body)
        };
        let mut resp =
            result.map_err(|e| SinkError::transient(format!("POST {}: {e}", self.url)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_vec()
            .map_err(|e| {
                SinkError::transient(format!("POST {}: reading the answer: {e}", self.url))
            })?;
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}

/// 2xx: `Ok`; 429 and 5xx: transient; anything else: rejected with the server's words.
pub fn classify(url: &str, reply: &Reply) -> Result<(), SinkError> {
    match reply.status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(SinkError::Transient {
            message: format!("POST {url}: HTTP {}: {}", reply.status, reason(&reply.body)),
            retry_after: reply.retry_after,
        }),
        s => Err(SinkError::Rejected(format!(
            "POST {url}: HTTP {s}: {}",
            reason(&reply.body)
        ))),
    }
}

/// The first 300 characters of a server's answer, on one line.
pub fn reason(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(300).collect()
}

fn gzip_bytes(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    enc.write_all(body)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_header() {
        let basic = Auth::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(
            basic.header().unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn classification() {
        let reply = |status, body: &str| Reply {
            status,
            body: body.as_bytes().to_vec(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(classify("u", &reply(204, "")).is_ok());
        match classify("u", &reply(429, "slow down")) {
            Err(SinkError::Transient {
                retry_after,
                message,
            }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert!(message.contains("slow down"));
            }
            other => panic!("{other:?}"),
        }
        assert!(classify("u", &reply(503, "")).unwrap_err().is_transient());
        match classify("u", &reply(400, "entry too far behind\n for stream")) {
            Err(SinkError::Rejected(m)) => {
                assert!(m.contains("entry too far behind for stream"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
