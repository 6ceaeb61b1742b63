//! rj-track: poll Slurm for the tracked jobs of one or more tags and SMOVE the finished ones.
//!
//! One tick: replay the launch spools, take or renew each tag's lease, read the tracked IDs,
//! ask Slurm about all of them at once (squeue, then sacct for the ones squeue no longer lists,
//! then `scontrol show job` when sacct cannot answer), and move every finished job with one
//! Lua script per tag that checks the lease and SMOVEs job by job.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, error, info, note, warn, ConnArgs};
use crate::config::{Config, ProcessEnv};
use crate::exit::{fail, redis_failure, Kind};
use crate::keys::{IdKey, JobId, Keys, Set, Tag};
use crate::results_spool;
use crate::slurm::{self, JobRow, QueryFailure};
use crate::spool;
use crate::state::{self, Counts, Verdict};
use crate::store::{redis_message, Store};

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
/// Gentle with Slurm: per tick, one squeue call for all tracked jobs, one sacct call for the jobs
/// squeue no longer lists, and one `scontrol show job` when accounting is disabled or sacct
/// fails. Never one command per job.
///
/// Final states: COMPLETED goes to COMPLETED; FAILED, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL,
/// DEADLINE and PREEMPTED (not requeued) to FAILED; TIMEOUT to TIMEOUT; CANCELLED and
/// "CANCELLED by <uid>" to CANCELLED. PENDING, RUNNING, SUSPENDED, COMPLETING, CONFIGURING,
/// REQUEUED, RESIZING and states rj does not know stay where they are.
///
/// Array jobs: a parent ID finishes when all its tasks have; its set is the worst outcome
/// (FAILED, then TIMEOUT, then CANCELLED, then COMPLETED) and the per-task counts go into its
/// job hash.
///
/// Lost jobs: a job Slurm no longer knows at all (purged, another cluster) is reported each tick
/// and, after --lost-after, moved to FAILED with state=LOST. Ticks in which Slurm could not
/// answer do not count. Without slurmdbd accounting only the controller knows finished jobs,
/// and only for MinJobAge (300 s by default, see `scontrol show config`): there, keep
/// --interval (or the cron period of --once) well below it.
///
/// Records: on each move the job hash TAG_JOB:<id> gets state, exit_code, start, end, elapsed,
/// nodes, partition and name (shown by rj-status --long), and tracked_at and tracked_by (the
/// tick's time and the tracker, host:pid:nonce); --record-ttl expires it.
///
/// Output: each move is one line on stdout, `TAG ID SET EXIT_CODE STATE` (JSON Lines with
/// --format json), for `rj-track | while read …`; messages go to stderr with a timestamp.
///
/// Moves are all or nothing: before it writes, the move script checks the type of every key it
/// touches and (Redis 7.0 and later) that the Redis user may run each command on it, so a job
/// is either moved, recorded and printed, or left as it was. A job whose TAG_JOB:<id> is not a
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
/// +hset +type on the tag's keys; +hkeys +hdel +hsetnx +hget once a job is unknown to Slurm,
/// +expire with --record-ttl, +scan with --all-tags, +sismember +hmget to report a move whose
/// reply was lost, and rj-launch's commands to replay its spool. +info lets it warn about an
/// evicting maxmemory-policy.
///
/// One tracker per tag: the active one holds the lease TAG_TRACKER (SET NX PX, renewed while it
/// works); a second rj-track, on this or another login node, waits as a hot standby and takes
/// over within a few intervals when the first one dies.
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
    /// Expire the job hash TAG_JOB:<id> this long after the job is moved (e.g. 7d).
    #[arg(long, value_name = "DURATION", value_parser = cli::parse_duration)]
    pub record_ttl: Option<Duration>,
    /// Form of the move lines on stdout.
    #[arg(long, value_enum, default_value_t = MoveFormat::Text)]
    pub format: MoveFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MoveFormat {
    /// `TAG ID SET EXIT_CODE STATE`, space-separated; STATE last, as it may hold spaces.
    Text,
    /// One JSON object per line (JSON Lines) with the whole record.
    Json,
}

/// At most `n` IDs for a message, then how many more.
fn some_ids(ids: &[String], n: usize) -> String {
    let mut s = ids.iter().take(n).cloned().collect::<Vec<_>>().join(" ");
    if ids.len() > n {
        s.push_str(&format!(" … ({} more)", ids.len() - n));
    }
    s
}

// ---------------------------------------------------------------- Redis side

/// Prepended to every script. A script is not rolled back when a command in it fails, so each
/// one asks, before its first write, whether this Redis user may run every command it will run
/// (`redis.acl_check_cmd`, Redis 7.0+; older servers go on unchecked), and fails with a reply
/// that names the command and the key rather than Redis's "the user executing the script can't
/// run this command", which names neither.
const DENIED_LUA: &str = r"
local function denied(cmd, ...)
  if redis.acl_check_cmd and not redis.acl_check_cmd(cmd, ...) then
    return 'NOPERM this Redis user may not run ' .. cmd .. ' on ' .. tostring((...)) ..
      ' (rj-track needs +' .. string.lower(cmd) .. ')'
  end
  return false
end
";

