//! rj-status: the jobs of a tag, per set, as a table or as data; --check and --repair of the sets.
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, ConnArgs, TagArg};
use crate::exit::{fail, Kind};
use crate::invariant::{self, Change, Op, Violation};
use crate::keys::{IdKey, Keys, Set};
use crate::output::{self, Format};
use crate::record::JobRecord;
use crate::store::{Store, BATCH};

pub const EXAMPLES: &str = "\
  rj-status --tag exp1
  rj-status --state FAILED --format plain | xargs -n1 sacct -j
  rj-status --count --state PENDING_AND_RUNNING --format plain
  rj-status --long --format csv > jobs.csv
  rj-status --check || rj-status --check --repair
";

/// Show the jobs of a tag: for each of the six sets, its count and its IDs in numeric order.
///
/// A tag without jobs is listed with zero counts and exits 0, with a note on stderr (-q hides
/// it), since a mistyped tag looks the same.
///
/// The sets must keep one rule: every ID of TAG_ALL is in exactly one of the five state sets,
/// and no state-set ID is missing from TAG_ALL. A Redis that evicts keys (maxmemory-policy
/// allkeys-*) or a script that edits the sets can break it. A listing that sees the rule broken
/// still shows the sets as they are on stdout and exits 0, but says so in one warning line on
/// stderr (counts per kind, a few IDs, and the hint to run --check); before warning it re-reads
/// the suspect IDs in one MULTI/EXEC, so that a job rj-track moved during the listing raises no
/// alarm. A listing of all six sets checks every ID; with --state or --count (which reads no
/// IDs) only the counts are compared: SCARD of TAG_ALL against the sum of the five others. A
/// mismatch is certainly a broken rule; equal counts do not prove the rule holds (a job in two
/// sets and another in none cancel out), --check does.
#[derive(Debug, Parser)]
#[command(name = "rj-status", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// Only these sets: ALL, PENDING_AND_RUNNING (or PENDING, RUNNING), COMPLETED, FAILED,
    /// TIMEOUT, CANCELLED; repeatable. Sets are always listed in this order, whatever the order
    /// of the options (so `--count --format plain` gives one number per line in this order).
    #[arg(long, value_name = "STATE", value_parser = parse_set)]
    pub state: Vec<Set>,
    /// Only the counts (SCARD; no IDs are read).
    #[arg(long, conflicts_with = "long")]
    pub count: bool,
    /// One row per job, joined with its record: state, exit code, elapsed, nodes, ….
    #[arg(short, long)]
    pub long: bool,
    /// Output form; `plain` prints one job ID per line (or one count per line with --count).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Check the one-set-per-job rule instead of listing: one line per violation on stdout
    /// (`123: in TAG_COMPLETED but not in TAG_ALL`, `124: in TAG_PENDING_AND_RUNNING and
    /// TAG_FAILED`, `125: in TAG_ALL but in no state set`), in numeric order. The six sets are
    /// read under WATCH and confirmed by an EXEC, so the answer is one instant's truth even while
    /// rj-track moves jobs (the read is retried when they changed; after 10 tries, exit 75).
    /// `--format json`: one document {tag, consistent, changes, violations}, each violation
    /// {job_id, kind, sets, message} with kind not_in_all, several_sets or no_set; csv/tsv: rows
    /// job_id,kind,sets,message; plain: the IDs concerned. Exit 0 when the rule holds (a note on
    /// stderr says so), 65 when any ID breaks it.
    #[arg(long, conflicts_with_all = ["count", "long", "state"])]
    pub check: bool,
    /// With --check: repair what follows from the data without guessing, in one MULTI/EXEC
    /// under WATCH (redone when rj-track moved a job meanwhile, so no move is undone): an ID in
    /// a state set but not in TAG_ALL is added to TAG_ALL; an ID in TAG_PENDING_AND_RUNNING and
    /// a final set is removed from TAG_PENDING_AND_RUNNING; a TAG_ALL member in no state set is
    /// added to the final set its record TAG_JOB:<id> names when rj-track wrote one at a move,
    /// else to TAG_PENDING_AND_RUNNING, so that rj-track judges it from Slurm (and, if Slurm no
    /// longer knows the job, moves it to TAG_FAILED as LOST after --lost-after). An ID in two
    /// final sets is reported, not changed: see `sacct -j ID` and SREM it from the wrong set.
    /// Prints one line per change (json/csv/tsv: kind added or removed), then what is left; exit
    /// 0 when the sets are consistent afterwards, else 65. The ACL user needs +watch +multi +exec
    /// +sadd +srem +hmget besides +sscan.
    #[arg(long, requires = "check")]
    pub repair: bool,
}

