//! Moving finished jobs (ARCHITECTURE.md §2, §7 step 7): the move script (SMOVE and record,
//! all or nothing, fenced by the lease), the script that times jobs Slurm does not know (and
//! preempted ones), the script that notes requeues and pending reasons in the hashes of live
//! jobs, moves whose reply a dropped connection lost, and the line each move prints.
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::exit::{fail, Kind};
use crate::keys::{Keys, Set, Tag};
use crate::store::Store;

use super::judge::Planned;
use super::script::eval;

/// KEYS: lease, pending set, the four final sets, the event stream, then one job hash per job.
/// ARGV: owner, lease ms, record ttl s (0 = none), events max (0 = no events), then per job:
/// id, final set index (1..4), and the event's set, state, exit_code and tracked_at, field
/// count, fields…. Fenced by the lease; SMOVE per job; only a job this call moved gets its
/// record (a job another tracker or an old script moved is left alone), `tracked_by` = owner,
/// by which a tracker that lost the reply finds its moves again, and one entry in the event
/// stream (`XADD MAXLEN ~ max`, ARCHITECTURE.md §2).
///
/// All or nothing: every permission and the type of every key are checked before the first
/// write, so a job is never moved without its record and its event. A set or stream of the
/// wrong type or a refused permission fails the whole call with nothing written; a job hash of
/// the wrong type refuses only that job, which stays pending while the others move.
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
local events = tonumber(ARGV[4])
e = set_error(KEYS[2])
if e then return fail(e) end
if events > 0 and #ARGV > 4 then
  local t
  t, e = kind(KEYS[7])
  if e then return fail(e) end
  if t ~= 'stream' and t ~= 'none' then
    return fail('WRONGTYPE ' .. KEYS[7] .. ' holds a ' .. t .. ', not a stream')
  end
  e = denied('XADD', KEYS[7], 'MAXLEN', '~', ARGV[4], '*', 'job', ARGV[5])
  if e then return fail(e) end
end
local checked = {}
local jobs = {}
local refused = {}
local i = 5
local k = 8
while i <= #ARGV do
  local id = ARGV[i]
  local dest = KEYS[2 + tonumber(ARGV[i + 1])]
  local n = tonumber(ARGV[i + 6])
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
  i = i + 7 + 2 * n
  k = k + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local moved = {}
for _, j in ipairs(jobs) do
  local id, dest, key, at, n = j[1], j[2], KEYS[j[3]], j[4], j[5]
  if redis.call('SMOVE', KEYS[2], dest, id) == 1 then
    if n > 0 then
      redis.call('HSET', key, unpack(ARGV, at + 7, at + 6 + 2 * n))
    end
    redis.call('HSET', key, 'tracked_by', ARGV[1])
    if ttl > 0 then
      redis.call('EXPIRE', key, ttl)
    end
    if events > 0 then
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', events, '*', 'job', id, 'set', ARGV[at + 2],
        'state', ARGV[at + 3], 'exit_code', ARGV[at + 4], 'tracked_at', ARGV[at + 5],
        'tracker', ARGV[1])
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

