//! rj-wait: block until jobs of a tag reach a final set, following the event stream T_EVENTS.
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Parser;
use redis::Value;
use serde::Serialize;

use crate::cli::{self, info, note, warn, ConnArgs, TagArg};
use crate::config::Config;
use crate::exit::{self, fail, Kind};
use crate::keys::{IdKey, Keys, Set};
use crate::store::{Store, BATCH, IO_TIMEOUT};

pub const EXAMPLES: &str = "\
  jid=$(rj-launch -- job.sbatch) && rj-wait \"$jid\" && rj-last --job \"$jid\"
  rj-wait --tag exp1 --timeout 12h          # every job pending in exp1 now
  rj-wait --format plain 101 102 103 | xargs -n1 rj-last --job
  rj-wait --format json | jq -c 'select(.set != \"COMPLETED\")'
  rj-wait; case $? in 0) echo done;; 3) echo some failed;; 124) echo still running;; esac
";

/// Wait until jobs of a tag have finished, and say how they ended.
///
/// rj-wait returns when each ID given (or, with none, every job in TAG_PENDING_AND_RUNNING when
/// rj-wait starts) is in TAG_COMPLETED, TAG_FAILED, TAG_TIMEOUT or TAG_CANCELLED.
///
/// rj-wait never asks Slurm: rj-track moves the jobs, and rj-wait follows what it writes. At
/// start it reads the sets and the position of the event stream TAG_EVENTS in one MULTI/EXEC,
/// so the jobs already finished count at once (their lines come first, in job order) and no
/// move between the two reads is missed; then it blocks on the stream (XREAD BLOCK) and prints
/// one line per awaited job as rj-track moves it. The sets are read again once a minute, so
/// that a tracker writing no events (rj-track --events-max 0, or one older than the stream) is
/// followed too, a minute late at most. Each job is counted once, from its event or from the
/// sets, whichever comes first.
///
/// IDs are Slurm's, as rj-launch prints them: 123, 123_4 (an array task), 123;cluster (the
/// cluster is ignored). An ID that is not in TAG_ALL is an error naming it, exit 1, before any
/// waiting: a mistyped ID or tag must not wait forever. With no ID and no job at all under the
/// tag, exit 1 as well; with jobs but none pending, exit 0 at once (a note says so). Jobs that
/// rj-launch records after rj-wait started are not awaited: name them.
///
/// Output, one line per job as it finishes: `TAG ID SET EXIT_CODE STATE` (human, the line
/// rj-track prints; EXIT_CODE is `-` when unknown); the job ID alone (plain, for xargs); or one
/// JSON object per line (json: time, tag, job_id, set, state, exit_code, tracked_at, tracker,
/// source = event or sets).
///
/// Exit status: 0 when every awaited job ended in TAG_COMPLETED; 3 when all ended but some in
/// another set (one error line counts and names them); 124 when --timeout was reached first
/// (one error line says how many are still pending, and which). Other statuses as for every
/// tool (below).
///
/// When no rj-track holds the lease of the tag (TAG_TRACKER does not exist), nothing will move
/// the jobs: rj-wait says so on stderr at start and every 5 minutes while it lasts, and keeps
/// waiting (an rj-track --once from cron holds the lease only while it runs).
///
/// Faults: when the connection to Redis is lost (a restart, a failover), rj-wait reconnects
/// with backoff and resumes from the last entry of the stream it read. When entries after it
/// are gone (trimmed by rj-track --events-max, deleted, or the stream recreated), it reads the
/// sets again instead, so no job is missed nor counted twice. Errors that no retry can fix end
/// it with the status of the cause (77 for NOPERM, 65 for a key of the wrong type).
#[derive(Debug, Parser)]
#[command(name = "rj-wait", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tag: TagArg,
    /// Jobs to wait for (`123`, `123_4`, `123;cluster`); none: every job pending in the tag
    /// when rj-wait starts.
    #[arg(value_name = "ID", value_parser = parse_id)]
    pub ids: Vec<String>,
    /// Give up after this long (e.g. 30m, 2h, 1d), with exit status 124.
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration)]
    pub timeout: Option<Duration>,
    /// Form of the line printed per job as it finishes.
    #[arg(long, value_enum, default_value_t = WaitFormat::Human)]
    pub format: WaitFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFormat {
    /// `TAG ID SET EXIT_CODE STATE`, as rj-track prints a move.
    Human,
    /// The job ID alone.
    Plain,
    /// One JSON object per line (JSON Lines).
    Json,
}

