//! rj-cleanup: empty a tag's job sets; optionally delete its jobs' data keys and records.
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{self, ConnArgs, TagArg};
use crate::exit::{fail, Kind};
use crate::keys::{Keys, Set};
use crate::output;
use crate::store::Store;

pub const EXAMPLES: &str = "\
  rj-cleanup --tag exp1                    # the six sets, as the original script did
  rj-cleanup --tag exp1 --keys --dry-run   # list what would go
  rj-cleanup --tag exp1 --keys --records --yes
";

/// Delete the six job sets of a tag (the original cleanup), and with --keys the data keys of the
/// jobs in TAG_ALL (and rj-put's replay markers TAG_REPLAYED:*), with --records every job hash
/// of the tag and the tag's event stream.
///
/// Keys are found with SCAN and deleted with UNLINK in batches, by their exact bytes (a key name
/// that is not UTF-8 is listed with U+FFFD but deleted as it is). Only data keys whose job ID is
/// in TAG_ALL go, so tag `exp` never touches `exp-2-…` keys of tag `exp-2`. Job hashes
/// TAG_JOB:<jobid> are found by their own prefix, which no other tag's keys share (tags cannot
/// hold `:`), so they go even after the sets were deleted; so do TAG_EVENTS, the stream of the
/// jobs recorded and moved, and rj-track's TAG_TRACKER:unknown and TAG_TRACKER:tick (not its
/// lease TAG_TRACKER, which a running rj-track holds). Deleting job data asks for confirmation
/// on a terminal and needs --yes otherwise.
#[derive(Debug, Parser)]
#[command(name = "rj-cleanup", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// Also delete the jobs' data keys TAG-<jobid>:* and rj-put's markers of replayed spool
    /// files, TAG_REPLAYED:*.
    #[arg(long)]
    pub keys: bool,
    /// Also delete rj's job records TAG_JOB:<jobid>, of jobs in TAG_ALL or not, the event stream
    /// TAG_EVENTS and rj-track's TAG_TRACKER:unknown and TAG_TRACKER:tick.
    #[arg(long)]
    pub records: bool,
    /// List what would be deleted, one key per line, and delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Do not ask before deleting job data.
    #[arg(short, long)]
    pub yes: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_cfg, keys, mut store) = super::open(&args.conn, &args.tag)?;
    let plan = plan(&mut store, &keys, args.keys, args.records)?;
    let mut out = cli::stdout();
    if args.dry_run {
        for k in plan.data.iter().chain(&plan.markers).chain(&plan.records) {
            writeln!(out, "{}", output::lossy(k))?;
        }
        for k in plan.tag_keys.iter().chain(&plan.sets) {
            writeln!(out, "{k}")?;
        }
        cli::note(&plan.summary(&keys, "would delete"));
        return Ok(ExitCode::SUCCESS);
    }
    if (args.keys || args.records) && !args.yes {
        confirm(&plan.summary(&keys, "delete"))?;
    }
    // Data first and the sets last: interrupted half-way, a rerun still knows the job IDs.
    let mut n = store.unlink_bytes(&plan.data)?;
    n += store.unlink_bytes(&plan.markers)?;
    n += store.unlink_bytes(&plan.records)?;
    if !plan.tag_keys.is_empty() {
        n += store.unlink(&plan.tag_keys)?;
    }
    n += store.unlink(&plan.sets)?;
    cli::note(&format!(
        "{} ({n} keys existed)",
        plan.summary(&keys, "deleted")
    ));
    Ok(ExitCode::SUCCESS)
}

struct Plan {
    sets: Vec<String>,
    /// Data keys and records as the server's bytes, so that UNLINK names exactly them.
    data: Vec<Vec<u8>>,
    records: Vec<Vec<u8>>,
    /// rj-put's markers of spool files it replayed (with --keys): they outlive the files, so
    /// without this they would stay after the data they guarded is gone.
    markers: Vec<Vec<u8>>,
    /// rj's keys of the whole tag that exist (with --records): the event stream, rj-track's
    /// memory of unknown jobs and its tick figures.
    tag_keys: Vec<String>,
    jobs: usize,
}

