//! The job record `T_JOB:<id>` (ARCHITECTURE.md §2) as a type, and the one mapping between it
//! and the hash's fields.
//!
//! rj-launch writes the first fields when it records a job, rj-track the rest when it moves the
//! job to its final set. A hash may hold fields rj does not know (a newer rj's, a user's or an
//! old script's): they are kept in [`JobRecord::other`], so that reading a record and writing it
//! back loses nothing.
use std::collections::BTreeMap;

/// One job's record. Every field is the hash field of the same name; `None` where the hash has
/// none. Values are text as rj-track writes them: Slurm's own where it has one form, and one
/// form where Slurm's commands differ (`exit_code` always `code:signal`, `elapsed` always
/// `[D-]HH:MM:SS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRecord {
    // Written by rj-launch when it records the job.
    /// When rj-launch recorded the job (RFC 3339 UTC).
    pub submitted: Option<String>,
    /// When the job was recorded, as the event stream names it (RFC 3339 UTC).
    pub recorded_at: Option<String>,
    pub host: Option<String>,
    pub user: Option<String>,
    pub cwd: Option<String>,
    /// sbatch's arguments as a JSON array of strings.
    pub sbatch_args: Option<String>,
    /// The cluster of `sbatch --parsable`'s `id;cluster`.
    pub cluster: Option<String>,

    // Written by rj-track when it moves the job to its final set.
    /// Slurm's state (`COMPLETED`, `CANCELLED by 0`, `OUT_OF_MEMORY`), or `LOST`.
    pub state: Option<String>,
    pub exit_code: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub elapsed: Option<String>,
    pub nodes: Option<String>,
    pub partition: Option<String>,
    pub name: Option<String>,
    /// The job's output files, their patterns expanded (`%j`, `%A_%a`, `%x`, …) as `scontrol
    /// show job` prints them.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// The last Reason Slurm gave while the job was pending (`Priority`, `Dependency`,
    /// `DependencyNeverSatisfied`), written while it waits and kept after the move.
    pub reason: Option<String>,
    /// When rj-track saw Slurm requeue the job (RFC 3339 UTC), with `restarts`.
    pub requeued_at: Option<String>,
    /// TotalCPU / (elapsed × allocated CPUs) from accounting, three decimals (`0.873`).
    pub cpu_efficiency: Option<String>,
    /// The Slurm command the state came from (`squeue`, `sacct`, `scontrol`, `rj-track`).
    pub source: Option<String>,
    /// When Slurm was first found not to know a job marked LOST.
    pub lost_since: Option<String>,
    /// An array parent's task counts: all, then per final set.
    pub tasks: Option<u64>,
    pub tasks_completed: Option<u64>,
    pub tasks_failed: Option<u64>,
    pub tasks_timeout: Option<u64>,
    pub tasks_cancelled: Option<u64>,
    /// How often Slurm requeued the job (RestartCnt), when it did.
    pub restarts: Option<u64>,
    /// The largest resident set of the job's steps, in bytes (accounting's MaxRSS).
    pub max_rss: Option<u64>,
    /// The tick's time of the move (RFC 3339 UTC).
    pub tracked_at: Option<String>,
    /// The lease owner of the rj-track that moved the job; by it a tracker that lost a reply
    /// finds its own moves again, and `--repair` tells a final record from rj-launch's.
    pub tracked_by: Option<String>,

    /// Every other field, as it is in the hash (also a task count that is not a number).
    pub other: BTreeMap<String, String>,
}

/// The text fields, in the order [`JobRecord::to_fields`] writes them.
const TEXT: [&str; 23] = [
    "submitted",
    "recorded_at",
    "host",
    "user",
    "cwd",
    "sbatch_args",
    "cluster",
    "state",
    "exit_code",
    "start",
    "end",
    "elapsed",
    "nodes",
    "partition",
    "name",
    "stdout",
    "stderr",
    "reason",
    "requeued_at",
    "cpu_efficiency",
    "source",
    "lost_since",
    "tracked_at",
];

/// The number fields, written after the text fields, then `tracked_by`, then the others.
const COUNTS: [&str; 7] = [
    "tasks",
    "tasks_completed",
    "tasks_failed",
    "tasks_timeout",
    "tasks_cancelled",
    "restarts",
    "max_rss",
];

