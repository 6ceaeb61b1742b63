//! What a tick concludes from Slurm's rows, without Redis or Slurm: one decision per tracked
//! ID (the array rules, the sacct → controller fallback), which IDs need accounting, how the
//! decisions of one tag are sorted into moves, unknown jobs and warnings, and when an unknown
//! job becomes LOST (ARCHITECTURE.md §4, §7).
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, UNIX_EPOCH};

use crate::keys::Set;
use crate::record::JobRecord;
use crate::slurm::JobRow;
use crate::state::{self, Counts, Verdict};

/// What Slurm says about one tracked job this tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Still pending, running or in transit.
    Stay,
    /// A state this version does not know; stays, with a warning.
    Unrecognized(String),
    /// Finished: move to this set with this record.
    Move(Set, JobRecord),
    /// PREEMPTED and not requeued (squeue no longer lists it as live, and accounting agrees):
    /// moved like [`Decision::Move`] once it has been so for the grace period
    /// ([`confirm_preempted`]), since a requeue may still bring it back with the same ID.
    Preempted(Set, JobRecord),
    /// Still pending or running, after Slurm requeued it this many times (RestartCnt > 0).
    Requeued(String),
    /// No Slurm command knows the job.
    Unknown,
    /// Only sacct could have judged the job (gone from the controller, or an array whose
    /// finished tasks the controller may have forgotten), and sacct failed this tick: stays,
    /// and no unknown-since clock runs for it.
    Unanswered,
}

/// A job to move: its ID, the final set, and its record (what the move script writes, through
/// [`JobRecord::to_fields`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub id: String,
    pub set: Set,
    pub record: JobRecord,
}

impl Planned {
    /// A text field of the record, "" when absent.
    pub fn get(&self, key: &str) -> &str {
        self.record.text(key).unwrap_or("")
    }
}

/// Is the tracked ID an array parent, judged from the rows that cover it?
fn is_array_parent(id: &str, rows: &[&JobRow]) -> bool {
    !id.contains('_') && rows.iter().any(|r| r.tasks.is_some())
}

/// Can squeue's rows not decide `id` alone? True when squeue does not list it, when it shows
/// it PREEMPTED (accounting must agree), and when it shows it finished: the record's usage
/// figures (MaxRSS, TotalCPU) are accounting's, and of an array parent squeue may have forgotten
/// finished tasks (MinJobAge), so a failed task purged before its siblings ended would be missing
/// from the counts and from the worst outcome. Accounting lists every task.
pub fn needs_accounting(rows: &[&JobRow]) -> bool {
    rows.is_empty()
        || rows.iter().any(|r| state::is_preempted(&r.state))
        || rows
            .iter()
            .all(|r| matches!(state::classify(&r.state), Verdict::Final(_)))
}

/// The IDs of `all` that squeue's rows cannot decide alone, for sacct (or scontrol). Without
/// accounting squeue's view is all there is, so only the IDs it does not list are asked again.
pub fn to_ask_again(squeue: &Index<'_>, all: &[String], accounting_disabled: bool) -> Vec<String> {
    all.iter()
        .filter(|id| {
            let rows = squeue.covering(id);
            if accounting_disabled {
                rows.is_empty()
            } else {
                needs_accounting(&rows)
            }
        })
        .cloned()
        .collect()
}

/// Whether sacct could speak this tick for jobs the controller no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// sacct answered: it has every job and array task the database knows.
    Answered,
    /// No accounting storage: the controller (squeue, scontrol) is all there is.
    Disabled,
    /// sacct failed: nothing it alone could tell is judged this tick.
    Failed,
}

/// This tick's answers for the IDs that squeue could not decide alone ([`needs_accounting`]).
pub struct Answers<'a> {
    pub squeue: &'a Index<'a>,
    pub sacct: Option<Index<'a>>,
    pub scontrol: Option<Index<'a>>,
    pub accounting: Accounting,
}

impl Answers<'_> {
    pub fn decide(&self, id: &str, tracked_at: &str) -> Decision {
        if let Some(sacct) = &self.sacct {
            // slurmdbd's first record of a job, made from its first step before the job's own
            // (seen on the testbed for about half a second after a job ended), is no answer.
            let rows: Vec<&JobRow> = sacct
                .covering(id)
                .iter()
                .copied()
                .filter(|r| !accounting_placeholder(r))
                .collect();
            let controller = self.squeue.covering(id);
            if is_array_parent(id, &controller) || is_array_parent(id, &rows) {
                // slurmdbd lags the controller. Seen on the testbed: for a moment it reports a
                // finished array as one plain job (name "allocation", COMPLETED) before the
                // task records arrive, and it may lack a task squeue already shows finished.
                // So only task rows count, and a task only squeue knows is counted from it.
                let mut all: Vec<&JobRow> =
                    rows.iter().copied().filter(|r| r.tasks.is_some()).collect();
                if !all.is_empty() {
                    for r in controller.iter() {
                        // sacct may hold the task in a range row (`71_[1,3,5]`, tasks
                        // that never started): covered there, it is not counted again.
                        if r.tasks.is_some() && !all.iter().any(|s| s.covers(&r.id)) {
                            all.push(r);
                        }
                    }
                    return judge_rows_with(id, &all, "sacct", tracked_at, Some(self.squeue));
                }
            } else if !rows.is_empty() {
                return judge_rows_with(id, &rows, "sacct", tracked_at, Some(self.squeue));
            }
        }
        // The controller's view: exact for a plain job, possibly partial for an array.
        let controller = [
            ("squeue", Some(self.squeue)),
            ("scontrol", self.scontrol.as_ref()),
        ];
        for (source, idx) in controller {
            let rows = idx.map(|i| i.covering(id)).unwrap_or_default();
            if rows.is_empty() {
                continue;
            }
            return match self.accounting {
                Accounting::Disabled => judge_rows(id, &rows, source, tracked_at),
                _ if !is_array_parent(id, &rows) => {
                    match judge_rows(id, &rows, source, tracked_at) {
                        // PREEMPTED is final only when accounting agrees (a requeued job is
                        // PENDING there): wait for it, or for sacct to answer again.
                        Decision::Preempted(..) if self.accounting == Accounting::Answered => {
                            Decision::Stay
                        }
                        Decision::Preempted(..) => Decision::Unanswered,
                        d => d,
                    }
                }
                // Accounting answered without this array (it has not caught up yet): wait.
                Accounting::Answered => Decision::Stay,
                Accounting::Failed => Decision::Unanswered,
            };
        }
        match self.accounting {
            Accounting::Failed => Decision::Unanswered,
            Accounting::Answered | Accounting::Disabled => Decision::Unknown,
        }
    }
}

