//! Capture: from Docker's logs bodies to records. `supervisor` decides what is followed
//! and owns the follower threads; `events` feeds it; `follower` owns one container's
//! stream; `decode`, `merge`, `timestamp` and `filter` are pure; `record` is the output.

pub mod decode;
pub mod events;
pub mod filter;
pub mod follower;
pub mod gate;
pub mod hostfiles;
pub mod jsonfile;
pub mod logfile;
pub mod merge;
pub mod record;
pub mod streams;
pub mod supervisor;
pub mod timestamp;