impl JobRecord {
    /// The record of a hash's fields (HGETALL's pairs). A field that appears twice keeps its
    /// last value, as HSET would.
    pub fn from_fields<K, V>(fields: impl IntoIterator<Item = (K, V)>) -> JobRecord
    where
        K: Into<String> + AsRef<str>,
        V: Into<String> + AsRef<str>,
    {
        let mut r = JobRecord::default();
        for (k, v) in fields {
            r.set(k.as_ref(), v.into());
        }
        r
    }

    /// Set one field by its hash name; unknown names (and counts that are not numbers) go to
    /// [`JobRecord::other`].
    pub fn set(&mut self, name: &str, value: String) {
        if let Some(slot) = self.count_slot(name) {
            match value.parse::<u64>() {
                Ok(n) if n.to_string() == value => {
                    *slot = Some(n);
                    self.other.remove(name);
                }
                // "007" or "x": kept as written, so writing the record back changes nothing.
                _ => {
                    *slot = None;
                    self.other.insert(name.to_string(), value);
                }
            }
        } else if let Some(slot) = self.text_slot(name) {
            *slot = Some(value);
        } else {
            self.other.insert(name.to_string(), value);
        }
    }

    /// One field by its hash name, as text.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(Some(n)) = COUNTS
            .iter()
            .position(|c| *c == name)
            .map(|i| self.counts()[i])
        {
            return Some(n.to_string());
        }
        self.text(name).map(str::to_string)
    }

    /// A text field (or an unknown one) by its hash name, without copying it; a task count that
    /// is a number is not text here: [`JobRecord::get`] has it.
    pub fn text(&self, name: &str) -> Option<&str> {
        match name {
            "submitted" => self.submitted.as_deref(),
            "recorded_at" => self.recorded_at.as_deref(),
            "host" => self.host.as_deref(),
            "user" => self.user.as_deref(),
            "cwd" => self.cwd.as_deref(),
            "sbatch_args" => self.sbatch_args.as_deref(),
            "cluster" => self.cluster.as_deref(),
            "state" => self.state.as_deref(),
            "exit_code" => self.exit_code.as_deref(),
            "start" => self.start.as_deref(),
            "end" => self.end.as_deref(),
            "elapsed" => self.elapsed.as_deref(),
            "nodes" => self.nodes.as_deref(),
            "partition" => self.partition.as_deref(),
            "name" => self.name.as_deref(),
            "stdout" => self.stdout.as_deref(),
            "stderr" => self.stderr.as_deref(),
            "reason" => self.reason.as_deref(),
            "requeued_at" => self.requeued_at.as_deref(),
            "cpu_efficiency" => self.cpu_efficiency.as_deref(),
            "source" => self.source.as_deref(),
            "lost_since" => self.lost_since.as_deref(),
            "tracked_at" => self.tracked_at.as_deref(),
            "tracked_by" => self.tracked_by.as_deref(),
            other => self.other.get(other).map(String::as_str),
        }
    }

    /// The hash's fields (HSET's arguments): the known ones in a fixed order, then the others
    /// in name order. [`JobRecord::from_fields`] of them is this record again; rj-track's move
    /// script writes exactly these (ARCHITECTURE.md §7).
    pub fn to_fields(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in TEXT {
            if let Some(v) = self.text(name) {
                out.push((name.to_string(), v.to_string()));
            }
        }
        for (name, n) in COUNTS.iter().zip(self.counts()) {
            if let Some(n) = n {
                out.push((name.to_string(), n.to_string()));
            }
        }
        if let Some(v) = &self.tracked_by {
            out.push(("tracked_by".to_string(), v.clone()));
        }
        out.extend(self.other.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// True when rj-track wrote this record at a move (it names the tracker).
    pub fn is_final(&self) -> bool {
        self.tracked_by.is_some()
    }

    fn counts(&self) -> [Option<u64>; 7] {
        [
            self.tasks,
            self.tasks_completed,
            self.tasks_failed,
            self.tasks_timeout,
            self.tasks_cancelled,
            self.restarts,
            self.max_rss,
        ]
    }

    fn count_slot(&mut self, name: &str) -> Option<&mut Option<u64>> {
        Some(match name {
            "tasks" => &mut self.tasks,
            "tasks_completed" => &mut self.tasks_completed,
            "tasks_failed" => &mut self.tasks_failed,
            "tasks_timeout" => &mut self.tasks_timeout,
            "tasks_cancelled" => &mut self.tasks_cancelled,
            "restarts" => &mut self.restarts,
            "max_rss" => &mut self.max_rss,
            _ => return None,
        })
    }

    fn text_slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "submitted" => &mut self.submitted,
            "recorded_at" => &mut self.recorded_at,
            "host" => &mut self.host,
            "user" => &mut self.user,
            "cwd" => &mut self.cwd,
            "sbatch_args" => &mut self.sbatch_args,
            "cluster" => &mut self.cluster,
            "state" => &mut self.state,
            "exit_code" => &mut self.exit_code,
            "start" => &mut self.start,
            "end" => &mut self.end,
            "elapsed" => &mut self.elapsed,
            "nodes" => &mut self.nodes,
            "partition" => &mut self.partition,
            "name" => &mut self.name,
            "stdout" => &mut self.stdout,
            "stderr" => &mut self.stderr,
            "reason" => &mut self.reason,
            "requeued_at" => &mut self.requeued_at,
            "cpu_efficiency" => &mut self.cpu_efficiency,
            "source" => &mut self.source,
            "lost_since" => &mut self.lost_since,
            "tracked_at" => &mut self.tracked_at,
            "tracked_by" => &mut self.tracked_by,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What rj-launch and then rj-track's move write for an array parent (see their code).
    fn written() -> Vec<(&'static str, &'static str)> {
        vec![
            ("submitted", "2026-01-01T00:00:00Z"),
            ("host", "login1"),
            ("user", "ana"),
            ("cwd", "/home/ana/exp"),
            ("sbatch_args", "[\"job.sbatch\"]"),
            ("cluster", "c1"),
            ("state", "FAILED"),
            ("exit_code", "1:0"),
            ("start", "2026-01-01T00:01:00"),
            ("end", "2026-01-01T00:02:00"),
            ("elapsed", "00:01:00"),
            ("nodes", "n1,n2"),
            ("partition", "debug"),
            ("name", "train, big"),
            ("tasks", "4"),
            ("tasks_completed", "1"),
            ("tasks_failed", "1"),
            ("tasks_timeout", "0"),
            ("tasks_cancelled", "2"),
            ("restarts", "1"),
            ("requeued_at", "2026-01-01T00:00:40Z"),
            ("reason", "Priority"),
            ("stdout", "/home/ana/exp/slurm-12_2.out"),
            ("stderr", "/home/ana/exp/slurm-12_2.out"),
            ("max_rss", "217579520"),
            ("cpu_efficiency", "0.873"),
            ("source", "sacct"),
            ("tracked_at", "2026-01-01T00:03:00Z"),
            ("tracked_by", "login1:4242:ab12"),
        ]
    }

    #[test]
    fn every_field_rj_writes_has_its_place() {
        let r = JobRecord::from_fields(written());
        assert!(r.other.is_empty(), "{:?}", r.other);
        assert_eq!(r.state.as_deref(), Some("FAILED"));
        assert_eq!(r.tasks_cancelled, Some(2));
        assert_eq!(r.restarts, Some(1));
        assert_eq!(r.max_rss, Some(217_579_520));
        assert_eq!(r.cpu_efficiency.as_deref(), Some("0.873"));
        assert_eq!(r.tracked_by.as_deref(), Some("login1:4242:ab12"));
        assert!(r.is_final());
        assert_eq!(r.get("tasks").as_deref(), Some("4"));
        assert_eq!(r.text("name"), Some("train, big"));
    }

    #[test]
    fn fields_round_trip_and_nothing_is_lost() {
        let mut fields: Vec<(String, String)> = written()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fields.push(("lost_since".into(), "2026-01-01T00:00:30Z".into()));
        fields.push(("user_note".into(), "rerun with more memory".into()));
        fields.push(("tasks_timeout".into(), "007".into()));
        let r = JobRecord::from_fields(fields.clone());
        assert_eq!(r.text("user_note"), Some("rerun with more memory"));
        assert_eq!(r.tasks_timeout, None, "not a canonical number");
        let mut back = r.to_fields();
        let mut want = fields;
        want.retain(|(k, v)| !(k == "tasks_timeout" && v == "0"));
        back.sort();
        want.sort();
        assert_eq!(back, want);
        assert_eq!(JobRecord::from_fields(r.to_fields()), r);
    }

    #[test]
    fn a_launch_record_is_not_final() {
        let r = JobRecord::from_fields([("submitted", "2026-01-01T00:00:00Z")]);
        assert!(!r.is_final());
        assert_eq!(r.state, None);
        assert_eq!(r.get("state"), None);
        assert_eq!(JobRecord::default().to_fields(), Vec::new());
    }
}
