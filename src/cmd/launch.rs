//! rj-launch: submit a job with sbatch (or take IDs submitted otherwise) and record it.
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{self, ConnArgs, TagArg};
use crate::config::ProcessEnv;
use crate::exit::{fail, Kind};
use crate::keys::Keys;
use crate::slurm::{self, Submitted};
use crate::spool;
use crate::store::Store;

pub const EXAMPLES: &str = "\
  jid=$(rj-launch --tag exp1 -- --time=10 job.sbatch)
  rj-launch -- --array=1-10 job.sbatch
  sbatch --parsable job.sbatch | rj-launch --record -
  rj-launch --record 4238610 4238611
";

/// Submit a Slurm job with `sbatch --parsable` and record its ID under the tag in Redis.
///
/// The job gets JOB_TAG, job_tag and RJ_CONFIG in its environment, so its script can write
/// "$JOB_TAG-$SLURM_JOB_ID:<name>" keys. Only the job ID is printed on stdout. If sbatch
/// succeeded but Redis cannot be written, the ID is still printed, appended to the spool, and
/// the exit status is 75; the next rj-launch or rj-track records it.
#[derive(Debug, Parser)]
#[command(name = "rj-launch", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// Record job IDs submitted some other way instead of running sbatch; `-` reads IDs
    /// (`123`, `123_4`, `123;cluster`) from stdin, separated by white space.
    #[arg(long, num_args = 1.., value_name = "ID", conflicts_with = "sbatch_args")]
    pub record: Option<Vec<String>>,
    /// Arguments for sbatch (put `--` before them when the first one starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SBATCH ARGS"
    )]
    pub sbatch_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.record.is_none() && args.sbatch_args.is_empty() {
        return Err(fail(
            Kind::Usage,
            "nothing to launch: give sbatch arguments (rj-launch -- job.sbatch) or --record ID…",
        ));
    }
    let cfg = args.conn.load()?;
    let keys = Keys::new(args.tag.resolve(&cfg)?);
    let spool_path = spool::path(keys.tag(), &ProcessEnv);

    let jobs = match &args.record {
        Some(ids) => read_ids(ids)?,
        None => Vec::new(),
    };
    // Connect before sbatch: a refused password or a database the server does not have is a
    // configuration mistake to fix before submitting, but an unreachable server must not stop
    // the science; the job is spooled.
    let store = match Store::connect(&cfg) {
        Err(e)
            if [Kind::NoPerm.code(), Kind::Config.code()].contains(&crate::exit::code_for(&e)) =>
        {
            return Err(e)
        }
        other => other,
    };

    let jobs = if args.record.is_some() {
        jobs
    } else {
        let mut env = vec![
            ("JOB_TAG", keys.tag().to_string()),
            ("job_tag", keys.tag().to_string()),
        ];
        if let Some(f) = &cfg.file {
            env.push(("RJ_CONFIG", f.display().to_string()));
        }
        let out = slurm::sbatch(&args.sbatch_args, &env)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let job = slurm::parse_sbatch_output(&text).map_err(|e| {
            fail(
                Kind::DataErr,
                format!("{e}; the job may have been submitted but was not recorded"),
            )
        })?;
        vec![job]
    };

    // The IDs go out first: whatever happens to Redis, the caller has them. A closed stdout
    // (`rj-launch … | true`) must not stop the recording below: the job is in Slurm already.
    let mut stdout = std::io::stdout().lock();
    for j in &jobs {
        let _ = writeln!(stdout, "{}", j.id);
    }
    let _ = stdout.flush();

    let common = common_fields(&args);
    let entries: Vec<spool::Entry> = jobs
        .iter()
        .map(|j| {
            let mut fields = common.clone();
            if let Some(c) = &j.cluster {
                fields.push(("cluster".to_string(), c.clone()));
            }
            spool::Entry {
                id: j.id.clone(),
                fields,
            }
        })
        .collect();
    let recorded = store.and_then(|mut s| {
        match spool::replay(&mut s, &keys, &spool_path) {
            Ok(r) => r.report(keys.tag(), &spool_path),
            Err(e) => cli::warn(&format!("{e:#}")),
        }
        let pairs: Vec<_> = entries
            .iter()
            .map(|e| (e.id.clone(), e.fields.clone()))
            .collect();
        s.record(&keys, &pairs)
    });
    match recorded {
        Ok(already) => {
            for id in already {
                cli::note(&format!(
                    "job {id} was already recorded under {}; left where it is",
                    keys.tag()
                ));
            }
            cli::info(&format!("recorded under tag {}", keys.tag()));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // Not a temporary failure any more: nothing will replay these IDs.
            spool::append(&spool_path, &entries).map_err(|se| {
                fail(
                    Kind::Unavailable,
                    format!(
                        "job(s) {} NOT recorded: Redis failed ({e:#}) and the spool failed too: {se:#}",
                        ids_text(&jobs)
                    ),
                )
            })?;
            Err(fail(
                Kind::TempFail,
                format!(
                    "{e:#}; job(s) {} spooled to {} and will be recorded by the next rj-launch or rj-track",
                    ids_text(&jobs),
                    spool_path.display()
                ),
            ))
        }
    }
}

fn ids_text(jobs: &[Submitted]) -> String {
    jobs.iter()
        .map(|j| j.id.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// IDs from `--record` arguments or, for `-`, stdin. All are checked before anything is written.
fn read_ids(args: &[String]) -> anyhow::Result<Vec<Submitted>> {
    let mut words = Vec::new();
    for a in args {
        if a == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read job IDs from stdin")?;
            words.extend(s.split_whitespace().map(str::to_string));
        } else {
            words.push(a.clone());
        }
    }
    parse_ids(&words)
}

/// The pure part of [`read_ids`], public so that a fuzz target can reach it without stdin.
pub fn parse_ids(words: &[String]) -> anyhow::Result<Vec<Submitted>> {
    if words.is_empty() {
        return Err(fail(
            Kind::DataErr,
            "no job IDs to record (stdin was empty)",
        ));
    }
    let mut jobs: Vec<Submitted> = Vec::with_capacity(words.len());
    for w in words {
        let j = slurm::parse_job_ref(w).map_err(|e| fail(Kind::DataErr, e))?;
        if !jobs.iter().any(|k| k.id == j.id) {
            jobs.push(j);
        }
    }
    Ok(jobs)
}

/// The job hash fields rj-launch writes for every job of this invocation.
fn common_fields(args: &Args) -> Vec<(String, String)> {
    let uid = nix::unistd::getuid();
    let mut f = vec![
        ("submitted".to_string(), super::now_rfc3339()),
        ("host".to_string(), super::hostname()),
        (
            "user".to_string(),
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string()),
        ),
        (
            "cwd".to_string(),
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
    ];
    if args.record.is_none() {
        f.push((
            "sbatch_args".to_string(),
            serde_json::to_string(&args.sbatch_args).unwrap_or_default(),
        ));
    }
    f
}
