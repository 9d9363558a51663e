//! The `syslog` sink's entry and its defaults (those of `config/log-capturer.toml`):
//! where (`udp://`, `tcp://`, `tls://host:port`), which format (RFC 5424 or 3164), how
//! messages are framed on a stream, the facility, and the `app_name` and `hostname`
//! templates. [`SyslogAddress::parse`] is used by validation and by the sink alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::sections::secs;
use super::units::{deserialize_from_str, HumanDuration, InvalidValue};
use super::TlsConfig;

/// Syslog over UDP, TCP or TLS. `Default` has an empty `address`, which validation
/// rejects: the file must name one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSinkConfig {
    /// `udp://host:port`, `tcp://host:port` or `tls://host:port`.
    pub address: String,
    pub format: SyslogFormat,
    /// TCP and TLS: how messages are delimited on the stream.
    pub framing: Framing,
    /// A syslog facility name (`user`, `daemon`, `local0` .. `local7`, ...).
    pub facility: String,
    /// Template over record fields (as Loki labels).
    pub app_name: String,
    pub hostname: String,
    /// Connecting and each write.
    pub timeout: HumanDuration,
    /// A connection unused this long is closed and opened again before the next batch.
    pub idle_timeout: HumanDuration,
    /// `tls://` only (README, TLS).
    #[serde(skip_serializing_if = "TlsConfig::is_default")]
    pub tls: TlsConfig,
}

impl Default for SyslogSinkConfig {
    fn default() -> Self {
        SyslogSinkConfig {
            address: String::new(),
            format: SyslogFormat::Rfc5424,
            framing: Framing::OctetCounting,
            facility: "user".to_owned(),
            app_name: "{container_name}".to_owned(),
            hostname: "{host}".to_owned(),
            timeout: secs(10),
            idle_timeout: secs(60),
            tls: TlsConfig::default(),
        }
    }
}

/// How the sink reaches the syslog server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// A parsed `address`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogAddress {
    pub transport: Transport,
    /// A name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl SyslogAddress {
    pub fn parse(text: &str) -> Result<SyslogAddress, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?}: expected udp://, tcp:// or tls://host:port"))?;
        let transport = match scheme {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            other => {
                return Err(format!(
                    "{other:?}: expected udp://, tcp:// or tls://host:port"
                ))
            }
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?}: the port is missing (host:port)"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
        if host.is_empty() || host.contains(['/', '@', ' ']) || port == 0 {
            return Err(format!("{text:?}: expected scheme://host:port"));
        }
        Ok(SyslogAddress {
            transport,
            host: host.to_owned(),
            port,
        })
    }
}

/// The facility's code (RFC 5424 table 1), by its usual name.
pub fn facility_code(name: &str) -> Option<u8> {
    const NAMES: [&str; 16] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
    ];
    if let Some(n) = name.strip_prefix("local") {
        return n.parse::<u8>().ok().filter(|n| *n <= 7).map(|n| 16 + n);
    }
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// The syslog message format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyslogFormat {
    #[default]
    Rfc5424,
    Rfc3164,
}

/// How messages are delimited on TCP and TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// RFC 6587 octet counting: `<length> <message>`; a message may hold newlines.
    #[default]
    OctetCounting,
    /// One message per line; a newline inside a message is escaped as `\n`.
    Newline,
}

macro_rules! named_enum {
    ($ty:ty, $what:literal, $($variant:path => $name:literal),+) => {
        impl FromStr for $ty {
            type Err = InvalidValue;
            fn from_str(text: &str) -> Result<Self, InvalidValue> {
                match text {
                    $($name => Ok($variant),)+
                    _ => Err(InvalidValue(format!("invalid {} {text:?}: expected {}", $what,
                        [$(concat!("\"", $name, "\"")),+].join(" or ")))),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($variant => $name,)+ })
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserialize_from_str(deserializer, concat!($("\"", $name, "\" "),+))
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

named_enum!(SyslogFormat, "format", SyslogFormat::Rfc5424 => "rfc5424", SyslogFormat::Rfc3164 => "rfc3164");
named_enum!(Framing, "framing", Framing::OctetCounting => "octet-counting", Framing::Newline => "newline");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_why() {
        let a = SyslogAddress::parse("tcp://127.0.0.1:514").unwrap();
        assert_eq!(
            (a.transport, a.host.as_str(), a.port),
            (Transport::Tcp, "127.0.0.1", 514)
        );
        let a = SyslogAddress::parse("tls://[::1]:6514").unwrap();
        assert_eq!((a.transport, a.host.as_str()), (Transport::Tls, "::1"));
        assert_eq!(
            SyslogAddress::parse("udp://logs:514").unwrap().transport,
            Transport::Udp
        );
        for bad in [
            "127.0.0.1:514",
            "http://x:1",
            "tcp://x",
            "tcp://:514",
            "tcp://x:0",
            "tcp://x:99999",
        ] {
            assert!(SyslogAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn facilities_by_name() {
        assert_eq!(facility_code("kern"), Some(0));
        assert_eq!(facility_code("user"), Some(1));
        assert_eq!(facility_code("local0"), Some(16));
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(facility_code("local8"), None);
        assert_eq!(facility_code("users"), None);
    }

    #[test]
    fn format_and_framing_names() {
        assert_eq!(
            "rfc3164".parse::<SyslogFormat>().unwrap(),
            SyslogFormat::Rfc3164
        );
        assert_eq!("newline".parse::<Framing>().unwrap(), Framing::Newline);
        let e = "lines".parse::<Framing>().unwrap_err();
        assert!(e.0.contains("\"octet-counting\" or \"newline\""), "{}", e.0);
        assert_eq!(Framing::OctetCounting.to_string(), "octet-counting");
    }
}
