//! Shadow mode (`policy.mode = "shadow"`): the write step records what it would write and writes nothing.

use super::settle::Attempt;
use super::Worker;
use crate::domain::{Outcome, Tag};

impl Worker {
    /// Ends the attempt as `shadow`: the decided tags stay in the audit row, `tags_written` stays
    /// empty, the detail names the tags that would have been written, and
    /// `ltv_tagger_shadow_decisions_total{tag}` counts every decided tag.
    pub(super) fn shadow(
        &self,
        missing: Vec<Tag>,
        found: &mut super::pipeline::Findings,
    ) -> Attempt {
        for tag in &found.decided {
            self.metrics
                .shadow_decisions
                .with_label_values(&[tag.as_str()])
                .inc();
        }
        let would: Vec<String> = missing.iter().map(Tag::to_string).collect();
        found.finished(
            Outcome::Shadow,
            Some(format!("shadow mode: would write {}", would.join(", "))),
        )
    }
}
