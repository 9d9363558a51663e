//! Errors of the Docker client, classified transient (retry with backoff) or permanent.

use std::fmt;

use crate::metrics::Endpoint;

/// What went wrong talking to dockerd.
#[derive(Debug)]
#[non_exhaustive]
pub enum DockerError {
    /// Connecting, writing or reading failed, or timed out.
    Transport {
        endpoint: Endpoint,
        source: ureq::Error,
    },
    /// The daemon answered with an unexpected status.
    Status {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },
    /// The daemon's JSON did not decode.
    Decode {
        endpoint: Endpoint,
        source: serde_json::Error,
    },
    /// The daemon's body broke its own format (e.g. a corrupt stdcopy frame).
    Protocol { endpoint: Endpoint, message: String },
    /// The daemon's version is unusable (unparsable or out of our range).
    Version(String),
    /// The client was shut down.
    Shutdown,
}

impl DockerError {
    /// Worth retrying later: transport failures and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Transport { .. } => true,
            DockerError::Status { status, .. } => *status >= 500 || *status == 429,
            DockerError::Decode { .. } => true,
            DockerError::Protocol { .. } => true,
            DockerError::Version(_) => true,
            DockerError::Shutdown => false,
        }
    }

    /// The daemon says the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::Status { status: 404, .. })
    }

    /// The daemon cannot do it for this object (501: e.g. logs of a container whose log
    /// driver keeps nothing to read back, like `none`).
    pub fn is_not_implemented(&self) -> bool {
        matches!(self, DockerError::Status { status: 501, .. })
    }

    /// The daemon says the object is in a conflicting state (409, e.g. being removed).
    pub fn is_conflict(&self) -> bool {
        matches!(self, DockerError::Status { status: 409, .. })
    }
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::Transport { endpoint, source } => {
                write!(f, "docker {}: {source}", endpoint.as_str())
            }
            DockerError::Status {
                endpoint,
                status,
                message,
            } => write!(f, "docker {}: HTTP {status}: {message}", endpoint.as_str()),
            DockerError::Decode { endpoint, source } => {
                write!(
                    f,
                    "docker {}: bad JSON from daemon: {source}",
                    endpoint.as_str()
                )
            }
            DockerError::Protocol { endpoint, message } => {
                write!(f, "docker {}: {message}", endpoint.as_str())
            }
            DockerError::Version(msg) => write!(f, "docker version: {msg}"),
            DockerError::Shutdown => write!(f, "docker client shut down"),
        }
    }
}

impl std::error::Error for DockerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DockerError::Transport { source, .. } => Some(source),
            DockerError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}
