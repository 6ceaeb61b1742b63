//! rj-put: a job writes its own result keys `T-<job>:<name>`, and loses none when Redis is away.
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::{self, ConnArgs, TagArg};
use crate::config::{Config, Env, ProcessEnv};
use crate::exit::{self, fail, Kind};
use crate::keys::{self, JobId, Keys};
use crate::results_spool::{self, Op};
use crate::store::Store;

pub const EXAMPLES: &str = "\
  rj-put loss 0.25
  rj-put summary.json - < summary.json
  rj-put --hash result loss=0.25 steps=100
  rj-put --push events started
  python train.py | rj-put --lines log
  rj-put --tag exp1 --job 4238610_3 note 'rerun with seed 2'
";

/// `--lines` sends a batch when it holds this many lines or bytes, or when its first line is
/// this old: a chatty program costs one round trip per batch, and a quiet one's lines still
/// show within a fraction of a second.
pub const BATCH_LINES: usize = 10_000;
pub const BATCH_BYTES: usize = 1 << 20;
pub const FLUSH_EVERY: Duration = Duration::from_millis(150);
/// While Redis is away each batch becomes a spool file: fewer, bigger ones (a day-long run
/// through an hour-long outage leaves hundreds of files, not tens of thousands).
pub const SPOOL_EVERY: Duration = Duration::from_secs(5);

/// stdin is read by a thread in chunks of this size, at most this many chunks ahead of the
/// writer: the program writing into the pipe is not held up by a Redis round trip, and memory
/// stays bounded (about 1 MiB ahead, one batch, and the longest line).
const CHUNK: usize = 64 * 1024;
const CHUNKS_AHEAD: usize = 16;

/// Backoff between attempts while Redis is away.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Write a result of this Slurm job into Redis, as the key TAG-JOB:NAME.
///
/// `NAME VALUE` sets a string (`NAME -` reads the value from stdin, any bytes); --hash sets
/// fields of a hash; --push appends values to a list; --lines appends every line of stdin to a
/// list as the lines come, one round trip per batch (10,000 lines, 1 MiB, or 150 ms).
///
/// The job is --job, else the array task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} inside a job
/// array (so that rj-last of the array shows it), else $SLURM_JOB_ID. The tag and the server
/// come as for every rj tool; rj-launch puts JOB_TAG and RJ_CONFIG into the job. A NAME may not
/// be empty, start with `:`, or hold control characters or the glob characters * ? [ ] \.
///
/// Nothing is lost: a write Redis cannot take now (refused, reset, timed out, loading, read-only
/// during a failover, out of memory) goes at once to the results spool,
/// ~/.local/state/rj/TAG.results/, and is retried with backoff for --retry-for (not when
/// earlier writes already wait there: Redis was away for them too). If Redis is
/// still away then, rj-put says where the writes are and exits 75; the next rj-put or rj-track
/// of the tag replays them, each exactly once. A refusal no retry can fix (a key of another
/// type: 65; a permission: 77) is spooled too and exits with its own status; the spool is
/// replayed once the cause is fixed. SIGTERM (Slurm's time limit) or SIGINT: what was read is
/// written or spooled, then rj-put stops.
#[derive(Debug, Parser)]
#[command(name = "rj-put", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
#[command(group = clap::ArgGroup::new("mode").args(["hash", "push", "lines"]))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// Write the keys of this job (4238610, or 4238610_3 for an array task) instead of the job
    /// rj-put runs in: from a login node, or for another job of the tag.
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,
    /// HSET: the VALUEs are FIELD=VALUE pairs, split at the first `=`.
    #[arg(long)]
    pub hash: bool,
    /// RPUSH: append the VALUEs to the list NAME, in order.
    #[arg(long)]
    pub push: bool,
    /// RPUSH every line of stdin, without its newline, to the list NAME, as the lines come.
    #[arg(long)]
    pub lines: bool,
    /// How long to retry while Redis cannot be reached before leaving the writes in the spool
    /// (0, 30s, 5m); with --lines, counted from the first failure and spent at the end of input.
    /// A site or a job script can set it once in the environment.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        env = "RJ_PUT_RETRY_FOR",
        value_parser = parse_retry
    )]
    pub retry_for: Duration,
    /// The key name: the key written is TAG-JOB:NAME.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The value (`-`: stdin); with --hash FIELD=VALUE pairs; with --push the values. Negative
    /// numbers are values; other values that start with `-` go after `--`.
    #[arg(
        value_name = "VALUE",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(OsString)
    )]
    pub values: Vec<OsString>,
}

