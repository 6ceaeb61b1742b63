//! rj-last: the key/values written by the most recent job of a tag (or a named one), and the
//! table of many jobs' results (--all, --state, several --job, --wide).
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, ConnArgs, TagArg};
use crate::exit::{fail, Kind};
use crate::keys::{escape_glob, JobId, Keys, Set};
use crate::output::{self, Format};
use crate::store::Store;

pub const EXAMPLES: &str = "\
  rj-last --tag exp1
  rj-last --job 4238610 --format json | jq '.keys[].value'
  rj-last --all --wide --format csv > results.csv     # pandas.read_csv('results.csv')
  rj-last --state COMPLETED --format json | jq -r 'select(.name == \"loss\") | .value'
  rj-last --job 4238610 --job 4238611 --format csv
  rj-last --all --plot loss loss.svg                  # loss against job ID, by set
";

/// Show the keys `TAG-<jobid>:*` of the last job (largest job ID in TAG_ALL) or of --job, and
/// those of its array tasks, `TAG-<jobid>_<task>:*`.
///
/// Keys are found with SCAN (never KEYS) and printed sorted: the job's own keys first, then each
/// array task's in numeric task order (task 2 before task 10). An array task ID (--job 4238610_3)
/// shows only that task's keys. Values of any Redis type are shown. Key names and values that are
/// not UTF-8 are shown with U+FFFD; TSV, which cannot quote, turns their tabs and newlines into
/// spaces.
///
/// Many jobs: --all, --state and a repeated --job choose jobs (--state and --job add up), and
/// --wide makes a table of them. Their keys are found in one SCAN pass over `TAG-*` and read with
/// pipelined commands in batches, so a keyspace of millions of other keys costs one walk. Jobs
/// are listed in job-ID order, each job's keys as above. In this form the data are one row per
/// key, with the job's set (the one of the five it is in), and its state and exit code from its
/// record TAG_JOB:<id> as rj-track wrote it (an array's record is the whole array's, shown on
/// each of its tasks): `human` and `plain` keep the Key:/Value:/--- lines; `json` is JSON Lines,
/// one object per key with job, task (for array tasks, else null), set, state, exit_code, name
/// (the key without `TAG-<id>:`), type and value; `csv` and `tsv` have the header
/// job,task,set,state,exit_code,name,type,value, a structure's value as compact JSON. It is
/// streamed: memory holds the names of the chosen keys, one batch of values and the jobs'
/// records, whatever the values' size.
///
/// --wide: one row per job, per task for arrays (a job without keys still has its row), with the
/// columns job, task, set, state, exit_code, elapsed, then one per key name in name order: a
/// hash becomes one `NAME.FIELD` column per field, lists, sets, sorted sets and streams are JSON
/// text, a key a job did not write is an empty cell (null in JSON). A key named like one of the
/// six first columns gets the column `:NAME`. The columns are only known once every key is read,
/// so the table is held in memory until then (about the size of the values, plus some 50 bytes a
/// cell). `json` is JSON Lines, one object per row, whose lists and sets stay JSON arrays;
/// `human` is an aligned table.
#[derive(Debug, Parser)]
#[command(name = "rj-last", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// This job instead of the last one: 4238610, or 4238610_3 for one array task. Repeatable:
    /// more than one makes the table of those jobs.
    #[arg(long, value_name = "ID")]
    pub job: Vec<String>,
    /// Every job of the tag (TAG_ALL), as one table.
    #[arg(long, conflicts_with_all = ["job", "state"])]
    pub all: bool,
    /// The jobs of these sets, as one table: ALL, PENDING_AND_RUNNING (or PENDING, RUNNING),
    /// COMPLETED, FAILED, TIMEOUT, CANCELLED; repeatable.
    #[arg(long, value_name = "STATE", value_parser = super::status::parse_set)]
    pub state: Vec<Set>,
    /// One row per job (per array task) and one column per key name, for a spreadsheet or
    /// pandas; with csv, tsv, json or human.
    #[arg(long)]
    pub wide: bool,
    /// Plot the key NAME of the chosen jobs against their job IDs into FILE (.svg or .png),
    /// one colour per set: how a result changes from job to job. Values that are not numbers
    /// are left out; nothing goes to stdout.
    #[arg(long, num_args = 2, value_names = ["NAME", "FILE"], conflicts_with = "wide")]
    pub plot: Vec<String>,
    /// Output form; `human` and `plain` are the original `Key:`/`Value:`/`---` lines.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// A key of one job: an element of the JSON document's `keys`, and a row of the other forms,
/// with its value [`output::flat`] there.
#[derive(Debug, Default, Serialize)]
struct KeyValue {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    value: serde_json::Value,
}

impl output::Row for KeyValue {
    fn plain(&self) -> anyhow::Result<String> {
        Ok(key_value_lines(&self.key, &self.value))
    }
}

/// rj-last's plain and human forms: the `Key:`/`Value:`/`---` lines it has always written.
fn key_value_lines(key: &str, value: &serde_json::Value) -> String {
    format!("Key:  {key}\nValue: {}\n---", output::flat(value))
}

#[derive(Debug, Serialize)]
struct LastDoc<'a> {
    tag: &'a str,
    job_id: &'a str,
    keys: Vec<KeyValue>,
}

/// Keys per SCAN step of the table: a walk of millions of other keys in a few hundred round
/// trips, each step keeping the server busy for a millisecond or two. Redis 7.0 copies every
/// name a step walks before matching it; past a few thousand a step, that costs the server more
/// per key (measured: a third more busy time at 5,000 and 10,000 than at 2,000).
const SCAN_COUNT: usize = 2_000;

/// Keys read per pipelined batch: the values held at once in the long form.
const READ_BATCH: usize = 500;

/// The first columns of the wide table.
const WIDE_FIXED: [&str; 6] = ["job", "task", "set", "state", "exit_code", "elapsed"];

/// The form of the rows for `format`: human is the plain form, except in the wide table.
fn form(format: Format) -> output::Form {
    match format {
        Format::Human => output::Form::Plain,
        Format::Json => output::Form::JsonLines,
        f => f.into(),
    }
}

/// Whether `job` is an array parent (or plain job) whose tasks' keys are shown with its own.
fn has_tasks(job: &str) -> bool {
    !job.contains('_')
}

