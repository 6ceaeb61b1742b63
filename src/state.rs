//! Slurm job states → the final set a job ends in (ARCHITECTURE.md §4), and the worst outcome of an array.
use crate::keys::Set;

/// What a Slurm state means for the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The job is finished; it belongs in this final set.
    Final(Set),
    /// Pending, running or in transit (COMPLETING, REQUEUED, SUSPENDED, …): keep polling.
    Active,
    /// A state this version does not know: keep polling and say so, never guess a set.
    Unrecognized,
}

/// Map a state as squeue, sacct or scontrol print it (`COMPLETED`, `CANCELLED by 0`,
/// `CANCELLED+` from a narrow sacct column, `cancelled`) to a verdict.
pub fn classify(state: &str) -> Verdict {
    let word = state
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('+')
        .to_ascii_uppercase();
    match word.as_str() {
        "COMPLETED" | "CD" => Verdict::Final(Set::Completed),
        // PREEMPTED (not requeued: a requeued job is PENDING again with the same ID) ends in
        // FAILED, like a job killed by the system; rj-track waits for accounting and a grace
        // period before it believes it (ARCHITECTURE.md §4, `is_preempted`).
        "FAILED" | "F" | "OUT_OF_MEMORY" | "OOM" | "NODE_FAIL" | "NF" | "BOOT_FAIL" | "BF"
        | "DEADLINE" | "DL" | "PREEMPTED" | "PR" => Verdict::Final(Set::Failed),
        "TIMEOUT" | "TO" => Verdict::Final(Set::Timeout),
        // REVOKED: a federated sibling that was withdrawn because another cluster ran the job.
        "CANCELLED" | "CA" | "REVOKED" | "RV" => Verdict::Final(Set::Cancelled),
        "PENDING" | "PD" | "RUNNING" | "R" | "SUSPENDED" | "S" | "COMPLETING" | "CG"
        | "CONFIGURING" | "CF" | "REQUEUED" | "RQ" | "REQUEUE_HOLD" | "RH" | "REQUEUE_FED"
        | "RF" | "RESIZING" | "RS" | "SIGNALING" | "SI" | "STAGE_OUT" | "SO" | "STOPPED" | "ST"
        | "SPECIAL_EXIT" | "SE" | "RESV_DEL_HOLD" | "RD" => Verdict::Active,
        _ => Verdict::Unrecognized,
    }
}

/// Is this state PREEMPTED (`PREEMPTED`, `PR`), final only once Slurm will not requeue it?
pub fn is_preempted(state: &str) -> bool {
    let word = state.split_whitespace().next().unwrap_or("");
    let word = word.trim_end_matches('+');
    word.eq_ignore_ascii_case("PREEMPTED") || word.eq_ignore_ascii_case("PR")
}

/// How bad an outcome is, for arrays: FAILED > TIMEOUT > CANCELLED > COMPLETED.
fn rank(set: Set) -> u8 {
    match set {
        Set::Failed => 4,
        Set::Timeout => 3,
        Set::Cancelled => 2,
        Set::Completed => 1,
        Set::All | Set::PendingAndRunning => 0,
    }
}

/// The worse of two final sets.
pub fn worst(a: Set, b: Set) -> Set {
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Per-task outcome counts of an array job, written into the parent's job hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub completed: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cancelled: u64,
}

impl Counts {
    pub fn add(&mut self, set: Set) {
        match set {
            Set::Completed => self.completed += 1,
            Set::Failed => self.failed += 1,
            Set::Timeout => self.timeout += 1,
            Set::Cancelled => self.cancelled += 1,
            Set::All | Set::PendingAndRunning => {}
        }
    }

    pub fn total(&self) -> u64 {
        self.completed + self.failed + self.timeout + self.cancelled
    }

    /// Job hash fields: `tasks`, `tasks_completed`, `tasks_failed`, ….
    pub fn fields(&self) -> Vec<(String, String)> {
        vec![
            ("tasks".into(), self.total().to_string()),
            ("tasks_completed".into(), self.completed.to_string()),
            ("tasks_failed".into(), self.failed.to_string()),
            ("tasks_timeout".into(), self.timeout.to_string()),
            ("tasks_cancelled".into(), self.cancelled.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_final_state_of_design_4() {
        for (s, set) in [
            ("COMPLETED", Set::Completed),
            ("FAILED", Set::Failed),
            ("OUT_OF_MEMORY", Set::Failed),
            ("NODE_FAIL", Set::Failed),
            ("BOOT_FAIL", Set::Failed),
            ("DEADLINE", Set::Failed),
            ("PREEMPTED", Set::Failed),
            ("TIMEOUT", Set::Timeout),
            ("CANCELLED", Set::Cancelled),
            ("CANCELLED by 0", Set::Cancelled),
            ("CANCELLED by 1000", Set::Cancelled),
            ("CANCELLED+", Set::Cancelled),
            ("cancelled", Set::Cancelled),
        ] {
            assert_eq!(classify(s), Verdict::Final(set), "{s}");
        }
    }

    #[test]
    fn transit_states_stay() {
        for s in [
            "PENDING",
            "RUNNING",
            "SUSPENDED",
            "COMPLETING",
            "CONFIGURING",
            "REQUEUED",
            "REQUEUE_HOLD",
            "REQUEUE_FED",
            "RESIZING",
            "SIGNALING",
            "STAGE_OUT",
            "STOPPED",
            "SPECIAL_EXIT",
            "RESV_DEL_HOLD",
            "PD",
            "R",
            "CG",
        ] {
            assert_eq!(classify(s), Verdict::Active, "{s}");
        }
    }

    #[test]
    fn unknown_states_are_not_guessed() {
        for s in ["", "WEIRD", "OUT_OF_ME+", "N/A"] {
            assert_eq!(classify(s), Verdict::Unrecognized, "{s:?}");
        }
        assert_eq!(classify(" completed "), Verdict::Final(Set::Completed));
    }

    #[test]
    fn array_worst_outcome() {
        let mut c = Counts::default();
        let mut w = Set::Completed;
        for (s, want) in [
            (Set::Completed, Set::Completed),
            (Set::Cancelled, Set::Cancelled),
            (Set::Timeout, Set::Timeout),
            (Set::Failed, Set::Failed),
            (Set::Completed, Set::Failed),
        ] {
            c.add(s);
            w = worst(w, s);
            assert_eq!(w, want);
        }
        assert_eq!(c.total(), 5);
        assert_eq!(
            c.fields()[..3],
            [
                ("tasks".to_string(), "5".to_string()),
                ("tasks_completed".to_string(), "2".to_string()),
                ("tasks_failed".to_string(), "1".to_string())
            ]
        );
        assert_eq!(worst(Set::Completed, Set::Failed), Set::Failed);
        assert_eq!(worst(Set::Timeout, Set::Cancelled), Set::Timeout);
    }
}