const LEASE_LUA: &str = r"
local e = denied('GET', KEYS[1]) or denied('PEXPIRE', KEYS[1], ARGV[2])
  or denied('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if e then return redis.error_reply(e) end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, v}
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return {2, ARGV[1]}
end
return {0, v}
";

const RENEW_LUA: &str = r"
local e = denied('GET', KEYS[1]) or denied('PEXPIRE', KEYS[1], ARGV[2])
if e then return redis.error_reply(e) end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE_LUA: &str = r"
local e = denied('GET', KEYS[1]) or denied('DEL', KEYS[1])
if e then return redis.error_reply(e) end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS: lease, pending set, the four final sets, then one job hash per job.
/// ARGV: owner, lease ms, record ttl s (0 = none), then per job: id, final set index (1..4),
/// field count, fields…. Fenced by the lease; SMOVE per job; only a job this call moved gets
/// its record (a job another tracker or an old script moved is left alone), and
/// `tracked_by` = owner, by which a tracker that lost the reply finds its moves again.
///
/// All or nothing: every permission and the type of every key are checked before the first
/// write, so a job is never moved without its record. A set of the wrong type or a refused
/// permission fails the whole call with nothing written; a job hash of the wrong type refuses
/// only that job, which stays pending while the others move.
/// Returns -1 when the lease is not ours, else {moved IDs, {id, type} of each refused job…}.
const MOVE_LUA: &str = r"
local function fail(e) return redis.error_reply(e .. '; nothing moved') end
local e = denied('GET', KEYS[1]) or denied('PEXPIRE', KEYS[1], ARGV[2])
if e then return fail(e) end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local function kind(key)
  local e = denied('TYPE', key)
  if e then return nil, e end
  return redis.call('TYPE', key).ok
end
local function set_error(key)
  local t, e = kind(key)
  if e then return e end
  if t ~= 'set' and t ~= 'none' then
    return 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a set'
  end
  return false
end
local ttl = tonumber(ARGV[3])
e = set_error(KEYS[2])
if e then return fail(e) end
local checked = {}
local jobs = {}
local refused = {}
local i = 4
local k = 7
while i <= #ARGV do
  local id = ARGV[i]
  local dest = KEYS[2 + tonumber(ARGV[i + 1])]
  local n = tonumber(ARGV[i + 2])
  if not checked[dest] then
    e = set_error(dest)
    if e then return fail(e) end
    checked[dest] = true
  end
  e = denied('SMOVE', KEYS[2], dest, id) or denied('HSET', KEYS[k], 'tracked_by', ARGV[1])
    or (ttl > 0 and denied('EXPIRE', KEYS[k], ARGV[3]))
  if e then return fail(e) end
  local t
  t, e = kind(KEYS[k])
  if e then return fail(e) end
  if t == 'hash' or t == 'none' then
    jobs[#jobs + 1] = {id, dest, k, i, n}
  else
    refused[#refused + 1] = id
    refused[#refused + 1] = t
  end
  i = i + 3 + 2 * n
  k = k + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local moved = {}
for _, j in ipairs(jobs) do
  local id, dest, key, at, n = j[1], j[2], KEYS[j[3]], j[4], j[5]
  if redis.call('SMOVE', KEYS[2], dest, id) == 1 then
    if n > 0 then
      redis.call('HSET', key, unpack(ARGV, at + 3, at + 2 + 2 * n))
    end
    redis.call('HSET', key, 'tracked_by', ARGV[1])
    if ttl > 0 then
      redis.call('EXPIRE', key, ttl)
    end
    moved[#moved + 1] = id
  end
end
return {moved, refused}
";

/// KEYS: the tag's hash of first-unknown times. ARGV: now, then the IDs unknown this tick.
/// Forgets IDs that are known again, keeps the first time for the others, returns those times.
/// HKEYS, the first command, fails on a key of the wrong type before anything is written.
const UNKNOWN_LUA: &str = r"
local e = denied('HKEYS', KEYS[1]) or denied('HDEL', KEYS[1], 'x')
  or denied('HSETNX', KEYS[1], 'x', ARGV[1]) or denied('HGET', KEYS[1], 'x')
if e then return redis.error_reply(e) end
local now = ARGV[1]
local cur = {}
for i = 2, #ARGV do cur[ARGV[i]] = true end
local old = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(old) do
  if not cur[f] then redis.call('HDEL', KEYS[1], f) end
end
local out = {}
for i = 2, #ARGV do
  redis.call('HSETNX', KEYS[1], ARGV[i], now)
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i])
end
return out
";

/// `EVAL script numkeys keys…`; the script text goes each time (a few hundred bytes), so a
/// restarted Redis with an empty script cache needs no NOSCRIPT dance.
fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(format!("{DENIED_LUA}{script}"))
        .arg(keys.len())
        .arg(keys);
    c
}

/// The error of a script call as one line that says what to do. Redis 7 turns a refused
/// command inside a script into a plain ERR (so without this it would be 69, not 77), appends
/// the script's SHA and line to every error, and echoes the script's text when EVAL itself is
/// missing; none of that helps the user.
fn script_error(place: &str, e: &redis::RedisError, what: &str) -> anyhow::Error {
    let code = e.code().unwrap_or("").to_string();
    let detail = e.detail().unwrap_or("").trim();
    let detail = match detail.rfind(" script: ") {
        Some(at) if detail[at..].contains("@user_script") => &detail[..at],
        _ => detail,
    };
    let lower = detail.to_ascii_lowercase();
    if code == "ERR" && lower.contains("unknown command") && lower.contains("'eval'") {
        return fail(
            Kind::Unavailable,
            format!(
                "Redis {place} has no EVAL command (renamed or disabled in its configuration): \
                 rj-track needs Lua scripting (EVAL) on the server"
            ),
        );
    }
    if code == "NOPERM" && lower.contains("'eval'") {
        return fail(
            Kind::NoPerm,
            format!(
                "Redis {place} refused EVAL (at {what}): NOPERM {detail}; rj-track needs Lua \
                 scripting (EVAL): grant this user +eval"
            ),
        );
    }
    if code == "ERR" && lower.contains("can't run this command") {
        return fail(
            Kind::NoPerm,
            format!("Redis {place} refused {what}: NOPERM {detail} (see the ACL of this user)"),
        );
    }
    if code.is_empty() {
        return redis_failure(
            e,
            format!("Redis {place} failed at {what}: {}", redis_message(e)),
        );
    }
    redis_failure(
        e,
        format!("Redis {place} failed at {what}: {code} {detail}"),
    )
}

/// Where a final set's key sits among the move script's KEYS, after the lease and the pending
/// set (1 for COMPLETED … 4 for CANCELLED). Any other set is a bug, never a silent FAILED.
fn final_slot(set: Set) -> anyhow::Result<usize> {
    Set::FINAL
        .iter()
        .position(|s| *s == set)
        .map(|i| i + 1)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "internal error: a move to {} planned, which is not a final set; nothing moved",
                set.suffix()
            )
        })
}

/// Jobs per move script: bounds how long one script blocks the server.
const MOVE_BATCH: usize = 1000;

/// What the lease script found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    Renewed,
    Taken,
    HeldBy(String),
}

/// A planned move whose reply never came (the connection dropped after the move script was
/// sent): the next tick asks Redis whether it happened and prints its line if so.
#[derive(Debug, Clone)]
pub struct Unreported {
    pub tag: Tag,
    pub planned: Planned,
    pub tracked_at: String,
}

/// A job to move: its ID, the final set, and its record.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: String,
    pub set: Set,
    pub fields: Vec<(String, String)>,
}

/// What one move script did: the IDs it moved, and the jobs it refused because their job hash
/// holds another type (ID, the type found), which stay pending.
#[derive(Debug, Default)]
pub struct MoveReply {
    pub moved: Vec<String>,
    pub refused: Vec<(String, String)>,
}