/// The patterns of the keys shown for `job`, as users read them in messages.
fn patterns(keys: &Keys, job: &str) -> Vec<String> {
    let mut out = vec![keys.job_data_pattern(job)];
    if has_tasks(job) {
        out.push(format!(
            "{}-{}_*:*",
            escape_glob(keys.tag().as_str()),
            escape_glob(job)
        ));
    }
    out
}

/// One SCAN MATCH pattern covering [`patterns`]: `T-<id>[:_]*` walks the keyspace once instead of
/// twice. It can still match keys that are not this job's (`T-<id>_x-5:…` of tag `T-<id>_x`),
/// which [`job_keys`] drops.
fn scan_pattern(keys: &Keys, job: &str) -> String {
    if has_tasks(job) {
        format!(
            "{}-{}[:_]*",
            escape_glob(keys.tag().as_str()),
            escape_glob(job)
        )
    } else {
        keys.job_data_pattern(job)
    }
}

/// The keys of `job` (and of its array tasks) among `found`, ordered by job ID (the job's own keys,
/// then its tasks numerically: `_2` before `_10`), then by key. Names are bytes: a key a job named
/// with bytes that are not UTF-8 is still this job's key.
fn job_keys(keys: &Keys, job: &str, found: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut mine: Vec<(JobId, Vec<u8>)> = found
        .into_iter()
        .filter_map(|k| {
            let id = keys.data_key_job(output::utf8_prefix(&k))?;
            let ours = id == job || (has_tasks(job) && id.strip_prefix(job)?.starts_with('_'));
            let id = id.parse::<JobId>().ok()?;
            ours.then_some((id, k))
        })
        .collect();
    mine.sort();
    mine.into_iter().map(|(_, k)| k).collect()
}

/// The largest valid job ID of TAG_ALL.
fn last_job(store: &mut Store, keys: &Keys) -> anyhow::Result<String> {
    let all = keys.set(Set::All);
    let ids = store.members(&all)?;
    // members() sorts numerically with non-IDs last: the last valid ID is the answer.
    ids.into_iter()
        .rfind(|id| id.parse::<JobId>().is_ok())
        .ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!("no jobs recorded under tag {} ({all} is empty)", keys.tag()),
            )
        })
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    for j in &mut args.job {
        // As rj-launch stored it: `--job 0012` is job 12.
        *j = JobId::canonical(j).map_err(|e| fail(Kind::Usage, e))?;
    }
    if args.wide && args.format == Format::Plain {
        return Err(fail(
            Kind::Usage,
            "--wide makes a table: use --format csv, tsv, json or human, not plain",
        ));
    }
    let plot = match args.plot.as_slice() {
        [] => None,
        [name, file] => Some((name.as_str(), std::path::Path::new(file))),
        _ => return Err(fail(Kind::Usage, "--plot takes NAME FILE, once")),
    };
    if let Some((_, file)) = plot {
        plot_kind(file)?;
    }
    let (_cfg, keys, mut store) = super::open(&args.conn, &args.tag)?;
    if let Some((name, file)) = plot {
        return plot_key(&args, &keys, &mut store, name, file);
    }
    if args.all || !args.state.is_empty() || args.job.len() > 1 || args.wide {
        return table(&args, &keys, &mut store);
    }
    let job = match args.job.first() {
        Some(j) => j.clone(),
        None => last_job(&mut store, &keys)?,
    };
    one_job(&args, &keys, &mut store, &job)
}

