//! rj-status: the jobs of a tag, per set, as a table or as data.
use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, ConnArgs, TagArg};
use crate::keys::{IdKey, Keys, Set};
use crate::output::{self, Format};
use crate::store::Store;

pub const EXAMPLES: &str = "\
  rj-status --tag exp1
  rj-status --state FAILED --format plain | xargs -n1 sacct -j
  rj-status --count --state PENDING_AND_RUNNING --format plain
  rj-status --long --format csv > jobs.csv
";

/// Show the jobs of a tag: for each of the six sets, its count and its IDs in numeric order.
///
/// A tag without jobs is listed with zero counts and exits 0, with a note on stderr (-q hides
/// it), since a mistyped tag looks the same.
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
struct SetRow {
    set: &'static str,
    key: String,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct Membership<'a> {
    set: &'static str,
    job_id: &'a str,
}

#[derive(Debug, Serialize)]
struct CountRow<'a> {
    set: &'static str,
    key: &'a str,
    count: u64,
}

/// `--long`: one job with its record; empty strings where the record lacks a field.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
struct StatusDoc<'a> {
    tag: &'a str,
    sets: Vec<SetRow>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_cfg, keys, mut store) = super::open(&args.conn, &args.tag)?;
    let sets: Vec<Set> = if args.state.is_empty() {
        Set::ALL.to_vec()
    } else {
        let mut s = args.state.clone();
        s.sort();
        s.dedup();
        s
    };
    let mut out = std::io::stdout().lock();
    if args.long {
        long(&mut store, &keys, &sets, args.format, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::with_capacity(sets.len());
    for set in &sets {
        let key = keys.set(*set);
        let (count, ids) = if args.count {
            (store.card(&key)?, None)
        } else {
            let ids = store.members(&key)?;
            (ids.len() as u64, Some(ids))
        };
        rows.push(SetRow {
            set: set.suffix(),
            key,
            count,
            ids,
        });
    }
    if rows.iter().all(|r| r.count == 0) && store.card(&keys.set(Set::All))? == 0 {
        // Exit 0 (an experiment may simply not have started), but a mistyped tag looks just
        // like that: say it where a human sees it.
        cli::note(&format!(
            "no jobs under tag {} ({} is empty or absent); is the tag right?",
            keys.tag(),
            keys.set(Set::All)
        ));
    }
    match args.format {
        Format::Human => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            let color = cli::color_stdout();
            for r in &rows {
                let (on, off) = match set_color(r.set) {
                    Some(c) if color && r.count > 0 => (c, "\x1b[0m"),
                    _ => ("", ""),
                };
                write!(out, "{on}{:<width$}  {:>6}{off}", r.key, r.count)?;
                match &r.ids {
                    Some(ids) if !ids.is_empty() => writeln!(out, "  {}", ids.join(" "))?,
                    _ => writeln!(out)?,
                }
            }
        }
        Format::Plain if args.count => {
            for r in &rows {
                writeln!(out, "{}", r.count)?;
            }
        }
        Format::Plain => {
            let mut all: Vec<&str> = rows
                .iter()
                .flat_map(|r| r.ids.iter().flatten().map(String::as_str))
                .collect();
            all.sort_by_cached_key(|s| IdKey::of(s));
            all.dedup();
            for id in all {
                writeln!(out, "{id}")?;
            }
        }
        Format::Json => output::write_json(
            &mut out,
            &StatusDoc {
                tag: keys.tag().as_str(),
                sets: rows,
            },
        )?,
        Format::Csv | Format::Tsv if args.count => {
            let c: Vec<CountRow> = rows
                .iter()
                .map(|r| CountRow {
                    set: r.set,
                    key: &r.key,
                    count: r.count,
                })
                .collect();
            output::write_delimited(&mut out, &c, args.format, &["set", "key", "count"])?
        }
        Format::Csv | Format::Tsv => {
            let m: Vec<Membership> = rows
                .iter()
                .flat_map(|r| {
                    r.ids.iter().flatten().map(|id| Membership {
                        set: r.set,
                        job_id: id,
                    })
                })
                .collect();
            output::write_delimited(&mut out, &m, args.format, &["set", "job_id"])?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Which set a job is in, besides ALL: the first of the five that holds it.
fn long(
    store: &mut Store,
    keys: &Keys,
    sets: &[Set],
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    // Each job once, in the most specific set asked for (ALL only if asked alone).
    let mut seen = BTreeSet::new();
    let mut jobs: Vec<(String, Set)> = Vec::new();
    let order: Vec<Set> = sets
        .iter()
        .copied()
        .filter(|s| *s != Set::All)
        .chain(sets.iter().copied().filter(|s| *s == Set::All))
        .collect();
    for set in order {
        for id in store.members(&keys.set(set))? {
            if seen.insert(id.clone()) {
                jobs.push((id, set));
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
        let mut place = std::collections::HashMap::new();
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
    let rows: Vec<JobRow> = jobs
        .iter()
        .zip(hashes)
        .map(|((id, set), h)| {
            // TSV cannot quote: a tab or newline in a job name would shift the columns.
            let g = |k: &str| {
                let v = h.get(k).cloned().unwrap_or_default();
                if format == Format::Tsv {
                    output::tsv_clean(&v)
                } else {
                    v
                }
            };
            JobRow {
                job_id: id.clone(),
                set: set.suffix(),
                state: g("state"),
                exit_code: g("exit_code"),
                elapsed: g("elapsed"),
                start: g("start"),
                end: g("end"),
                nodes: g("nodes"),
                partition: g("partition"),
                name: g("name"),
                submitted: g("submitted"),
                cluster: g("cluster"),
            }
        })
        .collect();
    match format {
        Format::Json => output::write_json(out, &rows)?,
        Format::Csv | Format::Tsv => output::write_delimited(
            out,
            &rows,
            format,
            &[
                "job_id",
                "set",
                "state",
                "exit_code",
                "elapsed",
                "start",
                "end",
                "nodes",
                "partition",
                "name",
                "submitted",
                "cluster",
            ],
        )?,
        Format::Plain => {
            for r in &rows {
                writeln!(out, "{}", r.job_id)?;
            }
        }
        Format::Human => {
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.job_id.clone(),
                        r.set.to_string(),
                        dash(&r.state),
                        dash(&r.exit_code),
                        dash(&r.elapsed),
                        dash(&r.nodes),
                        dash(&r.partition),
                        dash(&r.name),
                    ]
                })
                .collect();
            output::write_table(
                out,
                &[
                    "JOBID",
                    "SET",
                    "STATE",
                    "EXITCODE",
                    "ELAPSED",
                    "NODES",
                    "PARTITION",
                    "NAME",
                ],
                &table,
            )?;
        }
    }
    Ok(())
}