/// KEYS: lease, then one job hash per note. ARGV: owner, then per note ([`Note`]): field,
/// value, n, then n more field/value pairs. Fenced by the lease (-1 when another tracker holds
/// it: nothing written); writes the note's fields into each job hash whose `field` differs from
/// `value`, skipping keys that are not hashes (the move script refuses those later); returns 1
/// or 0 per note, written or not. Every permission is checked before the first write.
const NOTE_LUA: &str = r"
local e = denied('GET', KEYS[1])
if e then return redis.error_reply(e) end
local a = 2
for k = 2, #KEYS do
  local n = tonumber(ARGV[a + 2])
  e = denied('TYPE', KEYS[k]) or denied('HGET', KEYS[k], ARGV[a])
    or denied('HSET', KEYS[k], ARGV[a], ARGV[a + 1], unpack(ARGV, a + 3, a + 2 + 2 * n))
  if e then return redis.error_reply(e) end
  a = a + 3 + 2 * n
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = {}
a = 2
for k = 2, #KEYS do
  local n = tonumber(ARGV[a + 2])
  local wrote = 0
  if redis.call('TYPE', KEYS[k]).ok == 'hash'
    and redis.call('HGET', KEYS[k], ARGV[a]) ~= ARGV[a + 1] then
    redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1], unpack(ARGV, a + 3, a + 2 + 2 * n))
    wrote = 1
  end
  out[#out + 1] = wrote
  a = a + 3 + 2 * n
end
return out
";

/// What a tick writes into the hash of a job still tracked (ARCHITECTURE.md §7 step 7b):
/// `field` = `value`, and `also`, when the hash's `field` differs (`restarts` with `requeued_at`
/// after a requeue; `reason` while the job is pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: String,
    pub field: &'static str,
    pub value: String,
    pub also: Vec<(&'static str, String)>,
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
pub const MOVE_BATCH: usize = 1000;

/// A planned move whose reply never came (the connection dropped after the move script was
/// sent): the next tick asks Redis whether it happened and prints its line if so.
#[derive(Debug, Clone)]
pub struct Unreported {
    pub tag: Tag,
    pub planned: Planned,
    pub tracked_at: String,
}

/// What one move script did: the IDs it moved, and the jobs it refused because their job hash
/// holds another type (ID, the type found), which stay pending.
#[derive(Debug, Default)]
pub struct MoveReply {
    pub moved: Vec<String>,
    pub refused: Vec<(String, String)>,
}

impl Store {
    /// Move up to [`MOVE_BATCH`] jobs under the lease, all or nothing (see [`MOVE_LUA`]),
    /// each with its entry in the event stream unless `events_max` is 0. None when the lease
    /// is no longer ours (nothing was moved).
    pub fn move_jobs(
        &mut self,
        keys: &Keys,
        owner: &str,
        lease_ttl: Duration,
        record_ttl: Option<Duration>,
        events_max: u64,
        jobs: &[Planned],
    ) -> anyhow::Result<Option<MoveReply>> {
        let mut k: Vec<String> = vec![keys.tracker(), keys.set(Set::PendingAndRunning)];
        k.extend(Set::FINAL.iter().map(|s| keys.set(*s)));
        k.push(keys.events());
        k.extend(jobs.iter().map(|j| keys.job_hash(&j.id)));
        let k: Vec<&str> = k.iter().map(String::as_str).collect();
        let mut cmd = eval(MOVE_LUA, &k);
        cmd.arg(owner)
            .arg(lease_ttl.as_millis() as u64)
            .arg(record_ttl.map_or(0, |d| d.as_secs().max(1)))
            .arg(events_max);
        for j in jobs {
            let fields = j.record.to_fields();
            cmd.arg(&j.id)
                .arg(final_slot(j.set)?)
                .arg(j.set.suffix())
                .arg(j.get("state"))
                .arg(j.get("exit_code"))
                .arg(j.get("tracked_at"))
                .arg(fields.len());
            for (f, v) in &fields {
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

    /// Write `notes` into the job hashes of live jobs (see [`NOTE_LUA`]), in batches of
    /// [`MOVE_BATCH`]: for each note whether it changed the hash, or None when the lease is
    /// another tracker's (from that batch on, nothing written).
    pub fn note_jobs(
        &mut self,
        keys: &Keys,
        owner: &str,
        notes: &[Note],
    ) -> anyhow::Result<Option<Vec<bool>>> {
        let lease = keys.tracker();
        let mut written = Vec::with_capacity(notes.len());
        for batch in notes.chunks(MOVE_BATCH) {
            let hashes: Vec<String> = batch.iter().map(|n| keys.job_hash(&n.id)).collect();
            let mut names: Vec<&str> = vec![&lease];
            names.extend(hashes.iter().map(String::as_str));
            let mut cmd = eval(NOTE_LUA, &names);
            cmd.arg(owner);
            for n in batch {
                cmd.arg(n.field).arg(&n.value).arg(n.also.len());
                for (f, v) in &n.also {
                    cmd.arg(*f).arg(v);
                }
            }
            let what = format!("the notes in the job hashes of {}", keys.tag());
            match self.script::<redis::Value>(&cmd, &what)? {
                redis::Value::Int(-1) => return Ok(None),
                other => {
                    let flags: Vec<i64> = redis::from_redis_value(other).map_err(|e| {
                        fail(
                            Kind::DataErr,
                            format!("unexpected reply from Redis {} to {what}: {e}", self.place),
                        )
                    })?;
                    written.extend(flags.into_iter().map(|f| f == 1));
                }
            }
        }
        Ok(Some(written))
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
}

/// Form of the move lines on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `TAG ID SET EXIT_CODE STATE`, space-separated; STATE last, as it may hold spaces.
    Text,
    /// One JSON object per line (JSON Lines) with the whole record.
    Json,
}

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

/// Print one move: its line, or its JSON object with the whole record (without `tracked_at`,
/// which is `time`).
pub fn print_move(
    out: &mut dyn Write,
    format: LineFormat,
    tag: &str,
    p: &Planned,
    time: &str,
) -> anyhow::Result<()> {
    let get = |k: &str| p.get(k);
    match format {
        LineFormat::Text => {
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
        LineFormat::Json => {
            let fields = p.record.to_fields();
            let line = MoveLine {
                time: time.to_string(),
                tag,
                job_id: &p.id,
                set: p.set.suffix(),
                record: fields
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

    #[test]
    fn a_move_to_a_set_that_is_not_final_is_an_error() {
        assert_eq!(final_slot(Set::Completed).unwrap(), 1);
        assert_eq!(final_slot(Set::Cancelled).unwrap(), 4);
        for s in [Set::PendingAndRunning, Set::All] {
            let e = final_slot(s).unwrap_err().to_string();
            assert!(e.contains("not a final set"), "{e}");
        }
    }

    fn planned(fields: &[(&str, &str)]) -> Planned {
        Planned {
            id: "42_3".into(),
            set: Set::Cancelled,
            record: crate::record::JobRecord::from_fields(fields.iter().copied()),
        }
    }

    /// The text line keeps STATE last (it may hold spaces) and shows a missing exit code as
    /// `-`; the JSON line carries the whole record, with the tick's time as `time`.
    #[test]
    fn move_lines_in_both_forms() {
        let p = planned(&[
            ("state", "CANCELLED by 0"),
            ("tracked_at", "2026-01-01T00:00:00Z"),
            ("nodes", "n1"),
        ]);
        let mut out = Vec::new();
        print_move(&mut out, LineFormat::Text, "exp", &p, "T").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "exp 42_3 CANCELLED - CANCELLED by 0\n"
        );
        let mut out = Vec::new();
        print_move(&mut out, LineFormat::Json, "exp", &p, "T").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": "T", "tag": "exp", "job_id": "42_3", "set": "CANCELLED",
                "state": "CANCELLED by 0", "nodes": "n1"})
        );
        assert!(out.ends_with(b"}\n"));
    }
}