/// One job in the forms rj-last has always had: a JSON document `{tag, job_id, keys}`, CSV with
/// `key,type,value`.
fn one_job(args: &Args, keys: &Keys, store: &mut Store, job: &str) -> anyhow::Result<ExitCode> {
    cli::info(&format!("job {job} of tag {}", keys.tag()));
    let names = job_keys(keys, job, store.scan_bytes(&scan_pattern(keys, job))?);
    let mut kvs = Vec::with_capacity(names.len());
    for chunk in names.chunks(READ_BATCH) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        for (k, (kind, value)) in chunk.iter().zip(store.read_values_bytes(&refs)?) {
            if kind == "none" {
                continue; // expired between SCAN and read
            }
            kvs.push(KeyValue {
                key: output::lossy(k),
                kind,
                value,
            });
        }
    }
    let empty = kvs.is_empty();
    write_one(
        &mut cli::stdout(),
        args.format,
        keys.tag().as_str(),
        job,
        kvs,
    )?;
    if empty {
        return Err(fail(
            Kind::NotFound,
            format!(
                "job {job} of tag {} has no keys ({} matched nothing)",
                keys.tag(),
                patterns(keys, job).join(" and ")
            ),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// One job's keys in `format`: JSON is one document `{tag, job_id, keys}`.
fn write_one(
    out: &mut dyn Write,
    format: Format,
    tag: &str,
    job: &str,
    kvs: Vec<KeyValue>,
) -> anyhow::Result<()> {
    if format == Format::Json {
        let doc = LastDoc {
            tag,
            job_id: job,
            keys: kvs,
        };
        return output::write_json(out, &doc);
    }
    let mut e = output::exporter::<KeyValue>(form(format), out)?;
    for kv in kvs {
        e.row(&KeyValue {
            value: serde_json::Value::String(output::flat(&kv.value)),
            ..kv
        })?;
    }
    e.finish()
}

/// A chosen job with what its set and record say (None where they say nothing).
#[derive(Debug, Clone, PartialEq)]
struct Job {
    id: String,
    set: Option<Set>,
    state: Option<String>,
    exit_code: Option<String>,
    elapsed: Option<String>,
}

impl Job {
    fn new(id: String, set: Option<Set>) -> Job {
        Job {
            id,
            set,
            state: None,
            exit_code: None,
            elapsed: None,
        }
    }
}

/// A key of a chosen job: the job ID in its name (a task's, for an array task), the chosen job
/// it belongs to, its full name as bytes, and where the name after `T-<id>:` starts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    id: JobId,
    key: Vec<u8>,
    job: usize,
    name_at: usize,
}

impl Found {
    fn name(&self) -> String {
        output::lossy(&self.key[self.name_at..])
    }
}

/// The jobs of --all, --state and --job (the last job for a bare --wide), each once, in job-ID
/// order, with the set they were chosen from when that is one of the five. IDs in the sets that
/// are not job IDs (a foreign script's junk) cannot have keys and are left out.
fn choose(args: &Args, store: &mut Store, keys: &Keys) -> anyhow::Result<Vec<Job>> {
    let sets: Vec<Set> = if args.all {
        vec![Set::All]
    } else {
        args.state.clone()
    };
    let mut chosen: HashMap<String, Option<Set>> = HashMap::new();
    for set in &sets {
        for id in store.members(&keys.set(*set))? {
            let known = chosen.entry(id).or_insert(None);
            if *set != Set::All {
                *known = Some(*set);
            }
        }
    }
    for id in &args.job {
        chosen.entry(id.clone()).or_insert(None);
    }
    if sets.is_empty() && args.job.is_empty() {
        chosen.insert(last_job(store, keys)?, None);
    }
    let mut jobs: Vec<(JobId, Job)> = chosen
        .into_iter()
        .filter_map(|(id, set)| Some((id.parse::<JobId>().ok()?, Job::new(id, set))))
        .collect();
    jobs.sort_by_key(|a| a.0);
    if jobs.is_empty() {
        let names: Vec<String> = sets.iter().map(|s| keys.set(*s)).collect();
        return Err(fail(
            Kind::NotFound,
            format!(
                "no jobs under tag {} ({} {} empty)",
                keys.tag(),
                names.join(" and "),
                if names.len() > 1 { "are" } else { "is" }
            ),
        ));
    }
    Ok(jobs.into_iter().map(|(_, j)| j).collect())
}

/// The set of each job not chosen from one of the five (SMISMEMBER in batches): the one of the
/// five that holds it, else ALL when only TAG_ALL does, else none (a --job never recorded).
fn find_sets(store: &mut Store, keys: &Keys, jobs: &mut [Job]) -> anyhow::Result<()> {
    let order = [
        Set::PendingAndRunning,
        Set::Completed,
        Set::Failed,
        Set::Timeout,
        Set::Cancelled,
        Set::All,
    ];
    for set in order {
        let open: Vec<String> = jobs
            .iter()
            .filter(|j| j.set.is_none())
            .map(|j| j.id.clone())
            .collect();
        if open.is_empty() {
            break;
        }
        let hits = crate::store::filter_members(store, &keys.set(set), &open)?;
        for j in jobs.iter_mut().filter(|j| hits.contains(&j.id)) {
            j.set = Some(set);
        }
    }
    Ok(())
}

/// State, exit code and elapsed time from the jobs' records, one pipeline per thousand jobs.
fn read_records(store: &mut Store, keys: &Keys, jobs: &mut [Job]) -> anyhow::Result<()> {
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    for (j, mut h) in jobs.iter_mut().zip(store.job_hashes(keys, &ids)?) {
        j.state = h.remove("state");
        j.exit_code = h.remove("exit_code");
        j.elapsed = h.remove("elapsed");
    }
    Ok(())
}

/// Which chosen job (by index) a data key belongs to: its own ID's, else its array parent's.
/// Both can be chosen (`12` and `12_3`): the task's own then wins.
fn owner(keys: &Keys, chosen: &HashMap<&str, usize>, key: Vec<u8>) -> Option<Found> {
    let id = keys.data_key_job(output::utf8_prefix(&key))?;
    let job = chosen
        .get(id)
        .or_else(|| chosen.get(id.split_once('_')?.0))?;
    // `T-<id>:` is ASCII: the name starts after it, whatever bytes follow.
    let name_at = keys.tag().as_str().len() + id.len() + 2;
    Some(Found {
        id: id.parse().ok()?,
        job: *job,
        name_at,
        key,
    })
}

/// The keys of the chosen jobs, in one SCAN pass over every data key of the tag, sorted by job
/// ID then name, each once. Only their names are kept, never the other keys'.
fn scan_keys(store: &mut Store, keys: &Keys, jobs: &[Job]) -> anyhow::Result<Vec<Found>> {
    let chosen: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id.as_str(), i))
        .collect();
    let mut found = Vec::new();
    store.scan_each(&keys.data_pattern(), SCAN_COUNT, |k| {
        found.extend(owner(keys, &chosen, k));
    })?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn table(args: &Args, keys: &Keys, store: &mut Store) -> anyhow::Result<ExitCode> {
    let mut jobs = choose(args, store, keys)?;
    find_sets(store, keys, &mut jobs)?;
    read_records(store, keys, &mut jobs)?;
    let found = scan_keys(store, keys, &jobs)?;
    cli::info(&format!(
        "{} keys of {} jobs of tag {} ({})",
        found.len(),
        jobs.len(),
        keys.tag(),
        keys.data_pattern()
    ));
    let mut out = std::io::BufWriter::with_capacity(1 << 16, cli::stdout());
    let shown = if args.wide {
        let mut t = Wide::default();
        read_each(store, &found, |f, kind, value| {
            t.add(f, &kind, value);
            Ok(())
        })?;
        t.finish(&jobs);
        t.write(&mut out, &jobs, args.format)?;
        t.cells > 0
    } else {
        let mut sink = Long::new(&mut out, args.format)?;
        let mut n = 0u64;
        read_each(store, &found, |f, kind, value| {
            n += 1;
            sink.row(&jobs[f.job], f, kind, value)
        })?;
        sink.finish()?;
        n > 0
    };
    if !shown {
        let what = if jobs.len() == 1 {
            format!("job {} of tag {} has no keys", jobs[0].id, keys.tag())
        } else {
            format!(
                "none of the {} jobs of tag {} has keys",
                jobs.len(),
                keys.tag()
            )
        };
        return Err(fail(
            Kind::NotFound,
            format!("{what} ({} matched none of theirs)", keys.data_pattern()),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Read the found keys in pipelined batches and hand each one that still exists to `each`.
fn read_each(
    store: &mut Store,
    found: &[Found],
    mut each: impl FnMut(&Found, String, serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for chunk in found.chunks(READ_BATCH) {
        let refs: Vec<&[u8]> = chunk.iter().map(|f| f.key.as_slice()).collect();
        for (f, (kind, value)) in chunk.iter().zip(store.read_values_bytes(&refs)?) {
            if kind != "none" {
                each(f, kind, value)?;
            }
        }
    }
    Ok(())
}

/// The job and task columns of a key's (or a job's) ID: an array task's parent and task.
fn job_task(id: &JobId) -> (String, Option<String>) {
    (id.job.to_string(), id.task.map(|t| t.to_string()))
}

/// One key of the long form: a JSON line, a CSV or TSV row with its value
/// [`output::flat`], or the `Key:`/`Value:`/`---` lines of its whole name.
#[derive(Default, Serialize)]
struct LongRow<'t> {
    job: String,
    task: Option<String>,
    set: Option<&'static str>,
    state: Option<&'t str>,
    exit_code: Option<&'t str>,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    value: serde_json::Value,
    /// The key's whole name, for the plain form only.
    #[serde(skip)]
    key: String,
}

impl output::Row for LongRow<'_> {
    fn plain(&self) -> anyhow::Result<String> {
        Ok(key_value_lines(&self.key, &self.value))
    }
}

/// The long form, written key after key as the reads come.
struct Long<'a, 't> {
    rows: Box<dyn output::Exporter<LongRow<'t>> + 'a>,
    form: output::Form,
}

impl<'a, 't: 'a> Long<'a, 't> {
    fn new(out: &'a mut dyn Write, format: Format) -> anyhow::Result<Long<'a, 't>> {
        Ok(Long {
            rows: output::exporter(form(format), out)?,
            form: form(format),
        })
    }

    fn row(
        &mut self,
        job: &'t Job,
        f: &Found,
        kind: String,
        value: serde_json::Value,
    ) -> anyhow::Result<()> {
        let (j, task) = job_task(&f.id);
        let json = self.form == output::Form::JsonLines;
        self.rows.row(&LongRow {
            job: j,
            task,
            set: job.set.map(Set::suffix),
            state: job.state.as_deref(),
            exit_code: job.exit_code.as_deref(),
            name: f.name(),
            kind,
            value: if json {
                value
            } else {
                serde_json::Value::String(output::flat(&value))
            },
            key: if self.form == output::Form::Plain {
                output::lossy(&f.key)
            } else {
                String::new()
            },
        })
    }

    fn finish(self) -> anyhow::Result<()> {
        self.rows.finish()
    }
}

/// One row of the wide table: a job, or one task of an array, and its cells by column number.
#[derive(Debug)]
struct WideRow {
    id: JobId,
    job: usize,
    cells: Vec<(u32, serde_json::Value)>,
}

/// The wide table being built: columns numbered as first seen, rows in job-ID order.
#[derive(Debug, Default)]
struct Wide {
    columns: HashMap<String, u32>,
    names: Vec<String>,
    rows: Vec<WideRow>,
    cells: u64,
}

impl Wide {
    fn column(&mut self, name: String) -> u32 {
        // A key named `state` must not pass for the record's state.
        let name = if WIDE_FIXED.contains(&name.as_str()) {
            format!(":{name}")
        } else {
            name
        };
        if let Some(c) = self.columns.get(&name) {
            return *c;
        }
        let c = self.names.len() as u32;
        self.names.push(name.clone());
        self.columns.insert(name, c);
        c
    }

    /// A key, read: found keys come sorted by job ID, so a new ID starts a new row.
    fn add(&mut self, f: &Found, kind: &str, value: serde_json::Value) {
        if self.rows.last().is_none_or(|r| r.id != f.id) {
            self.rows.push(WideRow {
                id: f.id,
                job: f.job,
                cells: Vec::new(),
            });
        }
        let name = f.name();
        let mut cells = Vec::new();
        match (kind, value) {
            ("hash", serde_json::Value::Object(m)) => {
                for (field, v) in m {
                    cells.push((self.column(format!("{name}.{field}")), v));
                }
            }
            (_, v) => cells.push((self.column(name), v)),
        }
        self.cells += cells.len() as u64;
        if let Some(r) = self.rows.last_mut() {
            r.cells.extend(cells);
        }
    }

    /// Rows for the chosen jobs without any key, so every job is in the table.
    fn finish(&mut self, jobs: &[Job]) {
        let seen: HashSet<usize> = self.rows.iter().map(|r| r.job).collect();
        for (i, j) in jobs.iter().enumerate() {
            if seen.contains(&i) {
                continue;
            }
            if let Ok(id) = j.id.parse::<JobId>() {
                self.rows.push(WideRow {
                    id,
                    job: i,
                    cells: Vec::new(),
                });
            }
        }
        self.rows.sort_by_key(|a| a.id);
    }

    /// Each row's cells in header order (None: a key that row's job did not write). Two keys of
    /// one job that make one column (a key `a.b` and the field `b` of a hash `a`) cannot both be
    /// shown: the first, in name order, is, with a warning.
    fn ordered<'t>(
        &'t self,
        order: &[usize],
        row: &'t WideRow,
        warned: &mut HashSet<u32>,
    ) -> Vec<Option<&'t serde_json::Value>> {
        let mut cells = vec![None; self.names.len()];
        for (c, v) in &row.cells {
            let at = order[*c as usize];
            if cells[at].is_some() {
                if warned.insert(*c) {
                    cli::warn(&format!(
                        "job {}: two keys make the column {}; the table shows the first \
                         (in name order), here and in any other row where it happens",
                        row.id, self.names[*c as usize]
                    ));
                }
                continue;
            }
            cells[at] = Some(v);
        }
        cells
    }

    /// The table in `format`: JSON Lines, CSV, TSV, or aligned for people (also for plain,
    /// which `run` refuses with --wide).
    fn write(&self, out: &mut dyn Write, jobs: &[Job], format: Format) -> anyhow::Result<()> {
        // order[column number] = its place among the data columns, sorted by name.
        let mut by_name: Vec<usize> = (0..self.names.len()).collect();
        by_name.sort_by(|a, b| self.names[*a].cmp(&self.names[*b]));
        let mut order = vec![0; self.names.len()];
        for (place, c) in by_name.iter().enumerate() {
            order[*c] = place;
        }
        let headings: Vec<String> = WIDE_FIXED
            .iter()
            .map(|h| h.to_string())
            .chain(by_name.iter().map(|c| self.names[*c].clone()))
            .collect();
        let form = match format {
            Format::Human | Format::Plain => output::Form::Human,
            f => form(f),
        };
        let mut rows = output::records(form, out, headings)?;
        let mut warned = HashSet::new();
        for row in &self.rows {
            let job = &jobs[row.job];
            let (j, task) = job_task(&row.id);
            let fixed = [
                Some(j),
                task,
                job.set.map(|s| s.suffix().to_string()),
                job.state.clone(),
                job.exit_code.clone(),
                job.elapsed.clone(),
            ]
            .map(|v| v.map(serde_json::Value::String));
            let cells: Vec<Option<&serde_json::Value>> = fixed
                .iter()
                .map(Option::as_ref)
                .chain(self.ordered(&order, row, &mut warned))
                .collect();
            rows.row(&cells)?;
        }
        rows.finish()
    }
}

/// Whether a plot file is an SVG (true) or a PNG (false), from its name.
fn plot_kind(file: &std::path::Path) -> anyhow::Result<bool> {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "svg" => Ok(true),
        "png" => Ok(false),
        _ => Err(fail(
            Kind::Usage,
            format!(
                "--plot {}: the file name must end in .svg or .png",
                file.display()
            ),
        )),
    }
}