impl Store {
    /// Run one of rj-track's scripts, with the errors of [`script_error`].
    fn script<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        what: &str,
    ) -> anyhow::Result<T> {
        let r = self.query_raw(cmd);
        r.map_err(|e| script_error(&self.place, &e, what))
    }

    /// Take the lease if free, renew it if ours (atomically: a lease another tracker took
    /// after ours expired is never overwritten).
    pub fn lease(&mut self, keys: &Keys, owner: &str, ttl: Duration) -> anyhow::Result<Lease> {
        let key = keys.tracker();
        let (code, holder): (i64, String) = self.script(
            eval(LEASE_LUA, &[&key])
                .arg(owner)
                .arg(ttl.as_millis() as u64),
            &key,
        )?;
        Ok(match code {
            1 => Lease::Renewed,
            2 => Lease::Taken,
            _ => Lease::HeldBy(holder),
        })
    }

    /// Extend the lease if it is still ours; never takes it. False when it is not ours.
    pub fn renew(&mut self, keys: &Keys, owner: &str, ttl: Duration) -> anyhow::Result<bool> {
        let key = keys.tracker();
        let n: i64 = self.script(
            eval(RENEW_LUA, &[&key])
                .arg(owner)
                .arg(ttl.as_millis() as u64),
            &key,
        )?;
        Ok(n == 1)
    }

    /// Give the lease up if it is still ours, so that a standby takes over at once.
    pub fn release(&mut self, keys: &Keys, owner: &str) -> anyhow::Result<bool> {
        let key = keys.tracker();
        let n: i64 = self.script(eval(RELEASE_LUA, &[&key]).arg(owner), &key)?;
        Ok(n == 1)
    }

    /// All tracked IDs of a tag in one round trip.
    pub fn pending(&mut self, keys: &Keys) -> anyhow::Result<Vec<String>> {
        let key = keys.set(Set::PendingAndRunning);
        self.query(redis::cmd("SMEMBERS").arg(&key), &key)
    }

    /// Move up to [`MOVE_BATCH`] jobs under the lease, all or nothing (see [`MOVE_LUA`]).
    /// None when the lease is no longer ours (nothing was moved).
    pub fn move_jobs(
        &mut self,
        keys: &Keys,
        owner: &str,
        lease_ttl: Duration,
        record_ttl: Option<Duration>,
        jobs: &[Planned],
    ) -> anyhow::Result<Option<MoveReply>> {
        let mut k: Vec<String> = vec![keys.tracker(), keys.set(Set::PendingAndRunning)];
        k.extend(Set::FINAL.iter().map(|s| keys.set(*s)));
        k.extend(jobs.iter().map(|j| keys.job_hash(&j.id)));
        let k: Vec<&str> = k.iter().map(String::as_str).collect();
        let mut cmd = eval(MOVE_LUA, &k);
        cmd.arg(owner)
            .arg(lease_ttl.as_millis() as u64)
            .arg(record_ttl.map_or(0, |d| d.as_secs().max(1)));
        for j in jobs {
            cmd.arg(&j.id).arg(final_slot(j.set)?).arg(j.fields.len());
            for (f, v) in &j.fields {
                cmd.arg(f).arg(v);
            }
        }
        let what = format!(
            "the move of {} finished job(s) of {}",
            jobs.len(),
            keys.tag()
        );
        match self.script::<redis::Value>(&cmd, &what)? {
            redis::Value::Int(-1) => Ok(None),
            other => {
                let (moved, refused): (Vec<String>, Vec<String>) = redis::from_redis_value(other)
                    .map_err(|e| {
                    fail(
                        Kind::DataErr,
                        format!("unexpected reply from Redis {} to {what}: {e}", self.place),
                    )
                })?;
                let refused = refused
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                    .collect();
                Ok(Some(MoveReply { moved, refused }))
            }
        }
    }

    /// Of moves whose reply was lost (the connection dropped after the move script was sent),
    /// which did happen: the job is in the planned set and its record says `owner` moved it
    /// at `tracked_at`. One pipelined round trip for all of them. A job hash of the wrong type
    /// means the script refused that job: not made.
    pub fn moves_made(&mut self, owner: &str, lost: &[Unreported]) -> anyhow::Result<Vec<bool>> {
        let mut p = redis::pipe();
        p.ignore_errors();
        for u in lost {
            let keys = Keys::new(u.tag.clone());
            p.cmd("SISMEMBER")
                .arg(keys.set(u.planned.set))
                .arg(&u.planned.id);
            p.cmd("HMGET")
                .arg(keys.job_hash(&u.planned.id))
                .arg("tracked_by")
                .arg("tracked_at");
        }
        let what = "the record of moves whose reply was lost";
        let replies: Vec<redis::RedisResult<redis::Value>> = self.pipe(&p, what)?;
        let mut made = Vec::with_capacity(lost.len());
        for (r, u) in replies.chunks(2).zip(lost) {
            let member: bool = match &r[0] {
                Ok(v) => redis::from_redis_value(v.clone()).unwrap_or(false),
                Err(e) => {
                    return Err(self.error(e.clone(), &Keys::new(u.tag.clone()).set(u.planned.set)))
                }
            };
            let rec: (Option<String>, Option<String>) = match &r[1] {
                Ok(v) => redis::from_redis_value(v.clone()).unwrap_or((None, None)),
                Err(e) if e.code() == Some("WRONGTYPE") => (None, None),
                Err(e) => {
                    return Err(
                        self.error(e.clone(), &Keys::new(u.tag.clone()).job_hash(&u.planned.id))
                    )
                }
            };
            made.push(
                member
                    && rec.0.as_deref() == Some(owner)
                    && rec.1.as_deref() == Some(u.tracked_at.as_str()),
            );
        }
        Ok(made)
    }

    /// Record which jobs Slurm does not know this tick; returns when each was first missed
    /// (seconds since the epoch), in the order given.
    pub fn unknown_since(
        &mut self,
        keys: &Keys,
        ids: &[String],
        now: u64,
    ) -> anyhow::Result<Vec<u64>> {
        let key = keys.tracker_unknown();
        let times: Vec<String> = self.script(eval(UNKNOWN_LUA, &[&key]).arg(now).arg(ids), &key)?;
        Ok(times.iter().map(|t| t.parse().unwrap_or(now)).collect())
    }

    /// Tags that have a PENDING_AND_RUNNING set.
    pub fn tags_with_pending(&mut self) -> anyhow::Result<Vec<Tag>> {
        let suffix = format!("_{}", Set::PendingAndRunning.suffix());
        // As bytes: one key of another program whose name is not UTF-8 must not stop tracking.
        let keys = self.scan_bytes(&format!("*{suffix}"))?;
        Ok(keys
            .iter()
            .filter_map(|k| std::str::from_utf8(k).ok())
            .filter_map(|k| k.strip_suffix(&suffix))
            .filter_map(|t| Tag::new(t).ok())
            .collect())
    }
}

/// Renews the leases of one tick from its own connection every third of the lease while the tick
/// waits on Slurm (squeue, sacct and scontrol may take up to QUERY_TIMEOUT each), so a standby
/// never takes over in the middle of a slow tick; a tracker killed with -9 renews nothing and
/// loses its lease within one lease time. Stops (and joins) on drop.
struct LeaseKeeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    fn start(cfg: Config, keys: Vec<Keys>, owner: String, ttl: Duration) -> LeaseKeeper {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut store: Option<Store> = None;
            let mut keys = keys;
            // Connect only when a tick is slow: most ticks end before the first renewal.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(ttl / 3)
            {
                if store.is_none() {
                    store = Store::connect(&cfg).ok();
                }
                let Some(s) = store.as_mut() else { continue };
                // A lease found lost stays lost (the move script tells the tick); a Redis error
                // is retried at the next renewal.
                keys.retain(|k| s.renew(k, &owner, ttl).unwrap_or(true));
            }
        });
        LeaseKeeper {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------- deciding

/// What Slurm says about one tracked job this tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Still pending, running or in transit.
    Stay,
    /// A state this version does not know; stays, with a warning.
    Unrecognized(String),
    /// Finished: move to this set with this record.
    Move(Set, Vec<(String, String)>),
    /// No Slurm command knows the job.
    Unknown,
    /// Only sacct could have judged the job (gone from the controller, or an array whose
    /// finished tasks the controller may have forgotten), and sacct failed this tick: stays,
    /// and no unknown-since clock runs for it.
    Unanswered,
}

/// Is the tracked ID an array parent, judged from the rows that cover it?
fn is_array_parent(id: &str, rows: &[&JobRow]) -> bool {
    !id.contains('_') && rows.iter().any(|r| r.tasks.is_some())
}

/// Can squeue's rows not decide `id` alone? True when squeue does not list it, and when it is
/// an array parent whose listed tasks are all final: squeue forgets finished tasks after
/// MinJobAge, so a failed task purged before its siblings ended would be missing from the
/// counts and from the worst outcome. Accounting lists every task.
pub fn needs_accounting(id: &str, rows: &[&JobRow]) -> bool {
    rows.is_empty()
        || (is_array_parent(id, rows)
            && rows
                .iter()
                .all(|r| matches!(state::classify(&r.state), Verdict::Final(_))))
}

/// Whether sacct could speak this tick for jobs the controller no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// sacct answered: it has every job and array task the database knows.
    Answered,
    /// No accounting storage: the controller (squeue, scontrol) is all there is.
    Disabled,
    /// sacct failed: nothing it alone could tell is judged this tick.
    Failed,
}

