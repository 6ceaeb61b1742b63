//! The one-set-per-job rule of a tag's sets (ARCHITECTURE.md §2): violations, summaries, derivable repairs.
//!
//! Pure, so that every case is unit-tested: the callers read the sets (and records) from Redis.
use std::collections::HashMap;

use crate::keys::{IdKey, Keys, Set};
use crate::state::{self, Verdict};

/// How many example IDs a one-line summary names per kind of violation.
pub const EXAMPLES: usize = 3;

/// What is wrong with one ID. The order is the order lines for one ID are printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Problem {
    /// In a state set but not in `T_ALL` (typically: `T_ALL` was evicted).
    NotInAll,
    /// In two or more of the five state sets.
    SeveralSets,
    /// In `T_ALL` but in none of the five state sets (typically: its state set was evicted).
    NoSet,
}

impl Problem {
    /// The name in JSON, CSV and TSV.
    pub fn name(self) -> &'static str {
        match self {
            Problem::NotInAll => "not_in_all",
            Problem::SeveralSets => "several_sets",
            Problem::NoSet => "no_set",
        }
    }
}

/// One violation: the ID, what is wrong, and the state sets (never ALL) the ID is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub id: String,
    pub problem: Problem,
    pub sets: Vec<Set>,
}

impl Violation {
    /// The line after `ID: `, with the tag's real key names (what redis-cli users type).
    pub fn message(&self, keys: &Keys) -> String {
        let names: Vec<String> = self.sets.iter().map(|s| keys.set(*s)).collect();
        match self.problem {
            Problem::NotInAll => {
                format!("in {} but not in {}", join_and(&names), keys.set(Set::All))
            }
            Problem::SeveralSets => format!("in {}", join_and(&names)),
            Problem::NoSet => format!("in {} but in no state set", keys.set(Set::All)),
        }
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Where a set sits in `Set::ALL`, the order of the members arrays here.
pub fn index(set: Set) -> usize {
    Set::ALL.iter().position(|s| *s == set).unwrap_or(0)
}

/// The bit of a set in the membership mask (ALL is bit 0, then the five state sets).
pub fn bit(set: Set) -> u8 {
    1 << index(set)
}

/// Every violation in the members of the six sets (indexed in `Set::ALL` order), sorted by
/// job ID numerically, then by problem. Linear in the number of members (one hash map of
/// bit masks), so 100k IDs cost milliseconds.
pub fn check(members: &[Vec<String>; 6]) -> Vec<Violation> {
    let total: usize = members.iter().map(Vec::len).sum();
    let mut mask: HashMap<&str, u8> = HashMap::with_capacity(total);
    for (set, ids) in Set::ALL.iter().zip(members) {
        let b = bit(*set);
        for id in ids {
            *mask.entry(id.as_str()).or_default() |= b;
        }
    }
    let mut out = Vec::new();
    for (id, m) in mask {
        judge(id, m, &mut out);
    }
    out.sort_by_cached_key(|v| (IdKey::of(&v.id), v.problem));
    out
}

/// The violations of one ID from its membership mask (bit `index(set)` set for each of the six
/// sets that holds it), appended to `out` in problem order; nothing when the rule holds for it.
/// [`check`] is this for every ID; a caller that walks the sets in order (rj-status merging
/// sorted lists) calls it per ID.
pub fn judge(id: &str, mask: u8, out: &mut Vec<Violation>) {
    let in_all = mask & bit(Set::All) != 0;
    let state_bits = mask & !bit(Set::All);
    if in_all && state_bits.count_ones() == 1 {
        return;
    }
    let states: Vec<Set> = Set::ALL[1..]
        .iter()
        .copied()
        .filter(|s| mask & bit(*s) != 0)
        .collect();
    let mut push = |problem| {
        out.push(Violation {
            id: id.to_string(),
            problem,
            sets: states.clone(),
        })
    };
    if !in_all {
        push(Problem::NotInAll);
    }
    if states.len() > 1 {
        push(Problem::SeveralSets);
    }
    if in_all && states.is_empty() {
        push(Problem::NoSet);
    }
}

/// The one line a listing prints on stderr when the sets break the rule: how many IDs of each
/// kind, a few examples, and where to look next.
pub fn summary(keys: &Keys, violations: &[Violation]) -> String {
    let mut parts = Vec::new();
    for (problem, what) in [
        (
            Problem::NotInAll,
            format!("in a state set but not in {}", keys.set(Set::All)),
        ),
        (
            Problem::SeveralSets,
            "in two or more state sets".to_string(),
        ),
        (
            Problem::NoSet,
            format!("in {} but in no state set", keys.set(Set::All)),
        ),
    ] {
        let ids: Vec<&str> = violations
            .iter()
            .filter(|v| v.problem == problem)
            .map(|v| v.id.as_str())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let noun = if ids.len() == 1 { "ID" } else { "IDs" };
        let more = if ids.len() > EXAMPLES { ", …" } else { "" };
        parts.push(format!(
            "{} {noun} {what} (e.g. {}{more})",
            ids.len(),
            ids[..ids.len().min(EXAMPLES)].join(", ")
        ));
    }
    format!(
        "the sets of tag {} break the one-set-per-job rule: {}",
        keys.tag(),
        parts.join("; ")
    )
}

/// The counts of the six sets (in `Set::ALL` order) cannot come from consistent sets: each ID
/// of `T_ALL` in exactly one state set, and no other, makes `SCARD T_ALL` the sum of the other
/// five. Equal counts do not prove consistency (a job in two sets and another in none cancel).
pub fn counts_disagree(counts: &[u64; 6]) -> bool {
    counts[0] != counts[1..].iter().sum::<u64>()
}

/// The one line for counts that disagree.
pub fn counts_summary(keys: &Keys, counts: &[u64; 6]) -> String {
    format!(
        "the sets of tag {} break the one-set-per-job rule: {} holds {} IDs, the five state sets {} together",
        keys.tag(),
        keys.set(Set::All),
        counts[0],
        counts[1..].iter().sum::<u64>()
    )
}

/// The final set a job's record `T_JOB:<id>` says the tracker moved it to: only a record rj-track
/// wrote at a move (it has `tracked_by`), whose `state` is a final Slurm state or rj-track's own
/// `LOST` (moved to FAILED). None for anything else: no record, a launch record, an odd state.
pub fn record_set(state: Option<&str>, tracked_by: Option<&str>) -> Option<Set> {
    tracked_by.filter(|t| !t.is_empty())?;
    let state = state?;
    if state == "LOST" {
        return Some(Set::Failed);
    }
    match state::classify(state) {
        Verdict::Final(set) => Some(set),
        Verdict::Active | Verdict::Unrecognized => None,
    }
}

/// What a repair does to one ID in one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Add,
    Remove,
}

/// One change of a repair, and why it follows from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub op: Op,
    pub set: Set,
    /// Where the set came from, for a T_ALL member in no state set: its record (`Some`), or
    /// nowhere, so it goes back to be judged (`None`). Unused for the other changes.
    pub from_record: Option<String>,
    /// The violation this change repairs.
    pub problem: Problem,
    /// The state sets the ID was in before.
    pub was_in: Vec<Set>,
}