/// ANSI colour of a non-empty set in the human table (only on a terminal, never with NO_COLOR).
fn set_color(set: &str) -> Option<&'static str> {
    match set {
        "COMPLETED" => Some("\x1b[32m"),
        "FAILED" => Some("\x1b[31m"),
        "TIMEOUT" | "CANCELLED" => Some("\x1b[33m"),
        "PENDING_AND_RUNNING" => Some("\x1b[36m"),
        _ => None,
    }
}

/// A `--state` value for clap (also rj-last's): a set suffix in any case, or PENDING/RUNNING.
pub fn parse_set(s: &str) -> Result<Set, String> {
    Set::from_suffix(s).ok_or_else(|| {
        format!("unknown state {s:?}; one of ALL, PENDING_AND_RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED")
    })
}

#[derive(Debug, Serialize)]
struct SetRow<'a> {
    set: &'static str,
    key: String,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<&'a [String]>,
}

#[derive(Debug, Default, Serialize)]
struct Membership<'a> {
    set: &'static str,
    job_id: &'a str,
}

#[derive(Debug, Default, Serialize)]
struct CountRow<'a> {
    set: &'static str,
    key: &'a str,
    count: u64,
}

/// `--long`: one job with its record; empty strings where the record lacks a field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct JobRow {
    job_id: String,
    set: &'static str,
    state: String,
    exit_code: String,
    elapsed: String,
    start: String,
    end: String,
    nodes: String,
    partition: String,
    name: String,
    submitted: String,
    cluster: String,
}

impl JobRow {
    fn new(job_id: String, set: Set, r: &JobRecord) -> JobRow {
        let g = |v: &Option<String>| v.clone().unwrap_or_default();
        JobRow {
            job_id,
            set: set.suffix(),
            state: g(&r.state),
            exit_code: g(&r.exit_code),
            elapsed: g(&r.elapsed),
            start: g(&r.start),
            end: g(&r.end),
            nodes: g(&r.nodes),
            partition: g(&r.partition),
            name: g(&r.name),
            submitted: g(&r.submitted),
            cluster: g(&r.cluster),
        }
    }
}

/// The human table shows the fields that tell what became of a job; the data forms all of them.
impl output::Row for JobRow {
    fn headings() -> anyhow::Result<Vec<String>> {
        Ok([
            "JOBID",
            "SET",
            "STATE",
            "EXITCODE",
            "ELAPSED",
            "NODES",
            "PARTITION",
            "NAME",
        ]
        .map(String::from)
        .to_vec())
    }

    fn cells(&self) -> anyhow::Result<Vec<String>> {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        Ok(vec![
            self.job_id.clone(),
            self.set.to_string(),
            dash(&self.state),
            dash(&self.exit_code),
            dash(&self.elapsed),
            dash(&self.nodes),
            dash(&self.partition),
            dash(&self.name),
        ])
    }

    fn plain(&self) -> anyhow::Result<String> {
        Ok(self.job_id.clone())
    }
}

impl output::Row for Membership<'_> {}
impl output::Row for CountRow<'_> {}

#[derive(Debug, Serialize)]
struct StatusDoc<'a> {
    tag: &'a str,
    sets: Vec<SetRow<'a>>,
}

/// What a listing read of the sets.
#[derive(Debug, Default)]
struct Sets {
    /// The sets asked for, in `Set::ALL` order.
    asked: Vec<Set>,
    /// Every set's count, indexed in `Set::ALL` order (also of sets not asked for: the check
    /// of the counts reads them).
    counts: [u64; 6],
    /// The IDs of the sets asked for, sorted as job IDs; none with --count.
    members: Option<[Vec<String>; 6]>,
}

