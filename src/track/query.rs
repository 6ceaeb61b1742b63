//! Asking Slurm about a tick's tracked IDs: the small client trait over squeue, sacct and
//! `scontrol show job` (the real one runs the commands of `slurm.rs`; a fake answers unit
//! tests), and the order of the questions with the accounting-disabled latch (ARCHITECTURE.md
//! §4, §7 step 5): per cluster, one squeue for all its IDs, sacct for what squeue cannot
//! decide, scontrol when sacct cannot answer.
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::cli::{info, warn};
use crate::exit::{fail, Kind};
use crate::slurm::{self, JobRow, QueryError, QueryFailure};

use super::judge::{self, Accounting, Index};

/// The three Slurm queries rj-track makes, each for many jobs of one cluster at once (`None`:
/// the default cluster, no `-M`).
pub trait SlurmClient: Send {
    fn squeue(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError>;
    fn sacct(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError>;
    fn scontrol_all(&mut self, cluster: Option<&str>) -> Result<Vec<JobRow>, QueryError>;
    /// Slurm commands run so far (a query may run several, one per chunk of IDs).
    fn commands(&self) -> u64;
}

/// The Slurm of this machine, through the clients on PATH.
pub struct RealSlurm;

impl SlurmClient for RealSlurm {
    fn squeue(&mut self, cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
        slurm::squeue(cluster, ids)
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

/// The client and what it has learnt: once sacct says a cluster's accounting is disabled,
/// scontrol is asked directly for that cluster until [`Query::forget`] (SIGHUP).
pub struct Query {
    client: Box<dyn SlurmClient>,
    accounting_disabled: HashSet<Option<String>>,
}

impl Query {
    pub fn new(client: Box<dyn SlurmClient>) -> Query {
        Query {
            client,
            accounting_disabled: HashSet::new(),
        }
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
        let squeue = self.client.squeue(cluster, all)?;
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
        pub squeue: Vec<JobRow>,
        pub sacct: Vec<JobRow>,
        pub scontrol: Vec<JobRow>,
        pub squeue_fails: Option<QueryFailure>,
        pub sacct_fails: Option<QueryFailure>,
        /// The clusters on which squeue_fails and sacct_fails apply; empty: all.
        pub fails_on: Vec<Option<String>>,
        /// Every call, as `command ID,ID…`; shared, to be read once the fake is boxed.
        pub calls: Arc<Mutex<Vec<String>>>,
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
                _ => Ok(self.squeue.clone()),
            }
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

    /// Every job squeue decides: one command, nothing asked again.
    #[test]
    fn squeue_alone_when_it_decides_everything() {
        let (mut q, calls) = query(FakeSlurm {
            squeue: vec![row("1", "RUNNING"), row("2", "COMPLETED")],
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