/// A job ID as typed (`123`, `0123_4`, `123;cluster`) → the spelling stored in T_ALL.
fn parse_id(s: &str) -> Result<String, String> {
    crate::slurm::parse_job_word(s).map(|(id, _cluster)| id.to_string())
}

/// One XREAD BLOCK waits at most this long, well below the deadline of every bounded call
/// (`IO_TIMEOUT`, ARCHITECTURE.md §5), so that --timeout and the periodic checks come in time.
const BLOCK_MAX: Duration = Duration::from_secs(10);
const _: () = assert!(BLOCK_MAX.as_secs() + 2 < IO_TIMEOUT.as_secs());
/// How often the sets (and the tracker's lease) are read again without an event.
const RECHECK: Duration = Duration::from_secs(60);
/// How often the missing tracker is said again.
const TRACKER_WARN_EVERY: Duration = Duration::from_secs(300);
/// Entries per XREAD.
const READ_COUNT: usize = 1000;
/// The longest pause between two reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A stream entry ID `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
}

impl FromStr for StreamId {
    type Err = String;
    fn from_str(s: &str) -> Result<StreamId, String> {
        let bad = || format!("{s:?} is not a stream entry ID");
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(StreamId {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry of T_EVENTS: its ID and its fields.
type Entry = (StreamId, BTreeMap<String, String>);

/// What `XINFO STREAM` tells about entries gone from the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamInfo {
    pub last_generated: StreamId,
    /// Redis 7.0 and later: the largest ID deleted by XDEL (trimming does not change it).
    pub max_deleted: Option<StreamId>,
    pub first_entry: Option<StreamId>,
}

/// May entries after `pos` have been lost before they were read? `None` is a stream that does
/// not exist. Conservative: a false alarm costs one read of the sets, a miss a job never seen.
pub fn entries_lost(pos: StreamId, info: Option<&StreamInfo>) -> bool {
    match info {
        // Deleted (rj-cleanup --records) or lost with the server's data: what it held after
        // `pos` is unknown.
        None => pos != StreamId::ZERO,
        Some(i) => {
            // Recreated: new entries may have IDs below `pos`, which XREAD would skip.
            i.last_generated < pos
                || i.max_deleted.is_some_and(|d| d > pos)
                // Trimmed (MAXLEN): the oldest entry left is after `pos`, so the entries
                // between may be gone; the stream says nothing of how many there were. A false
                // alarm when only the entry at `pos` went (rj-track --events-max 1).
                || match i.first_entry {
                    Some(first) => first > pos,
                    None => i.last_generated > pos,
                }
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: &Value) -> Vec<(&Value, &Value)> {
    match v {
        Value::Array(a) => a
            .chunks(2)
            .filter_map(|p| Some((p.first()?, p.get(1)?)))
            .collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    }
}

/// `[id, [field, value, …]]`.
fn entry(v: &Value) -> Option<Entry> {
    let Value::Array(pair) = v else {
        return None;
    };
    let id = text(pair.first()?)?.parse().ok()?;
    let fields = pairs(pair.get(1)?)
        .into_iter()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect();
    Some((id, fields))
}

/// The entries of an XRANGE/XREVRANGE reply.
pub fn range_entries(v: &Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                entry(e).ok_or_else(|| format!("a stream entry that is not [id, fields]: {e:?}"))
            })
            .collect(),
        other => Err(format!("not a list of stream entries: {other:?}")),
    }
}

/// The entries of an XREAD reply for one stream (nil when the block timed out).
pub fn xread_entries(v: &Value) -> Result<Vec<Entry>, String> {
    let streams: Vec<&Value> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => Ok(&kv[1]),
                other => Err(format!("not a [stream, entries] pair: {other:?}")),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        other => return Err(format!("not an XREAD reply: {other:?}")),
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(range_entries(s)?);
    }
    Ok(out)
}

/// An XINFO STREAM reply.
pub fn stream_info(v: &Value) -> Result<StreamInfo, String> {
    let mut i = StreamInfo::default();
    let mut seen_last = false;
    for (k, v) in pairs(v) {
        match text(k).as_deref() {
            Some("last-generated-id") => {
                i.last_generated = text(v).unwrap_or_default().parse()?;
                seen_last = true;
            }
            Some("max-deleted-entry-id") => {
                i.max_deleted = Some(text(v).unwrap_or_default().parse()?);
            }
            Some("first-entry") => i.first_entry = entry(v).map(|(id, _)| id),
            _ => {}
        }
    }
    if !seen_last {
        return Err(format!(
            "an XINFO STREAM reply without last-generated-id: {v:?}"
        ));
    }
    Ok(i)
}

/// How an awaited job ended.
#[derive(Debug, Clone)]
struct Outcome {
    job: String,
    set: Set,
    state: String,
    exit_code: String,
    tracked_at: String,
    tracker: String,
    source: &'static str,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    tag: &'a str,
    job_id: &'a str,
    set: &'static str,
    state: &'a str,
    exit_code: &'a str,
    tracked_at: &'a str,
    tracker: &'a str,
    source: &'static str,
}

/// The final set an event reports, if it reports a move (not a `recorded` entry).
fn final_set(fields: &BTreeMap<String, String>) -> Option<Set> {
    let set = Set::from_suffix(fields.get("set")?)?;
    Set::FINAL.contains(&set).then_some(set)
}

/// What one MULTI/EXEC over the sets found about the jobs still awaited.
struct Sync {
    /// Per job asked: is it in T_ALL, and the final set it is in, if any.
    jobs: Vec<(bool, Option<Set>)>,
    /// The stream's last entry at that instant (ZERO when empty or missing).
    pos: StreamId,
    /// The lease owner, if a tracker holds it.
    lease: Option<String>,
}

struct Waiter {
    cfg: Config,
    keys: Keys,
    store: Option<Store>,
    format: WaitFormat,
    /// Awaited jobs not yet seen in a final set.
    waiting: HashSet<String>,
    total: usize,
    ended: Vec<Outcome>,
    /// The last entry of T_EVENTS read (or the position of the last read of the sets).
    pos: StreamId,
    next_recheck: Instant,
    deadline: Option<Instant>,
    tracker_warned: Option<Instant>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (cfg, keys, store) = super::open(&args.conn, &args.tag)?;
    let start = Instant::now();
    let mut w = Waiter {
        cfg,
        keys,
        store: Some(store),
        format: args.format,
        waiting: HashSet::new(),
        total: 0,
        ended: Vec::new(),
        pos: StreamId::ZERO,
        next_recheck: start + RECHECK,
        deadline: args.timeout.map(|t| start + t),
        tracker_warned: None,
    };
    let mut out = cli::stdout();
    w.start(&args.ids, &mut out)?;
    if w.total == 0 {
        note(&format!(
            "nothing to wait for: no job of tag {} is pending",
            w.keys.tag()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    w.follow(&mut out, args.timeout)?;
    w.verdict()?;
    info(&format!("all {} job(s) completed", w.total));
    Ok(ExitCode::SUCCESS)
}

/// At most `n` items for a message, then how many more.
fn some(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        s.push_str(&format!(", … ({} more)", items.len() - n));
    }
    s
}

fn jobs(n: usize) -> &'static str {
    if n == 1 {
        "job"
    } else {
        "jobs"
    }
}

impl Waiter {
    fn store(&mut self) -> &mut Store {
        self.store.as_mut().expect("connected")
    }

