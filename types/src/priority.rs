//! Priority lanes: which messages go first within a carrier's rate budget.
//!
//! A send is `high` (one-time passwords, alerts), `normal` (the default) or `bulk`
//! (campaigns; advertisements unless the send says otherwise). Each carrier's work
//! queue has a lane per priority (`carrier.<name>.high`, `carrier.<name>`,
//! `carrier.<name>.bulk`, each with its own consumer), and the carriers service hands
//! the carrier's rate slots to the highest lane waiting, so a one-time password never
//! queues behind a campaign on a throttled carrier.
use std::fmt;

use serde::{Deserialize, Serialize};

/// A send's priority; lanes are ordered from first to last.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Bulk,
}

impl Priority {
    /// Every lane, first to last.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Bulk];

    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }

    pub fn is_normal(&self) -> bool {
        *self == Priority::Normal
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_comes_first_and_normal_is_the_default() {
        assert!(Priority::High < Priority::Normal && Priority::Normal < Priority::Bulk);
        assert_eq!(Priority::default(), Priority::Normal);
        assert_eq!(
            serde_json::from_str::<Priority>(r#""bulk""#).unwrap(),
            Priority::Bulk
        );
        assert!(serde_json::from_str::<Priority>(r#""urgent""#).is_err());
    }
}