/// A humantime duration that may be zero (spool at the first failure).
fn parse_retry(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 0, 30s, 5m)"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Set,
    Hash,
    Push,
    Lines,
}

impl Mode {
    fn of(args: &Args) -> Mode {
        if args.hash {
            Mode::Hash
        } else if args.push {
            Mode::Push
        } else if args.lines {
            Mode::Lines
        } else {
            Mode::Set
        }
    }
}

/// The job whose keys rj-put writes: `--job`, else the array task of the environment, else
/// `$SLURM_JOB_ID`. IDs are normalised as Slurm prints them (`007` is job 7).
pub fn job_id(flag: Option<&str>, env: &dyn Env) -> anyhow::Result<String> {
    if let Some(j) = flag {
        return j
            .parse::<JobId>()
            .map(|j| j.to_string())
            .map_err(|e| fail(Kind::Usage, format!("--job: {e}")));
    }
    let from_env = |id: String, from: &str| {
        id.parse::<JobId>().map(|j| j.to_string()).map_err(|e| {
            fail(
                Kind::Config,
                format!("{from} is {id:?}, not a Slurm job ID: {e}"),
            )
        })
    };
    // In an array task SLURM_JOB_ID is the task's own number; the ledger knows the task as
    // <array>_<task>, which rj-last of the array shows.
    if let (Some(array), Some(task)) = (
        env.var("SLURM_ARRAY_JOB_ID"),
        env.var("SLURM_ARRAY_TASK_ID"),
    ) {
        return from_env(
            format!("{array}_{task}"),
            "SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID",
        );
    }
    if let Some(id) = env.var("SLURM_JOB_ID") {
        return from_env(id, "SLURM_JOB_ID");
    }
    Err(fail(
        Kind::Usage,
        "no job to write for: not inside a Slurm job (SLURM_JOB_ID is not set); name one with --job ID",
    ))
}

/// Check the VALUEs for the mode before anything is read or connected.
fn check_values(mode: Mode, values: &[OsString]) -> anyhow::Result<()> {
    let usage = |m: &str| Err(fail(Kind::Usage, m.to_string()));
    match (mode, values.len()) {
        (Mode::Set, 0) => usage("a VALUE is missing (or `-` to read it from stdin)"),
        (Mode::Set, 1) => Ok(()),
        (Mode::Set, n) => usage(&format!(
            "{n} VALUEs for one string; quote a value that holds spaces, or use --push for a list"
        )),
        (Mode::Hash, 0) => usage("--hash needs at least one FIELD=VALUE"),
        (Mode::Hash, _) => values.iter().try_for_each(|v| field_value(v).map(|_| ())),
        (Mode::Push, 0) => usage("--push needs at least one VALUE"),
        (Mode::Lines, 0) | (Mode::Push, _) => Ok(()),
        (Mode::Lines, _) => usage("--lines reads the values from stdin; give NAME only"),
    }
}

/// `FIELD=VALUE` as bytes, split at the first `=`; the field may not be empty.
fn field_value(v: &OsString) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let b = v.as_bytes();
    match b.iter().position(|c| *c == b'=') {
        Some(i) if i > 0 => Ok((b[..i].to_vec(), b[i + 1..].to_vec())),
        _ => Err(fail(
            Kind::Usage,
            format!("--hash wants FIELD=VALUE, not {:?}", v.to_string_lossy()),
        )),
    }
}