    /// The first read: the awaited jobs (named, or every pending one), those already final,
    /// and the stream position, all of one instant.
    fn start(&mut self, ids: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
        let mut ids: Vec<String> = ids.to_vec();
        ids.sort_by_cached_key(|s| IdKey::of(s));
        ids.dedup();
        let sync = if ids.is_empty() {
            let all = self.keys.set(Set::All);
            let pending = self.keys.set(Set::PendingAndRunning);
            let mut p = redis::pipe();
            p.atomic()
                .cmd("SCARD")
                .arg(&all)
                .cmd("SMEMBERS")
                .arg(&pending);
            self.stream_and_lease(&mut p);
            let what = format!("MULTI SCARD {all} SMEMBERS {pending} XREVRANGE GET EXEC");
            let (n_all, members, last, lease): (u64, Vec<String>, Value, Option<String>) =
                self.store().pipe(&p, &what)?;
            if n_all == 0 {
                return Err(fail(
                    Kind::NotFound,
                    format!(
                        "no jobs are recorded under tag {} ({all} is empty); is the tag right?",
                        self.keys.tag()
                    ),
                ));
            }
            ids = members;
            ids.sort_by_cached_key(|s| IdKey::of(s));
            Sync {
                jobs: vec![(true, None); ids.len()],
                pos: self.last_id(&last)?,
                lease,
            }
        } else {
            self.sync(&ids)?
        };
        let unknown: Vec<String> = ids
            .iter()
            .zip(&sync.jobs)
            .filter(|(_, (in_all, _))| !in_all)
            .map(|(id, _)| id.clone())
            .collect();
        if !unknown.is_empty() {
            return Err(fail(
                Kind::NotFound,
                format!(
                    "{} {} not recorded under tag {} (not in {}): {}; is the tag right? \
                     (rj-launch --record ID records a job submitted otherwise)",
                    jobs(unknown.len()),
                    if unknown.len() == 1 { "is" } else { "are" },
                    self.keys.tag(),
                    self.keys.set(Set::All),
                    some(&unknown, 10)
                ),
            ));
        }
        self.total = ids.len();
        self.waiting = ids.iter().cloned().collect();
        self.pos = sync.pos;
        self.finish_from_sets(&ids, &sync.jobs, out)?;
        if !self.waiting.is_empty() {
            self.check_lease(sync.lease.as_deref());
        }
        Ok(())
    }

