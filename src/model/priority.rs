//! [`Priority`]: which waiting job a worker takes first (#18). A person waiting on the upload
//! page (`interactive`) goes before ordinary work (`normal`), which goes before backfills
//! (`bulk`); within a priority, the earliest due job first.

use poem_openapi::Enum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Priority {
    /// Someone is waiting for it: claimed before every other waiting job.
    Interactive,
    /// The default.
    #[default]
    Normal,
    /// Claimed only when no interactive or normal job of its kind waits.
    Bulk,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Interactive, Priority::Normal, Priority::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// apalis's task priority (its claim takes the highest first).
    pub fn rank(self) -> i32 {
        match self {
            Priority::Interactive => 2,
            Priority::Normal => 1,
            Priority::Bulk => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_rank_interactive_first_and_read_back() {
        assert!(Priority::Interactive.rank() > Priority::Normal.rank());
        assert!(Priority::Normal.rank() > Priority::Bulk.rank());
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        assert_eq!(Priority::parse("urgent"), None);
    }
}