/// Every ID of `all` judged: the ones in `asked` (sent to accounting) from all the answers,
/// the others from squeue's rows alone.
pub fn judge_all<'a>(
    all: &'a [String],
    asked: &[String],
    answers: &Answers<'_>,
    tracked_at: &str,
) -> HashMap<&'a str, Decision> {
    let asked: HashSet<&str> = asked.iter().map(String::as_str).collect();
    all.iter()
        .map(|id| {
            let d = if asked.contains(id.as_str()) {
                answers.decide(id, tracked_at)
            } else {
                judge_rows(id, &answers.squeue.covering(id), "squeue", tracked_at)
            };
            (id.as_str(), d)
        })
        .collect()
}

/// Judge one tracked ID from the rows that cover it (see [`JobRow::covers`]); `tracked_at` is
/// the tick's time, formatted once.
pub fn judge_rows(id: &str, rows: &[&JobRow], source: &str, tracked_at: &str) -> Decision {
    judge_rows_with(id, rows, source, tracked_at, None)
}

/// [`judge_rows`], taking what accounting's rows lack (the output paths, the restart count) from
/// the controller's row of the same job or task, when `controller` has one.
fn judge_rows_with(
    id: &str,
    rows: &[&JobRow],
    source: &str,
    tracked_at: &str,
    controller: Option<&Index<'_>>,
) -> Decision {
    if rows.is_empty() {
        return Decision::Unknown;
    }
    let mut counts = Counts::default();
    let mut worst: Option<(Set, &JobRow)> = None;
    for r in rows {
        match state::classify(&r.state) {
            // A plain job that Slurm requeued (preempted with PreemptMode=REQUEUE, a node
            // failure, `scontrol requeue`) keeps its ID and counts its restarts.
            Verdict::Active if r.tasks.is_none() && restarted(r) => {
                return Decision::Requeued(r.restarts.clone())
            }
            Verdict::Active => return Decision::Stay,
            Verdict::Unrecognized => return Decision::Unrecognized(r.state.clone()),
            Verdict::Final(set) => {
                for _ in 0..r.task_count() {
                    counts.add(set);
                }
                worst = match worst {
                    Some((w, wr)) if state::worst(w, set) == w => Some((w, wr)),
                    _ => Some((set, r)),
                };
            }
        }
    }
    let Some((set, row)) = worst else {
        return Decision::Unknown;
    };
    let mut rec = JobRecord {
        state: Some(row.state.clone()),
        exit_code: text(&row.exit_code),
        start: text(&row.start),
        end: text(&row.end),
        elapsed: text(&row.elapsed),
        nodes: text(&row.nodes),
        partition: text(&row.partition),
        name: text(&row.name),
        stdout: text(&row.stdout),
        stderr: text(&row.stderr),
        source: Some(source.to_string()),
        tracked_at: Some(tracked_at.to_string()),
        ..JobRecord::default()
    };
    if is_array_parent(id, rows) {
        // The array as a whole: its worst task's state and exit code, the first start, the
        // last end, every node once.
        let start = rows
            .iter()
            .map(|r| r.start.as_str())
            .filter(|s| !s.is_empty())
            .min();
        let end = rows.iter().map(|r| r.end.as_str()).max();
        let mut nodes: Vec<&str> = rows
            .iter()
            .map(|r| r.nodes.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        nodes.sort();
        nodes.dedup();
        rec.start = start.and_then(text);
        rec.end = end.and_then(text);
        rec.nodes = text(&nodes.join(","));
        rec.tasks = Some(counts.total());
        rec.tasks_completed = Some(counts.completed);
        rec.tasks_failed = Some(counts.failed);
        rec.tasks_timeout = Some(counts.timeout);
        rec.tasks_cancelled = Some(counts.cancelled);
    }
    if restarted(row) {
        rec.restarts = row.restarts.parse().ok();
    }
    let same =
        controller.and_then(|c| c.covering(&row.id).iter().copied().find(|c| c.id == row.id));
    if let Some(c) = same {
        if rec.stdout.is_none() {
            rec.stdout = text(&c.stdout);
            rec.stderr = text(&c.stderr);
        }
        if rec.restarts.is_none() && restarted(c) {
            rec.restarts = c.restarts.parse().ok();
        }
    }
    (rec.max_rss, rec.cpu_efficiency) = usage(rows);
    if rows.iter().any(|r| state::is_preempted(&r.state)) {
        return Decision::Preempted(set, rec);
    }
    Decision::Move(set, rec)
}

/// What accounting measured of the job (every row: an array's tasks, a heterogeneous job's
/// components): the largest MaxRSS, and TotalCPU / (elapsed × allocated CPUs) over the rows that
/// have all three, none of them 0 (unknown: a job that never ran, or accounting that gathers no
/// usage, JobAcctGatherType=jobacct_gather/none), with three decimals.
fn usage(rows: &[&JobRow]) -> (Option<u64>, Option<String>) {
    let max_rss = rows.iter().filter_map(|r| r.max_rss).max();
    let (mut used, mut had) = (0u128, 0u128);
    for r in rows {
        if let (Some(cpu), Some(secs), Some(n)) = (r.total_cpu_ms, r.elapsed_secs, r.alloc_cpus) {
            if cpu > 0 && secs > 0 && n > 0 {
                used += u128::from(cpu);
                had += u128::from(secs) * u128::from(n) * 1000;
            }
        }
    }
    let efficiency = (had > 0).then(|| format!("{:.3}", used as f64 / had as f64));
    (max_rss, efficiency)
}

/// What squeue says of a live job that waits to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The Reason of its first pending row that has one.
    pub reason: String,
    /// The rows (a job, tasks, a task range) pending for a reason Slurm never satisfies
    /// ([`crate::slurm::NEVER_REASONS`]), by the IDs scancel takes.
    pub never: Vec<String>,
}

