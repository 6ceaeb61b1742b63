//! rj-launch: submit a job with sbatch (or take IDs submitted otherwise) and record it.
use std::io::{BufWriter, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{self, ConnArgs, TagArg};
use crate::config::{ProcessEnv, Source};
use crate::exit::{fail, is_transient, Kind};
use crate::jobenv::{self, ExportFrom, UrlEnv};
use crate::keys::{JobId, Keys};
use crate::slurm;
use crate::spool;
use crate::store::{Recordable, Store};

pub const EXAMPLES: &str = "\
  jid=$(rj-launch --tag exp1 -- --time=10 job.sbatch)
  rj-launch -- --array=1-10 job.sbatch
  rj-launch -- --export=NONE job.sbatch     # the job still gets JOB_TAG, job_tag, RJ_CONFIG
  sbatch --parsable job.sbatch | rj-launch --record -
  rj-launch --record 4238610 4238611
";

/// Submit a Slurm job with `sbatch --parsable` and record its ID under the tag in Redis.
///
/// The job gets JOB_TAG, job_tag and RJ_CONFIG in its environment, so its script can write
/// "$JOB_TAG-$SLURM_JOB_ID:<name>" keys. sbatch's --export rule (from its command line, else
/// SBATCH_EXPORT, else the script's #SBATCH lines) is kept, and when it is not ALL these three
/// names are added to it: --export=NONE is run as --export=NONE,JOB_TAG,job_tag,RJ_CONFIG, and
/// nothing else you left out is exported. Slurm treats any such list as it treats NONE (it also
/// loads your login environment on the node), so Slurm 24.11's NIL then behaves like NONE.
///
/// The job finds its server as rj-launch did: a redis.json is passed as RJ_CONFIG (its path, not
/// its content). Settings from --url or REDIS_URL are written to a private redis.json (mode
/// 0600) under $XDG_STATE_HOME/rj/job-config/, passed as RJ_CONFIG, and REDIS_URL is passed on
/// only when it holds no password. slurmctld stores a job's environment with the job (and sites
/// with AccountingStoreFlags=job_env keep it in the accounting database, where sacct --env-vars
/// shows it; scontrol show job does not show it), so no password goes into the job's environment
/// or sbatch's command line: the job reads it from the file, which must be readable where the
/// job runs (a shared home).
///
/// Only the job ID is printed on stdout; other lines sbatch prints there (a site's wrapper) are
/// shown on stderr. If sbatch exits 0 without printing a job ID the exit status is 65, and the
/// job may exist. A job ID on stdout means Slurm accepted the job even when sbatch then fails
/// (sbatch --wait exits with the job's own status): the job is recorded, and rj-launch exits
/// with sbatch's status. If sbatch succeeded but Redis cannot be written, the ID is still printed and
/// appended to the spool, $XDG_STATE_HOME/rj/<tag>.spool. When a retry can fix the cause (server
/// down or paused, a timeout, LOADING, READONLY, OOM, BUSY, a Redis Cluster's slot moving) the
/// exit status is 75 and the next rj-launch or rj-track records the job; otherwise (NOPERM or a
/// refused password, also a cluster node that the user may not ask INFO: 77; a tag key of the
/// wrong type: 65; on a cluster, a tag without a hash tag: 78) the exit status is the cause's,
/// and the spool drains only once the cause is fixed. With --record the same holds for IDs read before
/// Redis refused the connection. Job IDs are stored without leading zeros (00012 as 12); job
/// ID 0 is refused.
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
    /// Append one `recorded` entry per newly recorded job to the stream TAG_EVENTS (fields job,
    /// set, state, exit_code, tracked_at, tracker), in the transaction that records it, trimmed
    /// to about N entries (XADD MAXLEN ~ N); 0 writes no event. Jobs replayed from the spool get
    /// theirs too.
    #[arg(long, value_name = "N", default_value_t = crate::store::EVENTS_MAX)]
    pub events_max: u64,
    /// Arguments for sbatch (put `--` before them when the first one starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SBATCH ARGS"
    )]
    pub sbatch_args: Vec<String>,
}

