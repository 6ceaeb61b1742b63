//! rj-track's command line: its options, signals, the loop of ticks with backoff after Redis
//! errors, and the exit status. The tick itself is [`crate::track`] (ARCHITECTURE.md §7).
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::cli::{self, error, info, note, ConnArgs};
use crate::config::{Config, ProcessEnv};
use crate::keys::Tag;
use crate::track::moves::LineFormat;
use crate::track::query::RealSlurm;
use crate::track::{Settings, Tracker};

pub const EXAMPLES: &str = "\
  rj-track --tag exp1 &
  rj-track --once --tag exp1            # from cron: */2 * * * * rj-track --once -q
  rj-track --all-tags --interval 30s --record-ttl 7d
  rj-track --format json | jq -c 'select(.set == \"FAILED\")'
  rj-track --tag exp1 | while read tag id set exit state; do notify \"$id $set\"; done
";

/// Move the finished Slurm jobs of a tag to the set of their final state.
///
/// rj-track polls Slurm for every job ID in TAG_PENDING_AND_RUNNING and moves each finished job,
/// with SMOVE, to exactly one of TAG_COMPLETED, TAG_FAILED, TAG_TIMEOUT or TAG_CANCELLED, so
/// every ID of TAG_ALL is always in exactly one of the five sets. Run it in the background on a
/// login node (`rj-track &`, or the systemd user unit in share/), or as `rj-track --once` from
/// cron.
///
/// Gentle with Slurm: per tick and cluster, one squeue call for all tracked jobs, one sacct call
/// for the jobs squeue no longer lists, and one `scontrol show job` when accounting is disabled
/// or sacct fails. Never one command per job. On Slurm 23.11.5 and later squeue first asks the
/// controller's job-state cache (`--only-job-state`, IDs and states only), then the full fields
/// in one more squeue for the jobs that finished and for pending jobs whose reason is older than
/// a minute.
///
/// Several clusters: a job submitted with `sbatch -M c` (or SLURM_CLUSTERS=c) is recorded with
/// its cluster, and rj-track asks that cluster about it (`squeue -M c`, `sacct -M c`,
/// `scontrol -M c`); jobs without a cluster are asked of the default one. One tag holds each job
/// ID once, so jobs of clusters whose job IDs overlap need separate tags.
///
/// Final states: COMPLETED goes to COMPLETED; FAILED, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL,
/// DEADLINE and PREEMPTED (not requeued) to FAILED; TIMEOUT to TIMEOUT; CANCELLED and
/// "CANCELLED by <uid>" to CANCELLED. PENDING, RUNNING, SUSPENDED, COMPLETING, CONFIGURING,
/// REQUEUED, RESIZING and states rj does not know stay where they are.
///
/// Preemption: a job preempted with PreemptMode=REQUEUE comes back PENDING with the same ID and
/// stays tracked; its job hash gets restarts (Slurm's restart count) and requeued_at (when
/// rj-track saw the requeue), and it moves when its rerun ends. A job preempted for good
/// (PreemptMode=CANCEL) goes to FAILED with state=PREEMPTED, not to CANCELLED: nobody
/// cancelled it, it did not finish, and a workflow should run it again. rj-track believes
/// PREEMPTED only when squeue no longer lists the job as pending or running, accounting agrees
/// (sacct; the controller alone without accounting), and --preempt-grace has passed since it
/// first saw it so (kept in Redis, so a --once from cron counts too).
///
/// Array jobs: a parent ID finishes when all its tasks have; its set is the worst outcome
/// (FAILED, then TIMEOUT, then CANCELLED, then COMPLETED) and the per-task counts go into its
/// job hash.
///
/// Lost jobs: a job Slurm no longer knows at all (purged, a cluster it was not recorded with) is
/// reported each tick
/// and, after --lost-after, moved to FAILED with state=LOST. Ticks in which Slurm could not
/// answer do not count. Without slurmdbd accounting only the controller knows finished jobs,
/// and only for MinJobAge (300 s by default, see `scontrol show config`): there, keep
/// --interval (or the cron period of --once) well below it.
///
/// Records: on each move the job hash TAG_JOB:<id> gets state, exit_code (always code:signal),
/// start, end, elapsed (always [D-]HH:MM:SS), nodes, partition and name (shown by rj-status
/// --long); stdout and stderr, the job's output files with their patterns (%j, %A, %a, %x, %u)
/// expanded as `scontrol show job` prints them (of an array, its worst task's); restarts when
/// Slurm requeued the job; with accounting (sacct), max_rss (the largest MaxRSS of its steps, in
/// bytes) and cpu_efficiency (TotalCPU / (elapsed × allocated CPUs), e.g. 0.873) where
/// accounting measured them (not with JobAcctGatherType=jobacct_gather/none); and tracked_at
/// and tracked_by (the tick's time and the tracker, host:pid:nonce). --record-ttl expires it.
///
/// While a job is pending its hash gets reason, Slurm's Reason (Priority, Resources,
/// Dependency, …), written when it changes; it stays after the job starts and after the move.
/// A job whose reason is DependencyNeverSatisfied (a job it depends on failed, and Slurm was not
/// told to cancel it: --kill-on-invalid-dep=no or the site's default) will never start: rj-track
/// warns once per job, and with --cancel-never cancels it.
///
/// Events: each move also appends one entry to the Redis stream TAG_EVENTS, in the same script,
/// with the fields job, set, state, exit_code, tracked_at and tracker; follow it with
/// `redis-cli XREAD BLOCK 0 STREAMS TAG_EVENTS '$'`. --events-max bounds it (0: no events).
///
/// Output: each move is one line on stdout, `TAG ID SET EXIT_CODE STATE` (JSON Lines with
/// --format json), for `rj-track | while read …`; messages go to stderr with a timestamp.
///
/// Moves are all or nothing: before it writes, the move script checks the type of every key it
/// touches and (Redis 7.0 and later) that the Redis user may run each command on it, so a job
/// is either moved, recorded, in the event stream and printed, or left as it was. A
/// TAG_EVENTS that is not a stream moves nothing (65). A job whose TAG_JOB:<id> is not a
/// hash stays in TAG_PENDING_AND_RUNNING and is named in one error line per tick while the
/// other jobs move (--once then exits 65).
///
/// Faults: when Redis is down, restarts, is paused, loading, read-only during a failover or out
/// of memory, rj-track keeps running, reconnects with backoff and loses nothing; a move whose
/// reply a dropped connection lost is printed, once, after the reconnect (unless rj-track is
/// stopped first). When slurmctld is down it moves nothing, says so once per tick and retries.
/// Errors that no retry can fix end even the daemon, with one line and the status of the
/// cause, so that systemd shows it failed: 77 for a refused password or permission (NOPERM,
/// also for EVAL), 69 for a server without Lua scripting (EVAL renamed away) or a Redis
/// Cluster node (MOVED), 65 for a tag's set of the wrong type, 78 for a bad configuration.
/// Job IDs that rj-launch spooled while Redis was unreachable are recorded every tick.
///
/// Redis ACL: a restricted user needs +ping +eval +smembers +get +set +del +pexpire +smove
/// +hset +type +hget +xadd (unless --events-max 0) on the tag's keys; +hkeys +hdel +hsetnx once a
/// job is unknown to Slurm or preempted,
/// +expire with --record-ttl, +scan with --all-tags, +sismember +hmget to report a move whose
/// reply was lost, and rj-launch's commands to replay its spool. +info lets it warn about an
/// evicting maxmemory-policy.
///
/// One tracker per tag: the active one holds the lease TAG_TRACKER (SET NX PX, renewed while it
/// works); a second rj-track, on this or another login node, waits as a hot standby and takes
/// over within a few intervals when the first one dies. After each tick the active one writes
/// the tick's figures to the hash TAG_TRACKER:tick: at (unix seconds), duration_ms,
/// slurm_commands, tracked, moved, unknown and owner.
///
/// Signals: SIGTERM and SIGINT finish the tick in progress and exit 0; SIGHUP re-reads the
/// configuration.
#[derive(Debug, Parser)]
#[command(name = "rj-track", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Experiment tag to track; repeatable (default: $JOB_TAG, $job_tag, "job_tag" in
    /// redis.json).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Track every tag that has a TAG_PENDING_AND_RUNNING set (found by SCAN each tick). On a
    /// Redis shared with colleagues this takes over their tags too: list yours with --tag.
    #[arg(long, conflicts_with = "tags")]
    pub all_tags: bool,
    /// Time between ticks.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cli::parse_duration)]
    pub interval: Duration,
    /// Run one tick and exit (for cron).
    #[arg(long)]
    pub once: bool,
    /// Move a job that Slurm no longer knows at all to FAILED (state=LOST) after this long.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = cli::parse_duration)]
    pub lost_after: Duration,
    /// A job Slurm reports PREEMPTED is final (FAILED, state=PREEMPTED) only when squeue no
    /// longer lists it as pending or running, accounting agrees, and it has stayed so this
    /// long: with PreemptMode=REQUEUE Slurm brings it back as PENDING with the same ID, and
    /// rj-track then keeps tracking it and writes restarts and requeued_at into its record.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = cli::parse_duration)]
    pub preempt_grace: Duration,
    /// Expire the job hash TAG_JOB:<id> this long after the job is moved (e.g. 7d).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration)]
    pub record_ttl: Option<Duration>,
    /// Append one entry per move to the event stream TAG_EVENTS (XADD, in the same script as
    /// the move), keeping about this many (MAXLEN ~ N); 0 writes none.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub events_max: u64,
    /// Form of the move lines on stdout.
    #[arg(long, value_enum, default_value_t = MoveFormat::Text)]
    pub format: MoveFormat,
    /// After each tick, write the tags' figures as OpenMetrics text (what `rj-status --format
    /// openmetrics` prints) to this file, replaced atomically: point it into node_exporter's
    /// --collector.textfile.directory, as a file ending in .prom.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Cancel (scancel) the tracked jobs that Slurm says can never start, pending with reason
    /// DependencyNeverSatisfied: one scancel per tick and cluster for all of them. They then end
    /// in CANCELLED with that reason in their record. Off by default: the job stays pending until
    /// someone cancels it or the dependency is changed (scontrol update Dependency=).
    #[arg(long)]
    pub cancel_never: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MoveFormat {
    /// `TAG ID SET EXIT_CODE STATE`, space-separated; STATE last, as it may hold spaces.
    Text,
    /// One JSON object per line (JSON Lines) with the whole record.
    Json,
}

