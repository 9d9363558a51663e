//! Pure parsing of an HTTP/1.x request head, with the limits the endpoint server enforces:
//! the head is at most `MAX_HEAD` bytes, and a request may not carry a body (our
//! endpoints take none; a body would only be something to read for a stranger's sake).

use std::fmt;

/// Longest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// A request line we answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path, without the query.
    pub path: String,
}

/// Why a request is refused: the status to answer with and a short reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

const fn refused(status: u16, reason: &'static str) -> Refused {
    Refused { status, reason }
}

/// Where the head ends (just past the blank line), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

/// Parses a complete head (`head_end` found its end).
pub fn parse_head(head: &[u8]) -> Result<Head, Refused> {
    let text = std::str::from_utf8(head).map_err(|_| refused(400, "request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(refused(505, "HTTP/1.x only"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(refused(400, "malformed method"));
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(refused(400, "malformed header"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && value != "0")
        {
            return Err(refused(413, "request bodies are not accepted"));
        }
    }
    let path = target.split('?').next().unwrap_or("").to_owned();
    Ok(Head {
        method: method.to_owned(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape() {
        let h = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        assert_eq!(head_end(h), Some(h.len()));
        assert_eq!(
            parse_head(h),
            Ok(Head {
                method: "GET".into(),
                path: "/metrics".into()
            })
        );
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[test]
    fn bodies_and_garbage_are_refused() {
        let cases: [(&[u8], u16); 7] = [
            (
                b"GET / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n",
                413,
            ),
            (b"GET / HTTP/1.1\r\ncontent-length:5\r\n\r\n", 413),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                413,
            ),
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2\r\n\r\n", 505),
            (b"G\xffT / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        ];
        for (head, status) in cases {
            assert_eq!(
                parse_head(head).map_err(|r| r.status),
                Err(status),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").is_ok());
    }
}