/// How many "already recorded" notes are shown one by one before a count.
const NOTES: usize = 10;

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

    let recorded_ids = match &args.record {
        Some(ids) => Some(read_ids(ids)?),
        None => None,
    };
    // Connect before sbatch: a refused password or a database the server does not have is a
    // mistake to fix before submitting, but a server that is down must not stop the science;
    // the job is spooled. IDs to record stand for jobs that exist already: they are spooled
    // whatever the failure.
    let store = match Store::connect_tag(&cfg, &keys) {
        Ok(mut s) => {
            s.warn_if_evicting();
            Ok(s)
        }
        Err(e) if recorded_ids.is_none() && !is_transient(&e) => return Err(e),
        Err(e) => Err(e),
    };

    let (jobs, sbatch_status) = match recorded_ids {
        Some(jobs) => (jobs, None),
        None => submit(&args, &cfg, &keys)?,
    };

    // The IDs go out first: whatever happens to Redis, the caller has them. A closed stdout
    // (`rj-launch … | true`) must not stop the recording below: the job is in Slurm already.
    {
        let mut out = BufWriter::with_capacity(1 << 16, cli::stdout());
        for i in 0..jobs.len() {
            if writeln!(out, "{}", jobs.id(i)).is_err() {
                break;
            }
        }
        let _ = out.flush();
    }

    let common = common_fields(&args);
    let mut replay_failed = None;
    let recorded = match store {
        Ok(mut s) => {
            match spool::replay_with(&mut s, &keys, &spool_path, args.events_max) {
                Ok(r) => r.report(keys.tag(), &spool_path),
                Err(e) => replay_failed = Some(e),
            }
            record(&mut s, &keys, args.events_max, &jobs, &common)
        }
        Err(e) => Err((e, 0)),
    };
    let (e, from) = match recorded {
        Ok(already) => {
            // A replay that failed while recording worked is worth a warning; when both
            // failed, the error below says it all once.
            if let Some(e) = replay_failed {
                cli::warn(&format!("{e:#}"));
            }
            for id in already.iter().take(NOTES) {
                cli::note(&format!(
                    "job {id} was already recorded under {}; left where it is",
                    keys.tag()
                ));
            }
            if already.len() > NOTES {
                cli::note(&format!(
                    "… and {} more jobs were already recorded under {}; left where they are",
                    already.len() - NOTES,
                    keys.tag()
                ));
            }
            cli::info(&format!("recorded under tag {}", keys.tag()));
            return Ok(ExitCode::from(sbatch_status.unwrap_or(0)));
        }
        Err(failed) => failed,
    };
    // Jobs before `from` are recorded; the rest go to the spool, so that none is lost.
    let unrecorded = jobs.ids_text(from);
    spool::append(&spool_path, (from..jobs.len()).map(|i| jobs.entry(i, &common))).map_err(
        |se| {
            fail(
                Kind::Unavailable,
                format!(
                    "job(s) {unrecorded} NOT recorded: Redis failed ({e:#}) and the spool failed too: {se:#}"
                ),
            )
        },
    )?;
    let spooled = spool_path.display();
    if is_transient(&e) {
        return Err(fail(
            Kind::TempFail,
            format!(
                "{e:#}; job(s) {unrecorded} spooled to {spooled} and will be recorded by the next rj-launch or rj-track"
            ),
        ));
    }
    Err(fail(
        crate::exit::kind_of(&e).unwrap_or(Kind::Unavailable),
        format!(
            "{e:#}; job(s) {unrecorded} spooled to {spooled}, but a retry cannot fix this: the spool will not drain until it is fixed"
        ),
    ))
}

