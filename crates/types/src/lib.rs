//! Plain data shared by every Switchyard crate.
//!
//! Architecture invariant: this crate does no IO and names no database, queue or
//! HTTP library. Everything here is serde + schemars data.

mod duration;
mod ids;
mod model;
pub mod testing;

pub use duration::{Duration, DurationError};
pub use ids::{EventId, JobId, RunId};
pub use model::*;

/// Wall-clock time as stored and shown: UTC with microsecond precision.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The current time, truncated to microseconds (what the stores keep).
pub fn now() -> Timestamp {
    let t = chrono::Utc::now();
    from_micros(t.timestamp_micros())
}

/// A timestamp from microseconds since the Unix epoch.
pub fn from_micros(micros: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default()
}