    /// Queue XREVRANGE of the stream (its last entry) and GET of the lease.
    fn stream_and_lease(&self, p: &mut redis::Pipeline) {
        p.cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("GET")
            .arg(self.keys.tracker());
    }

    fn last_id(&self, v: &Value) -> anyhow::Result<StreamId> {
        let entries = range_entries(v).map_err(|e| self.bad_reply("XREVRANGE", &e))?;
        Ok(entries.first().map_or(StreamId::ZERO, |(id, _)| *id))
    }

    fn bad_reply(&self, cmd: &str, why: &str) -> anyhow::Error {
        let place = self.store.as_ref().map_or("", |s| s.place.as_str());
        fail(
            Kind::DataErr,
            format!(
                "unexpected reply from Redis {place} to {cmd} on {}: {why}",
                self.keys.events()
            ),
        )
    }

    /// One MULTI/EXEC: where each of `ids` is (T_ALL, the four final sets), the stream's last
    /// entry and the lease, so that what the sets say and the position agree.
    fn sync(&mut self, ids: &[String]) -> anyhow::Result<Sync> {
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SMISMEMBER").arg(self.keys.set(Set::All)).arg(ids);
        for set in Set::FINAL {
            p.cmd("SMISMEMBER").arg(self.keys.set(set)).arg(ids);
        }
        self.stream_and_lease(&mut p);
        let what = format!(
            "MULTI SMISMEMBER {}_ALL/_COMPLETED/… XREVRANGE {} GET {} EXEC",
            self.keys.tag(),
            self.keys.events(),
            self.keys.tracker()
        );
        let reply: Vec<Value> = self.store().pipe(&p, &what)?;
        let member = |v: &Value| -> anyhow::Result<Vec<bool>> {
            redis::from_redis_value_ref(v).map_err(|e| {
                fail(
                    Kind::DataErr,
                    format!("unexpected reply from Redis to SMISMEMBER: {e}"),
                )
            })
        };
        let n = Set::FINAL.len();
        if reply.len() != n + 3 {
            return Err(self.bad_reply("MULTI/EXEC", &format!("{} replies", reply.len())));
        }
        let in_all = member(&reply[0])?;
        let mut jobs: Vec<(bool, Option<Set>)> = in_all.into_iter().map(|a| (a, None)).collect();
        for (set, v) in Set::FINAL.iter().zip(&reply[1..=n]) {
            for (j, hit) in jobs.iter_mut().zip(member(v)?) {
                if hit && j.1.is_none() {
                    j.1 = Some(*set);
                }
            }
        }
        let pos = self.last_id(&reply[n + 1])?;
        let lease = redis::from_redis_value_ref::<Option<String>>(&reply[n + 2]).unwrap_or(None);
        Ok(Sync { jobs, pos, lease })
    }