/// One plotted value: the job or task it is from, the value, the job's set.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    id: JobId,
    value: f64,
    set: Option<Set>,
}

/// The numeric values among the read keys: strings that parse as numbers (a result a job wrote
/// with `redis-cli SET … 0.25`), in job-ID order; how many others were left out.
fn points(read: Vec<(JobId, Option<Set>, serde_json::Value)>) -> (Vec<Point>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for (id, set, v) in read {
        match v.as_str().and_then(|s| s.trim().parse::<f64>().ok()) {
            Some(value) if value.is_finite() => out.push(Point { id, value, set }),
            _ => skipped += 1,
        }
    }
    (out, skipped)
}

/// `--plot NAME FILE`: read only the chosen jobs' keys named NAME, and draw them.
fn plot_key(
    args: &Args,
    keys: &Keys,
    store: &mut Store,
    name: &str,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let mut jobs = choose(args, store, keys)?;
    find_sets(store, keys, &mut jobs)?;
    let found: Vec<Found> = scan_keys(store, keys, &jobs)?
        .into_iter()
        .filter(|f| &f.key[f.name_at..] == name.as_bytes())
        .collect();
    let mut read = Vec::with_capacity(found.len());
    read_each(store, &found, |f, _kind, value| {
        read.push((f.id, jobs[f.job].set, value));
        Ok(())
    })?;
    let (pts, skipped) = points(read);
    if pts.is_empty() {
        return Err(fail(
            Kind::NotFound,
            format!(
                "nothing to plot: none of the {} chosen jobs of tag {} has a numeric key {name} \
                 ({} keys of that name)",
                jobs.len(),
                keys.tag(),
                skipped
            ),
        ));
    }
    draw_plot(file, name, keys.tag().as_str(), &pts)?;
    cli::note(&format!(
        "plotted {} values of {name} into {}{}",
        pts.len(),
        file.display(),
        if skipped > 0 {
            format!(" ({skipped} that are not numbers left out)")
        } else {
            String::new()
        }
    ));
    Ok(ExitCode::SUCCESS)
}

