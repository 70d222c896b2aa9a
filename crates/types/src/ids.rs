use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The largest id (all bits set): a bound for keyset pagination.
            pub const MAX: $name = $name(Uuid::max());

            /// A new, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The raw 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// From raw bytes as stored.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Uuid::from_slice(bytes).ok().map(Self)
            }
            /// The smallest id that can be made at or after `at`: UUIDv7 ids begin with
            /// their creation time in milliseconds, so `id >= first_at(t)` selects by time
            /// with an index range.
            pub fn first_at(at: crate::Timestamp) -> Self {
                let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
                let mut bytes = [0u8; 16];
                bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies one stored event.
    EventId
);
id_type!(
    /// Identifies one run: everything caused by one source event.
    RunId
);
id_type!(
    /// Identifies one delivery of an event to one agent (one agent execution).
    JobId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_bounds_ids_by_creation_time() {
        let before = crate::now();
        let id = RunId::new();
        assert!(RunId::first_at(before) <= id);
        assert!(RunId::first_at(crate::now() + chrono::Duration::seconds(1)) > id);
        assert_eq!(RunId::first_at(crate::from_micros(0)).0, Uuid::nil());
    }
}