    /// Count the jobs the sets show final, with the fields of their records, in job order.
    fn finish_from_sets(
        &mut self,
        ids: &[String],
        found: &[(bool, Option<Set>)],
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let done: Vec<(&String, Set)> = ids
            .iter()
            .zip(found)
            .filter(|(id, _)| self.waiting.contains(*id))
            .filter_map(|(id, (_, set))| set.map(|s| (id, s)))
            .collect();
        for chunk in done.chunks(BATCH) {
            let mut p = redis::pipe();
            for (id, _) in chunk {
                p.cmd("HMGET")
                    .arg(self.keys.job_hash(id))
                    .arg(&["state", "exit_code", "tracked_at", "tracked_by"][..]);
            }
            let what = format!("HMGET {}", self.keys.job_hash(chunk[0].0));
            let records: Vec<Vec<Option<String>>> = self.store().pipe(&p, &what)?;
            for ((id, set), r) in chunk.iter().zip(records) {
                let f = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                self.finish(
                    Outcome {
                        job: (*id).clone(),
                        set: *set,
                        state: f(0),
                        exit_code: f(1),
                        tracked_at: f(2),
                        tracker: f(3),
                        source: "sets",
                    },
                    out,
                )?;
            }
        }
        Ok(())
    }

    /// Count one job as ended and print its line.
    fn finish(&mut self, o: Outcome, out: &mut dyn Write) -> anyhow::Result<()> {
        if !self.waiting.remove(&o.job) {
            return Ok(());
        }
        let tag = self.keys.tag().as_str();
        match self.format {
            WaitFormat::Human => {
                let exit = if o.exit_code.is_empty() {
                    "-"
                } else {
                    &o.exit_code
                };
                let line = format!("{tag} {} {} {exit} {}", o.job, o.set.suffix(), o.state);
                writeln!(out, "{}", line.trim_end())?;
            }
            WaitFormat::Plain => writeln!(out, "{}", o.job)?,
            WaitFormat::Json => {
                let line = JsonLine {
                    time: super::now_rfc3339(),
                    tag,
                    job_id: &o.job,
                    set: o.set.suffix(),
                    state: &o.state,
                    exit_code: &o.exit_code,
                    tracked_at: &o.tracked_at,
                    tracker: &o.tracker,
                    source: o.source,
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        self.ended.push(o);
        Ok(())
    }

    /// Say that nothing will move the jobs when no tracker holds the lease: at once, then
    /// every [`TRACKER_WARN_EVERY`] while it lasts.
    fn check_lease(&mut self, lease: Option<&str>) {
        match lease {
            Some(owner) => {
                if self.tracker_warned.take().is_some() {
                    note(&format!(
                        "rj-track {owner} holds the lease {} now",
                        self.keys.tracker()
                    ));
                } else {
                    info(&format!("tag {} is tracked by {owner}", self.keys.tag()));
                }
            }
            None => {
                if self
                    .tracker_warned
                    .is_some_and(|t| t.elapsed() < TRACKER_WARN_EVERY)
                {
                    return;
                }
                self.tracker_warned = Some(Instant::now());
                warn(&format!(
                    "no rj-track holds the lease of tag {} ({} does not exist): no job will \
                     move until one runs (rj-track --tag {} &; one run from cron holds it only \
                     while it runs); {} of {} {} still pending",
                    self.keys.tag(),
                    self.keys.tracker(),
                    self.keys.tag(),
                    self.waiting.len(),
                    self.total,
                    jobs(self.total)
                ));
            }
        }
    }

    /// Read the sets again for the jobs still awaited, and continue the stream from there.
    fn resync(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let mut ids: Vec<String> = self.waiting.iter().cloned().collect();
        ids.sort_by_cached_key(|s| IdKey::of(s));
        let sync = self.sync(&ids)?;
        let gone: Vec<String> = ids
            .iter()
            .zip(&sync.jobs)
            .filter(|(_, (in_all, _))| !in_all)
            .map(|(id, _)| id.clone())
            .collect();
        if !gone.is_empty() {
            return Err(fail(
                Kind::NotFound,
                format!(
                    "{} awaited {} no longer recorded under tag {} (gone from {}: rj-cleanup, \
                     or a server that lost its data): {}",
                    gone.len(),
                    if gone.len() == 1 {
                        "job is"
                    } else {
                        "jobs are"
                    },
                    self.keys.tag(),
                    self.keys.set(Set::All),
                    some(&gone, 10)
                ),
            ));
        }
        self.pos = sync.pos;
        self.finish_from_sets(&ids, &sync.jobs, out)?;
        self.check_lease(sync.lease.as_deref());
        Ok(())
    }

    /// Follow the stream until no job is awaited or the deadline passes; reconnect with
    /// backoff when the connection is lost, and give up on errors no retry can fix.
    fn follow(&mut self, out: &mut dyn Write, timeout: Option<Duration>) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(250);
        let mut lost = false;
        while !self.waiting.is_empty() {
            let left = self
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(self.timed_out(timeout.unwrap_or_default()));
            }
            if self.store.is_none() {
                match Store::connect_tag(&self.cfg, &self.keys) {
                    Ok(s) => {
                        note(&format!("reconnected to Redis at {}", s.place));
                        self.store = Some(s);
                        backoff = Duration::from_millis(250);
                        lost = false;
                    }
                    Err(e) if exit::is_transient(&e) => {
                        info(&format!("{e:#}; retrying in {backoff:?}"));
                        std::thread::sleep(left.map_or(backoff, |l| l.min(backoff)));
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.step(out) {
                Ok(()) => {}
                Err(e) if exit::is_transient(&e) => {
                    if !lost {
                        warn(&format!("{e:#}; reconnecting"));
                    }
                    lost = true;
                    self.store = None;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One blocking read of the stream (and the periodic read of the sets when it is due).
    fn step(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let now = Instant::now();
        if now >= self.next_recheck {
            self.next_recheck = now + RECHECK;
            self.resync(out)?;
            if self.waiting.is_empty() {
                return Ok(());
            }
        }
        let mut block = BLOCK_MAX.min(self.next_recheck.saturating_duration_since(now));
        if let Some(d) = self.deadline {
            block = block.min(d.saturating_duration_since(now));
        }
        // BLOCK 0 would wait forever.
        let ms = block.as_millis().max(1) as u64;
        let events = self.keys.events();
        let before = self.pos;
        let mut p = redis::pipe();
        p.ignore_errors()
            .cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(ms)
            .arg("STREAMS")
            .arg(&events)
            .arg(before.to_string())
            .cmd("XINFO")
            .arg("STREAM")
            .arg(&events);
        let what = format!("XREAD BLOCK {ms} STREAMS {events} {before}; XINFO STREAM {events}");
        let reply: Vec<Value> = self.store().pipe(&p, &what)?;
        let [read, xinfo] = <[Value; 2]>::try_from(reply)
            .map_err(|r| self.bad_reply("XREAD", &format!("{} replies", r.len())))?;
        let entries = match read {
            Value::ServerError(e) => {
                let s = self.store();
                return Err(s.error(e.into(), &format!("XREAD on {events}")));
            }
            v => xread_entries(&v).map_err(|e| self.bad_reply("XREAD", &e))?,
        };
        let stream = match xinfo {
            Value::ServerError(e) if e.details().is_some_and(|d| d.contains("no such key")) => None,
            Value::ServerError(e) => {
                let s = self.store();
                return Err(s.error(e.into(), &format!("XINFO STREAM {events}")));
            }
            v => Some(stream_info(&v).map_err(|e| self.bad_reply("XINFO STREAM", &e))?),
        };
        for (id, fields) in entries {
            self.pos = self.pos.max(id);
            let (Some(job), Some(set)) = (fields.get("job"), final_set(&fields)) else {
                continue;
            };
            if !self.waiting.contains(job) {
                continue;
            }
            let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
            self.finish(
                Outcome {
                    job: job.clone(),
                    set,
                    state: get("state"),
                    exit_code: get("exit_code"),
                    tracked_at: get("tracked_at"),
                    tracker: get("tracker"),
                    source: "event",
                },
                out,
            )?;
        }
        if !self.waiting.is_empty() && entries_lost(before, stream.as_ref()) {
            info(&format!(
                "entries of {events} after {before} are gone (trimmed, deleted or the stream \
                 recreated): reading the sets again"
            ));
            self.resync(out)?;
        }
        Ok(())
    }

    fn timed_out(&self, after: Duration) -> anyhow::Error {
        let mut pending: Vec<String> = self.waiting.iter().cloned().collect();
        pending.sort_by_cached_key(|s| IdKey::of(s));
        let mut msg = format!(
            "timed out after {}: {} of {} {} still pending: {}",
            humantime::format_duration(after),
            pending.len(),
            self.total,
            jobs(self.total),
            some(&pending, 10)
        );
        let bad = self.not_completed();
        if !bad.is_empty() {
            msg.push_str(&format!(
                "; {} did not complete: {}",
                bad.len(),
                some(&bad, 10)
            ));
        }
        fail(Kind::TimedOut, msg)
    }

    /// The jobs that ended elsewhere than T_COMPLETED, as `ID SET`, in job order.
    fn not_completed(&self) -> Vec<String> {
        let mut bad: Vec<&Outcome> = self
            .ended
            .iter()
            .filter(|o| o.set != Set::Completed)
            .collect();
        bad.sort_by_cached_key(|o| IdKey::of(&o.job));
        bad.iter()
            .map(|o| format!("{} {}", o.job, o.set.suffix()))
            .collect()
    }

    /// Every awaited job has ended: an error (exit 3) naming those that did not complete.
    fn verdict(&self) -> anyhow::Result<()> {
        let bad = self.not_completed();
        if bad.is_empty() {
            return Ok(());
        }
        Err(fail(
            Kind::NotCompleted,
            format!(
                "{} of {} {} did not complete: {}",
                bad.len(),
                self.total,
                jobs(self.total),
                some(&bad, 10)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        s.parse().unwrap()
    }

    #[test]
    fn stream_ids_order_as_redis_does() {
        assert!(id("10-0") > id("9-99"));
        assert!(id("10-2") > id("10-1"));
        assert_eq!(id("5"), id("5-0"));
        assert_eq!(id("1700000000000-3").to_string(), "1700000000000-3");
        assert!("x-1".parse::<StreamId>().is_err());
    }

    #[test]
    fn lost_entries_are_those_deleted_after_the_position() {
        let info = |last: &str, deleted: Option<&str>, first: Option<&str>| StreamInfo {
            last_generated: id(last),
            max_deleted: deleted.map(id),
            first_entry: first.map(id),
        };
        // Read up to 6-0, the oldest entry left is 7-0: 7-0 may have had trimmed predecessors.
        assert!(entries_lost(
            id("6-0"),
            Some(&info("9-0", Some("0-0"), Some("7-0")))
        ));
        // Read up to 8-0, the oldest left is 7-0: nothing after the position is gone.
        assert!(!entries_lost(
            id("8-0"),
            Some(&info("9-0", Some("0-0"), Some("7-0")))
        ));
        assert!(!entries_lost(
            id("7-0"),
            Some(&info("9-0", None, Some("7-0")))
        ));
        // XDEL of an entry after the position (Redis 7 says which).
        assert!(entries_lost(
            id("8-0"),
            Some(&info("9-0", Some("8-5"), Some("7-0")))
        ));
        assert!(!entries_lost(
            id("8-0"),
            Some(&info("9-0", Some("7-5"), Some("7-0")))
        ));
        // Recreated with lower IDs.
        assert!(entries_lost(
            id("8-0"),
            Some(&info("3-0", Some("0-0"), Some("1-0")))
        ));
        // Emptied (XTRIM MAXLEN 0) after entries the reader had not seen; or only of those it had.
        assert!(entries_lost(id("8-0"), Some(&info("9-0", None, None))));
        assert!(!entries_lost(id("9-0"), Some(&info("9-0", None, None))));
        // The stream is gone: lost, unless nothing was ever read.
        assert!(entries_lost(id("8-0"), None));
        assert!(!entries_lost(StreamId::ZERO, None));
    }

    #[test]
    fn replies_of_both_protocols_parse() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let e = Value::Array(vec![
            b("7-1"),
            Value::Array(vec![b("job"), b("12"), b("set"), b("FAILED")]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            b("t_EVENTS"),
            Value::Array(vec![e.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(b("t_EVENTS"), Value::Array(vec![e]))]);
        for v in [resp2, resp3] {
            let got = xread_entries(&v).unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, id("7-1"));
            assert_eq!(final_set(&got[0].1), Some(Set::Failed));
        }
        assert!(xread_entries(&Value::Nil).unwrap().is_empty());
        let info = Value::Array(vec![
            b("length"),
            Value::Int(1),
            b("last-generated-id"),
            b("9-0"),
            b("max-deleted-entry-id"),
            b("4-0"),
            b("first-entry"),
            Value::Array(vec![b("5-0"), Value::Array(vec![b("job"), b("1")])]),
        ]);
        assert_eq!(
            stream_info(&info).unwrap(),
            StreamInfo {
                last_generated: id("9-0"),
                max_deleted: Some(id("4-0")),
                first_entry: Some(id("5-0")),
            }
        );
    }

    #[test]
    fn recorded_entries_are_no_moves() {
        let f = |set: &str| BTreeMap::from([("set".to_string(), set.to_string())]);
        assert_eq!(final_set(&f("PENDING_AND_RUNNING")), None);
        assert_eq!(final_set(&f("COMPLETED")), Some(Set::Completed));
        assert_eq!(final_set(&f("bogus")), None);
    }

    #[test]
    fn ids_are_stored_spellings() {
        assert_eq!(parse_id("0123").unwrap(), "123");
        assert_eq!(parse_id("77;cl").unwrap(), "77");
        assert_eq!(parse_id("7_03").unwrap(), "7_3");
        assert!(parse_id("abc").is_err());
    }
}