/// The write of a one-shot mode; `stdin` is read only for `NAME -`.
fn build_op(
    mode: Mode,
    key: String,
    values: &[OsString],
    stdin: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> anyhow::Result<Op> {
    Ok(match mode {
        Mode::Set if values[0] == "-" => Op::Set {
            key,
            value: stdin().context("cannot read the value from stdin")?,
        },
        Mode::Set => Op::Set {
            key,
            value: values[0].as_bytes().to_vec(),
        },
        Mode::Hash => Op::HSet {
            key,
            fields: values.iter().map(field_value).collect::<Result<_, _>>()?,
        },
        Mode::Push => Op::RPush {
            key,
            values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        },
        Mode::Lines => unreachable!("--lines streams"),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mode = Mode::of(&args);
    keys::check_name(&args.name).map_err(|e| fail(Kind::Usage, e))?;
    check_values(mode, &args.values)?;
    let job = job_id(args.job.as_deref(), &ProcessEnv)?;
    let cfg = args.conn.load()?;
    let keys = Keys::new(args.tag.resolve(&cfg)?);
    let key = keys.data_key(&job, &args.name);
    // The value is read before connecting (a slow producer holds no connection open) and
    // before SIGINT is caught (Ctrl-C still ends a `rj-put NAME -` waiting on a terminal).
    let op = match mode {
        Mode::Lines => None,
        _ => Some(build_op(mode, key.clone(), &args.values, || {
            let mut v = Vec::new();
            std::io::stdin().lock().read_to_end(&mut v)?;
            Ok(v)
        })?),
    };
    let signals = Signals::register()?;
    let mut sink = Sink {
        cfg: &cfg,
        keys: &keys,
        dir: results_spool::dir(keys.tag(), &ProcessEnv),
        retry_for: args.retry_for,
        signals: &signals,
        store: None,
        down_since: None,
        last_error: None,
        permanent: None,
        next_try: Instant::now(),
        backoff: FIRST_BACKOFF,
        spooled_files: Vec::new(),
        spooled_values: 0,
    };
    let Some(op) = op else {
        return put_lines(&mut sink, &key, &signals);
    };
    let what = op.describe();
    sink.try_connect();
    sink.put(op)?;
    sink.finish(&what)?;
    cli::info(&format!("{what}: done"));
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT, caught so that what was read is written or spooled before rj-put stops.
struct Signals(Arc<AtomicUsize>);

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        let caught = Arc::new(AtomicUsize::new(0));
        for sig in [SIGTERM, SIGINT] {
            signal_hook::flag::register_usize(sig, caught.clone(), sig as usize)
                .context("cannot catch SIGTERM and SIGINT")?;
        }
        Ok(Signals(caught))
    }

    fn caught(&self) -> Option<&'static str> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            s if s == SIGTERM as usize => Some("SIGTERM"),
            _ => Some("SIGINT"),
        }
    }

    /// Sleep for `d`, or less when a signal comes.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while self.caught().is_none() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Where writes go: Redis while it takes them, the results spool from the first failure until a
/// replay has applied what was spooled (so a list keeps its order).
struct Sink<'a> {
    cfg: &'a Config,
    keys: &'a Keys,
    dir: PathBuf,
    retry_for: Duration,
    signals: &'a Signals,
    /// Connected, with the spool replayed: writes go to Redis.
    store: Option<Store>,
    /// When Redis first failed, its last temporary failure, and when to try again.
    down_since: Option<Instant>,
    last_error: Option<anyhow::Error>,
    next_try: Instant,
    backoff: Duration,
    /// A failure no retry fixes: everything from then on is spooled, and rj-put exits with its
    /// status.
    permanent: Option<anyhow::Error>,
    spooled_files: Vec<PathBuf>,
    spooled_values: usize,
}