impl Change {
    /// The line after `ID: `.
    pub fn message(&self, keys: &Keys) -> String {
        let key = keys.set(self.set);
        let was: Vec<String> = self.was_in.iter().map(|s| keys.set(*s)).collect();
        match (self.op, self.problem) {
            (Op::Add, Problem::NotInAll) => {
                format!("added to {key} (it was in {})", join_and(&was))
            }
            (Op::Remove, _) => {
                let stays: Vec<String> = self
                    .was_in
                    .iter()
                    .filter(|s| **s != self.set)
                    .map(|s| keys.set(*s))
                    .collect();
                format!(
                    "removed from {key} (a finished job: it stays in {})",
                    join_and(&stays)
                )
            }
            (Op::Add, _) => match &self.from_record {
                Some(state) => format!(
                    "added to {key} (it was in no state set; its record {} says state {state})",
                    keys.job_hash(&self.id)
                ),
                None => format!(
                    "added to {key} (it was in no state set and has no final record; rj-track will judge it from Slurm)"
                ),
            },
        }
    }
}

/// What a repair may change, and the violations it must leave: `record` gives, for a T_ALL
/// member in no state set, the state its tracker record holds when that names a final set
/// (see [`record_set`]). Returns the changes (sorted by ID) and the violations left after them.
///
/// - in a state set but not in T_ALL → added to T_ALL (recording always adds to both);
/// - in PENDING_AND_RUNNING and a final set → removed from PENDING_AND_RUNNING (a job leaves
///   it only when it finished, and a final set says it did);
/// - in T_ALL and no state set → the final set of its record, else PENDING_AND_RUNNING, where
///   rj-track asks Slurm;
/// - in two final sets → left alone: which one is true cannot be derived from the sets.
pub fn plan(
    violations: &[Violation],
    record: impl Fn(&str) -> Option<(Set, String)>,
) -> (Vec<Change>, Vec<Violation>) {
    let mut changes = Vec::new();
    let mut left = Vec::new();
    for v in violations {
        let change = |op, set, from_record| Change {
            id: v.id.clone(),
            op,
            set,
            from_record,
            problem: v.problem,
            was_in: v.sets.clone(),
        };
        match v.problem {
            Problem::NotInAll => changes.push(change(Op::Add, Set::All, None)),
            Problem::NoSet => match record(&v.id) {
                Some((set, state)) => changes.push(change(Op::Add, set, Some(state))),
                None => changes.push(change(Op::Add, Set::PendingAndRunning, None)),
            },
            Problem::SeveralSets => {
                let finals: Vec<Set> = v
                    .sets
                    .iter()
                    .copied()
                    .filter(|s| *s != Set::PendingAndRunning)
                    .collect();
                if finals.len() < v.sets.len() {
                    changes.push(change(Op::Remove, Set::PendingAndRunning, None));
                }
                if finals.len() > 1 {
                    left.push(Violation {
                        id: v.id.clone(),
                        problem: Problem::SeveralSets,
                        sets: finals,
                    });
                }
            }
        }
    }
    (changes, left)
}

