//! Asking Slurm about a tick's tracked IDs: the small client trait over squeue, sacct and
//! `scontrol show job` (the real one runs the commands of `slurm.rs`; a fake answers unit
//! tests), and the order of the questions with the accounting-disabled latch (ARCHITECTURE.md
//! §4, §7 step 5): one squeue for all, sacct for what squeue cannot decide, scontrol when sacct
//! cannot answer.
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::cli::{info, warn};
use crate::exit::{fail, Kind};
use crate::slurm::{self, JobRow, QueryError, QueryFailure};

use super::judge::{self, Accounting, Index};

/// The three Slurm queries rj-track makes, each for many jobs at once.
pub trait SlurmClient: Send {
    fn squeue(&mut self, ids: &[String]) -> Result<Vec<JobRow>, QueryError>;
    fn sacct(&mut self, ids: &[String]) -> Result<Vec<JobRow>, QueryError>;
    fn scontrol_all(&mut self) -> Result<Vec<JobRow>, QueryError>;
    /// Slurm commands run so far (a query may run several, one per chunk of IDs).
    fn commands(&self) -> u64;
}

/// The Slurm of this machine, through the clients on PATH.
pub struct RealSlurm;

impl SlurmClient for RealSlurm {
    fn squeue(&mut self, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
        slurm::squeue(ids)
    }
    fn sacct(&mut self, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
        slurm::sacct(ids)
    }
    fn scontrol_all(&mut self) -> Result<Vec<JobRow>, QueryError> {
        slurm::scontrol_all()
    }
    fn commands(&self) -> u64 {
        slurm::SPAWNED.load(Ordering::Relaxed)
    }
}

/// Everything Slurm answered in one tick.
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

/// The client and what it has learnt: once sacct says accounting is disabled, scontrol is
/// asked directly until [`Query::forget`] (SIGHUP).
pub struct Query {
    client: Box<dyn SlurmClient>,
    accounting_disabled: bool,
}

impl Query {
    pub fn new(client: Box<dyn SlurmClient>) -> Query {
        Query {
            client,
            accounting_disabled: false,
        }
    }

    /// Forget the latch: the configuration (and maybe the cluster) changed.
    pub fn forget(&mut self) {
        self.accounting_disabled = false;
    }

    pub fn commands(&self) -> u64 {
        self.client.commands()
    }

    /// Ask about `all` (sorted, deduplicated). Only squeue failing is an error (no moves this
    /// tick); sacct and scontrol failing are warned about here and leave their jobs to
    /// [`judge::Answers`], which does not judge what only they could have told.
    pub fn ask(&mut self, all: &[String]) -> Result<Replies, QueryError> {
        let squeue = self.client.squeue(all)?;
        let squeue_at = SystemTime::now();
        let asked = judge::to_ask_again(&Index::new(&squeue), all, self.accounting_disabled);
        let mut accounting = if self.accounting_disabled {
            Accounting::Disabled
        } else {
            Accounting::Failed
        };
        let mut sacct = None;
        let mut scontrol = None;
        if !asked.is_empty() {
            if !self.accounting_disabled {
                match self.client.sacct(&asked) {
                    Ok(r) => {
                        sacct = Some(r);
                        accounting = Accounting::Answered;
                    }
                    Err(e) if e.kind == QueryFailure::AccountingDisabled => {
                        info(&format!("{e}; asking scontrol from now on"));
                        self.accounting_disabled = true;
                        accounting = Accounting::Disabled;
                    }
                    Err(e) => warn(&format!(
                        "{e}; asking scontrol, and leaving the jobs only sacct could judge \
                         (gone from the controller, or arrays) as they are this tick"
                    )),
                }
            }
            if accounting != Accounting::Answered {
                match self.client.scontrol_all() {
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
        fn log(&self, cmd: &str, ids: &[String]) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{cmd} {}", ids.join(",")).trim_end().to_string());
        }
    }

    impl SlurmClient for FakeSlurm {
        fn squeue(&mut self, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
            self.log("squeue", ids);
            match self.squeue_fails {
                Some(k) => Err(error(k, "squeue")),
                None => Ok(self.squeue.clone()),
            }
        }
        fn sacct(&mut self, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
            self.log("sacct", ids);
            match self.sacct_fails {
                Some(k) => Err(error(k, "sacct")),
                None => Ok(self.sacct.clone()),
            }
        }
        fn scontrol_all(&mut self) -> Result<Vec<JobRow>, QueryError> {
            self.log("scontrol", &[]);
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
        let r = q.ask(&ids(&["1", "2"])).unwrap();
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
        let r = q.ask(&ids(&["1", "2", "3"])).unwrap();
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
        let r = q.ask(&all).unwrap();
        assert_eq!(taken(&calls), ["squeue 1,2", "sacct 2", "scontrol"]);
        assert_eq!(r.accounting, Accounting::Disabled);
        assert!(r.scontrol.is_some());
        let r = q.ask(&all).unwrap();
        assert_eq!(taken(&calls), ["squeue 1,2", "scontrol"]);
        assert_eq!(r.accounting, Accounting::Disabled);
        q.forget();
        q.ask(&all).unwrap();
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
        let r = q.ask(&all).unwrap();
        assert_eq!(r.accounting, Accounting::Failed);
        q.ask(&all).unwrap();
        assert_eq!(
            taken(&calls),
            ["squeue 7", "sacct 7", "scontrol", "squeue 7", "sacct 7", "scontrol"]
        );
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
            let e = q.ask(&ids(&["1"])).err().expect("squeue failed");
            assert_eq!(taken(&calls), ["squeue 1"]);
            let e = no_answer(&e);
            assert_eq!(crate::exit::code_for(&e), code, "{kind:?}");
            assert!(e.to_string().ends_with("no moves this tick"), "{e}");
        }
    }
}