impl Sink<'_> {
    /// Connect and replay the spool (older writes first); false (the failure noted) if Redis
    /// cannot be used now.
    fn try_connect(&mut self) -> bool {
        let connected = Store::connect_tag(self.cfg, self.keys).and_then(|mut store| {
            store.warn_if_evicting();
            match results_spool::replay(&mut store, self.keys, &self.dir) {
                Ok(r) => r.report(self.keys.tag(), &self.dir),
                Err(e) if exit::is_transient(&e) => return Err(e),
                // The spool's own trouble (a file that cannot be deleted) must not stop the
                // writes of this job.
                Err(e) => cli::warn(&format!("{e:#}")),
            }
            Ok(store)
        });
        match connected {
            Ok(store) => {
                self.store = Some(store);
                self.down_since = None;
                self.backoff = FIRST_BACKOFF;
                true
            }
            Err(e) => {
                self.failed(e);
                false
            }
        }
    }

    fn failed(&mut self, e: anyhow::Error) {
        self.store = None;
        if !exit::is_transient(&e) {
            self.permanent = Some(e);
            return;
        }
        let now = Instant::now();
        // Writes already waiting in the spool mean Redis was away for an earlier rj-put too,
        // which waited its --retry-for: a job that writes ten keys must not wait ten times.
        if self.down_since.is_none()
            && results_spool::pending(&self.dir).is_ok_and(|p| !p.is_empty())
        {
            cli::info("earlier writes wait in the results spool: no retrying, this one joins them");
            self.retry_for = Duration::ZERO;
        }
        if self.down_since.is_none() && !self.retry_for.is_zero() {
            cli::note(&format!(
                "{e:#}; spooling to {} and retrying for up to {}",
                self.dir.display(),
                humantime::format_duration(self.retry_for)
            ));
        } else {
            cli::info(&format!("{e:#}"));
        }
        self.down_since.get_or_insert(now);
        self.next_try = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.last_error = Some(e);
    }

    /// Write to Redis, or to the spool when Redis failed and has not taken the spool back yet.
    /// An error only when the spool cannot be written either.
    fn put(&mut self, op: Op) -> anyhow::Result<()> {
        if self.store.is_none() && self.permanent.is_none() && Instant::now() >= self.next_try {
            self.try_connect();
        }
        if let Some(store) = &mut self.store {
            match store.query::<()>(&op.cmd(), op.key()) {
                Ok(()) => return Ok(()),
                Err(e) => self.failed(e),
            }
        }
        let n = match &op {
            Op::RPush { values, .. } => values.len(),
            _ => 1,
        };
        match results_spool::write(&self.dir, std::slice::from_ref(&op)) {
            Ok(file) => {
                cli::info(&format!("{} spooled to {}", op.describe(), file.display()));
                self.spooled_files.push(file);
                self.spooled_values += n;
                Ok(())
            }
            Err(se) => {
                let cause = self.permanent.as_ref().or(self.last_error.as_ref());
                let kind = cause.map_or(Kind::Unavailable, |e| kind_of(e, Kind::Unavailable));
                Err(fail(
                    kind,
                    format!(
                        "{} NOT written: Redis failed ({}) and the results spool failed too: {se:#}",
                        op.describe(),
                        cause.map(|e| format!("{e:#}")).unwrap_or_default()
                    ),
                ))
            }
        }
    }

    /// Retry until Redis has taken back what was spooled, for --retry-for from the first
    /// failure (no longer once a signal came); the error says where the writes wait.
    fn finish(&mut self, what: &str) -> anyhow::Result<()> {
        if let Some(down) = self.down_since {
            let deadline = down + self.retry_for;
            while self.store.is_none() && self.permanent.is_none() {
                let now = Instant::now();
                if now >= deadline || self.signals.caught().is_some() {
                    break;
                }
                self.signals
                    .sleep(self.next_try.min(deadline).saturating_duration_since(now));
                if self.signals.caught().is_some() {
                    break;
                }
                self.try_connect();
            }
        }
        let place = match self.spooled_files.as_slice() {
            [one] => one.display().to_string(),
            _ => self.dir.display().to_string(),
        };
        if let Some(e) = &self.permanent {
            return Err(fail(
                kind_of(e, Kind::Unavailable),
                format!(
                    "{e:#}; {what} spooled to {place}, to be replayed by the next rj-put or \
                     rj-track of tag {} once that is fixed",
                    self.keys.tag()
                ),
            ));
        }
        if self.store.is_none() {
            let e = self
                .last_error
                .as_ref()
                .map(|e| format!("{e:#}"))
                .unwrap_or_else(|| "Redis unreachable".into());
            return Err(fail(
                Kind::TempFail,
                format!(
                    "{e}; {what} spooled to {place}; the next rj-put or rj-track of tag {} \
                     replays it",
                    self.keys.tag()
                ),
            ));
        }
        Ok(())
    }
}