/// [`Waiting`] of a tracked ID from the squeue rows that cover it; None when no pending row has
/// a Reason (none pending, or the state query, which has no Reason).
pub fn waiting(rows: &[&JobRow]) -> Option<Waiting> {
    let pending = || {
        rows.iter()
            .filter(|r| r.is_pending() && !r.reason.is_empty())
    };
    let reason = pending().next()?.reason.clone();
    let never = pending()
        .filter(|r| crate::slurm::never_satisfied(&r.reason))
        .map(|r| r.id.clone())
        .collect();
    Some(Waiting { reason, never })
}

/// Is this sacct row slurmdbd's placeholder for a job whose own record has not arrived yet:
/// named "allocation", without a partition (a real job always has one)? Its state may be final
/// already, with nothing else right.
fn accounting_placeholder(r: &JobRow) -> bool {
    r.name == "allocation" && r.partition.is_empty()
}

/// A record's text field: None for what Slurm left empty.
fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Has Slurm restarted the job (a RestartCnt above 0)?
fn restarted(r: &JobRow) -> bool {
    r.restarts.parse::<u64>().is_ok_and(|n| n > 0)
}

/// The preempted jobs of a tag after their clocks: `since[i]` is when `preempted[i]` was first
/// judged PREEMPTED (seconds since the epoch). Those so for `grace` or longer are final; the
/// others wait (a requeue may still bring them back) and are returned by ID.
pub fn confirm_preempted(
    preempted: Vec<Planned>,
    since: &[u64],
    now: u64,
    grace: Duration,
) -> (Vec<Planned>, Vec<String>) {
    let mut ready = Vec::new();
    let mut waiting = Vec::new();
    for (p, t) in preempted.into_iter().zip(since) {
        if now.saturating_sub(*t) >= grace.as_secs() {
            ready.push(p);
        } else {
            waiting.push(p.id);
        }
    }
    (ready, waiting)
}

/// Rows indexed by their base job ID, so that matching 10,000 IDs stays linear.
pub struct Index<'a> {
    by_base: HashMap<&'a str, Vec<&'a JobRow>>,
}

impl<'a> Index<'a> {
    pub fn new(rows: &'a [JobRow]) -> Index<'a> {
        let mut by_base: HashMap<&str, Vec<&JobRow>> = HashMap::new();
        for r in rows {
            by_base.entry(r.base.as_str()).or_default().push(r);
        }
        Index { by_base }
    }

    /// The rows that cover `id`. Every row of a base covers the base itself (a plain job, an
    /// array parent), so only a tracked task (`6_3`, rare) needs a filtered copy.
    pub fn covering(&self, id: &str) -> Cow<'_, [&'a JobRow]> {
        let (base, task) = match id.split_once('_') {
            Some((b, _)) => (b, true),
            None => (id, false),
        };
        match self.by_base.get(base) {
            None => Cow::Borrowed(&[]),
            Some(v) if !task => Cow::Borrowed(v.as_slice()),
            Some(v) => Cow::Owned(v.iter().copied().filter(|r| r.covers(id)).collect()),
        }
    }
}

/// The decisions about one tag's jobs, sorted by what the tick does with them.
#[derive(Debug, Default, PartialEq)]
pub struct Sorted {
    /// Finished: to move, in the tag's order.
    pub plan: Vec<Planned>,
    /// Known to no Slurm command this tick.
    pub unknown: Vec<String>,
    /// (ID, state) of jobs in a state rj does not know: they stay, with a warning.
    pub unrecognized: Vec<(String, String)>,
    /// Jobs only sacct could judge, while sacct failed: they stay, and their unknown clock is
    /// reset (they are not in `unknown`), so a long slurmdbd outage never makes a job LOST.
    pub unanswered: usize,
    /// PREEMPTED and not requeued: moves once the grace period has passed.
    pub preempted: Vec<Planned>,
    /// (ID, restarts) of live jobs Slurm has requeued.
    pub requeued: Vec<(String, String)>,
}

