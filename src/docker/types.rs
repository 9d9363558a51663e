//! The parts of the Docker API's JSON we read. Every field is defaulted, so a daemon that
//! leaves one out (older API versions do) decodes instead of failing.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `GET /version`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VersionInfo {
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "ApiVersion")]
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
}

/// One entry of `GET /containers/json`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names")]
    pub names: Vec<String>,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "State")]
    pub state: String,
    /// Unix seconds.
    #[serde(rename = "Created")]
    pub created: i64,
}

impl ContainerSummary {
    /// The first name without Docker's leading '/'.
    pub fn name(&self) -> &str {
        self.names
            .first()
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or("")
    }
}

/// `GET /containers/{id}/json`, the fields we use.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerInspect {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "State")]
    pub state: InspectState,
    #[serde(rename = "Config")]
    pub config: InspectConfig,
    #[serde(rename = "HostConfig")]
    pub host_config: InspectHostConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InspectState {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Running")]
    pub running: bool,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InspectConfig {
    #[serde(rename = "Tty")]
    pub tty: bool,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Hostname")]
    pub hostname: String,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InspectHostConfig {
    #[serde(rename = "LogConfig")]
    pub log_config: LogConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
}

/// One object of `GET /events`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The daemon's error body: `{"message": "..."}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub message: String,
}