/// The exit kind of an error's outermost typed cause, for a new message about the same
/// failure; `default` for an error without one.
fn kind_of(e: &anyhow::Error, default: Kind) -> Kind {
    exit::kind_of(e).unwrap_or(default)
}

/// Lines read from stdin and not written yet.
#[derive(Default)]
struct Batch {
    lines: Vec<Vec<u8>>,
    bytes: usize,
    since: Option<Instant>,
}

impl Batch {
    fn push(&mut self, line: Vec<u8>) {
        self.bytes += line.len();
        self.lines.push(line);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Full, or its first line older than `every`.
    fn ready(&self, every: Duration) -> bool {
        self.lines.len() >= BATCH_LINES
            || self.bytes >= BATCH_BYTES
            || self.since.is_some_and(|s| s.elapsed() >= every)
    }

    fn take(&mut self, key: &str) -> Option<Op> {
        self.bytes = 0;
        self.since = None;
        (!self.lines.is_empty()).then(|| Op::RPush {
            key: key.to_string(),
            values: std::mem::take(&mut self.lines),
        })
    }
}

/// Split a chunk of stdin into lines; the unfinished last one stays in `partial`.
fn split_lines(chunk: &[u8], partial: &mut Vec<u8>, batch: &mut Batch) {
    for piece in chunk.split_inclusive(|b| *b == b'\n') {
        match piece.split_last() {
            Some((b'\n', line)) if partial.is_empty() => batch.push(line.to_vec()),
            Some((b'\n', line)) => {
                partial.extend_from_slice(line);
                batch.push(std::mem::take(partial));
            }
            _ => partial.extend_from_slice(piece),
        }
    }
}

/// `--lines`: stream stdin into the list `key`, batch by batch.
fn put_lines(sink: &mut Sink, key: &str, signals: &Signals) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(CHUNKS_AHEAD);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0u8; CHUNK];
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    sink.try_connect();
    let mut batch = Batch::default();
    let mut partial = Vec::new();
    let mut read = 0usize;
    let mut read_error = None;
    loop {
        if signals.caught().is_some() {
            // What the reader has taken from the pipe is ours to keep.
            while let Ok(Ok(chunk)) = rx.try_recv() {
                split_lines(&chunk, &mut partial, &mut batch);
            }
            break;
        }
        let every = if sink.store.is_some() {
            FLUSH_EVERY
        } else {
            SPOOL_EVERY
        };
        let wait = batch.since.map_or(every, |s| {
            (s + every).saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait.min(Duration::from_millis(100))) {
            Ok(Ok(chunk)) => split_lines(&chunk, &mut partial, &mut batch),
            Ok(Err(e)) => {
                read_error = Some(e);
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if batch.ready(every) {
            read += batch.lines.len();
            if let Some(op) = batch.take(key) {
                sink.put(op)?;
            }
        }
    }
    if !partial.is_empty() {
        batch.push(std::mem::take(&mut partial));
    }
    read += batch.lines.len();
    if let Some(op) = batch.take(key) {
        sink.put(op)?;
    }
    let what = format!("{} line(s) of {key}", sink.spooled_values);
    sink.finish(&what)?;
    if let Some(e) = read_error {
        return Err(anyhow::Error::new(e).context(format!(
            "cannot read stdin; the {read} line(s) read before were pushed to {key}"
        )));
    }
    if let Some(sig) = signals.caught() {
        return Err(fail(
            Kind::Interrupted,
            format!(
                "stopped by {sig}: the {read} line(s) read were pushed to {key}; the rest of \
                 stdin was not read"
            ),
        ));
    }
    cli::info(&format!("pushed {read} line(s) to {key}"));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_job_is_the_flag_then_the_array_task_then_the_job() {
        let env: HashMap<&str, &str> = [
            ("SLURM_JOB_ID", "4238612"),
            ("SLURM_ARRAY_JOB_ID", "4238610"),
            ("SLURM_ARRAY_TASK_ID", "2"),
        ]
        .into();
        assert_eq!(job_id(None, &env).unwrap(), "4238610_2");
        assert_eq!(job_id(Some("77"), &env).unwrap(), "77");
        assert_eq!(job_id(Some("007_03"), &env).unwrap(), "7_3");
        let env: HashMap<&str, &str> = [("SLURM_JOB_ID", "4238612")].into();
        assert_eq!(job_id(None, &env).unwrap(), "4238612");
        let env: HashMap<&str, &str> = [("SLURM_ARRAY_TASK_ID", "2")].into();
        let e = job_id(None, &env).unwrap_err();
        assert_eq!(exit::code_for(&e), 2);
        assert!(e.to_string().contains("--job"), "{e}");
        let e = job_id(Some("12a"), &HashMap::new()).unwrap_err();
        assert_eq!(exit::code_for(&e), 2);
        let env: HashMap<&str, &str> = [("SLURM_JOB_ID", "x")].into();
        let e = job_id(None, &env).unwrap_err();
        assert_eq!(exit::code_for(&e), 78);
        assert!(e.to_string().contains("SLURM_JOB_ID"), "{e}");
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn values_fit_the_mode() {
        assert!(check_values(Mode::Set, &os(&["1"])).is_ok());
        for (mode, v) in [
            (Mode::Set, &[][..]),
            (Mode::Set, &["a", "b"][..]),
            (Mode::Hash, &[][..]),
            (Mode::Hash, &["a=1", "b"][..]),
            (Mode::Hash, &["=1"][..]),
            (Mode::Push, &[][..]),
            (Mode::Lines, &["x"][..]),
        ] {
            let e = check_values(mode, &os(v)).unwrap_err();
            assert_eq!(exit::code_for(&e), 2, "{mode:?} {v:?}");
        }
    }

    #[test]
    fn ops_carry_the_bytes() {
        let no_stdin = || -> std::io::Result<Vec<u8>> { panic!("stdin read") };
        let op = build_op(Mode::Hash, "k".into(), &os(&["a=1=2", "b="]), no_stdin).unwrap();
        assert_eq!(
            op,
            Op::HSet {
                key: "k".into(),
                fields: vec![
                    (b"a".to_vec(), b"1=2".to_vec()),
                    (b"b".to_vec(), b"".to_vec())
                ]
            }
        );
        let op = build_op(
            Mode::Set,
            "k".into(),
            &os(&["-"]),
            || Ok(b"\0\xff".to_vec()),
        )
        .unwrap();
        assert_eq!(
            op,
            Op::Set {
                key: "k".into(),
                value: b"\0\xff".to_vec()
            }
        );
        let op = build_op(Mode::Push, "k".into(), &os(&["-", "x"]), no_stdin).unwrap();
        assert_eq!(
            op,
            Op::RPush {
                key: "k".into(),
                values: vec![b"-".to_vec(), b"x".to_vec()]
            }
        );
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut batch = Batch::default();
        let mut partial = Vec::new();
        for chunk in [&b"a\nbc"[..], b"d\n\n", b"e", b"f\ng"] {
            split_lines(chunk, &mut partial, &mut batch);
        }
        assert_eq!(batch.lines, [&b"a"[..], b"bcd", b"", b"ef"]);
        assert_eq!(partial, b"g");
        assert_eq!(batch.bytes, 6);
        assert!(batch.take("k").is_some() && batch.lines.is_empty() && batch.take("k").is_none());
    }

    #[test]
    fn retry_for_may_be_zero() {
        assert_eq!(parse_retry("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_retry("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_retry("soon").is_err());
    }
}
