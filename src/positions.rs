//! Acknowledged positions: per container, the position of the last record every sink
//! acknowledged. Only the dispatcher advances them, and only after a batch reached every
//! sink; a follower never moves them. (Persisting them to `positions.path` builds on this.)

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::capture::record::{ContainerId, Position, Record};

#[derive(Default)]
pub struct AckedPositions {
    map: Mutex<HashMap<ContainerId, Position>>,
}

impl AckedPositions {
    pub fn new() -> AckedPositions {
        AckedPositions::default()
    }

    /// Advances every container in `records` (queue order, so the last one wins).
    pub fn ack(&self, records: &[crate::capture::record::Record]) {
        let mut map = self.map.lock();
        let mut last: Option<&Record> = None;
        for r in records {
            if let Some(prev) = last {
                if prev.meta.id != r.meta.id {
                    map.insert(prev.meta.id.clone(), prev.position);
                }
            }
            last = Some(r);
        }
        if let Some(r) = last {
            map.insert(r.meta.id.clone(), r.position);
        }
    }

    pub fn get(&self, id: &ContainerId) -> Option<Position> {
        self.map.lock().get(id).copied()
    }

    /// Forgets a destroyed container.
    pub fn forget(&self, id: &ContainerId) {
        self.map.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