/// Sort the decisions about `ids` (one tag's tracked jobs); `decided(i)` is the decision about
/// `ids[i]` (looked up in its cluster's answers). An ID without a decision stays.
pub fn sort_decisions<'d>(
    ids: &[String],
    decided: impl Fn(usize) -> Option<&'d Decision>,
) -> Sorted {
    let mut s = Sorted::default();
    for (i, id) in ids.iter().enumerate() {
        match decided(i) {
            None | Some(Decision::Stay) => {}
            Some(Decision::Unrecognized(state)) => s.unrecognized.push((id.clone(), state.clone())),
            Some(Decision::Move(set, record)) => s.plan.push(Planned {
                id: id.clone(),
                set: *set,
                record: record.clone(),
            }),
            Some(Decision::Unknown) => s.unknown.push(id.clone()),
            Some(Decision::Unanswered) => s.unanswered += 1,
            Some(Decision::Preempted(set, record)) => s.preempted.push(Planned {
                id: id.clone(),
                set: *set,
                record: record.clone(),
            }),
            Some(Decision::Requeued(n)) => s.requeued.push((id.clone(), n.clone())),
        }
    }
    s
}

/// The unknown jobs after their clocks: `since[i]` is when `unknown[i]` was first missed
/// (seconds since the epoch). Those missed for `lost_after` or longer are moves to FAILED with
/// state=LOST; the others are returned to be reported.
pub fn lost_moves(
    unknown: &[String],
    since: &[u64],
    now: u64,
    lost_after: Duration,
    tracked_at: &str,
) -> (Vec<Planned>, Vec<String>) {
    let lost_after = lost_after.as_secs();
    let mut lost = Vec::new();
    let mut still = Vec::new();
    for (id, t) in unknown.iter().zip(since) {
        if now.saturating_sub(*t) < lost_after {
            still.push(id.clone());
            continue;
        }
        lost.push(Planned {
            id: id.clone(),
            set: Set::Failed,
            record: JobRecord {
                state: Some("LOST".into()),
                lost_since: Some(
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(*t))
                        .to_string(),
                ),
                source: Some("rj-track".into()),
                tracked_at: Some(tracked_at.to_string()),
                ..JobRecord::default()
            },
        });
    }
    (lost, still)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::slurm;

    const T: &str = "2026-01-01T00:02:00Z";

    pub(crate) fn row(id: &str, state: &str) -> JobRow {
        let (base, tasks) = match id.split_once('_') {
            Some((b, t)) => (b.to_string(), Some(t.trim_matches(['[', ']']).to_string())),
            None => (id.to_string(), None),
        };
        JobRow {
            id: id.into(),
            base,
            tasks,
            state: state.into(),
            exit_code: "0:0".into(),
            start: "2026-01-01T00:00:00".into(),
            end: "2026-01-01T00:01:00".into(),
            elapsed: "00:01:00".into(),
            nodes: "n1".into(),
            partition: "debug".into(),
            name: "job".into(),
            restarts: "0".into(),
            ..JobRow::default()
        }
    }

    /// A field of a move's record (counts too), "" when absent.
    fn field(d: &Decision, k: &str) -> String {
        match d {
            Decision::Move(_, r) => r.get(k).unwrap_or_default(),
            _ => panic!("not a move: {d:?}"),
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn single_jobs() {
        let r = row("5", "CANCELLED by 0");
        let d = judge_rows("5", &[&r], "sacct", T);
        assert!(matches!(d, Decision::Move(Set::Cancelled, _)));
        assert_eq!(field(&d, "state"), "CANCELLED by 0");
        assert_eq!(field(&d, "source"), "sacct");
        for k in [
            "exit_code",
            "start",
            "end",
            "elapsed",
            "nodes",
            "partition",
            "name",
        ] {
            assert!(!field(&d, k).is_empty(), "{k}");
        }
        assert_eq!(
            judge_rows("5", &[&row("5", "COMPLETING")], "squeue", T),
            Decision::Stay
        );
        assert_eq!(judge_rows("5", &[], "squeue", T), Decision::Unknown);
        assert_eq!(
            judge_rows("5", &[&row("5", "BOGUS")], "squeue", T),
            Decision::Unrecognized("BOGUS".into())
        );
    }

    #[test]
    fn arrays_wait_for_all_tasks_and_take_the_worst() {
        let a = row("6_1", "COMPLETED");
        let b = row("6_2", "RUNNING");
        let c = row("6_[3-4]", "PENDING");
        assert_eq!(judge_rows("6", &[&a, &b, &c], "squeue", T), Decision::Stay);
        let mut b = row("6_2", "FAILED");
        b.exit_code = "1:0".into();
        b.nodes = "n2".into();
        let c = row("6_[3-4]", "CANCELLED");
        let d = judge_rows("6", &[&a, &b, &c], "squeue", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "state"), "FAILED");
        assert_eq!(field(&d, "exit_code"), "1:0");
        assert_eq!(field(&d, "tasks"), "4");
        assert_eq!(field(&d, "tasks_completed"), "1");
        assert_eq!(field(&d, "tasks_failed"), "1");
        assert_eq!(field(&d, "tasks_cancelled"), "2");
        assert_eq!(field(&d, "nodes"), "n1,n2");
        // A tracked task is judged alone.
        let d = judge_rows("6_1", &[&a], "squeue", T);
        assert!(matches!(d, Decision::Move(Set::Completed, _)));
        assert_eq!(field(&d, "tasks"), "");
    }

    #[test]
    fn index_matches_parents_tasks_and_ranges() {
        let rows = vec![
            row("6_1", "COMPLETED"),
            row("6_[2-3]", "PENDING"),
            row("7", "RUNNING"),
        ];
        let idx = Index::new(&rows);
        assert_eq!(idx.covering("6").len(), 2);
        assert_eq!(idx.covering("6_3").len(), 1);
        assert_eq!(idx.covering("6_9").len(), 0);
        assert_eq!(idx.covering("7").len(), 1);
        assert_eq!(idx.covering("8").len(), 0);
    }

    #[test]
    fn the_tick_time_is_the_record_time() {
        let d = judge_rows("5", &[&row("5", "COMPLETED")], "squeue", T);
        assert_eq!(field(&d, "tracked_at"), T);
    }

    fn answers<'a>(
        squeue: &'a Index<'a>,
        sacct: Option<&'a [JobRow]>,
        accounting: Accounting,
    ) -> Answers<'a> {
        Answers {
            squeue,
            sacct: sacct.map(Index::new),
            scontrol: None,
            accounting,
        }
    }

    /// slurmdbd down (sacct fails) and scontrol failing too: a job squeue no longer lists is
    /// not judged, so no unknown-since clock starts and it never becomes LOST by accident.
    #[test]
    fn failed_queries_leave_unlisted_jobs_unjudged() {
        let none: Vec<JobRow> = Vec::new();
        let sq = Index::new(&none);
        assert_eq!(
            answers(&sq, None, Accounting::Failed).decide("7", T),
            Decision::Unanswered
        );
        let ctl = vec![row("7", "COMPLETED")];
        let with_scontrol = Answers {
            squeue: &sq,
            sacct: None,
            scontrol: Some(Index::new(&ctl)),
            accounting: Accounting::Failed,
        };
        // A plain job the controller still holds is judged from scontrol all the same.
        assert!(matches!(
            with_scontrol.decide("7", T),
            Decision::Move(Set::Completed, _)
        ));
        assert_eq!(with_scontrol.decide("8", T), Decision::Unanswered);
        // Only a query that answered can say "unknown".
        assert_eq!(
            answers(&sq, Some(&none), Accounting::Answered).decide("7", T),
            Decision::Unknown
        );
        assert_eq!(
            answers(&sq, None, Accounting::Disabled).decide("7", T),
            Decision::Unknown
        );
    }

    /// squeue has purged the failed task 6_1 (MinJobAge) while 6_3 just completed: the parent
    /// is judged from sacct's rows, which list every task.
    #[test]
    fn array_parent_is_judged_from_accounting_not_from_what_squeue_kept() {
        let squeue = vec![row("6_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        assert!(needs_accounting(&sq.covering("6")));
        let live = vec![row("6_3", "RUNNING")];
        assert!(!needs_accounting(&Index::new(&live).covering("6")));
        // A finished job goes to accounting too, for its usage figures.
        assert!(needs_accounting(&sq.covering("6_3")));
        assert!(needs_accounting(&[&row("9", "COMPLETED")]));

        let mut failed = row("6_1", "FAILED");
        failed.exit_code = "1:0".into();
        let sacct = vec![failed, row("6_2", "COMPLETED"), row("6_3", "COMPLETED")];
        let d = answers(&sq, Some(&sacct), Accounting::Answered).decide("6", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
        assert_eq!(field(&d, "tasks_failed"), "1");
        assert_eq!(field(&d, "exit_code"), "1:0");
        assert_eq!(field(&d, "source"), "sacct");
        // sacct still has a task pending: wait for it.
        let behind = vec![row("6_1", "FAILED"), row("6_[2-3]", "PENDING")];
        assert_eq!(
            answers(&sq, Some(&behind), Accounting::Answered).decide("6", T),
            Decision::Stay
        );
        // sacct has not recorded the array yet, or failed: never decide from squeue's part.
        assert_eq!(
            answers(&sq, Some(&[]), Accounting::Answered).decide("6", T),
            Decision::Stay
        );
        assert_eq!(
            answers(&sq, None, Accounting::Failed).decide("6", T),
            Decision::Unanswered
        );
        // No accounting at all: the controller's view is all there is.
        let d = answers(&sq, None, Accounting::Disabled).decide("6", T);
        assert!(matches!(d, Decision::Move(Set::Completed, _)), "{d:?}");
        assert_eq!(field(&d, "source"), "squeue");
    }

    /// slurmdbd lags the controller (seen on the testbed): squeue shows all three tasks
    /// finished, 2 of them failed, while sacct has only tasks 1 and 3 so far. The task sacct
    /// lacks is counted from squeue, so the array is FAILED, not COMPLETED.
    /// Seen on the testbed with slurmdbd: a held array of 3 tasks cancelled before any started is
    /// one range row in sacct (`71_[1-3]`) and three task rows in squeue; that is 3 tasks, not 6.
    #[test]
    fn tasks_in_an_accounting_range_row_are_not_counted_again_from_squeue() {
        let squeue = vec![
            row("71_1", "CANCELLED"),
            row("71_2", "CANCELLED"),
            row("71_3", "CANCELLED"),
        ];
        let sq = Index::new(&squeue);
        let mut range = row("71_[1-3]", "CANCELLED by 0");
        range.id = "71_[1-3]".into();
        let sacct = vec![range];
        let d = answers(&sq, Some(&sacct), Accounting::Answered).decide("71", T);
        assert!(matches!(d, Decision::Move(Set::Cancelled, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
    }

    #[test]
    fn array_task_missing_from_lagging_accounting_is_counted_from_squeue() {
        let mut failed = row("6_2", "FAILED");
        failed.exit_code = "1:0".into();
        let squeue = vec![row("6_1", "COMPLETED"), failed, row("6_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        assert!(needs_accounting(&sq.covering("6")));
        let sacct = vec![row("6_1", "COMPLETED"), row("6_3", "COMPLETED")];
        let d = answers(&sq, Some(&sacct), Accounting::Answered).decide("6", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
        assert_eq!(field(&d, "tasks_completed"), "2");
        assert_eq!(field(&d, "tasks_failed"), "1");
    }

    /// Seen on the testbed with slurmdbd: right after an array's tasks end, sacct reports the
    /// array ID as one plain job ("allocation", COMPLETED) with no task rows. That row must not
    /// decide an array squeue knows; wait until the task records arrive.
    #[test]
    fn a_plain_sacct_row_never_decides_an_array() {
        let mut failed = row("6_2", "FAILED");
        failed.exit_code = "1:0".into();
        let squeue = vec![row("6_1", "COMPLETED"), failed, row("6_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        let mut plain = row("6", "COMPLETED");
        plain.name = "allocation".into();
        let sacct = vec![plain];
        assert_eq!(
            answers(&sq, Some(&sacct), Accounting::Answered).decide("6", T),
            Decision::Stay
        );
    }

    /// Seen on the two-cluster testbed: for half a second after a job ends, sacct has it as
    /// `allocation`, COMPLETED, without a partition, before its own record arrives. That is no
    /// answer: the job is judged from squeue (its name, no usage figures).
    #[test]
    fn accountings_placeholder_of_a_plain_job_is_no_answer() {
        let mut done = row("5000002", "COMPLETED");
        done.name = "on-b".into();
        let squeue = vec![done];
        let sq = Index::new(&squeue);
        let mut early = row("5000002", "COMPLETED");
        (early.name, early.partition) = ("allocation".into(), String::new());
        let d = answers(&sq, Some(&[early]), Accounting::Answered).decide("5000002", T);
        assert_eq!(field(&d, "name"), "on-b");
        assert_eq!(field(&d, "source"), "squeue");
        let mut real = row("5000002", "COMPLETED");
        (
            real.name,
            real.total_cpu_ms,
            real.elapsed_secs,
            real.alloc_cpus,
        ) = ("on-b".into(), Some(500), Some(1), Some(1));
        let d = answers(&sq, Some(&[real]), Accounting::Answered).decide("5000002", T);
        assert_eq!(field(&d, "source"), "sacct");
        assert_eq!(field(&d, "cpu_efficiency"), "0.500");
    }

    /// The same from real output: array 12 of the captured slurmdbd sacct fixture, of which
    /// squeue kept only the last task.
    #[test]
    fn array_parent_from_the_captured_sacct_fixture() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/slurm/sacct-slurmdbd.txt"),
        )
        .unwrap();
        let sacct = slurm::parse_sacct_as(slurm::SACCT_FORMAT_V1, &text).unwrap();
        let squeue = vec![row("12_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        let d = answers(&sq, Some(&sacct), Accounting::Answered).decide("12", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
        assert_eq!(field(&d, "tasks_completed"), "2");
        assert_eq!(field(&d, "tasks_failed"), "1");
    }

    /// Which IDs go to accounting: the ones squeue does not list, and those whose listed rows
    /// are all final (jobs, tasks, arrays); without accounting only the ones squeue does not list.
    #[test]
    fn only_what_squeue_cannot_decide_is_asked_again() {
        let squeue = vec![
            row("1", "RUNNING"),
            row("2", "COMPLETED"),
            row("3_1", "COMPLETED"),
            row("3_2", "FAILED"),
            row("4_1", "COMPLETED"),
            row("4_[2-3]", "PENDING"),
        ];
        let sq = Index::new(&squeue);
        let all = ids(&["1", "2", "3", "4", "5", "3_1"]);
        assert_eq!(to_ask_again(&sq, &all, false), ids(&["2", "3", "5", "3_1"]));
        assert_eq!(to_ask_again(&sq, &all, true), ids(&["5"]));
        assert!(to_ask_again(&sq, &[], false).is_empty());
    }

    /// The IDs not asked again are judged from squeue alone, even when the answers hold rows
    /// for them; the asked ones from every answer.
    #[test]
    fn judge_all_uses_accounting_only_for_the_asked() {
        let squeue = vec![row("1", "COMPLETED"), row("2", "RUNNING")];
        let sq = Index::new(&squeue);
        let mut failed = row("1", "FAILED");
        failed.exit_code = "2:0".into();
        let sacct = vec![failed, row("3", "TIMEOUT")];
        let a = answers(&sq, Some(&sacct), Accounting::Answered);
        let all = ids(&["1", "2", "3", "4"]);
        let d = judge_all(&all, &ids(&["3", "4"]), &a, T);
        assert_eq!(d.len(), 4);
        assert!(matches!(d["1"], Decision::Move(Set::Completed, _)));
        assert_eq!(field(&d["1"], "source"), "squeue");
        assert_eq!(d["2"], Decision::Stay);
        assert!(matches!(d["3"], Decision::Move(Set::Timeout, _)));
        assert_eq!(field(&d["3"], "source"), "sacct");
        assert_eq!(d["4"], Decision::Unknown);
    }

    #[test]
    fn decisions_sort_into_moves_unknown_warnings_and_unanswered() {
        let done = judge_rows("1", &[&row("1", "COMPLETED")], "squeue", T);
        let decided: HashMap<&str, Decision> = [
            ("1", done.clone()),
            ("2", Decision::Stay),
            ("3", Decision::Unknown),
            ("4", Decision::Unrecognized("ODD".into())),
            ("5", Decision::Unanswered),
            ("6", Decision::Unanswered),
        ]
        .into_iter()
        .collect();
        let tracked = ids(&["6", "5", "4", "3", "2", "1", "7"]);
        let s = sort_decisions(&tracked, |i| decided.get(tracked[i].as_str()));
        let Decision::Move(_, record) = done else {
            unreachable!()
        };
        assert_eq!(
            s,
            Sorted {
                plan: vec![Planned {
                    id: "1".into(),
                    set: Set::Completed,
                    record,
                }],
                unknown: ids(&["3"]),
                unrecognized: vec![("4".into(), "ODD".into())],
                unanswered: 2,
                ..Sorted::default()
            }
        );
        assert_eq!(s.plan[0].get("state"), "COMPLETED");
        assert_eq!(s.plan[0].get("nothing"), "");
    }

    fn with_restarts(id: &str, state: &str, n: &str) -> JobRow {
        let mut r = row(id, state);
        r.restarts = n.into();
        r
    }

    /// A PREEMPTED row is never a move by itself: a candidate, confirmed after the grace
    /// period; squeue showing it sends it to accounting, to agree.
    #[test]
    fn preempted_is_a_candidate_that_accounting_must_confirm() {
        let pr = row("4", "PREEMPTED");
        let d = judge_rows("4", &[&pr], "squeue", T);
        let Decision::Preempted(set, record) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(*set, Set::Failed);
        assert_eq!(record.state.as_deref(), Some("PREEMPTED"));
        assert!(needs_accounting(&[&pr]));
        assert!(!needs_accounting(&[&row("4", "PENDING")]));

        let squeue = vec![pr.clone()];
        let sq = Index::new(&squeue);
        // Accounting agrees: a candidate, from sacct.
        let d = answers(&sq, Some(&[row("4", "PREEMPTED")]), Accounting::Answered).decide("4", T);
        assert!(matches!(&d, Decision::Preempted(Set::Failed, _)), "{d:?}");
        assert_eq!(field_of(&d, "source"), "sacct");
        // Accounting has it pending again (requeued): it stays.
        let d = answers(&sq, Some(&[row("4", "PENDING")]), Accounting::Answered).decide("4", T);
        assert_eq!(d, Decision::Stay);
        // Accounting does not have it yet, or failed: no verdict from the controller alone.
        let d = answers(&sq, Some(&[]), Accounting::Answered).decide("4", T);
        assert_eq!(d, Decision::Stay);
        let d = answers(&sq, None, Accounting::Failed).decide("4", T);
        assert_eq!(d, Decision::Unanswered);
        // No accounting at all: the controller's word, still after the grace period.
        let d = answers(&sq, None, Accounting::Disabled).decide("4", T);
        assert!(matches!(d, Decision::Preempted(Set::Failed, _)), "{d:?}");
    }

    fn field_of(d: &Decision, k: &str) -> String {
        match d {
            Decision::Preempted(_, r) | Decision::Move(_, r) => r.get(k).unwrap_or_default(),
            _ => panic!("no record: {d:?}"),
        }
    }

    /// A live job with a restart count above 0 was requeued: it stays, and says how often; the
    /// final record keeps the count (and none when Slurm never restarted the job).
    #[test]
    fn a_requeued_job_stays_and_its_record_counts_restarts() {
        let pending = with_restarts("2", "PENDING", "1");
        assert_eq!(
            judge_rows("2", &[&pending], "squeue", T),
            Decision::Requeued("1".into())
        );
        let rerun = with_restarts("2", "RUNNING", "2");
        assert_eq!(
            judge_rows("2", &[&rerun], "squeue", T),
            Decision::Requeued("2".into())
        );
        let fresh = with_restarts("2", "PENDING", "0");
        assert_eq!(judge_rows("2", &[&fresh], "squeue", T), Decision::Stay);
        let task = with_restarts("6_1", "PENDING", "1");
        assert_eq!(judge_rows("6", &[&task], "squeue", T), Decision::Stay);

        let done = with_restarts("2", "COMPLETED", "1");
        let d = judge_rows("2", &[&done], "squeue", T);
        assert!(matches!(d, Decision::Move(Set::Completed, _)), "{d:?}");
        assert_eq!(field(&d, "restarts"), "1");
        let d = judge_rows("2", &[&row("2", "COMPLETED")], "squeue", T);
        assert_eq!(field(&d, "restarts"), "");
    }

    /// PREEMPTED for exactly the grace period is final, one second less waits.
    #[test]
    fn preempted_jobs_are_final_after_the_grace_period() {
        let grace = Duration::from_secs(60);
        let now = 1_767_225_600;
        let p = |id: &str| Planned {
            id: id.into(),
            set: Set::Failed,
            record: JobRecord {
                state: Some("PREEMPTED".into()),
                ..JobRecord::default()
            },
        };
        let (ready, waiting) =
            confirm_preempted(vec![p("1"), p("2")], &[now - 60, now - 59], now, grace);
        assert_eq!(ready, [p("1")]);
        assert_eq!(waiting, ids(&["2"]));
        let decided: HashMap<&str, Decision> = [
            ("1", Decision::Preempted(Set::Failed, p("1").record)),
            ("2", Decision::Requeued("3".into())),
        ]
        .into_iter()
        .collect();
        let tracked = ids(&["1", "2"]);
        let s = sort_decisions(&tracked, |i| decided.get(tracked[i].as_str()));
        assert_eq!(s.preempted, [p("1")]);
        assert_eq!(s.requeued, [("2".to_string(), "3".to_string())]);
        assert!(s.plan.is_empty());
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/slurm")
                .join(name),
        )
        .unwrap()
    }

    /// The records of the jobs of the captured details fixtures (22.05, accounting with
    /// gathering; see slurm.rs): the finished ones go to sacct, which gives the usage figures,
    /// squeue their output paths; an array's paths are its worst task's.
    #[test]
    fn records_carry_the_details_from_the_captured_fixtures() {
        let squeue = slurm::parse_squeue(&fixture("squeue-details-finished.txt")).unwrap();
        let sacct = slurm::parse_sacct(&fixture("sacct-details.txt")).unwrap();
        let sq = Index::new(&squeue);
        let all = ids(&["9", "10", "11", "12", "13", "14", "15"]);
        let asked = to_ask_again(&sq, &all, false);
        assert_eq!(asked, ids(&["9", "10", "11", "13", "14", "15"]));
        let a = answers(&sq, Some(&sacct), Accounting::Answered);
        let d = judge_all(&all, &asked, &a, T);
        let rec = |id: &str| match &d[id] {
            Decision::Move(_, r) => r.clone(),
            other => panic!("job {id}: {other:?}"),
        };
        let mem = rec("9");
        assert_eq!(mem.source.as_deref(), Some("sacct"));
        assert_eq!(mem.max_rss, Some(217_579_520));
        assert_eq!(mem.cpu_efficiency.as_deref(), Some("0.322"));
        assert_eq!(mem.elapsed.as_deref(), Some("00:00:05"));
        assert_eq!(mem.stdout.as_deref(), Some("/tmp/rjd/w/mem-9.out"));
        let cpu = rec("10");
        assert_eq!(cpu.cpu_efficiency.as_deref(), Some("0.356"));
        assert_eq!(cpu.stderr.as_deref(), Some("/tmp/rjd/w/cpu-10-%-010.err"));
        let fail = rec("11");
        assert_eq!(fail.exit_code.as_deref(), Some("3:0"));
        assert_eq!(fail.cpu_efficiency, None, "ran 0 s");
        assert_eq!(fail.max_rss, None);
        assert_eq!(fail.stdout.as_deref(), Some("/tmp/rjd/w/slurm-11.out"));
        let arr = rec("13");
        assert_eq!(arr.state.as_deref(), Some("FAILED"));
        assert_eq!(arr.tasks, Some(3));
        assert_eq!(arr.stdout.as_deref(), Some("/tmp/rjd/w/arr-13_2.out"));
        let held = rec("14");
        assert_eq!(held.state.as_deref(), Some("CANCELLED by 0"));
        assert_eq!((held.max_rss, held.cpu_efficiency), (None, None));
        let sleeper = rec("15");
        let e: f64 = sleeper.cpu_efficiency.unwrap().parse().unwrap();
        assert!(e < 0.01, "{e}");
        assert!(
            mem.reason.is_none(),
            "the reason is noted while pending, not at the move"
        );
        assert_eq!(d["12"], Decision::Stay);
        assert_eq!(
            waiting(&sq.covering("12")),
            Some(Waiting {
                reason: "DependencyNeverSatisfied".into(),
                never: ids(&["12"]),
            })
        );
        assert_eq!(waiting(&sq.covering("9")), None);
    }

    /// Without accounting the controller's rows decide, with their paths and no usage figures.
    #[test]
    fn without_accounting_a_record_has_no_usage_figures() {
        let squeue = slurm::parse_squeue(&fixture("squeue-details-finished.txt")).unwrap();
        let sq = Index::new(&squeue);
        let d = judge_rows("9", &sq.covering("9"), "squeue", T);
        assert_eq!(field(&d, "stdout"), "/tmp/rjd/w/mem-9.out");
        assert_eq!(field(&d, "max_rss"), "");
        assert_eq!(field(&d, "cpu_efficiency"), "");
    }

    /// An array's usage: the largest MaxRSS of its tasks, and its CPU time over the CPU time it
    /// had, summed over the tasks that have all three figures.
    #[test]
    fn an_arrays_usage_is_its_tasks_together() {
        let task = |id: &str, rss: Option<u64>, cpu: Option<u64>, secs: u64, n: u64| {
            let mut r = row(id, "COMPLETED");
            (r.max_rss, r.total_cpu_ms, r.elapsed_secs, r.alloc_cpus) =
                (rss, cpu, Some(secs), Some(n));
            r
        };
        let rows = [
            task("6_1", Some(100), Some(3_000), 4, 1),
            task("6_2", Some(300), Some(1_000), 1, 2),
            task("6_3", None, None, 5, 1),
            task("6_4", Some(50), Some(500), 0, 1),
        ];
        let refs: Vec<&JobRow> = rows.iter().collect();
        let d = judge_rows("6", &refs, "sacct", T);
        assert_eq!(field(&d, "max_rss"), "300");
        // (3 + 1) s used of (4 × 1 + 1 × 2) s had.
        assert_eq!(field(&d, "cpu_efficiency"), "0.667");
        let pending = {
            let mut r = row("7_[1-3]", "PENDING");
            r.reason = "Dependency".into();
            r
        };
        let never = {
            let mut r = row("7_4", "PENDING");
            r.reason = "DependencyNeverSatisfied".into();
            r
        };
        let w = waiting(&[&row("7_5", "RUNNING"), &pending, &never]).unwrap();
        assert_eq!(w.reason, "Dependency");
        assert_eq!(w.never, ids(&["7_4"]));
    }

    /// A job unknown for exactly --lost-after is LOST, one second less is not; the record says
    /// since when, and the tick's time.
    #[test]
    fn unknown_jobs_become_lost_after_lost_after() {
        let hour = Duration::from_secs(3600);
        let now = 1_767_225_600; // 2026-01-01T00:00:00Z
        let unknown = ids(&["1", "2", "3"]);
        let since = [now - 3600, now - 3599, now + 5];
        let (lost, still) = lost_moves(&unknown, &since, now, hour, T);
        assert_eq!(still, ids(&["2", "3"]));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].id, "1");
        assert_eq!(lost[0].set, Set::Failed);
        assert_eq!(lost[0].get("state"), "LOST");
        assert_eq!(lost[0].get("lost_since"), "2025-12-31T23:00:00Z");
        assert_eq!(lost[0].get("source"), "rj-track");
        assert_eq!(lost[0].get("tracked_at"), T);
        let (lost, still) = lost_moves(&[], &[], now, hour, T);
        assert!(lost.is_empty() && still.is_empty());
    }
}