/// Run sbatch so that the job gets the tag and its server, and return the job it submitted.
/// The submitted job, and sbatch's own exit status when it printed a job ID and still failed
/// (`sbatch --wait` ends with the job's status).
fn submit(
    args: &Args,
    cfg: &crate::config::Config,
    keys: &Keys,
) -> anyhow::Result<(Jobs, Option<u8>)> {
    let url = match cfg.source {
        Source::UrlOption => args.conn.url.clone(),
        Source::UrlEnv => std::env::var("REDIS_URL").ok(),
        _ => None,
    };
    let server = jobenv::server_env(cfg, url.as_deref(), &ProcessEnv)?;
    let tag = keys.tag().to_string();
    let mut env = vec![("JOB_TAG", tag.clone()), ("job_tag", tag)];
    let mut names = vec!["JOB_TAG", "job_tag"];
    if let Some(f) = &server.rj_config {
        env.push(("RJ_CONFIG", f.display().to_string()));
        names.push("RJ_CONFIG");
    }
    let mut unset = Vec::new();
    match &server.redis_url {
        UrlEnv::Keep => {}
        UrlEnv::Set(u) => env.push(("REDIS_URL", u.clone())),
        UrlEnv::Remove => unset.push("REDIS_URL"),
    }
    let sbatch_export = std::env::var_os("SBATCH_EXPORT").map(|v| v.to_string_lossy().into_owned());
    let sub = jobenv::submission(
        &args.sbatch_args,
        sbatch_export,
        &names,
        |word| {
            std::fs::read(jobenv::script_path(word, &ProcessEnv))
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        },
        || {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).map_err(|e| {
                fail(
                    Kind::DataErr,
                    format!("cannot read the job script from stdin: {e}"),
                )
            })?;
            Ok(b)
        },
    )?;
    if let Some((was, from, now)) = &sub.widened {
        let msg = format!("sbatch --export={was} (from {from}) is run as --export={now}");
        if split_is_nil(was) {
            cli::note(&format!(
                "{msg}; Slurm treats such a list as NONE, so it loads your login environment on the node"
            ));
        } else {
            cli::info(&msg);
        }
        if *from == ExportFrom::Script {
            cli::info("the script's #SBATCH --export is overridden on sbatch's command line");
        }
    }
    let out = slurm::sbatch(&sub.args, &env, &unset, sub.stdin)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = slurm::parse_sbatch_output(&text).map_err(|e| {
        fail(
            Kind::DataErr,
            format!(
                "{e}; sbatch exited 0, so the job may have been submitted and is NOT recorded: \
                 look for it with squeue --me and record it with rj-launch --record ID"
            ),
        )
    })?;
    for line in &parsed.other {
        cli::note(&format!("sbatch said: {line}"));
    }
    let mut jobs = Jobs::default();
    let id = parsed
        .job
        .id
        .parse::<JobId>()
        .map_err(|e| fail(Kind::DataErr, e))?;
    jobs.push(id, parsed.job.cluster.as_deref());
    let status = match out.status.code() {
        _ if out.status.success() => None,
        Some(c) => Some(u8::try_from(c).unwrap_or(1)),
        None => Some(1),
    };
    if let Some(c) = status {
        cli::warn(&format!(
            "sbatch exited {c} after accepting job {} (with --wait that is the job's own \
             status); the job is recorded, and rj-launch exits {c} too",
            parsed.job.id
        ));
    }
    Ok((jobs, status))
}

/// `NIL` (Slurm 24.11: only SLURM_* variables, without the login environment NONE loads).
fn split_is_nil(spec: &str) -> bool {
    spec.trim().eq_ignore_ascii_case("NIL")
}

/// Record the jobs in transactions of [`spool::RECORD_BATCH`], then wait for the replicas the
/// configuration asks for; the IDs already recorded come back. On failure: the error and the index of the first job that may not be recorded (all
/// before it are).
fn record(
    store: &mut Store,
    keys: &Keys,
    events_max: u64,
    jobs: &Jobs,
    common: &[(String, String)],
) -> Result<Vec<String>, (anyhow::Error, usize)> {
    let clusters: Vec<(String, String)> = jobs
        .clusters
        .iter()
        .map(|c| ("cluster".to_string(), c.clone()))
        .collect();
    // On a Redis Cluster the transaction goes to the master of the tag's slot.
    store.route(keys).map_err(|e| (e, 0))?;
    let already = store.record_jobs(
        keys,
        events_max,
        &ToRecord {
            jobs,
            common,
            clusters: &clusters,
        },
    )?;
    // With "min_replicas_acked", a write the replicas did not acknowledge could vanish in a
    // failover: spool every job (replay is idempotent, a job the new master has stays where
    // it is) rather than report it recorded.
    store.wait_replicas().map_err(|e| (e, 0))?;
    Ok(already)
}

/// The jobs of one invocation as [`Store::record_jobs`] takes them: the fields every job shares,
/// then its cluster.
struct ToRecord<'a> {
    jobs: &'a Jobs,
    common: &'a [(String, String)],
    clusters: &'a [(String, String)],
}

impl Recordable for ToRecord<'_> {
    fn len(&self) -> usize {
        self.jobs.len()
    }
    fn id(&self, i: usize) -> String {
        self.jobs.id(i).to_string()
    }
    fn fields(&self, i: usize) -> [&[(String, String)]; 2] {
        let own = match self.jobs.ids[i].1 {
            0 => &[][..],
            c => std::slice::from_ref(&self.clusters[c as usize - 1]),
        };
        [self.common, own]
    }
}

/// The jobs of one invocation, in the order given, each once. Compact, because `--record -`
/// may bring millions: an ID and the index of its cluster among the few distinct names.
#[derive(Debug, Default)]
pub struct Jobs {
    /// (ID, 0 for no cluster or 1 + index into `clusters`).
    ids: Vec<(JobId, u32)>,
    clusters: Vec<String>,
}