/// The colour of a set in the plot, as rj-status colours it on a terminal.
fn set_rgb(set: Option<Set>) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match set {
        Some(Set::Completed) => RGBColor(0x1a, 0x98, 0x50),
        Some(Set::Failed) => RGBColor(0xd7, 0x30, 0x27),
        Some(Set::Timeout) => RGBColor(0xf4, 0x6d, 0x43),
        Some(Set::Cancelled) => RGBColor(0xa0, 0x7c, 0x00),
        Some(Set::PendingAndRunning) => RGBColor(0x31, 0x82, 0xbd),
        Some(Set::All) | None => RGBColor(0x40, 0x40, 0x40),
    }
}

fn draw_plot(file: &std::path::Path, name: &str, tag: &str, pts: &[Point]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    crate::bench::plot::fonts()?;
    let size = (1000, 600);
    let drawn = if plot_kind(file)? {
        plot_chart(
            SVGBackend::new(file, size).into_drawing_area(),
            name,
            tag,
            pts,
        )
    } else {
        plot_chart(
            BitMapBackend::new(file, size).into_drawing_area(),
            name,
            tag,
            pts,
        )
    };
    drawn.map_err(|e| {
        fail(
            Kind::Output,
            format!("cannot draw the plot {}: {e}", file.display()),
        )
    })
}