impl MoveFormat {
    fn line_format(self) -> LineFormat {
        match self {
            MoveFormat::Text => LineFormat::Text,
            MoveFormat::Json => LineFormat::Json,
        }
    }
}

impl Args {
    /// What the tracker needs of the options, without clap.
    fn settings(&self) -> Settings {
        Settings {
            all_tags: self.all_tags,
            interval: self.interval,
            once: self.once,
            lost_after: self.lost_after,
            preempt_grace: self.preempt_grace,
            record_ttl: self.record_ttl,
            events_max: self.events_max,
            format: self.format.line_format(),
            metrics_file: self.metrics_file.clone(),
            cancel_never: self.cancel_never,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // rj-track runs for weeks with stderr in a log file: every message carries its time.
    cli::set_timestamps(true);
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;

    let cfg = args.conn.load()?;
    let tags = resolve_tags(&args, &cfg)?;
    let settings = args.settings();
    let mut t = Tracker::new(
        settings.clone(),
        cfg,
        tags.clone(),
        owner(),
        Box::new(RealSlurm),
    );
    let what = if settings.all_tags {
        "every tag".to_string()
    } else {
        tags.iter().map(Tag::as_str).collect::<Vec<_>>().join(", ")
    };
    info(&format!(
        "tracking {what} every {} as {}",
        humantime::format_duration(settings.interval),
        t.owner()
    ));

    let mut out = cli::stdout();
    loop {
        if hup.swap(false, Ordering::Relaxed) {
            reload(&args, &mut t);
        }
        let result = t.tick(&mut out);
        let pause = match result {
            Ok(s) if settings.once => {
                if let Some(e) = s.refusal() {
                    let _ = t.release_all();
                    return Err(e);
                }
                break;
            }
            Ok(s) => {
                for r in &s.refused {
                    error(r);
                }
                t.succeeded();
                settings.interval
            }
            Err(e) if settings.once => {
                let _ = t.release_all();
                return Err(e);
            }
            Err(e) => {
                // A daemon that can never succeed (a refused permission or password, no EVAL,
                // a cluster node, a tag's set of the wrong type) exits with the cause's status,
                // so that systemd shows it failed instead of it retrying for ever. Slurm
                // trouble never comes here: a tick reports it and returns Ok.
                if crate::exit::is_broken_pipe(&e) || !crate::exit::is_transient(&e) {
                    let _ = t.release_all();
                    return Err(e);
                }
                // Redis is gone or failed mid-tick: drop the connection and come back with a
                // growing pause. Nothing is lost: the sets live in Redis and every move is one
                // atomic script.
                let pause = backoff(t.failed(), settings.interval);
                error(&format!(
                    "{e:#}; retrying in {}",
                    humantime::format_duration(pause)
                ));
                pause
            }
        };
        if term.load(Ordering::Relaxed) || !sleep(pause, &term, &hup) {
            break;
        }
    }
    if let Some(e) = t.release_all() {
        return Err(e.context("stopped, but the leases were not given back"));
    }
    info("stopped");
    Ok(ExitCode::SUCCESS)
}

/// This tracker's name in the lease and the records: host:pid:nonce, so that a restarted
/// tracker with the same PID is still another one.
fn owner() -> String {
    let host = match super::hostname() {
        h if h.is_empty() => "unknown-host".to_string(),
        h => h,
    };
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}:{}:{nonce:08x}", std::process::id())
}

/// SIGHUP: read redis.json again, reconnect, and re-resolve the tags.
fn reload(args: &Args, t: &mut Tracker) {
    match args
        .conn
        .load()
        .and_then(|cfg| resolve_tags(args, &cfg).map(|tags| (cfg, tags)))
    {
        Ok((cfg, tags)) => {
            let target = cfg.target.clone();
            t.reconfigure(cfg, tags);
            note(&format!("SIGHUP: configuration re-read; Redis at {target}"));
        }
        Err(e) => error(&format!(
            "SIGHUP: {e:#}; keeping the previous configuration"
        )),
    }
}

/// 1 s, 2 s, 4 s … up to 30 s (or the interval, when that is longer).
fn backoff(failures: u32, interval: Duration) -> Duration {
    let step = Duration::from_secs(1u64 << failures.saturating_sub(1).min(5));
    step.min(interval.max(Duration::from_secs(30)))
}

/// Sleep up to `d`; false when SIGTERM/SIGINT came. A SIGHUP ends the sleep early.
fn sleep(d: Duration, term: &AtomicBool, hup: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if term.load(Ordering::Relaxed) {
            return false;
        }
        if hup.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !term.load(Ordering::Relaxed)
}

fn resolve_tags(args: &Args, cfg: &Config) -> anyhow::Result<Vec<Tag>> {
    if args.all_tags {
        return Ok(Vec::new());
    }
    if args.tags.is_empty() {
        return Ok(vec![cfg.tag(None, &ProcessEnv)?]);
    }
    let mut tags = Vec::new();
    for t in &args.tags {
        let t = cfg.tag(Some(t), &ProcessEnv)?;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_backoff() {
        assert_eq!(
            cli::parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(cli::parse_duration("0s").is_err());
        assert!(cli::parse_duration("soon").is_err());
        assert_eq!(backoff(1, Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(backoff(3, Duration::from_secs(1)), Duration::from_secs(4));
        assert_eq!(backoff(20, Duration::from_secs(1)), Duration::from_secs(30));
    }
}