/// This tick's answers for the IDs that squeue could not decide alone ([`needs_accounting`]).
pub struct Late<'a> {
    pub squeue: &'a Index<'a>,
    pub sacct: Option<Index<'a>>,
    pub scontrol: Option<Index<'a>>,
    pub accounting: Accounting,
}

impl Late<'_> {
    pub fn decide(&self, id: &str, tracked_at: &str) -> Decision {
        if let Some(sacct) = &self.sacct {
            let rows = sacct.covering(id);
            let controller = self.squeue.covering(id);
            if is_array_parent(id, &controller) || is_array_parent(id, &rows) {
                // slurmdbd lags the controller. Seen on the testbed: for a moment it reports a
                // finished array as one plain job (name "allocation", COMPLETED) before the
                // task records arrive, and it may lack a task squeue already shows finished.
                // So only task rows count, and a task only squeue knows is counted from it.
                let mut all: Vec<&JobRow> =
                    rows.iter().copied().filter(|r| r.tasks.is_some()).collect();
                if !all.is_empty() {
                    for r in controller.iter() {
                        if r.tasks.is_some() && !all.iter().any(|s| s.id == r.id) {
                            all.push(r);
                        }
                    }
                    return decide(id, &all, "sacct", tracked_at);
                }
            } else if !rows.is_empty() {
                return decide(id, &rows, "sacct", tracked_at);
            }
        }
        // The controller's view: exact for a plain job, possibly partial for an array.
        let controller = [
            ("squeue", Some(self.squeue)),
            ("scontrol", self.scontrol.as_ref()),
        ];
        for (source, idx) in controller {
            let rows = idx.map(|i| i.covering(id)).unwrap_or_default();
            if rows.is_empty() {
                continue;
            }
            return match self.accounting {
                Accounting::Disabled => decide(id, &rows, source, tracked_at),
                _ if !is_array_parent(id, &rows) => decide(id, &rows, source, tracked_at),
                // Accounting answered without this array (it has not caught up yet): wait.
                Accounting::Answered => Decision::Stay,
                Accounting::Failed => Decision::Unanswered,
            };
        }
        match self.accounting {
            Accounting::Failed => Decision::Unanswered,
            Accounting::Answered | Accounting::Disabled => Decision::Unknown,
        }
    }
}

/// Decide for one tracked ID from the rows that cover it (see [`JobRow::covers`]);
/// `tracked_at` is the tick's time, formatted once.
pub fn decide(id: &str, rows: &[&JobRow], source: &str, tracked_at: &str) -> Decision {
    if rows.is_empty() {
        return Decision::Unknown;
    }
    let mut counts = Counts::default();
    let mut worst: Option<(Set, &JobRow)> = None;
    for r in rows {
        match state::classify(&r.state) {
            Verdict::Active => return Decision::Stay,
            Verdict::Unrecognized => return Decision::Unrecognized(r.state.clone()),
            Verdict::Final(set) => {
                for _ in 0..r.task_count() {
                    counts.add(set);
                }
                worst = match worst {
                    Some((w, wr)) if state::worst(w, set) == w => Some((w, wr)),
                    _ => Some((set, r)),
                };
            }
        }
    }
    let Some((set, row)) = worst else {
        return Decision::Unknown;
    };
    let mut fields = vec![
        ("state".to_string(), row.state.clone()),
        ("exit_code".to_string(), row.exit_code.clone()),
        ("start".to_string(), row.start.clone()),
        ("end".to_string(), row.end.clone()),
        ("elapsed".to_string(), row.elapsed.clone()),
        ("nodes".to_string(), row.nodes.clone()),
        ("partition".to_string(), row.partition.clone()),
        ("name".to_string(), row.name.clone()),
    ];
    if is_array_parent(id, rows) {
        // The array as a whole: its worst task's state and exit code, the first start, the
        // last end, every node once.
        let start = rows
            .iter()
            .map(|r| r.start.as_str())
            .filter(|s| !s.is_empty())
            .min();
        let end = rows.iter().map(|r| r.end.as_str()).max();
        let mut nodes: Vec<&str> = rows
            .iter()
            .map(|r| r.nodes.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        nodes.sort();
        nodes.dedup();
        set_field(&mut fields, "start", start.unwrap_or(""));
        set_field(&mut fields, "end", end.unwrap_or(""));
        set_field(&mut fields, "nodes", &nodes.join(","));
        fields.extend(counts.fields());
    }
    fields.retain(|(k, v)| !v.is_empty() || k == "state");
    fields.push(("source".to_string(), source.to_string()));
    fields.push(("tracked_at".to_string(), tracked_at.to_string()));
    Decision::Move(set, fields)
}

fn set_field(fields: &mut [(String, String)], key: &str, value: &str) {
    if let Some(f) = fields.iter_mut().find(|(k, _)| k == key) {
        f.1 = value.to_string();
    }
}

/// Rows indexed by their base job ID, so that matching 10,000 IDs stays linear.
pub struct Index<'a> {
    by_base: HashMap<&'a str, Vec<&'a JobRow>>,
}

impl<'a> Index<'a> {
    pub fn new(rows: &'a [JobRow]) -> Index<'a> {
        let mut by_base: HashMap<&str, Vec<&JobRow>> = HashMap::new();
        for r in rows {
            by_base.entry(r.base.as_str()).or_default().push(r);
        }
        Index { by_base }
    }

    /// The rows that cover `id`. Every row of a base covers the base itself (a plain job, an
    /// array parent), so only a tracked task (`6_3`, rare) needs a filtered copy.
    pub fn covering(&self, id: &str) -> Cow<'_, [&'a JobRow]> {
        let (base, task) = match id.split_once('_') {
            Some((b, _)) => (b, true),
            None => (id, false),
        };
        match self.by_base.get(base) {
            None => Cow::Borrowed(&[]),
            Some(v) if !task => Cow::Borrowed(v.as_slice()),
            Some(v) => Cow::Owned(v.iter().copied().filter(|r| r.covers(id)).collect()),
        }
    }
}

// ---------------------------------------------------------------- the daemon

/// One move as printed on stdout.
#[derive(Debug, Serialize)]
pub struct MoveLine<'a> {
    pub time: String,
    pub tag: &'a str,
    pub job_id: &'a str,
    pub set: &'static str,
    #[serde(flatten)]
    pub record: BTreeMap<&'a str, &'a str>,
}

/// Everything that survives from tick to tick.
struct Tracker {
    args: Args,
    cfg: Config,
    /// Tags from the command line or the config; empty with --all-tags.
    tags: Vec<Tag>,
    store: Option<Store>,
    owner: String,
    lease_ttl: Duration,
    /// Tags whose lease we hold (for messages on change, and release at exit).
    holding: HashSet<Tag>,
    /// Tags whose unknown-jobs hash may hold entries to forget.
    unknown_dirty: HashSet<Tag>,
    /// sacct said accounting is disabled; ask scontrol directly until SIGHUP.
    accounting_disabled: bool,
    redis_failures: u32,
    /// Moves sent to Redis whose reply was lost; their lines are printed once Redis answers.
    unreported: Vec<Unreported>,
    /// Per tag, how many rj-put spool files Redis refuses for good, as last reported: said again
    /// only when it changes, not every tick.
    results_stuck: std::collections::HashMap<Tag, usize>,
}