impl Plan {
    fn summary(&self, keys: &Keys, verb: &str) -> String {
        let mut parts = vec![format!("the 6 sets of tag {}", keys.tag())];
        if !self.data.is_empty() {
            parts.push(format!(
                "{} of {}",
                plural(self.data.len(), "data key"),
                plural(self.jobs, "job")
            ));
        }
        if !self.markers.is_empty() {
            parts.push(plural(self.markers.len(), "replay marker"));
        }
        if !self.records.is_empty() {
            parts.push(plural(self.records.len(), "job record"));
        }
        parts.extend(self.tag_keys.iter().cloned());
        format!("{verb} {}", parts.join(", "))
    }
}

/// `1 job`, `2 jobs`.
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn plan(store: &mut Store, keys: &Keys, data: bool, records: bool) -> anyhow::Result<Plan> {
    let sets: Vec<String> = Set::ALL.iter().map(|s| keys.set(*s)).collect();
    let mut plan = Plan {
        sets,
        data: Vec::new(),
        records: Vec::new(),
        markers: Vec::new(),
        tag_keys: Vec::new(),
        jobs: 0,
    };
    if !(data || records) {
        return Ok(plan);
    }
    if data {
        // `T-<id>:*` may be another tag's (`exp-2-5:x` of tag `exp-2`): only T_ALL says whose.
        let ids: HashSet<String> = store.members(&keys.set(Set::All))?.into_iter().collect();
        plan.jobs = ids.len();
        plan.data = store
            .scan_bytes(&keys.data_pattern())?
            .into_iter()
            .filter(|k| {
                keys.data_key_job(output::utf8_prefix(k))
                    .is_some_and(|id| recorded(&ids, id))
            })
            .collect();
        // `T_REPLAYED:*` is the tag's alone, like `T_JOB:*` below.
        plan.markers = store.scan_bytes(&keys.replayed_pattern())?;
    }
    if records {
        // `T_JOB:*` is the tag's alone: another tag's key starts `X_JOB:`, `X_TRACKER:` or
        // `X-<id>:`, and tags cannot hold `:`, so X_JOB = T_JOB means X = T. That is why no
        // T_ALL is needed here, and why records left behind by a deletion of the sets still go.
        plan.records = store.scan_bytes(&keys.job_hash_pattern())?;
        // The stream of the tag's jobs, rj-track's memory of jobs Slurm did not know and its
        // tick figures are records of the tag's jobs too (ARCHITECTURE.md §2).
        for key in [keys.events(), keys.tracker_unknown(), keys.tracker_tick()] {
            if store.query::<bool>(redis::cmd("EXISTS").arg(&key), &key)? {
                plan.tag_keys.push(key);
            }
        }
    }
    Ok(plan)
}

/// Is a job, or for an array task `J_N` its array job `J`, in `T_ALL`? rj-launch records the
/// array job; its tasks write `T-J_N:*` keys (`${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}`).
fn recorded(all: &HashSet<String>, id: &str) -> bool {
    all.contains(id) || id.split_once('_').is_some_and(|(job, _)| all.contains(job))
}

/// Ask on the terminal; without one, refuse (scripts pass --yes).
fn confirm(what: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stderr().is_terminal() {
        return Err(fail(
            Kind::Usage,
            format!(
                "refusing to {what} without confirmation; pass --yes (stdin is not a terminal)"
            ),
        ));
    }
    eprint!("{}: {what}? [y/N] ", cli::program());
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(fail(Kind::Interrupted, "nothing deleted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(plural(1, "job"), "1 job");
        assert_eq!(plural(0, "job"), "0 jobs");
        assert_eq!(plural(2, "data key"), "2 data keys");
    }

    #[test]
    fn array_tasks_belong_to_their_recorded_array_job() {
        let all: HashSet<String> = ["10", "20_3"].iter().map(|s| s.to_string()).collect();
        for yes in ["10", "10_1", "10_77", "20_3"] {
            assert!(recorded(&all, yes), "{yes}");
        }
        for no in ["1", "100", "100_1", "20", "20_4", "2"] {
            assert!(!recorded(&all, no), "{no}");
        }
    }
}