/// The hint after an unrepaired violation: what a human does about it.
pub fn not_repaired_hint(keys: &Keys, v: &Violation) -> String {
    match v.problem {
        Problem::SeveralSets => format!(
            "not repaired: which final set is right cannot be derived; see `sacct -j {}` or rj-track's record {}, then SREM it from the wrong one",
            v.id,
            keys.job_hash(&v.id)
        ),
        Problem::NotInAll | Problem::NoSet => "not repaired".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Tag;

    fn keys() -> Keys {
        Keys::new(Tag::new("t").unwrap())
    }

    fn sets(spec: [&[&str]; 6]) -> [Vec<String>; 6] {
        spec.map(|ids| ids.iter().map(|s| s.to_string()).collect())
    }

    fn v(id: &str, problem: Problem, sets: &[Set]) -> Violation {
        Violation {
            id: id.into(),
            problem,
            sets: sets.to_vec(),
        }
    }

    #[test]
    fn consistent_sets_have_no_violation() {
        let m = sets([&["1", "2", "3"], &["1"], &["2"], &[], &["3"], &[]]);
        assert!(check(&m).is_empty());
        assert!(check(&sets([&[], &[], &[], &[], &[], &[]])).is_empty());
    }

    #[test]
    fn every_kind_is_found_and_sorted_numerically() {
        use Set::*;
        let m = sets([
            &["9", "10", "100", "7"],
            &["10", "11", "100"],
            &["100", "12"],
            &["12", "11", "9"],
            &[],
            &["12"],
        ]);
        assert_eq!(
            check(&m),
            [
                v("7", Problem::NoSet, &[]),
                v("11", Problem::NotInAll, &[PendingAndRunning, Failed]),
                v("11", Problem::SeveralSets, &[PendingAndRunning, Failed]),
                v("12", Problem::NotInAll, &[Completed, Failed, Cancelled]),
                v("12", Problem::SeveralSets, &[Completed, Failed, Cancelled]),
                v("100", Problem::SeveralSets, &[PendingAndRunning, Completed]),
            ]
        );
    }

    #[test]
    fn messages_name_the_keys() {
        use Set::*;
        let k = keys();
        assert_eq!(
            v("5", Problem::NotInAll, &[Completed]).message(&k),
            "in t_COMPLETED but not in t_ALL"
        );
        assert_eq!(
            v(
                "5",
                Problem::SeveralSets,
                &[PendingAndRunning, Failed, Timeout]
            )
            .message(&k),
            "in t_PENDING_AND_RUNNING, t_FAILED and t_TIMEOUT"
        );
        assert_eq!(
            v("5", Problem::NoSet, &[]).message(&k),
            "in t_ALL but in no state set"
        );
    }

    #[test]
    fn summary_counts_each_kind_with_examples() {
        use Set::*;
        let k = keys();
        let vs: Vec<Violation> = (1..=5)
            .map(|i| v(&i.to_string(), Problem::NotInAll, &[PendingAndRunning]))
            .chain([v("8", Problem::NoSet, &[])])
            .collect();
        assert_eq!(
            summary(&k, &vs),
            "the sets of tag t break the one-set-per-job rule: 5 IDs in a state set but not in \
             t_ALL (e.g. 1, 2, 3, …); 1 ID in t_ALL but in no state set (e.g. 8)"
        );
    }

    #[test]
    fn counts() {
        assert!(!counts_disagree(&[3, 1, 1, 0, 1, 0]));
        assert!(counts_disagree(&[0, 2, 0, 0, 0, 0]));
        assert!(counts_disagree(&[2, 2, 1, 0, 0, 0]));
        assert_eq!(
            counts_summary(&keys(), &[0, 2, 1, 0, 0, 0]),
            "the sets of tag t break the one-set-per-job rule: t_ALL holds 0 IDs, the five state \
             sets 3 together"
        );
    }

    #[test]
    fn records_name_a_final_set_only_when_the_tracker_wrote_them() {
        assert_eq!(
            record_set(Some("COMPLETED"), Some("host:1")),
            Some(Set::Completed)
        );
        assert_eq!(
            record_set(Some("CANCELLED by 0"), Some("h")),
            Some(Set::Cancelled)
        );
        assert_eq!(
            record_set(Some("OUT_OF_MEMORY"), Some("h")),
            Some(Set::Failed)
        );
        assert_eq!(record_set(Some("LOST"), Some("h")), Some(Set::Failed));
        assert_eq!(record_set(Some("COMPLETED"), None), None, "not a move");
        assert_eq!(record_set(Some("COMPLETED"), Some("")), None);
        assert_eq!(record_set(Some("RUNNING"), Some("h")), None);
        assert_eq!(record_set(Some("WEIRD"), Some("h")), None);
        assert_eq!(record_set(None, Some("h")), None);
    }

    #[test]
    fn plan_repairs_what_is_derivable_and_leaves_the_rest() {
        use Set::*;
        let vs = [
            v("1", Problem::NotInAll, &[Completed]),
            v("2", Problem::SeveralSets, &[PendingAndRunning, Failed]),
            v("3", Problem::SeveralSets, &[Completed, Failed]),
            v(
                "4",
                Problem::SeveralSets,
                &[PendingAndRunning, Completed, Timeout],
            ),
            v("5", Problem::NoSet, &[]),
            v("6", Problem::NoSet, &[]),
        ];
        let (changes, left) = plan(&vs, |id| {
            (id == "6").then(|| (Timeout, "TIMEOUT".to_string()))
        });
        let short: Vec<(&str, Op, Set)> = changes
            .iter()
            .map(|c| (c.id.as_str(), c.op, c.set))
            .collect();
        assert_eq!(
            short,
            [
                ("1", Op::Add, All),
                ("2", Op::Remove, PendingAndRunning),
                ("4", Op::Remove, PendingAndRunning),
                ("5", Op::Add, PendingAndRunning),
                ("6", Op::Add, Timeout),
            ]
        );
        assert_eq!(
            left,
            [
                v("3", Problem::SeveralSets, &[Completed, Failed]),
                v("4", Problem::SeveralSets, &[Completed, Timeout]),
            ]
        );
        let k = keys();
        let msgs: Vec<String> = changes.iter().map(|c| c.message(&k)).collect();
        assert_eq!(msgs[0], "added to t_ALL (it was in t_COMPLETED)");
        assert_eq!(
            msgs[2],
            "removed from t_PENDING_AND_RUNNING (a finished job: it stays in t_COMPLETED and t_TIMEOUT)"
        );
        assert!(
            msgs[3].contains("rj-track will judge it from Slurm"),
            "{}",
            msgs[3]
        );
        assert_eq!(
            msgs[4],
            "added to t_TIMEOUT (it was in no state set; its record t_JOB:6 says state TIMEOUT)"
        );
    }

    /// T_ALL evicted under 100k pending jobs: every one is a violation, in numeric order.
    #[test]
    fn hundred_thousand_violations_are_found_quickly_in_order() {
        let n = 100_000u64;
        let pending: Vec<String> = (1..=n).rev().map(|i| i.to_string()).collect();
        let m = [vec![], pending, vec![], vec![], vec![], vec![]];
        let t = std::time::Instant::now();
        let vs = check(&m);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(vs.len(), n as usize);
        assert!(vs.iter().all(|v| v.problem == Problem::NotInAll));
        assert_eq!(vs[0].id, "1");
        assert_eq!(vs[9].id, "10");
        assert_eq!(vs[n as usize - 1].id, n.to_string());
    }
}
