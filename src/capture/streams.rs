//! The registry of followed streams behind `GET /streams`: one live stats value per
//! follower, registered while the follower runs and removed when it is joined.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use super::record::ContainerId;
use super::timestamp::Timestamp;

/// Counters of one follow stream, updated by its follower.
pub struct StreamStats {
    pub id: ContainerId,
    pub name: Mutex<String>,
    pub state: Mutex<&'static str>,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Docker time of the last record, in nanoseconds (0 = none yet).
    pub last_time: AtomicI64,
    pub reconnects: AtomicU64,
}

impl StreamStats {
    pub fn new(id: ContainerId, name: String) -> StreamStats {
        StreamStats {
            id,
            name: Mutex::new(name),
            state: Mutex::new("starting"),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_time: AtomicI64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    pub fn set_state(&self, state: &'static str) {
        *self.state.lock() = state;
    }
}

#[derive(Serialize)]
struct StreamView {
    container_id: String,
    container_name: String,
    state: &'static str,
    records: u64,
    bytes: u64,
    last_time: Option<String>,
    reconnects: u64,
}

/// All running followers' stats.
#[derive(Default)]
pub struct StreamRegistry {
    map: Mutex<BTreeMap<ContainerId, Arc<StreamStats>>>,
}

impl StreamRegistry {
    pub fn insert(&self, stats: Arc<StreamStats>) {
        self.map.lock().insert(stats.id.clone(), stats);
    }

    pub fn get(&self, id: &ContainerId) -> Option<Arc<StreamStats>> {
        self.map.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &ContainerId) {
        self.map.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `/streams` document.
    pub fn to_json(&self) -> String {
        let views: Vec<StreamView> = self
            .map
            .lock()
            .values()
            .map(|s| {
                let t = s.last_time.load(Ordering::Relaxed);
                StreamView {
                    container_id: s.id.to_string(),
                    container_name: s.name.lock().clone(),
                    state: *s.state.lock(),
                    records: s.records.load(Ordering::Relaxed),
                    bytes: s.bytes.load(Ordering::Relaxed),
                    last_time: (t != 0).then(|| Timestamp::from_nanos(t).to_rfc3339()),
                    reconnects: s.reconnects.load(Ordering::Relaxed),
                }
            })
            .collect();
        serde_json::to_string(&views).unwrap_or_else(|_| "[]".to_string())
    }
}