impl Sets {
    fn ids(&self, set: Set) -> Option<&[String]> {
        self.members
            .as_ref()
            .map(|m| m[invariant::index(set)].as_slice())
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_cfg, keys, mut store) = super::open(&args.conn, &args.tag)?;
    if args.check {
        return check(&mut store, &keys, args.repair, args.format);
    }
    let mut asked: Vec<Set> = if args.state.is_empty() {
        Set::ALL.to_vec()
    } else {
        args.state.clone()
    };
    asked.sort();
    asked.dedup();
    let (sets, broken) = read_sets(&mut store, &keys, asked, !args.count)?;
    if let Some(line) = broken {
        cli::warn(&line);
    }
    let mut out = cli::stdout();
    if args.long {
        let rows = read_jobs(&mut store, &keys, &sets)?;
        write_jobs(&mut out, &rows, args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    if sets.counts.iter().all(|c| *c == 0) {
        // Exit 0 (an experiment may simply not have started), but a mistyped tag looks just
        // like that: say it where a human sees it.
        cli::note(&format!(
            "no jobs under tag {} ({} is empty or absent); is the tag right?",
            keys.tag(),
            keys.set(Set::All)
        ));
    }
    write_sets(&mut out, &keys, &sets, args.format, cli::color_stdout())?;
    Ok(ExitCode::SUCCESS)
}

/// Read the sets asked for (their IDs, or with `ids` false only their counts) and check them
/// against the one-set-per-job rule: every ID when all six were read, else the counts. The sets,
/// and the warning line when they break the rule.
fn read_sets(
    store: &mut Store,
    keys: &Keys,
    asked: Vec<Set>,
    ids: bool,
) -> anyhow::Result<(Sets, Option<String>)> {
    let mut members: [Vec<String>; 6] = Default::default();
    let mut counts: [Option<u64>; 6] = [None; 6];
    for set in &asked {
        let i = invariant::index(*set);
        if ids {
            members[i] = store.members(&keys.set(*set))?;
            counts[i] = Some(members[i].len() as u64);
        } else {
            counts[i] = Some(store.card(&keys.set(*set))?);
        }
    }
    let (counts, broken) = if ids && asked.len() == Set::ALL.len() {
        (
            counts.map(|c| c.unwrap_or(0)),
            listing_check(store, keys, &members),
        )
    } else {
        counts_check(store, keys, counts)?
    };
    let sets = Sets {
        asked,
        counts,
        members: ids.then_some(members),
    };
    Ok((sets, broken))
}

/// The listing of the sets in one form: a line per set (human), the IDs (plain: every ID once,
/// or one count per line with --count), one document (json), or set,job_id rows (csv, tsv;
/// set,key,count with --count). `color`: ANSI colours on non-empty sets of the human form.
fn write_sets(
    out: &mut dyn Write,
    keys: &Keys,
    sets: &Sets,
    format: Format,
    color: bool,
) -> anyhow::Result<()> {
    let rows: Vec<SetRow> = sets
        .asked
        .iter()
        .map(|set| SetRow {
            set: set.suffix(),
            key: keys.set(*set),
            count: sets.counts[invariant::index(*set)],
            ids: sets.ids(*set),
        })
        .collect();
    let count = sets.members.is_none();
    match format {
        Format::Human => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            for r in &rows {
                let (on, off) = match set_color(r.set) {
                    Some(c) if color && r.count > 0 => (c, "\x1b[0m"),
                    _ => ("", ""),
                };
                write!(out, "{on}{:<width$}  {:>6}{off}", r.key, r.count)?;
                match r.ids {
                    Some(ids) if !ids.is_empty() => writeln!(out, "  {}", ids.join(" "))?,
                    _ => writeln!(out)?,
                }
            }
        }
        Format::Plain if count => {
            for r in &rows {
                writeln!(out, "{}", r.count)?;
            }
        }
        Format::Plain => {
            let mut all: Vec<&str> = rows
                .iter()
                .flat_map(|r| r.ids.iter().copied().flatten().map(String::as_str))
                .collect();
            all.sort_by_cached_key(|s| IdKey::of(s));
            all.dedup();
            for id in all {
                writeln!(out, "{id}")?;
            }
        }
        Format::Json => output::write_json(
            out,
            &StatusDoc {
                tag: keys.tag().as_str(),
                sets: rows,
            },
        )?,
        Format::Csv | Format::Tsv if count => {
            let c: Vec<CountRow> = rows
                .iter()
                .map(|r| CountRow {
                    set: r.set,
                    key: &r.key,
                    count: r.count,
                })
                .collect();
            output::write_rows(format.into(), out, &c)?
        }
        Format::Csv | Format::Tsv => {
            let m: Vec<Membership> = rows
                .iter()
                .flat_map(|r| {
                    r.ids.iter().copied().flatten().map(|id| Membership {
                        set: r.set,
                        job_id: id,
                    })
                })
                .collect();
            output::write_rows(format.into(), out, &m)?
        }
    }
    Ok(())
}

/// The jobs of the sets read, each once in numeric order, joined with its record: each in the
/// most specific set it was read in (ALL only if asked alone), and a job read only in ALL in
/// the first state set that holds it (SMISMEMBER).
fn read_jobs(store: &mut Store, keys: &Keys, sets: &Sets) -> anyhow::Result<Vec<JobRow>> {
    let mut seen = BTreeSet::new();
    let mut jobs: Vec<(String, Set)> = Vec::new();
    let order: Vec<Set> = sets
        .asked
        .iter()
        .copied()
        .filter(|s| *s != Set::All)
        .chain(sets.asked.iter().copied().filter(|s| *s == Set::All))
        .collect();
    for set in order {
        for id in sets.ids(set).unwrap_or_default() {
            if seen.insert(id.clone()) {
                jobs.push((id.clone(), set));
            }
        }
    }
    jobs.sort_by_cached_key(|j| IdKey::of(&j.0));
    // For jobs listed only via ALL, find their real set.
    let only_all: Vec<String> = jobs
        .iter()
        .filter(|(_, s)| *s == Set::All)
        .map(|(id, _)| id.clone())
        .collect();
    if !only_all.is_empty() {
        let mut place = HashMap::new();
        for set in &Set::ALL[1..] {
            for id in crate::store::filter_members(store, &keys.set(*set), &only_all)? {
                place.entry(id).or_insert(*set);
            }
        }
        for (id, s) in &mut jobs {
            if *s == Set::All {
                if let Some(p) = place.get(id) {
                    *s = *p;
                }
            }
        }
    }
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    let hashes = store.job_hashes(keys, &ids)?;
    Ok(jobs
        .into_iter()
        .zip(hashes)
        .map(|((id, set), h)| JobRow::new(id, set, &JobRecord::from_fields(h)))
        .collect())
}

/// The jobs with their records in one form: an aligned table of the main fields (human), the
/// IDs (plain), an array of rows (json), or rows with a header (csv, tsv).
fn write_jobs(out: &mut dyn Write, rows: &[JobRow], format: Format) -> anyhow::Result<()> {
    output::write_rows(format.into(), out, rows)
}

/// The hint every warning about broken sets ends with.
const CHECK_HINT: &str =
    "the sets are shown as they are; `rj-status --check` lists every violation";

/// A full listing's check: every ID of the six sets read. The sets were read one after the
/// other, so a job that rj-track moved (or rj-launch recorded) in between looks like a broken
/// rule; the suspects are read again in one MULTI/EXEC and only what that confirms is reported.
/// The warning line, or None when the rule holds.
fn listing_check(store: &mut Store, keys: &Keys, members: &[Vec<String>; 6]) -> Option<String> {
    let seen = invariant::check(members);
    if seen.is_empty() {
        return None;
    }
    let mut suspects: Vec<String> = seen.iter().map(|v| v.id.clone()).collect();
    suspects.dedup();
    match confirm_ids(store, keys, &suspects) {
        Ok(confirmed) if confirmed.is_empty() => None,
        Ok(confirmed) => Some(format!(
            "{}; {CHECK_HINT}",
            invariant::summary(keys, &confirmed)
        )),
        // A user who may not run MULTI still gets the warning, with what it is worth.
        Err(e) => Some(format!(
            "{} (not confirmed in one transaction, so a job moving meanwhile could cause it: {e:#}); {CHECK_HINT}",
            invariant::summary(keys, &seen)
        )),
    }
}

/// The violations among `ids`, from one MULTI/EXEC of SMISMEMBER on the six sets: one instant.
fn confirm_ids(store: &mut Store, keys: &Keys, ids: &[String]) -> anyhow::Result<Vec<Violation>> {
    let mut cmds = Vec::new();
    for set in Set::ALL {
        for chunk in ids.chunks(BATCH) {
            let mut c = redis::cmd("SMISMEMBER");
            c.arg(keys.set(set)).arg(chunk);
            cmds.push(c);
        }
    }
    let all = keys.set(Set::All);
    let replies = transaction(store, cmds, &all)?.unwrap_or_default();
    let hits: Vec<Vec<bool>> = redis::from_redis_value(redis::Value::Array(replies))
        .map_err(|e| store.error(e.into(), &all))?;
    let per_set = ids.len().div_ceil(BATCH);
    let mut members: [Vec<String>; 6] = Default::default();
    for (i, m) in members.iter_mut().enumerate() {
        let flags = hits[i * per_set..(i + 1) * per_set].iter().flatten();
        m.extend(
            ids.iter()
                .zip(flags)
                .filter(|(_, hit)| **hit)
                .map(|(id, _)| id.clone()),
        );
    }
    Ok(invariant::check(&members))
}

/// The cheap check of a listing that does not read every ID (--state, --count): the six counts,
/// SCARD for those not known yet. Counts read one after the other disagree for a moment when a
/// job moves in between, so a disagreement is confirmed with the six SCARDs in one MULTI/EXEC.
/// The six counts, and the warning line when they disagree.
fn counts_check(
    store: &mut Store,
    keys: &Keys,
    known: [Option<u64>; 6],
) -> anyhow::Result<([u64; 6], Option<String>)> {
    let mut counts = [0u64; 6];
    for (i, set) in Set::ALL.iter().enumerate() {
        counts[i] = match known[i] {
            Some(c) => c,
            None => store.card(&keys.set(*set))?,
        };
    }
    if !invariant::counts_disagree(&counts) {
        return Ok((counts, None));
    }
    let cmds = Set::ALL
        .iter()
        .map(|set| {
            let mut c = redis::cmd("SCARD");
            c.arg(keys.set(*set));
            c
        })
        .collect();
    let all = keys.set(Set::All);
    let again = transaction(store, cmds, &all).and_then(|r| {
        redis::from_redis_value::<Vec<u64>>(redis::Value::Array(r.unwrap_or_default()))
            .map_err(|e| store.error(e.into(), &all))
    });
    let line = match again {
        Ok(again) => {
            let again: [u64; 6] = again.try_into().unwrap_or(counts);
            if !invariant::counts_disagree(&again) {
                return Ok((counts, None));
            }
            invariant::counts_summary(keys, &again)
        }
        // A user who may not run MULTI still gets the warning, with what it is worth.
        Err(e) => format!(
            "{} (not confirmed in one transaction, so a job moving meanwhile could cause it: {e:#})",
            invariant::counts_summary(keys, &counts),
        ),
    };
    Ok((counts, Some(format!("{line}; {CHECK_HINT}"))))
}

/// One MULTI/EXEC (Store sends MULTI alone first, so no command ever runs outside the
/// transaction, and returns the refused command's own error). The EXEC reply, or None when a
/// WATCHed key changed and nothing ran.
fn transaction(
    store: &mut Store,
    cmds: Vec<redis::Cmd>,
    what: &str,
) -> anyhow::Result<Option<Vec<redis::Value>>> {
    let mut p = redis::pipe();
    p.atomic();
    for c in cmds {
        p.add_command(c);
    }
    store.pipe(&p, what)
}

/// How often --check reads the sets again when they changed under its WATCH.
const CHECK_TRIES: u32 = 10;

/// What --check found at one instant, and what --repair changed.
struct Checked {
    jobs: usize,
    found: Vec<Violation>,
    changes: Vec<Change>,
    left: Vec<Violation>,
}

/// --check and --repair: read the six sets under WATCH, check, plan the repair, and EXEC the
/// changes (none for --check). A nil EXEC means a set changed after the WATCH (rj-track moved a
/// job): nothing was written, and it all starts again from a new read.
fn check(store: &mut Store, keys: &Keys, repair: bool, format: Format) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = Set::ALL.iter().map(|s| keys.set(*s)).collect();
    let all = keys.set(Set::All);
    let mut checked = None;
    for attempt in 1..=CHECK_TRIES {
        store.query::<()>(redis::cmd("WATCH").arg(&names), &all)?;
        let mut members: [Vec<String>; 6] = Default::default();
        for (m, name) in members.iter_mut().zip(&names) {
            *m = store.members(name)?;
        }
        let found = invariant::check(&members);
        let (changes, left) = if repair {
            let records = final_records(store, keys, &found)?;
            invariant::plan(&found, |id| records.get(id).cloned())
        } else {
            (Vec::new(), found.clone())
        };
        let mut cmds = Vec::new();
        for (op, set) in [
            (Op::Add, Set::All),
            (Op::Remove, Set::PendingAndRunning),
            (Op::Add, Set::PendingAndRunning),
            (Op::Add, Set::Completed),
            (Op::Add, Set::Failed),
            (Op::Add, Set::Timeout),
            (Op::Add, Set::Cancelled),
        ] {
            let ids: Vec<&str> = changes
                .iter()
                .filter(|c| c.op == op && c.set == set)
                .map(|c| c.id.as_str())
                .collect();
            let cmd = if op == Op::Add { "SADD" } else { "SREM" };
            for chunk in ids.chunks(BATCH) {
                let mut c = redis::cmd(cmd);
                c.arg(keys.set(set)).arg(chunk);
                cmds.push(c);
            }
        }
        if transaction(store, cmds, &all)?.is_some() {
            checked = Some(Checked {
                jobs: members[0].len(),
                found,
                changes,
                left,
            });
            break;
        }
        cli::info(&format!(
            "the sets of tag {} changed while they were read (try {attempt} of {CHECK_TRIES}); reading again",
            keys.tag()
        ));
        std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
    }
    let Some(c) = checked else {
        return Err(fail(
            Kind::TempFail,
            format!(
                "the sets of tag {} changed during each of {CHECK_TRIES} reads (is a tracker moving many jobs?); nothing was changed; run again",
                keys.tag()
            ),
        ));
    };
    let mut out = cli::stdout();
    write_check(&mut out, keys, &c, repair, format)?;
    // One line on stderr, whatever happened.
    let made = match c.changes.len() {
        0 => String::new(),
        1 => "1 change made in one transaction".to_string(),
        n => format!("{n} changes made in one transaction"),
    };
    if c.left.is_empty() {
        let jobs = c.jobs + c.changes.iter().filter(|x| x.set == Set::All).count();
        let now = if c.found.is_empty() { "" } else { " now" };
        let made = if made.is_empty() { made } else { made + "; " };
        cli::note(&format!(
            "{made}the sets of tag {} are{now} consistent: {jobs} jobs in {}, each in exactly one state set",
            keys.tag(),
            keys.set(Set::All)
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let tail = match (repair, made.is_empty()) {
        (false, _) => "`rj-status --check --repair` fixes what can be derived".to_string(),
        (true, true) => "left as they are, since they cannot be derived".to_string(),
        (true, false) => format!("left as they are, since they cannot be derived ({made})"),
    };
    cli::error(&format!("{}; {tail}", invariant::summary(keys, &c.left)));
    Ok(ExitCode::from(Kind::DataErr.code()))
}

/// For the T_ALL members in no state set: the final set (and state) of their tracker record,
/// when there is one (HMGET in pipelined batches). A record that cannot be read (not a hash,
/// not text) counts as none: the job goes back to be judged instead.
fn final_records(
    store: &mut Store,
    keys: &Keys,
    found: &[Violation],
) -> anyhow::Result<HashMap<String, (Set, String)>> {
    let ids: Vec<&str> = found
        .iter()
        .filter(|v| v.problem == invariant::Problem::NoSet)
        .map(|v| v.id.as_str())
        .collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let mut p = redis::pipe();
        p.ignore_errors();
        for id in chunk {
            p.cmd("HMGET")
                .arg(keys.job_hash(id))
                .arg("state")
                .arg("tracked_by");
        }
        let got: Vec<redis::RedisResult<(Option<String>, Option<String>)>> = store
            .pipe_raw(&p)
            .map_err(|e| store.error(e, &keys.job_hash_pattern()))?;
        for (id, r) in chunk.iter().zip(got) {
            match r {
                Ok((Some(state), tracked_by)) => {
                    if let Some(set) = invariant::record_set(Some(&state), tracked_by.as_deref()) {
                        out.insert(id.to_string(), (set, state));
                    }
                }
                // A refusal (NOPERM) is not "no record": guessing from it would put a finished
                // job back to be judged and maybe marked LOST.
                Err(e) if e.code().is_some_and(|c| c != "WRONGTYPE") => {
                    return Err(store.error(e, &keys.job_hash(id)));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// One line of --check output: a violation, or a change --repair made.
#[derive(Debug, Serialize)]
struct CheckRow {
    job_id: String,
    /// not_in_all, several_sets, no_set; added, removed for a change.
    kind: &'static str,
    /// The state sets a violating ID is in; the set a change touched.
    sets: Vec<&'static str>,
    message: String,
}

/// The same, for CSV and TSV, which have no lists: the sets joined by spaces.
#[derive(Debug, Default, Serialize)]
struct CheckCsvRow<'a> {
    job_id: &'a str,
    kind: &'static str,
    sets: String,
    message: &'a str,
}

impl output::Row for CheckCsvRow<'_> {}

#[derive(Debug, Serialize)]
struct CheckDoc<'a> {
    tag: &'a str,
    consistent: bool,
    changes: Vec<CheckRow>,
    violations: Vec<CheckRow>,
}

fn write_check(
    out: &mut dyn Write,
    keys: &Keys,
    c: &Checked,
    repair: bool,
    format: Format,
) -> anyhow::Result<()> {
    let changes: Vec<CheckRow> = c
        .changes
        .iter()
        .map(|ch| CheckRow {
            job_id: ch.id.clone(),
            kind: match ch.op {
                Op::Add => "added",
                Op::Remove => "removed",
            },
            sets: vec![ch.set.suffix()],
            message: ch.message(keys),
        })
        .collect();
    let violations: Vec<CheckRow> = c
        .left
        .iter()
        .map(|v| CheckRow {
            job_id: v.id.clone(),
            kind: v.problem.name(),
            sets: v.sets.iter().map(|s| s.suffix()).collect(),
            message: if repair {
                format!(
                    "{} ({})",
                    v.message(keys),
                    invariant::not_repaired_hint(keys, v)
                )
            } else {
                v.message(keys)
            },
        })
        .collect();
    match format {
        Format::Human => {
            for r in changes.iter().chain(&violations) {
                writeln!(out, "{}: {}", r.job_id, r.message)?;
            }
        }
        Format::Plain => {
            let mut last = None;
            for r in &violations {
                if last != Some(&r.job_id) {
                    writeln!(out, "{}", r.job_id)?;
                }
                last = Some(&r.job_id);
            }
        }
        Format::Json => output::write_json(
            out,
            &CheckDoc {
                tag: keys.tag().as_str(),
                consistent: violations.is_empty(),
                changes,
                violations,
            },
        )?,
        Format::Csv | Format::Tsv => {
            let rows: Vec<CheckCsvRow> = changes
                .iter()
                .chain(&violations)
                .map(|r| CheckCsvRow {
                    job_id: &r.job_id,
                    kind: r.kind,
                    sets: r.sets.join(" "),
                    message: &r.message,
                })
                .collect();
            output::write_rows(format.into(), out, &rows)?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Tag;

    fn keys() -> Keys {
        Keys::new(Tag::new("t").unwrap())
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// ALL, PENDING_AND_RUNNING and FAILED read; the others empty.
    fn sets(asked: &[Set], ids: bool) -> Sets {
        let members = [
            strings(&["9", "10", "10_1"]),
            strings(&["10_1"]),
            vec![],
            strings(&["9", "10"]),
            vec![],
            vec![],
        ];
        Sets {
            asked: asked.to_vec(),
            counts: [3, 1, 0, 2, 0, 0],
            members: ids.then_some(members),
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sets_as_lines_ids_and_documents() {
        let k = keys();
        let s = sets(&Set::ALL, true);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Human, false)),
            "t_ALL                       3  9 10 10_1\n\
             t_PENDING_AND_RUNNING       1  10_1\n\
             t_COMPLETED                 0\n\
             t_FAILED                    2  9 10\n\
             t_TIMEOUT                   0\n\
             t_CANCELLED                 0\n"
        );
        let coloured = text(|o| write_sets(o, &k, &s, Format::Human, true));
        assert!(coloured.contains("\x1b[31mt_FAILED                    2\x1b[0m  9 10\n"));
        assert!(coloured.starts_with("t_ALL "), "ALL has no colour");
        assert!(!coloured.contains("\x1b[32m"), "an empty set has no colour");
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Plain, false)),
            "9\n10\n10_1\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&text(|o| write_sets(o, &k, &s, Format::Json, false))).unwrap();
        assert_eq!(v["tag"], "t");
        assert_eq!(v["sets"][3]["ids"], serde_json::json!(["9", "10"]));
        assert_eq!(v["sets"][3]["key"], "t_FAILED");
        let s = sets(&[Set::PendingAndRunning, Set::Failed], true);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Csv, false)),
            "set,job_id\nPENDING_AND_RUNNING,10_1\nFAILED,9\nFAILED,10\n"
        );
        let s = sets(&[Set::Timeout], true);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Tsv, false)),
            "set\tjob_id\n"
        );
    }

    #[test]
    fn counts_without_ids() {
        let k = keys();
        let s = sets(&[Set::All, Set::Failed], false);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Plain, false)),
            "3\n2\n"
        );
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Csv, false)),
            "set,key,count\nALL,t_ALL,3\nFAILED,t_FAILED,2\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&text(|o| write_sets(o, &k, &s, Format::Json, false))).unwrap();
        assert!(v["sets"][0].get("ids").is_none(), "{v}");
        assert_eq!(v["sets"][1]["count"], 2);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Human, false)),
            "t_ALL          3\nt_FAILED       2\n"
        );
    }

    fn jobs() -> Vec<JobRow> {
        let rec = JobRecord::from_fields([
            ("state", "FAILED"),
            ("exit_code", "1:0"),
            ("name", "a\tb"),
            ("cluster", "c1"),
            ("tracked_by", "x"),
        ]);
        vec![
            JobRow::new("9".into(), Set::Failed, &rec),
            JobRow::new("10".into(), Set::PendingAndRunning, &JobRecord::default()),
        ]
    }

    #[test]
    fn jobs_with_their_records_in_every_form() {
        let rows = jobs();
        assert_eq!(
            text(|o| write_jobs(o, &rows, Format::Human)),
            "JOBID  SET                  STATE   EXITCODE  ELAPSED  NODES  PARTITION  NAME\n\
             9      FAILED               FAILED  1:0       -        -      -          a\tb\n\
             10     PENDING_AND_RUNNING  -       -         -        -      -          -\n"
        );
        assert_eq!(text(|o| write_jobs(o, &rows, Format::Plain)), "9\n10\n");
        let v: serde_json::Value =
            serde_json::from_str(&text(|o| write_jobs(o, &rows, Format::Json))).unwrap();
        assert_eq!(v[0]["name"], "a\tb");
        assert_eq!(v[0]["cluster"], "c1");
        assert_eq!(v[1]["state"], "", "no record: empty fields");
        let header =
            "job_id,set,state,exit_code,elapsed,start,end,nodes,partition,name,submitted,cluster";
        assert_eq!(
            text(|o| write_jobs(o, &rows, Format::Csv)),
            format!(
                "{header}\n9,FAILED,FAILED,1:0,,,,,,a\tb,,c1\n10,PENDING_AND_RUNNING,,,,,,,,,,\n"
            )
        );
        let tsv = text(|o| write_jobs(o, &rows, Format::Tsv));
        assert_eq!(tsv.lines().nth(1).unwrap().split('\t').nth(9), Some("a b"));
        assert_eq!(
            text(|o| write_jobs(o, &[], Format::Csv)),
            format!("{header}\n")
        );
        assert_eq!(text(|o| write_jobs(o, &[], Format::Json)), "[]\n");
    }
}