/// What a tick did, for the summary line under -v.
#[derive(Debug, Default)]
struct TickSummary {
    tracked: usize,
    moved: usize,
    unknown: usize,
    /// Jobs only sacct could judge, while sacct failed.
    unanswered: usize,
    slurm_calls: u64,
    /// One line per finished job whose job hash has the wrong type, so it was not moved.
    refused: Vec<String>,
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
    let lease_ttl = (args.interval * 3).max(Duration::from_secs(5));
    let host = match super::hostname() {
        h if h.is_empty() => "unknown-host".to_string(),
        h => h,
    };
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut t = Tracker {
        owner: format!("{host}:{}:{nonce:08x}", std::process::id()),
        cfg,
        tags,
        store: None,
        lease_ttl,
        holding: HashSet::new(),
        unknown_dirty: HashSet::new(),
        accounting_disabled: false,
        redis_failures: 0,
        unreported: Vec::new(),
        results_stuck: std::collections::HashMap::new(),
        args,
    };
    let what = if t.args.all_tags {
        "every tag".to_string()
    } else {
        t.tags
            .iter()
            .map(Tag::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    info(&format!(
        "tracking {what} every {} as {}",
        humantime::format_duration(t.args.interval),
        t.owner
    ));

    let mut out = cli::stdout();
    loop {
        if hup.swap(false, Ordering::Relaxed) {
            t.reload();
        }
        let result = t.tick(&mut out);
        let pause = match result {
            Ok(s) if t.args.once => {
                if let Some(e) = refusal(&s.refused) {
                    let _ = t.release_all();
                    return Err(e);
                }
                break;
            }
            Ok(s) => {
                for r in &s.refused {
                    error(r);
                }
                t.redis_failures = 0;
                t.args.interval
            }
            Err(e) if t.args.once => {
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
                t.store = None;
                t.redis_failures += 1;
                let pause = backoff(t.redis_failures, t.args.interval);
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

/// The error of a `--once` tick that refused jobs (job hashes of the wrong type): 65, one line
/// naming the first key and how many more.
fn refusal(refused: &[String]) -> Option<anyhow::Error> {
    let first = refused.first()?;
    let more = match refused.len() {
        1 => String::new(),
        n => format!(
            " ({} more finished job(s) not moved for the same reason)",
            n - 1
        ),
    };
    Some(fail(Kind::DataErr, format!("{first}{more}")))
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tracker {
    /// SIGHUP: read redis.json again, reconnect, and re-resolve the tags.
    fn reload(&mut self) {
        match self
            .args
            .conn
            .load()
            .and_then(|cfg| resolve_tags(&self.args, &cfg).map(|t| (cfg, t)))
        {
            Ok((cfg, tags)) => {
                if let Some(e) = self.release_all() {
                    warn(&format!("cannot release the leases: {e:#}"));
                }
                self.cfg = cfg;
                self.tags = tags;
                self.store = None;
                self.accounting_disabled = false;
                note(&format!(
                    "SIGHUP: configuration re-read; Redis at {}",
                    self.cfg.target
                ));
            }
            Err(e) => error(&format!(
                "SIGHUP: {e:#}; keeping the previous configuration"
            )),
        }
    }

    /// Give up every lease held, so that a standby takes over at once. A Redis that is down
    /// only delays that by one lease time (a warning); a refused DEL would do so at every stop
    /// and is returned, so that the exit status says what the user lacks.
    fn release_all(&mut self) -> Option<anyhow::Error> {
        let store = self.store.as_mut()?;
        let mut refused = None;
        for tag in std::mem::take(&mut self.holding) {
            match store.release(&Keys::new(tag.clone()), &self.owner) {
                Ok(_) => {}
                Err(e) if crate::exit::is_transient(&e) => {
                    warn(&format!("cannot release the lease of {tag}: {e:#}"))
                }
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        refused
    }

    /// One tick. Errors are Redis errors (the caller reconnects); Slurm trouble is reported
    /// here and ends the tick without moves.
    fn tick(&mut self, out: &mut dyn Write) -> anyhow::Result<TickSummary> {
        let spawned_before = slurm::SPAWNED.load(Ordering::Relaxed);
        if self.store.is_none() {
            let mut s = Store::connect(&self.cfg)?;
            s.warn_if_evicting();
            if self.redis_failures > 0 {
                note(&format!("reconnected to Redis at {}", s.place));
            }
            self.store = Some(s);
        }
        let store = self.store.as_mut().expect("connected above");
        if !self.unreported.is_empty() {
            let lost = std::mem::take(&mut self.unreported);
            let made = match store.moves_made(&self.owner, &lost) {
                Ok(m) => m,
                Err(e) => {
                    self.unreported = lost;
                    return Err(e);
                }
            };
            let mut found = 0;
            for (u, _) in lost.iter().zip(&made).filter(|(_, m)| **m) {
                print_move(
                    out,
                    self.args.format,
                    u.tag.as_str(),
                    &u.planned,
                    &u.tracked_at,
                )?;
                found += 1;
            }
            out.flush()?;
            if found > 0 {
                note(&format!(
                    "reported {found} move(s) made at {} whose reply the dropped connection lost",
                    lost[0].tracked_at
                ));
            }
        }
        let tags = if self.args.all_tags {
            store.tags_with_pending()?
        } else {
            self.tags.clone()
        };

        // Spool replay and leases, per tag.
        let mut active: Vec<(Keys, Vec<String>)> = Vec::new();
        for tag in &tags {
            let keys = Keys::new(tag.clone());
            let spool_path = spool::path(tag, &ProcessEnv);
            match spool::replay(store, &keys, &spool_path) {
                Ok(r) => r.report(tag, &spool_path),
                // Redis refused or failed the replay: like any Redis error of the tick (the
                // daemon retries a transient one, exits on a permanent one). A spool file rj
                // cannot read is the only thing to warn about and go on.
                Err(e) if crate::exit::kind_of(&e).is_some() => return Err(e),
                Err(e) => warn(&format!("{e:#}")),
            }
            // The results jobs wrote with rj-put while Redis was away.
            let results = results_spool::dir(tag, &ProcessEnv);
            match results_spool::replay(store, &keys, &results) {
                Ok(mut r) => {
                    let stuck = r.stuck.len();
                    if self.results_stuck.insert(tag.clone(), stuck) == Some(stuck) {
                        r.stuck.clear();
                    }
                    r.report(tag, &results);
                }
                Err(e) if crate::exit::kind_of(&e).is_some() => return Err(e),
                Err(e) => warn(&format!("{e:#}")),
            }
            match store.lease(&keys, &self.owner, self.lease_ttl)? {
                Lease::Renewed => {}
                Lease::Taken => {
                    if self.holding.insert(tag.clone()) {
                        info(&format!("took the lease {}", keys.tracker()));
                    }
                }
                Lease::HeldBy(other) => {
                    if self.holding.remove(tag) || self.args.once {
                        note(&format!(
                            "tag {tag} is tracked by {other} ({}); standing by",
                            keys.tracker()
                        ));
                    } else {
                        info(&format!("tag {tag} is tracked by {other}; standing by"));
                    }
                    continue;
                }
            }
            self.holding.insert(tag.clone());
            let mut ids = store.pending(&keys)?;
            let (good, bad): (Vec<String>, Vec<String>) =
                ids.drain(..).partition(|id| id.parse::<JobId>().is_ok());
            if !bad.is_empty() {
                warn(&format!(
                    "{} holds {} entries that are not Slurm job IDs, left alone: {}",
                    keys.set(Set::PendingAndRunning),
                    bad.len(),
                    some_ids(&bad, 5)
                ));
            }
            active.push((keys, good));
        }

        let mut summary = TickSummary {
            tracked: active.iter().map(|(_, ids)| ids.len()).sum(),
            ..TickSummary::default()
        };
        if summary.tracked == 0 {
            // Nothing to ask Slurm; only forget stale unknown entries.
            for (keys, _) in &active {
                if self.unknown_dirty.remove(keys.tag()) {
                    store.unknown_since(keys, &[], now_secs())?;
                }
            }
            return Ok(summary);
        }

        // Slurm: one squeue for everything, sacct for what squeue no longer lists, scontrol
        // when sacct cannot answer.
        let mut all: Vec<String> = active
            .iter()
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        all.sort_by_cached_key(|s| IdKey::of(s));
        all.dedup();
        let _keeper = LeaseKeeper::start(
            self.cfg.clone(),
            active.iter().map(|(k, _)| k.clone()).collect(),
            self.owner.clone(),
            self.lease_ttl,
        );
        let rows = match slurm::squeue(&all) {
            Ok(r) => r,
            Err(e) => {
                let (what, kind) = match e.kind {
                    QueryFailure::Unreachable => {
                        ("Slurm controller unreachable", Kind::Unavailable)
                    }
                    QueryFailure::BadOutput => ("cannot read squeue's answer", Kind::DataErr),
                    _ => ("squeue failed", Kind::Unavailable),
                };
                let msg = format!("{what}: {e}; no moves this tick");
                if self.args.once {
                    return Err(fail(kind, msg));
                }
                error(&msg);
                return Ok(summary);
            }
        };
        // The tick's time, formatted once for every record.
        let tracked_at = super::now_rfc3339();
        let squeue_idx = Index::new(&rows);
        let mut decided: HashMap<&str, Decision> = HashMap::with_capacity(all.len());
        let mut ask: Vec<String> = Vec::new();
        for id in &all {
            let rows = squeue_idx.covering(id);
            // Without accounting squeue's view is all there is; asking again adds nothing.
            let need = if self.accounting_disabled {
                rows.is_empty()
            } else {
                needs_accounting(id, &rows)
            };
            if need {
                ask.push(id.clone());
            } else {
                decided.insert(id, decide(id, &rows, "squeue", &tracked_at));
            }
        }
        let mut accounting = if self.accounting_disabled {
            Accounting::Disabled
        } else {
            Accounting::Failed
        };
        let mut sacct_rows = None;
        let mut scontrol_rows = None;
        if !ask.is_empty() {
            if !self.accounting_disabled {
                match slurm::sacct(&ask) {
                    Ok(r) => {
                        sacct_rows = Some(r);
                        accounting = Accounting::Answered;
                    }
                    Err(e) if e.kind == QueryFailure::AccountingDisabled => {
                        info(&format!("{e}; asking scontrol from now on"));
                        self.accounting_disabled = true;
                        accounting = Accounting::Disabled;
                    }
                    Err(e) => warn(&format!(
                        "{e}; asking scontrol, and leaving the jobs only sacct could judge \
                         (gone from the controller, or arrays) as they are this tick"
                    )),
                }
            }
            if accounting != Accounting::Answered {
                match slurm::scontrol_all() {
                    Ok(r) => scontrol_rows = Some(r),
                    Err(e) => warn(&format!("{e}")),
                }
            }
        }
        let late = Late {
            squeue: &squeue_idx,
            sacct: sacct_rows.as_deref().map(Index::new),
            scontrol: scontrol_rows.as_deref().map(Index::new),
            accounting,
        };
        for id in &ask {
            decided.insert(id, late.decide(id, &tracked_at));
        }

        let now = now_secs();
        let store = self.store.as_mut().expect("connected above");
        for (keys, ids) in &active {
            let mut plan: Vec<Planned> = Vec::new();
            let mut unknown: Vec<String> = Vec::new();
            for id in ids {
                match decided.get(id.as_str()) {
                    None | Some(Decision::Stay) => {}
                    Some(Decision::Unrecognized(s)) => warn(&format!(
                        "job {id} of {} is in Slurm state {s:?}, which rj does not know; left in {}",
                        keys.tag(),
                        keys.set(Set::PendingAndRunning)
                    )),
                    Some(Decision::Move(set, fields)) => plan.push(Planned {
                        id: id.clone(),
                        set: *set,
                        fields: fields.clone(),
                    }),
                    Some(Decision::Unknown) => unknown.push(id.clone()),
                    // Said once per tick where sacct failed; the unknown clock is reset below
                    // (this ID is not in `unknown`), so a long slurmdbd outage never makes a
                    // job LOST.
                    Some(Decision::Unanswered) => summary.unanswered += 1,
                }
            }
            if !unknown.is_empty() || self.unknown_dirty.contains(keys.tag()) {
                let since = store.unknown_since(keys, &unknown, now)?;
                if unknown.is_empty() {
                    self.unknown_dirty.remove(keys.tag());
                } else {
                    self.unknown_dirty.insert(keys.tag().clone());
                }
                let lost_after = self.args.lost_after.as_secs();
                for (id, t) in unknown.iter().zip(&since) {
                    if now.saturating_sub(*t) >= lost_after {
                        plan.push(Planned {
                            id: id.clone(),
                            set: Set::Failed,
                            fields: vec![
                                ("state".into(), "LOST".into()),
                                (
                                    "lost_since".into(),
                                    humantime::format_rfc3339_seconds(
                                        UNIX_EPOCH + Duration::from_secs(*t),
                                    )
                                    .to_string(),
                                ),
                                ("source".into(), "rj-track".into()),
                                ("tracked_at".into(), tracked_at.clone()),
                            ],
                        });
                    }
                }
                let still: Vec<String> = unknown
                    .iter()
                    .zip(&since)
                    .filter(|(_, t)| now.saturating_sub(**t) < lost_after)
                    .map(|(id, _)| id.clone())
                    .collect();
                if !still.is_empty() {
                    note(&format!(
                        "{} job(s) of {} unknown to Slurm (moved to FAILED as LOST after {}): {}",
                        still.len(),
                        keys.tag(),
                        humantime::format_duration(self.args.lost_after),
                        some_ids(&still, 10)
                    ));
                }
                summary.unknown += unknown.len();
            }
            if plan.is_empty() {
                continue;
            }
            // Batch by batch, each printed as soon as its reply is in: a later batch's failure
            // never hides the lines of moves already made.
            for batch in plan.chunks(MOVE_BATCH) {
                let reply = match store.move_jobs(
                    keys,
                    &self.owner,
                    self.lease_ttl,
                    self.args.record_ttl,
                    batch,
                ) {
                    Err(e) => {
                        // The script may have run with only its reply lost: keep the batch so
                        // the next tick can print the moves that did happen (and only those).
                        // A permanent error moved nothing: the script checks before it writes.
                        if crate::exit::is_transient(&e) {
                            self.unreported
                                .extend(batch.iter().map(|planned| Unreported {
                                    tag: keys.tag().clone(),
                                    planned: planned.clone(),
                                    tracked_at: tracked_at.clone(),
                                }));
                        }
                        return Err(e);
                    }
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        self.holding.remove(keys.tag());
                        note(&format!(
                            "lost the lease {} to another tracker during the tick; nothing moved, standing by",
                            keys.tracker()
                        ));
                        break;
                    }
                };
                let moved: HashSet<&str> = reply.moved.iter().map(String::as_str).collect();
                for p in batch.iter().filter(|p| moved.contains(p.id.as_str())) {
                    print_move(out, self.args.format, keys.tag().as_str(), p, &tracked_at)?;
                    summary.moved += 1;
                }
                out.flush()?;
                for (id, found) in &reply.refused {
                    let set = batch
                        .iter()
                        .find(|p| &p.id == id)
                        .map_or("its final set", |p| p.set.suffix());
                    summary.refused.push(format!(
                        "{} holds a {found}, not a hash: job {id} finished ({set}) but stays in {} \
                         until that key is deleted or made a hash",
                        keys.job_hash(id),
                        keys.set(Set::PendingAndRunning)
                    ));
                }
                let skipped = batch.len() - moved.len() - reply.refused.len();
                if skipped > 0 {
                    info(&format!(
                        "{skipped} finished job(s) of {} were already moved by someone else",
                        keys.tag()
                    ));
                }
            }
        }
        summary.slurm_calls = slurm::SPAWNED.load(Ordering::Relaxed) - spawned_before;
        info(&format!(
            "tick: {} tracked, {} moved, {} refused, {} unknown, {} unanswered, {} Slurm command(s)",
            summary.tracked,
            summary.moved,
            summary.refused.len(),
            summary.unknown,
            summary.unanswered,
            summary.slurm_calls
        ));
        Ok(summary)
    }
}

fn print_move(
    out: &mut dyn Write,
    format: MoveFormat,
    tag: &str,
    p: &Planned,
    time: &str,
) -> anyhow::Result<()> {
    let get = |k: &str| {
        p.fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    match format {
        MoveFormat::Text => {
            let exit = get("exit_code");
            writeln!(
                out,
                "{tag} {} {} {} {}",
                p.id,
                p.set.suffix(),
                if exit.is_empty() { "-" } else { exit },
                get("state")
            )?;
        }
        MoveFormat::Json => {
            let line = MoveLine {
                time: time.to_string(),
                tag,
                job_id: &p.id,
                set: p.set.suffix(),
                record: p
                    .fields
                    .iter()
                    .filter(|(k, _)| k != "tracked_at")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-01-01T00:02:00Z";

    fn row(id: &str, state: &str) -> JobRow {
        let (base, tasks) = match id.split_once('_') {
            Some((b, t)) => (b.to_string(), Some(t.trim_matches(['[', ']']).to_string())),
            None => (id.to_string(), None),
        };
        JobRow {
            id: id.into(),
            base,
            tasks,
            state: state.into(),
            exit_code: "0:0".into(),
            start: "2026-01-01T00:00:00".into(),
            end: "2026-01-01T00:01:00".into(),
            elapsed: "00:01:00".into(),
            nodes: "n1".into(),
            partition: "debug".into(),
            name: "job".into(),
        }
    }

    fn field<'a>(d: &'a Decision, k: &str) -> &'a str {
        match d {
            Decision::Move(_, f) => f
                .iter()
                .find(|(x, _)| x == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or(""),
            _ => panic!("not a move: {d:?}"),
        }
    }

    #[test]
    fn single_jobs() {
        let r = row("5", "CANCELLED by 0");
        let d = decide("5", &[&r], "sacct", T);
        assert!(matches!(d, Decision::Move(Set::Cancelled, _)));
        assert_eq!(field(&d, "state"), "CANCELLED by 0");
        assert_eq!(field(&d, "source"), "sacct");
        for k in [
            "exit_code",
            "start",
            "end",
            "elapsed",
            "nodes",
            "partition",
            "name",
        ] {
            assert!(!field(&d, k).is_empty(), "{k}");
        }
        assert_eq!(
            decide("5", &[&row("5", "COMPLETING")], "squeue", T),
            Decision::Stay
        );
        assert_eq!(decide("5", &[], "squeue", T), Decision::Unknown);
        assert_eq!(
            decide("5", &[&row("5", "BOGUS")], "squeue", T),
            Decision::Unrecognized("BOGUS".into())
        );
    }

    #[test]
    fn arrays_wait_for_all_tasks_and_take_the_worst() {
        let a = row("6_1", "COMPLETED");
        let b = row("6_2", "RUNNING");
        let c = row("6_[3-4]", "PENDING");
        assert_eq!(decide("6", &[&a, &b, &c], "squeue", T), Decision::Stay);
        let mut b = row("6_2", "FAILED");
        b.exit_code = "1:0".into();
        b.nodes = "n2".into();
        let c = row("6_[3-4]", "CANCELLED");
        let d = decide("6", &[&a, &b, &c], "squeue", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "state"), "FAILED");
        assert_eq!(field(&d, "exit_code"), "1:0");
        assert_eq!(field(&d, "tasks"), "4");
        assert_eq!(field(&d, "tasks_completed"), "1");
        assert_eq!(field(&d, "tasks_failed"), "1");
        assert_eq!(field(&d, "tasks_cancelled"), "2");
        assert_eq!(field(&d, "nodes"), "n1,n2");
        // A tracked task is judged alone.
        let d = decide("6_1", &[&a], "squeue", T);
        assert!(matches!(d, Decision::Move(Set::Completed, _)));
        assert_eq!(field(&d, "tasks"), "");
    }

    #[test]
    fn index_matches_parents_tasks_and_ranges() {
        let rows = vec![
            row("6_1", "COMPLETED"),
            row("6_[2-3]", "PENDING"),
            row("7", "RUNNING"),
        ];
        let idx = Index::new(&rows);
        assert_eq!(idx.covering("6").len(), 2);
        assert_eq!(idx.covering("6_3").len(), 1);
        assert_eq!(idx.covering("6_9").len(), 0);
        assert_eq!(idx.covering("7").len(), 1);
        assert_eq!(idx.covering("8").len(), 0);
    }

    #[test]
    fn the_tick_time_is_the_record_time() {
        let d = decide("5", &[&row("5", "COMPLETED")], "squeue", T);
        assert_eq!(field(&d, "tracked_at"), T);
    }

    #[test]
    fn a_move_to_a_set_that_is_not_final_is_an_error() {
        assert_eq!(final_slot(Set::Completed).unwrap(), 1);
        assert_eq!(final_slot(Set::Cancelled).unwrap(), 4);
        for s in [Set::PendingAndRunning, Set::All] {
            let e = final_slot(s).unwrap_err().to_string();
            assert!(e.contains("not a final set"), "{e}");
        }
    }

    fn late<'a>(
        squeue: &'a Index<'a>,
        sacct: Option<&'a [JobRow]>,
        accounting: Accounting,
    ) -> Late<'a> {
        Late {
            squeue,
            sacct: sacct.map(Index::new),
            scontrol: None,
            accounting,
        }
    }

    /// slurmdbd down (sacct fails) and scontrol failing too: a job squeue no longer lists is
    /// not judged, so no unknown-since clock starts and it never becomes LOST by accident.
    #[test]
    fn failed_queries_leave_unlisted_jobs_unjudged() {
        let none: Vec<JobRow> = Vec::new();
        let sq = Index::new(&none);
        assert_eq!(
            late(&sq, None, Accounting::Failed).decide("7", T),
            Decision::Unanswered
        );
        let ctl = vec![row("7", "COMPLETED")];
        let with_scontrol = Late {
            squeue: &sq,
            sacct: None,
            scontrol: Some(Index::new(&ctl)),
            accounting: Accounting::Failed,
        };
        // A plain job the controller still holds is judged from scontrol all the same.
        assert!(matches!(
            with_scontrol.decide("7", T),
            Decision::Move(Set::Completed, _)
        ));
        assert_eq!(with_scontrol.decide("8", T), Decision::Unanswered);
        // Only a query that answered can say "unknown".
        assert_eq!(
            late(&sq, Some(&none), Accounting::Answered).decide("7", T),
            Decision::Unknown
        );
        assert_eq!(
            late(&sq, None, Accounting::Disabled).decide("7", T),
            Decision::Unknown
        );
    }

    /// squeue has purged the failed task 6_1 (MinJobAge) while 6_3 just completed: the parent
    /// is judged from sacct's rows, which list every task.
    #[test]
    fn array_parent_is_judged_from_accounting_not_from_what_squeue_kept() {
        let squeue = vec![row("6_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        assert!(needs_accounting("6", &sq.covering("6")));
        assert!(!needs_accounting("6_3", &sq.covering("6_3")));
        let live = vec![row("6_3", "RUNNING")];
        assert!(!needs_accounting("6", &Index::new(&live).covering("6")));
        assert!(!needs_accounting("9", &[&row("9", "COMPLETED")]));

        let mut failed = row("6_1", "FAILED");
        failed.exit_code = "1:0".into();
        let sacct = vec![failed, row("6_2", "COMPLETED"), row("6_3", "COMPLETED")];
        let d = late(&sq, Some(&sacct), Accounting::Answered).decide("6", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
        assert_eq!(field(&d, "tasks_failed"), "1");
        assert_eq!(field(&d, "exit_code"), "1:0");
        assert_eq!(field(&d, "source"), "sacct");
        // sacct still has a task pending: wait for it.
        let behind = vec![row("6_1", "FAILED"), row("6_[2-3]", "PENDING")];
        assert_eq!(
            late(&sq, Some(&behind), Accounting::Answered).decide("6", T),
            Decision::Stay
        );
        // sacct has not recorded the array yet, or failed: never decide from squeue's part.
        assert_eq!(
            late(&sq, Some(&[]), Accounting::Answered).decide("6", T),
            Decision::Stay
        );
        assert_eq!(
            late(&sq, None, Accounting::Failed).decide("6", T),
            Decision::Unanswered
        );
        // No accounting at all: the controller's view is all there is.
        let d = late(&sq, None, Accounting::Disabled).decide("6", T);
        assert!(matches!(d, Decision::Move(Set::Completed, _)), "{d:?}");
        assert_eq!(field(&d, "source"), "squeue");
    }

    /// slurmdbd lags the controller (seen on the testbed): squeue shows all three tasks
    /// finished, 2 of them failed, while sacct has only tasks 1 and 3 so far. The task sacct
    /// lacks is counted from squeue, so the array is FAILED, not COMPLETED.
    #[test]
    fn array_task_missing_from_lagging_accounting_is_counted_from_squeue() {
        let mut failed = row("6_2", "FAILED");
        failed.exit_code = "1:0".into();
        let squeue = vec![row("6_1", "COMPLETED"), failed, row("6_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        assert!(needs_accounting("6", &sq.covering("6")));
        let sacct = vec![row("6_1", "COMPLETED"), row("6_3", "COMPLETED")];
        let d = late(&sq, Some(&sacct), Accounting::Answered).decide("6", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
        assert_eq!(field(&d, "tasks_completed"), "2");
        assert_eq!(field(&d, "tasks_failed"), "1");
    }

    /// Seen on the testbed with slurmdbd: right after an array's tasks end, sacct reports the
    /// array ID as one plain job ("allocation", COMPLETED) with no task rows. That row must not
    /// decide an array squeue knows; wait until the task records arrive.
    #[test]
    fn a_plain_sacct_row_never_decides_an_array() {
        let mut failed = row("6_2", "FAILED");
        failed.exit_code = "1:0".into();
        let squeue = vec![row("6_1", "COMPLETED"), failed, row("6_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        let mut plain = row("6", "COMPLETED");
        plain.name = "allocation".into();
        let sacct = vec![plain];
        assert_eq!(
            late(&sq, Some(&sacct), Accounting::Answered).decide("6", T),
            Decision::Stay
        );
    }

    /// The same from real output: array 12 of the captured slurmdbd sacct fixture, of which
    /// squeue kept only the last task.
    #[test]
    fn array_parent_from_the_captured_sacct_fixture() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/slurm/sacct-slurmdbd.txt"),
        )
        .unwrap();
        let sacct = slurm::parse_sacct(&text).unwrap();
        let squeue = vec![row("12_3", "COMPLETED")];
        let sq = Index::new(&squeue);
        let d = late(&sq, Some(&sacct), Accounting::Answered).decide("12", T);
        assert!(matches!(d, Decision::Move(Set::Failed, _)), "{d:?}");
        assert_eq!(field(&d, "tasks"), "3");
        assert_eq!(field(&d, "tasks_completed"), "2");
        assert_eq!(field(&d, "tasks_failed"), "1");
    }

    fn server_error(code: &str, detail: &str) -> redis::RedisError {
        redis::make_extension_error(code.into(), Some(detail.into()))
    }

    #[test]
    fn script_errors_say_what_to_do_and_keep_their_status() {
        let sha = " script: 8831e6defd32b381a92a21bfbb7817a3ff1ae11f, on @user_script:16.";
        let e = script_error(
            "h:1",
            &server_error("WRONGTYPE", &format!("Operation against a key{sha}")),
            "T_TRACKER",
        );
        assert_eq!(
            e.to_string(),
            "Redis h:1 failed at T_TRACKER: WRONGTYPE Operation against a key"
        );
        assert_eq!(crate::exit::code_for(&e), 65);
        // Redis 6 and 7 report a refused command inside a script as ERR, not NOPERM.
        let e = script_error(
            "h:1",
            &server_error(
                "ERR",
                &format!("The user executing the script can't run this command or subcommand{sha}"),
            ),
            "T_TRACKER",
        );
        assert_eq!(crate::exit::code_for(&e), 77, "{e}");
        assert!(e.to_string().contains("NOPERM") && !e.to_string().contains("@user_script"));
        assert!(!crate::exit::is_transient(&e));
        // EVAL renamed away: Redis echoes the script's text; the message does not.
        let e = script_error(
            "h:1",
            &server_error(
                "ERR",
                "unknown command 'EVAL', with args beginning with: '\nlocal function denied' ",
            ),
            "T_TRACKER",
        );
        assert_eq!(crate::exit::code_for(&e), 69);
        assert!(e.to_string().contains("Lua scripting (EVAL)"), "{e}");
        assert!(!e.to_string().contains("denied"), "{e}");
        let e = script_error(
            "h:1",
            &server_error(
                "NOPERM",
                "User u has no permissions to run the 'eval' command",
            ),
            "T_TRACKER",
        );
        assert_eq!(crate::exit::code_for(&e), 77);
        assert!(e.to_string().contains("+eval"), "{e}");
        // What a retry can fix stays transient.
        let e = script_error(
            "h:1",
            &server_error(
                "READONLY",
                &format!("You can't write against a read only replica.{sha}"),
            ),
            "T_TRACKER",
        );
        assert!(crate::exit::is_transient(&e), "{e}");
        assert!(e.to_string().ends_with("read only replica."), "{e}");
    }

    #[test]
    fn one_refused_job_is_one_line_and_more_are_counted() {
        assert!(refusal(&[]).is_none());
        let one = refusal(&["T_JOB:1 holds a string".into()]).unwrap();
        assert_eq!(one.to_string(), "T_JOB:1 holds a string");
        assert_eq!(crate::exit::code_for(&one), 65);
        let two = refusal(&["a".into(), "b".into()]).unwrap().to_string();
        assert!(two.starts_with("a (1 more"), "{two}");
    }

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
