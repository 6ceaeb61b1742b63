//! Asking Slurm about a tick's tracked IDs: the small client trait over squeue, sacct,
//! `scontrol show job` and scancel (the real one runs the commands of `slurm.rs`; a fake answers
//! unit tests), and the order of the questions with the accounting-disabled latch and, where
//! squeue has `--only-job-state`, which jobs are asked again with the full fields
//! (ARCHITECTURE.md §4, §7 step 5): per cluster, one squeue for all its IDs (two with the state
//! query), sacct for what squeue cannot decide, scontrol when sacct cannot answer.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::cli::{info, warn};
use crate::exit::{fail, Kind};
use crate::slurm::{self, JobRow, QueryError, QueryFailure};

use super::judge::{self, Accounting, Index};

/// The Slurm commands rj-track runs, each for many jobs of one cluster at once (`None`: the
/// default cluster, no `-M`).
pub trait SlurmClient: Send {
    /// squeue with every field rj reads.
    fn squeue(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError>;
    /// Does squeue have `--only-job-state` (Slurm ≥ 23.11.5)?
    fn has_only_job_state(&self) -> bool;
    /// `squeue --only-job-state`: IDs and states only, one row per asked job or task.
    fn squeue_states(
        &mut self,
        cluster: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<JobRow>, QueryError>;
    fn sacct(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError>;
    fn scontrol_all(&mut self, cluster: Option<&str>) -> Result<Vec<JobRow>, QueryError>;
    /// Cancel these jobs (or tasks) in one command.
    fn scancel(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<(), QueryError>;
    /// Slurm commands run so far (a query may run several, one per chunk of IDs).
    fn commands(&self) -> u64;
}

/// The Slurm of this machine, through the clients on PATH.
pub struct RealSlurm;

impl SlurmClient for RealSlurm {
    fn squeue(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
        slurm::squeue(cluster, ids)
    }
    fn has_only_job_state(&self) -> bool {
        slurm::only_job_state()
    }
    fn squeue_states(
        &mut self,
        cluster: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<JobRow>, QueryError> {
        slurm::squeue_states(cluster, ids)
    }
    fn scancel(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<(), QueryError> {
        slurm::scancel(cluster, ids)
    }
    fn sacct(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
        slurm::sacct(cluster, ids)
    }
    fn scontrol_all(&mut self, cluster: Option<&str>) -> Result<Vec<JobRow>, QueryError> {
        slurm::scontrol_all(cluster)
    }
    fn commands(&self) -> u64 {
        slurm::SPAWNED.load(Ordering::Relaxed)
    }
}

/// The tick's IDs grouped by cluster (`None`, the default cluster, first; then by name), each
/// group sorted in job order and without duplicates: one squeue per group.
pub fn group_by_cluster<'a>(
    ids: impl IntoIterator<Item = (Option<&'a str>, &'a str)>,
) -> Vec<(Option<String>, Vec<String>)> {
    let mut groups: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for (cluster, id) in ids {
        groups.entry(cluster).or_default().push(id);
    }
    groups
        .into_iter()
        .map(|(cluster, mut ids)| {
            ids.sort_by_cached_key(|s| crate::keys::IdKey::of(s));
            ids.dedup();
            (
                cluster.map(str::to_string),
                ids.into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Everything one cluster's Slurm answered in one tick.
pub struct Replies {
    pub squeue: Vec<JobRow>,
    /// When squeue answered: the time of the tick's records.
    pub squeue_at: SystemTime,
    /// The IDs squeue could not decide alone, which were asked again.
    pub asked: Vec<String>,
    pub sacct: Option<Vec<JobRow>>,
    pub scontrol: Option<Vec<JobRow>>,
    pub accounting: Accounting,
}

/// Where squeue has `--only-job-state`, how old the full fields (the Reason) of a pending job
/// may get before the job is asked again with them (ARCHITECTURE.md §7 step 5).
pub const DETAILS_REFRESH: Duration = Duration::from_secs(60);

/// A job (or task) as the last tick saw it: its state, and when the full squeue last answered
/// for it.
#[derive(Debug, Clone)]
struct Seen {
    state: String,
    full_at: Option<Instant>,
}

/// The client and what it has learnt: once sacct says a cluster's accounting is disabled,
/// scontrol is asked directly for that cluster until [`Query::forget`] (SIGHUP); with the state
/// query, what each cluster's jobs were at the last tick.
pub struct Query {
    client: Box<dyn SlurmClient>,
    accounting_disabled: HashSet<Option<String>>,
    seen: HashMap<Option<String>, HashMap<String, Seen>>,
    /// [`DETAILS_REFRESH`], shorter in unit tests.
    refresh: Duration,
    /// The clusters where the state query showed a tracked job finished at the last tick.
    ended: HashSet<Option<String>>,
}

/// With the state query: is this row to be asked again with the full fields? A finished job
/// (its record); a live one whose state changed to anything but RUNNING since the last tick (a
/// running job back to PENDING was requeued: only the full fields have its RestartCnt, for
/// `restarts` and `requeued_at`); a pending one whose Reason the tracker has not had from the
/// full squeue for `refresh` (or ever), or when a job of its cluster ended at this tick or the
/// last (`ended`: a dependency resolves, or becomes DependencyNeverSatisfied, when a job ends, a
/// moment after); not a running one, which has nothing to tell until it ends.
fn wants_details(
    r: &JobRow,
    before: Option<&Seen>,
    now: Instant,
    refresh: Duration,
    ended: bool,
) -> bool {
    if finished(r) {
        return true;
    }
    if before.is_some_and(|b| b.state != r.state) && r.state != "RUNNING" {
        return true;
    }
    r.is_pending()
        && (ended
            || before
                .and_then(|b| b.full_at)
                .is_none_or(|at| now.duration_since(at) >= refresh))
}

fn finished(r: &JobRow) -> bool {
    crate::state::classify(&r.state) != crate::state::Verdict::Active
}

impl Query {
    pub fn new(client: Box<dyn SlurmClient>) -> Query {
        Query {
            client,
            accounting_disabled: HashSet::new(),
            seen: HashMap::new(),
            refresh: DETAILS_REFRESH,
            ended: HashSet::new(),
        }
    }

    /// Cancel `ids` (jobs or tasks) of `cluster` with one scancel.
    pub fn cancel(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<(), QueryError> {
        self.client.scancel(cluster, ids)
    }

    /// The squeue rows of `all` on `cluster`. Where squeue has `--only-job-state`, the state
    /// query first; then one full squeue for the rows [`wants_details`] picks (none when nothing
    /// finished and no pending job is due). Should the state query fail in words rj does not
    /// know (slurmctld down: `Unspecified error`), the full query is asked for everything: it
    /// says what is wrong in words rj-track knows, or answers.
    fn squeue(&mut self, cluster: Option<&str>, all: &[String]) -> Result<Vec<JobRow>, QueryError> {
        if !self.client.has_only_job_state() {
            return self.client.squeue(cluster, all);
        }
        let states = match self.client.squeue_states(cluster, all) {
            Ok(rows) => rows,
            Err(e) if e.kind == QueryFailure::Other => return self.client.squeue(cluster, all),
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let key = cluster.map(str::to_string);
        let before = self.seen.remove(&key).unwrap_or_default();
        let ends_now = states.iter().any(finished);
        let ended = ends_now || self.ended.contains(&key);
        if ends_now {
            self.ended.insert(key.clone());
        } else {
            self.ended.remove(&key);
        }
        let (again, mut rows): (Vec<JobRow>, Vec<JobRow>) = states
            .into_iter()
            .partition(|r| wants_details(r, before.get(&r.id), now, self.refresh, ended));
        let mut seen: HashMap<String, Seen> = rows
            .iter()
            .map(|r| {
                let full_at = before.get(&r.id).and_then(|b| b.full_at);
                let state = r.state.clone();
                (r.id.clone(), Seen { state, full_at })
            })
            .collect();
        if !again.is_empty() {
            // A job the full query no longer lists is left out, as squeue leaves out any job it
            // no longer knows: the tracker then asks accounting.
            let ids: Vec<String> = again.into_iter().map(|r| r.id).collect();
            let full = match self.client.squeue(cluster, &ids) {
                Ok(full) => full,
                Err(e) => {
                    self.seen.insert(key, before);
                    return Err(e);
                }
            };
            for r in &full {
                let state = r.state.clone();
                let full_at = Some(now);
                seen.insert(r.id.clone(), Seen { state, full_at });
            }
            rows.extend(full);
        }
        self.seen.insert(key, seen);
        Ok(rows)
    }

    /// Forget the latch: the configuration (and maybe the clusters) changed.
    pub fn forget(&mut self) {
        self.accounting_disabled.clear();
    }

    pub fn commands(&self) -> u64 {
        self.client.commands()
    }

    /// Ask each cluster about its group of [`group_by_cluster`], in order: one answer (or
    /// squeue's error) per group.
    pub fn ask_all(
        &mut self,
        groups: &[(Option<String>, Vec<String>)],
    ) -> Vec<Result<Replies, QueryError>> {
        groups
            .iter()
            .map(|(cluster, ids)| self.ask(cluster.as_deref(), ids))
            .collect()
    }

    /// Ask `cluster` about `all` (sorted, deduplicated). Only squeue failing is an error (no
    /// moves for the cluster this tick); sacct and scontrol failing are warned about here and
    /// leave their jobs to [`judge::Answers`], which does not judge what only they could have
    /// told.
    pub fn ask(&mut self, cluster: Option<&str>, all: &[String]) -> Result<Replies, QueryError> {
        let squeue = self.squeue(cluster, all)?;
        let squeue_at = SystemTime::now();
        let key = cluster.map(str::to_string);
        let disabled = self.accounting_disabled.contains(&key);
        let asked = judge::to_ask_again(&Index::new(&squeue), all, disabled);
        let mut accounting = if disabled {
            Accounting::Disabled
        } else {
            Accounting::Failed
        };
        let mut sacct = None;
        let mut scontrol = None;
        if !asked.is_empty() {
            if !disabled {
                match self.client.sacct(cluster, &asked) {
                    Ok(r) => {
                        sacct = Some(r);
                        accounting = Accounting::Answered;
                    }
                    Err(e) if e.kind == QueryFailure::AccountingDisabled => {
                        info(&format!("{e}; asking scontrol from now on"));
                        self.accounting_disabled.insert(key);
                        accounting = Accounting::Disabled;
                    }
                    Err(e) => warn(&format!(
                        "{e}; asking scontrol, and leaving the jobs only sacct could judge \
                         (gone from the controller, or arrays) as they are this tick"
                    )),
                }
            }
            if accounting != Accounting::Answered {
                match self.client.scontrol_all(cluster) {
                    Ok(r) => scontrol = Some(r),
                    Err(e) => warn(&format!("{e}")),
                }
            }
        }
        Ok(Replies {
            squeue,
            squeue_at,
            asked,
            sacct,
            scontrol,
            accounting,
        })
    }
}

/// squeue's failure as the tick's error: what happened, "no moves this tick", and its status
/// (69 for a Slurm that cannot answer, 65 for an answer rj cannot read).
pub fn no_answer(e: &QueryError) -> anyhow::Error {
    let (what, kind) = match e.kind {
        QueryFailure::Unreachable => ("Slurm controller unreachable", Kind::Unavailable),
        QueryFailure::BadOutput => ("cannot read squeue's answer", Kind::DataErr),
        _ => ("squeue failed", Kind::Unavailable),
    };
    fail(kind, format!("{what}: {e}; no moves this tick"))
}

/// A Slurm that answers from fixed rows and records what it was asked.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct FakeSlurm {
        /// The full squeue's rows (each call answers those of the asked IDs).
        pub squeue: Vec<JobRow>,
        /// With `only_job_state`, the state query's rows (each call answers those of the asked
        /// IDs).
        pub states: Vec<JobRow>,
        /// Instead of `states` and `squeue`, when not empty: what the state query and the full
        /// squeue answer at each tick (the n-th state query starts tick n; the last repeats).
        pub ticks: Vec<(Vec<JobRow>, Vec<JobRow>)>,
        /// How many state queries were asked (the tick of `ticks`).
        pub state_calls: usize,
        pub only_job_state: bool,
        pub sacct: Vec<JobRow>,
        pub scontrol: Vec<JobRow>,
        pub squeue_fails: Option<QueryFailure>,
        pub sacct_fails: Option<QueryFailure>,
        /// The clusters on which squeue_fails and sacct_fails apply; empty: all.
        pub fails_on: Vec<Option<String>>,
        /// Every call, as `command ID,ID…`; shared, to be read once the fake is boxed.
        pub calls: Arc<Mutex<Vec<String>>>,
    }

    /// The rows that report on the asked IDs.
    fn asked(rows: &[JobRow], ids: &[String]) -> Vec<JobRow> {
        rows.iter()
            .filter(|r| ids.iter().any(|id| r.covers(id) || *id == r.id))
            .cloned()
            .collect()
    }

    fn error(kind: QueryFailure, cmd: &str) -> QueryError {
        QueryError {
            kind,
            msg: format!("{cmd} failed: as told"),
        }
    }

    impl FakeSlurm {
        /// `command [-M cluster] ID,ID…`
        fn log(&self, cmd: &str, cluster: Option<&str>, ids: &[String]) {
            let m = cluster.map(|c| format!(" -M {c}")).unwrap_or_default();
            self.calls
                .lock()
                .unwrap()
                .push(format!("{cmd}{m} {}", ids.join(",")).trim_end().to_string());
        }

        /// This tick's answers of `ticks`, if scripted.
        fn tick(&self) -> Option<&(Vec<JobRow>, Vec<JobRow>)> {
            let last = self.ticks.len().checked_sub(1)?;
            self.ticks.get(self.state_calls.saturating_sub(1).min(last))
        }

        /// Does a cluster's command fail as told? `fails_on` empty: on every cluster.
        fn fails(&self, cluster: Option<&str>) -> bool {
            self.fails_on.is_empty() || self.fails_on.iter().any(|c| c.as_deref() == cluster)
        }
    }

    impl SlurmClient for FakeSlurm {
        fn squeue(
            &mut self,
            cluster: Option<&str>,
            ids: &[String],
        ) -> Result<Vec<JobRow>, QueryError> {
            self.log("squeue", cluster, ids);
            match self.squeue_fails {
                Some(k) if self.fails(cluster) => Err(error(k, "squeue")),
                _ => Ok(asked(self.tick().map_or(&self.squeue, |t| &t.1), ids)),
            }
        }
        fn has_only_job_state(&self) -> bool {
            self.only_job_state
        }
        fn squeue_states(
            &mut self,
            cluster: Option<&str>,
            ids: &[String],
        ) -> Result<Vec<JobRow>, QueryError> {
            self.log("squeue --only-job-state", cluster, ids);
            self.state_calls += 1;
            Ok(asked(self.tick().map_or(&self.states, |t| &t.0), ids))
        }
        fn scancel(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<(), QueryError> {
            self.log("scancel", cluster, ids);
            Ok(())
        }
        fn sacct(
            &mut self,
            cluster: Option<&str>,
            ids: &[String],
        ) -> Result<Vec<JobRow>, QueryError> {
            self.log("sacct", cluster, ids);
            match self.sacct_fails {
                Some(k) if self.fails(cluster) => Err(error(k, "sacct")),
                _ => Ok(self.sacct.clone()),
            }
        }
        fn scontrol_all(&mut self, cluster: Option<&str>) -> Result<Vec<JobRow>, QueryError> {
            self.log("scontrol", cluster, &[]);
            Ok(self.scontrol.clone())
        }
        fn commands(&self) -> u64 {
            self.calls.lock().unwrap().len() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeSlurm;
    use super::*;
    use crate::track::judge::tests::row;
    use std::sync::{Arc, Mutex};

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn query(fake: FakeSlurm) -> (Query, Arc<Mutex<Vec<String>>>) {
        let calls = Arc::clone(&fake.calls);
        (Query::new(Box::new(fake)), calls)
    }

    fn taken(calls: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        std::mem::take(&mut *calls.lock().unwrap())
    }

    /// Every job live: one command, nothing asked again (a finished one goes to accounting
    /// for its usage figures).
    #[test]
    fn squeue_alone_when_it_decides_everything() {
        let (mut q, calls) = query(FakeSlurm {
            squeue: vec![row("1", "RUNNING"), row("2", "PENDING")],
            ..FakeSlurm::default()
        });
        let r = q.ask(None, &ids(&["1", "2"])).unwrap();
        assert_eq!(q.commands(), 1);
        assert_eq!(taken(&calls), ["squeue 1,2"]);
        assert!(r.asked.is_empty() && r.sacct.is_none() && r.scontrol.is_none());
    }

    /// sacct gets only what squeue could not decide, and answering spares scontrol.
    #[test]
    fn sacct_for_the_rest_and_no_scontrol_when_it_answers() {
        let (mut q, calls) = query(FakeSlurm {
            squeue: vec![row("1", "RUNNING")],
            sacct: vec![row("2", "COMPLETED")],
            ..FakeSlurm::default()
        });
        let r = q.ask(None, &ids(&["1", "2", "3"])).unwrap();
        assert_eq!(taken(&calls), ["squeue 1,2,3", "sacct 2,3"]);
        assert_eq!(r.accounting, Accounting::Answered);
        assert_eq!(r.asked, ids(&["2", "3"]));
    }

    /// "accounting storage is disabled" latches: from then on scontrol is asked directly and
    /// sacct never again, until the latch is forgotten (SIGHUP).
    #[test]
    fn disabled_accounting_latches_until_forgotten() {
        let (mut q, calls) = query(FakeSlurm {
            squeue: vec![row("1", "RUNNING")],
            sacct_fails: Some(QueryFailure::AccountingDisabled),
            scontrol: vec![row("2", "COMPLETED")],
            ..FakeSlurm::default()
        });
        let all = ids(&["1", "2"]);
        let r = q.ask(None, &all).unwrap();
        assert_eq!(taken(&calls), ["squeue 1,2", "sacct 2", "scontrol"]);
        assert_eq!(r.accounting, Accounting::Disabled);
        assert!(r.scontrol.is_some());
        let r = q.ask(None, &all).unwrap();
        assert_eq!(taken(&calls), ["squeue 1,2", "scontrol"]);
        assert_eq!(r.accounting, Accounting::Disabled);
        q.forget();
        q.ask(None, &all).unwrap();
        assert_eq!(taken(&calls), ["squeue 1,2", "sacct 2", "scontrol"]);
    }

    /// Any other sacct failure does not latch: scontrol this tick, sacct again next tick.
    #[test]
    fn a_failing_sacct_is_asked_again_next_tick() {
        let (mut q, calls) = query(FakeSlurm {
            sacct_fails: Some(QueryFailure::Unreachable),
            ..FakeSlurm::default()
        });
        let all = ids(&["7"]);
        let r = q.ask(None, &all).unwrap();
        assert_eq!(r.accounting, Accounting::Failed);
        q.ask(None, &all).unwrap();
        assert_eq!(
            taken(&calls),
            ["squeue 7", "sacct 7", "scontrol", "squeue 7", "sacct 7", "scontrol"]
        );
    }

    /// IDs grouped by cluster: the default cluster (no -M) first, each group in job order and
    /// each ID once, whatever order and duplicates the tags brought.
    #[test]
    fn ids_are_grouped_by_cluster() {
        let g = group_by_cluster([
            (Some("b"), "10"),
            (None, "9"),
            (Some("a"), "3"),
            (Some("b"), "2"),
            (None, "100"),
            (Some("b"), "10"),
        ]);
        assert_eq!(
            g,
            [
                (None, ids(&["9", "100"])),
                (Some("a".to_string()), ids(&["3"])),
                (Some("b".to_string()), ids(&["2", "10"])),
            ]
        );
        assert!(group_by_cluster([]).is_empty());
    }

    /// One squeue per cluster with its own IDs and -M, whatever the number of jobs; sacct and
    /// scontrol only for the cluster whose jobs need them, with the same -M.
    #[test]
    fn each_cluster_is_asked_with_its_own_commands() {
        let (mut q, calls) = query(FakeSlurm {
            squeue: vec![row("1", "RUNNING"), row("5", "RUNNING")],
            sacct_fails: Some(QueryFailure::AccountingDisabled),
            fails_on: vec![Some("b".into())],
            ..FakeSlurm::default()
        });
        let many: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
        let groups = vec![
            (None, ids(&["1"])),
            (Some("a".to_string()), ids(&["5"])),
            (Some("b".to_string()), many.clone()),
        ];
        let r = q.ask_all(&groups);
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|r| r.is_ok()));
        assert_eq!(
            taken(&calls),
            [
                "squeue 1",
                "squeue -M a 5",
                "squeue -M b 1,2,3,4,5",
                "sacct -M b 2,3,4",
                "scontrol -M b",
            ]
        );
        // The latch is b's alone: next tick b goes to scontrol directly.
        let r = q.ask_all(&groups);
        assert_eq!(r[2].as_ref().unwrap().accounting, Accounting::Disabled);
        assert_eq!(
            taken(&calls),
            [
                "squeue 1",
                "squeue -M a 5",
                "squeue -M b 1,2,3,4,5",
                "scontrol -M b"
            ]
        );
    }

    /// squeue failing on one cluster is that cluster's error only.
    #[test]
    fn a_failing_cluster_does_not_silence_the_others() {
        let (mut q, calls) = query(FakeSlurm {
            squeue: vec![row("1", "RUNNING")],
            squeue_fails: Some(QueryFailure::Unreachable),
            fails_on: vec![Some("b".into())],
            ..FakeSlurm::default()
        });
        let r = q.ask_all(&[(None, ids(&["1"])), (Some("b".to_string()), ids(&["1"]))]);
        assert!(r[0].is_ok());
        assert_eq!(r[1].as_ref().err().unwrap().kind, QueryFailure::Unreachable);
        assert_eq!(taken(&calls), ["squeue 1", "squeue -M b 1"]);
    }

    fn with_reason(id: &str, state: &str, reason: &str) -> JobRow {
        let mut r = row(id, state);
        r.reason = reason.into();
        r
    }

    /// With `--only-job-state`: the state query for every job, then one full squeue for the
    /// finished jobs and the pending ones whose reason is due (never had, older than the
    /// refresh period, or a job ended at this tick or the last); a running job is never asked
    /// again until it ends. The rows the full query answered replace the state query's.
    #[test]
    fn the_state_query_asks_again_only_for_finished_and_due_pending_jobs() {
        let (mut q, calls) = query(FakeSlurm {
            only_job_state: true,
            states: vec![
                row("1", "RUNNING"),
                row("2", "PENDING"),
                row("3", "COMPLETED"),
            ],
            squeue: vec![
                row("1", "RUNNING"),
                with_reason("2", "PENDING", "Priority"),
                row("3", "COMPLETED"),
            ],
            ..FakeSlurm::default()
        });
        let all = ids(&["1", "2", "3"]);
        let r = q.ask(None, &all).unwrap();
        assert_eq!(
            taken(&calls),
            ["squeue --only-job-state 1,2,3", "squeue 2,3", "sacct 3"]
        );
        let reason = |r: &Replies, id: &str| {
            r.squeue
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.reason.clone())
                .unwrap()
        };
        assert_eq!(reason(&r, "2"), "Priority");
        assert_eq!(r.squeue.len(), 3);
        // Job 3 moved. The next tick: a job ended at the last one, so the pending job's reason
        // is asked again (its dependency may have just been judged).
        let live = ids(&["1", "2"]);
        q.ask(None, &live).unwrap();
        assert_eq!(taken(&calls), ["squeue --only-job-state 1,2", "squeue 2"]);
        // Nothing ended, the reason is fresh: one command.
        q.ask(None, &live).unwrap();
        assert_eq!(taken(&calls), ["squeue --only-job-state 1,2"]);
        // Once it is due, it is asked again; the running job still not.
        q.refresh = Duration::ZERO;
        q.ask(None, &live).unwrap();
        assert_eq!(taken(&calls), ["squeue --only-job-state 1,2", "squeue 2"]);
    }

    /// Slurm 24.11: the state query has no RestartCnt. A job seen pending (and asked with the
    /// full fields), then running, then pending again within the refresh period was requeued:
    /// it is asked again with the full fields at once, and judged Requeued with Slurm's count
    /// (so its hash gets restarts and requeued_at). One full squeue, whatever the number of jobs.
    #[test]
    fn a_job_back_to_pending_after_it_ran_is_asked_again_and_judged_requeued() {
        let restarts = |id: &str, state: &str, n: &str| {
            let mut r = row(id, state);
            r.restarts = n.into();
            r
        };
        let first = vec![restarts("1", "PENDING", "0"), restarts("2", "PENDING", "0")];
        let (mut q, calls) = query(FakeSlurm {
            only_job_state: true,
            ticks: vec![
                (
                    vec![row("1", "PENDING"), row("2", "PENDING")],
                    first.clone(),
                ),
                (vec![row("1", "RUNNING"), row("2", "PENDING")], first),
                (
                    vec![row("1", "PENDING"), row("2", "PENDING")],
                    vec![restarts("1", "PENDING", "1"), restarts("2", "PENDING", "0")],
                ),
            ],
            ..FakeSlurm::default()
        });
        let all = ids(&["1", "2"]);
        let judged = |r: &Replies| {
            let sq = Index::new(&r.squeue);
            let answers = judge::Answers {
                squeue: &sq,
                sacct: None,
                scontrol: None,
                accounting: r.accounting,
            };
            judge::judge_all(&all, &r.asked, &answers, "T")
                .into_iter()
                .map(|(id, d)| (id.to_string(), d))
                .collect::<BTreeMap<String, judge::Decision>>()
        };
        let r = q.ask(None, &all).unwrap();
        assert_eq!(taken(&calls), ["squeue --only-job-state 1,2", "squeue 1,2"]);
        assert_eq!(judged(&r)["1"], judge::Decision::Stay);
        q.ask(None, &all).unwrap();
        assert_eq!(taken(&calls), ["squeue --only-job-state 1,2"]);
        let r = q.ask(None, &all).unwrap();
        assert_eq!(taken(&calls), ["squeue --only-job-state 1,2", "squeue 1"]);
        let d = judged(&r);
        assert_eq!(d["1"], judge::Decision::Requeued("1".into()));
        assert_eq!(d["2"], judge::Decision::Stay);
    }

    /// The jobs to cancel go to one scancel per cluster.
    #[test]
    fn cancel_is_one_scancel() {
        let (mut q, calls) = query(FakeSlurm::default());
        q.cancel(Some("b"), &ids(&["5", "7_[2-4]"])).unwrap();
        assert_eq!(taken(&calls), ["scancel -M b 5,7_[2-4]"]);
    }

    /// squeue failing is the tick's error, with the status of its cause.
    #[test]
    fn a_failing_squeue_is_the_error_of_the_tick() {
        for (kind, code) in [
            (QueryFailure::Unreachable, 69),
            (QueryFailure::BadOutput, 65),
            (QueryFailure::Other, 69),
        ] {
            let (mut q, calls) = query(FakeSlurm {
                squeue_fails: Some(kind),
                ..FakeSlurm::default()
            });
            let e = q.ask(None, &ids(&["1"])).err().expect("squeue failed");
            assert_eq!(taken(&calls), ["squeue 1"]);
            let e = no_answer(&e);
            assert_eq!(crate::exit::code_for(&e), code, "{kind:?}");
            assert!(e.to_string().ends_with("no moves this tick"), "{e}");
        }
    }
}