impl Jobs {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, i: usize) -> JobId {
        self.ids[i].0
    }

    pub fn cluster(&self, i: usize) -> Option<&str> {
        match self.ids[i].1 {
            0 => None,
            c => Some(self.clusters[c as usize - 1].as_str()),
        }
    }

    fn push(&mut self, id: JobId, cluster: Option<&str>) {
        let c = match cluster {
            None => 0,
            Some(name) => match self.clusters.iter().position(|c| c == name) {
                Some(i) => i + 1,
                None => {
                    self.clusters.push(name.to_string());
                    self.clusters.len()
                }
            },
        };
        self.ids.push((id, c as u32));
    }

    /// Keep the first of each ID, in order. Sorting indices rather than hashing IDs: a few
    /// bytes per ID instead of a hash table twice the size of the list.
    fn dedup(&mut self) {
        let ids = &self.ids;
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| ids[a as usize].0.cmp(&ids[b as usize].0).then(a.cmp(&b)));
        let mut keep = vec![false; ids.len()];
        for run in order.chunk_by(|a, b| ids[*a as usize].0 == ids[*b as usize].0) {
            keep[run[0] as usize] = true;
        }
        let mut i = 0;
        self.ids.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }

    /// The spool entry (and job hash) of job `i`.
    fn entry(&self, i: usize, common: &[(String, String)]) -> spool::Entry {
        let mut fields = common.to_vec();
        if let Some(c) = self.cluster(i) {
            fields.push(("cluster".to_string(), c.to_string()));
        }
        spool::Entry {
            id: self.id(i).to_string(),
            fields,
        }
    }

    /// The IDs from `from` on, for a one-line message: a few, then how many more.
    fn ids_text(&self, from: usize) -> String {
        const SHOWN: usize = 5;
        let n = self.len().saturating_sub(from);
        let mut s = (from..self.len())
            .take(SHOWN)
            .map(|i| self.id(i).to_string())
            .collect::<Vec<_>>()
            .join(" ");
        if n > SHOWN {
            s.push_str(&format!(" … ({} more)", n - SHOWN));
        }
        s
    }
}

/// IDs from `--record` arguments or, for `-`, stdin; all are checked before anything is written.
fn read_ids(args: &[String]) -> anyhow::Result<Jobs> {
    let mut input = Vec::new();
    if args.iter().any(|a| a == "-") {
        std::io::stdin().read_to_end(&mut input).map_err(|e| {
            fail(
                Kind::DataErr,
                format!("cannot read job IDs from stdin: {e}"),
            )
        })?;
    }
    let stdin_words = || {
        input
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
    };
    let mut words: Vec<&[u8]> = Vec::new();
    for a in args {
        if a == "-" {
            words.extend(stdin_words());
        } else {
            words.push(a.as_bytes());
        }
    }
    parse_ids(&words)
}

/// The jobs of `--record` words (`123`, `123_4`, `123;cluster`), each once in the order given,
/// IDs canonical. Pure, for the tests and the fuzz target.
pub fn parse_ids(words: &[&[u8]]) -> anyhow::Result<Jobs> {
    let mut jobs = Jobs::default();
    for word in words {
        let text = std::str::from_utf8(word).map_err(|_| {
            fail(
                Kind::DataErr,
                format!(
                    "{:?} is not a Slurm job ID (expected 123 or 123_4)",
                    String::from_utf8_lossy(word)
                ),
            )
        })?;
        let (id, cluster) = slurm::parse_job_word(text).map_err(|e| fail(Kind::DataErr, e))?;
        jobs.push(id, cluster);
    }
    if jobs.is_empty() {
        return Err(fail(
            Kind::DataErr,
            "no job IDs to record (stdin was empty)",
        ));
    }
    jobs.dedup();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(words: &[&str]) -> Jobs {
        let mut j = Jobs::default();
        for w in words {
            let (id, c) = slurm::parse_job_word(w).unwrap();
            j.push(id, c);
        }
        j.dedup();
        j
    }

    #[test]
    fn one_job_once_in_the_order_given_first_cluster_wins() {
        let j = jobs(&["12", "9", "00012", "7_3", "7_03;b", "12;a", "5;a", "9"]);
        let ids: Vec<String> = (0..j.len()).map(|i| j.id(i).to_string()).collect();
        assert_eq!(ids, ["12", "9", "7_3", "5"]);
        assert_eq!(j.cluster(0), None);
        assert_eq!(j.cluster(3), Some("a"));
        assert_eq!(j.clusters, ["b", "a"]);
        assert_eq!(j.entry(3, &[]).fields, [("cluster".into(), "a".into())]);
    }

    #[test]
    fn long_id_lists_are_shortened_in_messages() {
        let words: Vec<String> = (1..=8).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let j = jobs(&refs);
        assert_eq!(j.ids_text(0), "1 2 3 4 5 … (3 more)");
        assert_eq!(j.ids_text(6), "7 8");
    }

    #[test]
    fn nil_is_recognised() {
        assert!(split_is_nil("nil"));
        assert!(!split_is_nil("NONE"));
    }
}