/// Values by job in job-ID order, one point each at its place in that order (job IDs are sparse,
/// and an array's tasks share one), labelled with the job or task ID, one series per set.
fn plot_chart<DB: plotters::prelude::DrawingBackend>(
    root: plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    tag: &str,
    pts: &[Point],
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    use plotters::prelude::*;
    root.fill(&WHITE)?;
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.value), hi.max(p.value))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = pts.len();
    let ids: Vec<String> = pts.iter().map(|p| p.id.to_string()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name} by job, tag {tag}"), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        // Room above the points for the legend, so that it hides none.
        .build_cartesian_2d(
            -0.5f64..(n as f64 - 0.5),
            (lo - span * 0.08)..(hi + span * 0.4),
        )?;
    chart
        .configure_mesh()
        .x_desc("job (in job-ID order)")
        .y_desc(name)
        .x_labels(n.min(10))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                ids.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let mut sets: Vec<Option<Set>> = pts.iter().map(|p| p.set).collect();
    sets.sort();
    sets.dedup();
    for set in sets {
        let color = set_rgb(set);
        let mine: Vec<(f64, f64)> = pts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.set == set)
            .map(|(i, p)| (i as f64, p.value))
            .collect();
        chart
            .draw_series(mine.into_iter().map(|p| Circle::new(p, 4, color.filled())))?
            .label(set.map_or("(no set)", Set::suffix))
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_shows_strings_as_text_and_structures_as_compact_json() {
        assert_eq!(output::flat(&serde_json::json!("a \"b\"")), "a \"b\"");
        assert_eq!(output::flat(&serde_json::json!({"k": "v"})), r#"{"k":"v"}"#);
        assert_eq!(
            output::flat(&serde_json::json!([["m", 1.5]])),
            r#"[["m",1.5]]"#
        );
    }

    fn keys(tag: &str) -> Keys {
        Keys::new(crate::keys::Tag::new(tag).unwrap())
    }

    #[test]
    fn patterns_name_the_tasks_of_a_parent_only() {
        let k = keys("a.b");
        assert_eq!(patterns(&k, "12"), ["a.b-12:*", "a.b-12_*:*"]);
        assert_eq!(scan_pattern(&k, "12"), "a.b-12[:_]*");
        assert_eq!(patterns(&k, "12_3"), ["a.b-12_3:*"]);
        assert_eq!(scan_pattern(&k, "12_3"), "a.b-12_3:*");
    }

    #[test]
    fn job_keys_keep_this_job_and_its_tasks_in_numeric_order() {
        let k = keys("arr");
        let found = [
            "arr-12_10:a",
            "arr-12_2:b",
            "arr-12_2:a",
            "arr-12:z",
            "arr-12_9-5:x", // tag arr-12_9, job 5
            "arr-12_3_4:x", // not a job ID
            "arr-123:x",    // another job
            "arr-12_:x",    // not a job ID
            "arr-2-12:x",   // tag arr-2
        ]
        .map(|s| s.as_bytes().to_vec())
        .to_vec();
        let text =
            |v: Vec<Vec<u8>>| -> Vec<String> { v.iter().map(|b| output::lossy(b)).collect() };
        assert_eq!(
            text(job_keys(&k, "12", found.clone())),
            ["arr-12:z", "arr-12_2:a", "arr-12_2:b", "arr-12_10:a"]
        );
        assert_eq!(
            text(job_keys(&k, "12_2", found)),
            ["arr-12_2:a", "arr-12_2:b"]
        );
    }

    #[test]
    fn job_keys_keep_names_that_are_not_utf8_byte_for_byte() {
        let k = keys("arr");
        let found: Vec<Vec<u8>> = vec![
            b"arr-12:z\xff".to_vec(),
            b"arr-12_2:\xfe\xff".to_vec(),
            b"arr-12:a".to_vec(),
            b"arr-12\xff:x".to_vec(), // not a job ID
            b"arr-13:\xff".to_vec(),  // another job
        ];
        assert_eq!(
            job_keys(&k, "12", found),
            [
                b"arr-12:a".to_vec(),
                b"arr-12:z\xff".to_vec(),
                b"arr-12_2:\xfe\xff".to_vec()
            ]
        );
    }

    fn chosen(ids: &[&'static str]) -> HashMap<&'static str, usize> {
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect()
    }

    #[test]
    fn owner_is_the_keys_own_job_else_its_array_parent() {
        let k = keys("exp");
        let c = chosen(&["12", "12_3", "5"]);
        let own = |key: &[u8]| owner(&k, &c, key.to_vec()).map(|f| (f.id.to_string(), f.job));
        assert_eq!(own(b"exp-12:a"), Some(("12".into(), 0)));
        assert_eq!(own(b"exp-12_2:a"), Some(("12_2".into(), 0)));
        assert_eq!(
            own(b"exp-12_3:a"),
            Some(("12_3".into(), 1)),
            "the task's own"
        );
        assert_eq!(own(b"exp-5:a"), Some(("5".into(), 2)));
        for other in [
            &b"exp-2-5:a"[..], // tag exp-2
            b"exp-5_1-12:a",   // tag exp-5_1
            b"exp-6:a",        // not chosen
            b"exp-5x:a",
            b"exp_JOB:5",
            b"expx-5:a",
        ] {
            assert_eq!(own(other), None, "{}", output::lossy(other));
        }
    }

    #[test]
    fn the_name_is_the_bytes_after_the_job_id() {
        let k = keys("exp");
        let c = chosen(&["12"]);
        let f = owner(&k, &c, b"exp-12_10:a:b\xff".to_vec()).unwrap();
        assert_eq!(&f.key[f.name_at..], b"a:b\xff");
        assert_eq!(f.name(), "a:b\u{fffd}");
    }

    fn found(id: &str, job: usize, name: &str) -> Found {
        let key = format!("exp-{id}:{name}").into_bytes();
        Found {
            id: id.parse().unwrap(),
            job,
            name_at: key.len() - name.len(),
            key,
        }
    }

    fn job(id: &str, set: Set, state: &str) -> Job {
        Job {
            state: Some(state.into()),
            exit_code: Some("0:0".into()),
            elapsed: None,
            ..Job::new(id.into(), Some(set))
        }
    }

    fn wide_text(t: &Wide, jobs: &[Job], format: Format) -> String {
        let mut out = Vec::new();
        t.write(&mut out, jobs, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn wide_rows_per_task_with_hash_fields_and_empty_cells() {
        let jobs = [
            job("5", Set::Completed, "COMPLETED"),
            job("7", Set::Failed, "FAILED"),
            job("12", Set::Completed, "COMPLETED"),
        ];
        let mut t = Wide::default();
        t.add(&found("5", 0, "loss"), "string", json!("0.5"));
        t.add(
            &found("5", 0, "res"),
            "hash",
            json!({"acc": "0.9", "n": "3"}),
        );
        t.add(&found("12_1", 2, "log"), "list", json!(["a", "b,c"]));
        t.add(&found("12_1", 2, "state"), "string", json!("mine"));
        t.add(&found("12_2", 2, "loss"), "string", json!("0.7"));
        t.finish(&jobs);
        assert_eq!(
            wide_text(&t, &jobs, Format::Csv),
            "job,task,set,state,exit_code,elapsed,:state,log,loss,res.acc,res.n\n\
             5,,COMPLETED,COMPLETED,0:0,,,,0.5,0.9,3\n\
             7,,FAILED,FAILED,0:0,,,,,,\n\
             12,1,COMPLETED,COMPLETED,0:0,,mine,\"[\"\"a\"\",\"\"b,c\"\"]\",,,\n\
             12,2,COMPLETED,COMPLETED,0:0,,,,0.7,,\n"
        );
        let rows: Vec<serde_json::Value> = wide_text(&t, &jobs, Format::Json)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1]["job"], "7");
        assert_eq!(rows[1]["loss"], serde_json::Value::Null);
        assert_eq!(rows[2]["task"], "1");
        assert_eq!(rows[2]["log"], json!(["a", "b,c"]), "a list stays a list");
        assert_eq!(rows[0]["task"], serde_json::Value::Null);
        assert_eq!(rows[0]["res.acc"], "0.9");
    }

    #[test]
    fn wide_keeps_the_first_of_two_keys_making_one_column() {
        let jobs = [job("5", Set::Completed, "COMPLETED")];
        let mut t = Wide::default();
        // In name order the hash `a` comes before the string `a.b`.
        t.add(&found("5", 0, "a"), "hash", json!({"b": "from hash"}));
        t.add(&found("5", 0, "a.b"), "string", json!("from string"));
        t.finish(&jobs);
        assert_eq!(
            wide_text(&t, &jobs, Format::Tsv),
            "job\ttask\tset\tstate\texit_code\telapsed\ta.b\n\
             5\t\tCOMPLETED\tCOMPLETED\t0:0\t\tfrom hash\n"
        );
    }

    const FORMATS: [Format; 5] = [
        Format::Human,
        Format::Plain,
        Format::Json,
        Format::Csv,
        Format::Tsv,
    ];

    fn kvs() -> Vec<KeyValue> {
        vec![
            KeyValue {
                key: "exp-12:a\tb".into(),
                kind: "string".into(),
                value: json!("x, \"y\"\nz"),
            },
            KeyValue {
                key: "exp-12:h".into(),
                kind: "hash".into(),
                value: json!({"f": "1", "g": "2"}),
            },
            KeyValue {
                key: "exp-12_3:l".into(),
                kind: "list".into(),
                value: json!(["a", "b"]),
            },
        ]
    }

    /// Every byte of every form of one job, as rj-last has written them.
    #[test]
    fn golden_one_job() {
        let text = |format: Format, kvs: Vec<KeyValue>| {
            let mut out = Vec::new();
            write_one(&mut out, format, "exp", "12", kvs).unwrap();
            String::from_utf8(out).unwrap()
        };
        let got: Vec<String> = FORMATS.iter().map(|f| text(*f, kvs())).collect();
        let empty: Vec<String> = FORMATS.iter().map(|f| text(*f, Vec::new())).collect();
        assert_eq!(
            got[0],
            "Key:  exp-12:a\tb\n\
             Value: x, \"y\"\n\
             z\n\
             ---\n\
             Key:  exp-12:h\n\
             Value: {\"f\":\"1\",\"g\":\"2\"}\n\
             ---\n\
             Key:  exp-12_3:l\n\
             Value: [\"a\",\"b\"]\n\
             ---\n\
             "
        );
        assert_eq!(got[1], got[0]);
        assert_eq!(
            got[2],
            r#"{
  "tag": "exp",
  "job_id": "12",
  "keys": [
    {
      "key": "exp-12:a\tb",
      "type": "string",
      "value": "x, \"y\"\nz"
    },
    {
      "key": "exp-12:h",
      "type": "hash",
      "value": {
        "f": "1",
        "g": "2"
      }
    },
    {
      "key": "exp-12_3:l",
      "type": "list",
      "value": [
        "a",
        "b"
      ]
    }
  ]
}
"#
        );
        assert_eq!(
            got[3],
            "key,type,value\n\
             exp-12:a\tb,string,\"x, \"\"y\"\"\n\
             z\"\n\
             exp-12:h,hash,\"{\"\"f\"\":\"\"1\"\",\"\"g\"\":\"\"2\"\"}\"\n\
             exp-12_3:l,list,\"[\"\"a\"\",\"\"b\"\"]\"\n\
             "
        );
        assert_eq!(
            got[4],
            "key\ttype\tvalue\n\
             exp-12:a b\tstring\tx, \"y\" z\n\
             exp-12:h\thash\t{\"f\":\"1\",\"g\":\"2\"}\n\
             exp-12_3:l\tlist\t[\"a\",\"b\"]\n\
             "
        );
        assert_eq!(empty[0], "");
        assert_eq!(empty[1], "");
        assert_eq!(
            empty[2],
            "{\n  \"tag\": \"exp\",\n  \"job_id\": \"12\",\n  \"keys\": []\n}\n"
        );
        assert_eq!(empty[3], "key,type,value\n");
        assert_eq!(empty[4], "key\ttype\tvalue\n");
    }

    /// Every byte of every form of the long table, as rj-last has written them.
    #[test]
    fn golden_long() {
        let jobs = [
            job("12", Set::Completed, "COMPLETED"),
            Job::new("13".into(), None),
        ];
        let found = [
            found("12", 0, "a\tb"),
            found("12_3", 0, "h"),
            found("13", 1, "l"),
        ];
        let values = kvs();
        let text = |format: Format, n: usize| {
            let mut out = Vec::new();
            let mut sink = Long::new(&mut out, format).unwrap();
            for (f, kv) in found.iter().zip(&values).take(n) {
                sink.row(&jobs[f.job], f, kv.kind.clone(), kv.value.clone())
                    .unwrap();
            }
            sink.finish().unwrap();
            String::from_utf8(out).unwrap()
        };
        let got: Vec<String> = FORMATS.iter().map(|f| text(*f, 3)).collect();
        let empty: Vec<String> = FORMATS.iter().map(|f| text(*f, 0)).collect();
        assert_eq!(
            got[0],
            "Key:  exp-12:a\tb\n\
             Value: x, \"y\"\n\
             z\n\
             ---\n\
             Key:  exp-12_3:h\n\
             Value: {\"f\":\"1\",\"g\":\"2\"}\n\
             ---\n\
             Key:  exp-13:l\n\
             Value: [\"a\",\"b\"]\n\
             ---\n\
             "
        );
        assert_eq!(got[1], got[0]);
        assert_eq!(
            got[2],
            r#"{"job":"12","task":null,"set":"COMPLETED","state":"COMPLETED","exit_code":"0:0","name":"a\tb","type":"string","value":"x, \"y\"\nz"}
{"job":"12","task":"3","set":"COMPLETED","state":"COMPLETED","exit_code":"0:0","name":"h","type":"hash","value":{"f":"1","g":"2"}}
{"job":"13","task":null,"set":null,"state":null,"exit_code":null,"name":"l","type":"list","value":["a","b"]}
"#
        );
        assert_eq!(
            got[3],
            "job,task,set,state,exit_code,name,type,value\n\
             12,,COMPLETED,COMPLETED,0:0,a\tb,string,\"x, \"\"y\"\"\n\
             z\"\n\
             12,3,COMPLETED,COMPLETED,0:0,h,hash,\"{\"\"f\"\":\"\"1\"\",\"\"g\"\":\"\"2\"\"}\"\n\
             13,,,,,l,list,\"[\"\"a\"\",\"\"b\"\"]\"\n\
             "
        );
        assert_eq!(
            got[4],
            "job\ttask\tset\tstate\texit_code\tname\ttype\tvalue\n\
             12\t\tCOMPLETED\tCOMPLETED\t0:0\ta b\tstring\tx, \"y\" z\n\
             12\t3\tCOMPLETED\tCOMPLETED\t0:0\th\thash\t{\"f\":\"1\",\"g\":\"2\"}\n\
             13\t\t\t\t\tl\tlist\t[\"a\",\"b\"]\n\
             "
        );
        assert_eq!(empty[0], "");
        assert_eq!(empty[1], "");
        assert_eq!(empty[2], "");
        assert_eq!(empty[3], "job,task,set,state,exit_code,name,type,value\n");
        assert_eq!(
            empty[4],
            "job\ttask\tset\tstate\texit_code\tname\ttype\tvalue\n"
        );
    }

    /// Every byte of every form of the wide table, as rj-last has written them.
    #[test]
    fn golden_wide() {
        let jobs = [
            job("5", Set::Completed, "COMPLETED"),
            Job {
                elapsed: Some("00:01:02".into()),
                ..Job::new("7".into(), None)
            },
        ];
        let mut t = Wide::default();
        t.add(&found("5", 0, "a\tb"), "string", json!("x, \"y\"\nz"));
        t.add(&found("5", 0, "h"), "hash", json!({"f": "1", "g": "2"}));
        t.add(&found("5", 0, "job"), "list", json!(["a", "b"]));
        t.add(&found("7_1", 1, "h"), "hash", json!({"f": "long value"}));
        t.finish(&jobs);
        let got: Vec<String> = FORMATS.iter().map(|f| wide_text(&t, &jobs, *f)).collect();
        assert_eq!(
            got[0],
            "job  task  set        state      exit_code  elapsed   :job       a\tb       h.f         h.g\n\
             5    -     COMPLETED  COMPLETED  0:0        -         [\"a\",\"b\"]  x, \"y\"\n\
             z  1           2\n\
             7    1     -          -          -          00:01:02  -          -         long value  -\n\
             "
        );
        assert_eq!(got[1], got[0]);
        assert_eq!(
            got[2],
            r#"{"job":"5","task":null,"set":"COMPLETED","state":"COMPLETED","exit_code":"0:0","elapsed":null,":job":["a","b"],"a\tb":"x, \"y\"\nz","h.f":"1","h.g":"2"}
{"job":"7","task":"1","set":null,"state":null,"exit_code":null,"elapsed":"00:01:02",":job":null,"a\tb":null,"h.f":"long value","h.g":null}
"#
        );
        assert_eq!(
            got[3],
            "job,task,set,state,exit_code,elapsed,:job,a\tb,h.f,h.g\n\
             5,,COMPLETED,COMPLETED,0:0,,\"[\"\"a\"\",\"\"b\"\"]\",\"x, \"\"y\"\"\n\
             z\",1,2\n\
             7,1,,,,00:01:02,,,long value,\n\
             "
        );
        assert_eq!(
            got[4],
            "job\ttask\tset\tstate\texit_code\telapsed\t:job\ta b\th.f\th.g\n\
             5\t\tCOMPLETED\tCOMPLETED\t0:0\t\t[\"a\",\"b\"]\tx, \"y\" z\t1\t2\n\
             7\t1\t\t\t\t00:01:02\t\t\tlong value\t\n\
             "
        );
        let mut none = Wide::default();
        none.finish(&[]);
        let empty: Vec<String> = FORMATS.iter().map(|f| wide_text(&none, &[], *f)).collect();
        assert_eq!(empty[0], "job  task  set  state  exit_code  elapsed\n");
        assert_eq!(empty[1], "job  task  set  state  exit_code  elapsed\n");
        assert_eq!(empty[2], "");
        assert_eq!(empty[3], "job,task,set,state,exit_code,elapsed\n");
        assert_eq!(empty[4], "job\ttask\tset\tstate\texit_code\telapsed\n");
    }

    #[test]
    fn csv_headers_are_the_row_types_field_names() {
        output::assert_headers_are_field_names(&KeyValue {
            key: "exp-12:a".into(),
            kind: "string".into(),
            value: json!("1"),
        });
        let j = job("12", Set::Completed, "COMPLETED");
        output::assert_headers_are_field_names(&LongRow {
            job: "12".into(),
            set: Some("COMPLETED"),
            state: j.state.as_deref(),
            name: "a".into(),
            kind: "string".into(),
            value: json!("1"),
            key: "exp-12:a".into(),
            ..Default::default()
        });
    }

    #[test]
    fn plot_points_are_the_numeric_strings() {
        let id = |s: &str| s.parse::<JobId>().unwrap();
        let (pts, skipped) = points(vec![
            (id("5"), Some(Set::Completed), json!("0.25")),
            (id("7"), Some(Set::Failed), json!(" 3 ")),
            (id("8"), None, json!("n/a")),
            (id("9"), None, json!("NaN")),
            (id("12_1"), Some(Set::Completed), json!(["1"])),
            (id("12_2"), Some(Set::Completed), json!("-1e3")),
        ]);
        assert_eq!(
            pts,
            [
                Point {
                    id: id("5"),
                    value: 0.25,
                    set: Some(Set::Completed)
                },
                Point {
                    id: id("7"),
                    value: 3.0,
                    set: Some(Set::Failed)
                },
                Point {
                    id: id("12_2"),
                    value: -1000.0,
                    set: Some(Set::Completed)
                },
            ]
        );
        assert_eq!(skipped, 3);
        assert!(plot_kind(std::path::Path::new("a.SVG")).unwrap());
        assert!(!plot_kind(std::path::Path::new("a.png")).unwrap());
        assert!(plot_kind(std::path::Path::new("a.pdf")).is_err());
    }
}
