//! rj-put's results spool: the writes Redis could not take, one file per attempt under
//! `$XDG_STATE_HOME/rj/<tag>.results/`, and their replay, which applies each file exactly once.
//!
//! Compute nodes and login nodes share `$HOME` over NFS, where appends from several hosts
//! interleave: so no file is ever appended to by two writers. Each attempt writes its own file
//! under a temporary name, fsyncs it and renames it into place, and a reader sees a whole file or
//! none. A file is a sequence of RESP arrays (the Redis protocol, binary-safe, readable with
//! `cat -v`): a header `rj-results 1`, then one SET, HSET or RPUSH per write, in order. Names
//! start with the time, so a directory listing is the order the writes were made in.
//!
//! A replay applies each file in one MULTI/EXEC together with a marker key `T_REPLAYED:<file>`
//! (WATCHed, expiring after [`MARKER_TTL`]) and deletes the file afterwards. A replay killed
//! between the two, or two replays racing (rj-track on the login node, rj-put on a compute node),
//! find the marker and delete the file without applying it again: a list is never pushed twice.
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::config::{xdg_dir, Env};
use crate::exit::{self, fail, fail_transient, Kind};
use crate::keys::{Keys, Tag};
use crate::store::Store;

/// How long the marker of an applied file lives. The file is deleted right after its EXEC, so
/// the marker only matters if a replayer dies in between (the next replay, seconds later at the
/// next rj-track tick, finds it) or reads a file another replayer is applying; a month covers a
/// tracker that was stopped over the holidays.
pub const MARKER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The header array of every file: format name and version.
const MAGIC: &[u8] = b"rj-results";
const VERSION: &[u8] = b"1";

/// The suffix of a spooled file; a replay looks at these only (not at temporary files, nor at
/// files set aside as `.bad`, nor at the `.nfsXXXX` files NFS leaves for deleted open files).
pub const SUFFIX: &str = ".put";

/// How often a replay looks again when a watched key changed under it (a job pushing to the
/// same list meanwhile) before calling it a temporary failure.
const WATCH_TRIES: usize = 50;

/// One write of rj-put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set {
        key: String,
        value: Vec<u8>,
    },
    HSet {
        key: String,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    RPush {
        key: String,
        values: Vec<Vec<u8>>,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Set { key, .. } | Op::HSet { key, .. } | Op::RPush { key, .. } => key,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Op::Set { .. } => "SET",
            Op::HSet { .. } => "HSET",
            Op::RPush { .. } => "RPUSH",
        }
    }

    /// The command's arguments after the verb.
    fn args(&self) -> Vec<&[u8]> {
        let mut a: Vec<&[u8]> = vec![self.key().as_bytes()];
        match self {
            Op::Set { value, .. } => a.push(value),
            Op::HSet { fields, .. } => {
                for (f, v) in fields {
                    a.push(f);
                    a.push(v);
                }
            }
            Op::RPush { values, .. } => a.extend(values.iter().map(Vec::as_slice)),
        }
        a
    }

    pub fn cmd(&self) -> redis::Cmd {
        let mut c = redis::cmd(self.verb());
        for a in self.args() {
            c.arg(a);
        }
        c
    }

    /// The type an existing key must have for the write to succeed (SET replaces any).
    fn needs_type(&self) -> Option<&'static str> {
        match self {
            Op::Set { .. } => None,
            Op::HSet { .. } => Some("hash"),
            Op::RPush { .. } => Some("list"),
        }
    }

    /// What the write is, for messages: `SET T-1:loss`, `3 line(s) … of T-1:log`.
    pub fn describe(&self) -> String {
        match self {
            Op::Set { key, .. } => format!("SET {key}"),
            Op::HSet { key, fields } => format!("HSET {key} ({} field(s))", fields.len()),
            Op::RPush { key, values } => format!("RPUSH {key} ({} value(s))", values.len()),
        }
    }
}

/// `$XDG_STATE_HOME/rj/<tag>.results` (default `~/.local/state/rj/<tag>.results`), beside the
/// launch spool.
pub fn dir(tag: &Tag, env: &dyn Env) -> PathBuf {
    xdg_dir(env, "XDG_STATE_HOME", ".local/state")
        .unwrap_or_else(|| PathBuf::from("."))
        .join("rj")
        .join(format!("{tag}.results"))
}

fn push_array(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

/// The bytes of a spool file holding `ops`.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    push_array(&mut out, &[MAGIC, VERSION]);
    for op in ops {
        let mut parts: Vec<&[u8]> = vec![op.verb().as_bytes()];
        parts.extend(op.args());
        push_array(&mut out, &parts);
    }
    out
}

/// The writes of a spool file; an error says what is wrong and where (a hand edit, a file of
/// another program, a version this rj does not know).
pub fn decode(bytes: &[u8]) -> Result<Vec<Op>, String> {
    let mut pos = 0;
    let header = parse_array(bytes, &mut pos)?;
    if header != [MAGIC, VERSION] {
        return Err("not an rj-results 1 file (its first entry is not the header)".into());
    }
    let mut ops = Vec::new();
    while pos < bytes.len() {
        let at = pos;
        let parts = parse_array(bytes, &mut pos)?;
        let bad = |why: &str| format!("entry at byte {at}: {why}");
        let (verb, rest) = parts.split_first().ok_or_else(|| bad("empty"))?;
        let (key, args) = rest.split_first().ok_or_else(|| bad("no key"))?;
        let key = std::str::from_utf8(key)
            .map_err(|_| bad("the key is not UTF-8"))?
            .to_string();
        let op = match (*verb, args.len()) {
            (b"SET", 1) => Op::Set {
                key,
                value: args[0].to_vec(),
            },
            (b"HSET", n) if n >= 2 && n % 2 == 0 => Op::HSet {
                key,
                fields: args
                    .chunks(2)
                    .map(|fv| (fv[0].to_vec(), fv[1].to_vec()))
                    .collect(),
            },
            (b"RPUSH", n) if n >= 1 => Op::RPush {
                key,
                values: args.iter().map(|v| v.to_vec()).collect(),
            },
            _ => {
                return Err(bad(&format!(
                    "{} with {} argument(s) is not a write rj-put makes",
                    String::from_utf8_lossy(verb),
                    args.len()
                )))
            }
        };
        ops.push(op);
    }
    Ok(ops)
}

/// One RESP array of bulk strings at `*pos`, moving `*pos` past it.
fn parse_array<'a>(b: &'a [u8], pos: &mut usize) -> Result<Vec<&'a [u8]>, String> {
    let n = parse_header(b, pos, b'*')?;
    let mut parts = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = parse_header(b, pos, b'$')?;
        let end = pos
            .checked_add(len)
            .filter(|e| e + 2 <= b.len())
            .ok_or_else(|| format!("truncated at byte {pos}"))?;
        if &b[end..end + 2] != b"\r\n" {
            return Err(format!("no CRLF after the string at byte {pos}"));
        }
        parts.push(&b[*pos..end]);
        *pos = end + 2;
    }
    Ok(parts)
}

/// `<mark><digits>\r\n` at `*pos`.
fn parse_header(b: &[u8], pos: &mut usize, mark: u8) -> Result<usize, String> {
    let at = *pos;
    if b.get(at) != Some(&mark) {
        return Err(format!("expected {:?} at byte {at}", mark as char));
    }
    let digits = b[at + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let end = at + 1 + digits;
    if digits == 0 || digits > 18 || b.get(end..end + 2) != Some(b"\r\n") {
        return Err(format!("bad length at byte {at}"));
    }
    *pos = end + 2;
    std::str::from_utf8(&b[at + 1..end])
        .unwrap()
        .parse()
        .map_err(|_| format!("bad length at byte {at}"))
}

/// Write `bytes` as `dir/name` so that no reader ever sees part of it: to `.name.tmp`, fsync,
/// rename, fsync the directory. The directory is created private (0700): results can be
/// anything a job computes.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create results spool {}", dir.display()))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("cannot write results spool file {}", dest.display()));
    }
    // Makes the rename itself durable on a local file system; NFS commits it at once and some
    // file systems refuse to fsync a directory, which is no reason to fail a write that is done.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(dest)
}

/// The time of the last file name of this process, in nanoseconds since the epoch: names of one
/// writer must sort in the order written even if the clock steps back.
static LAST_NANOS: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique across hosts, processes and attempts, sorting by time:
/// `<seconds>.<nanoseconds>-<host>-<pid>-<counter>.put`.
fn new_file_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let nanos = LAST_NANOS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .map_or(now, |last| now.max(last + 1));
    let host: String = host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{:010}.{:09}-{}-{}-{}{SUFFIX}",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000,
        if host.is_empty() { "unknown" } else { &host },
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Spool `ops` as one new file of `dir`; returns its path.
pub fn write(dir: &Path, ops: &[Op]) -> anyhow::Result<PathBuf> {
    write_atomic(dir, &new_file_name(), &encode(ops))
}

/// The spooled files of `dir`, in the order they were written; none when `dir` does not exist.
pub fn pending(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read results spool {}", dir.display()))
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read results spool {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(SUFFIX) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// What one replay did.
#[derive(Debug, Default)]
pub struct Replay {
    /// Files applied now, and the writes in them.
    pub applied: usize,
    pub writes: usize,
    /// Files found applied already (a replay killed after EXEC, or another replayer first),
    /// deleted without applying them again.
    pub already: usize,
    /// Files Redis refuses for good (a key of another type, a permission): left in place, each
    /// as `file: why`; they are replayed once the cause is fixed.
    pub stuck: Vec<String>,
    /// Files that are not results spool files (a hand edit, a torn copy), renamed to
    /// `<file>.bad` for a human to look at: each as `file: why`.
    pub set_aside: Vec<String>,
}

impl Replay {
    /// Say on stderr what the replay of `dir` did: a note for applied files, a warning for
    /// files left or set aside.
    pub fn report(&self, tag: &Tag, dir: &Path) {
        if self.applied > 0 {
            crate::cli::note(&format!(
                "replayed {} spooled write(s) of tag {tag} from {}",
                self.writes,
                dir.display()
            ));
        }
        if let Some(first) = self.stuck.first() {
            crate::cli::warn(&format!(
                "results spool {}: {} file(s) not replayed, Redis refuses them until the cause \
                 is fixed ({first})",
                dir.display(),
                self.stuck.len()
            ));
        }
        if let Some(first) = self.set_aside.first() {
            crate::cli::warn(&format!(
                "results spool {}: set {} unreadable file(s) aside as *.bad ({first})",
                dir.display(),
                self.set_aside.len()
            ));
        }
    }
}

/// Apply every spooled file of `dir`, oldest first, each exactly once, and delete it. A
/// temporary failure (Redis down again) stops the replay with an error and leaves the rest for
/// the next one; a file Redis refuses for good stays and the others go on.
pub fn replay(store: &mut Store, keys: &Keys, dir: &Path) -> anyhow::Result<Replay> {
    let mut done = Replay::default();
    for path in pending(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Another replayer was faster.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let ops = match decode(&bytes).and_then(|ops| keys_of_tag(keys, ops)) {
            Ok(ops) => ops,
            Err(why) => {
                let mut bad = path.clone().into_os_string();
                bad.push(".bad");
                fs::rename(&path, &bad)
                    .with_context(|| format!("cannot set {} aside", path.display()))?;
                done.set_aside.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        match apply(store, keys, &name, &ops) {
            Ok(true) => {
                done.applied += 1;
                done.writes += ops.len();
            }
            Ok(false) => done.already += 1,
            Err(e) if exit::is_transient(&e) => {
                return Err(e.context(format!("cannot replay {}", path.display())))
            }
            Err(e) => {
                done.stuck.push(format!("{}: {e:#}", path.display()));
                continue;
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "replayed {} but cannot delete it (its marker keeps the next replay \
                         from applying it twice)",
                        path.display()
                    )
                })
            }
        }
    }
    Ok(done)
}

/// A spool file may only write data keys of its own tag (the directory is the tag's; a file
/// copied from another tag's must not write there).
fn keys_of_tag(keys: &Keys, ops: Vec<Op>) -> Result<Vec<Op>, String> {
    match ops.iter().find(|op| keys.data_key_job(op.key()).is_none()) {
        Some(op) => Err(format!(
            "{} is not a data key of tag {}",
            op.key(),
            keys.tag()
        )),
        None => Ok(ops),
    }
}

/// Apply one file's writes with its marker in one MULTI/EXEC: true if applied now, false if
/// its marker says it was before. The marker and every list and hash key are WATCHed, and
/// their types checked first: Redis does not roll a transaction back, so a WRONGTYPE inside
/// EXEC would apply half the file and mark it done.
fn apply(store: &mut Store, keys: &Keys, file: &str, ops: &[Op]) -> anyhow::Result<bool> {
    let marker = keys.replayed(file);
    let mut typed: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|o| Some((o.key(), o.needs_type()?)))
        .collect();
    typed.sort_unstable();
    typed.dedup();
    let mut names: Vec<&str> = ops.iter().map(Op::key).collect();
    names.sort_unstable();
    names.dedup();
    let at = format!("{} (replaying {file})", names.join(" "));
    for _ in 0..WATCH_TRIES {
        let mut watch = redis::cmd("WATCH");
        watch.arg(&marker);
        for (k, _) in &typed {
            watch.arg(*k);
        }
        store.query::<()>(&watch, &marker)?;
        let mut look = redis::pipe();
        look.cmd("EXISTS").arg(&marker);
        for (k, _) in &typed {
            look.cmd("TYPE").arg(*k);
        }
        let seen: Vec<redis::Value> = store.pipe(&look, &at)?;
        let exists: bool = redis::from_redis_value(seen[0].clone()).unwrap_or(false);
        let wrong = typed.iter().zip(&seen[1..]).find_map(|((k, want), got)| {
            let got: String = redis::from_redis_value(got.clone()).unwrap_or_default();
            (got != "none" && got != *want).then_some((*k, *want, got))
        });
        if exists || wrong.is_some() {
            let _ = store.query::<()>(&redis::cmd("UNWATCH"), &marker);
        }
        if exists {
            return Ok(false);
        }
        if let Some((k, want, got)) = wrong {
            return Err(fail(
                Kind::DataErr,
                format!(
                    "Redis {} holds {k} as a {got}, not a {want} (WRONGTYPE); the file is \
                     replayed once {k} is deleted or renamed",
                    store.place
                ),
            ));
        }
        let mut tx = redis::pipe();
        tx.atomic();
        tx.cmd("SET")
            .arg(&marker)
            .arg(format!(
                "{} {}",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                host_name()
            ))
            .arg("EX")
            .arg(MARKER_TTL.as_secs())
            .ignore();
        for op in ops {
            tx.add_command(op.cmd()).ignore();
        }
        match store.pipe_raw::<Option<()>>(&tx) {
            Ok(Some(())) => return Ok(true),
            Ok(None) => continue, // a watched key changed: look again
            Err(e) => {
                // Index 0 of the transaction is the marker; name the write that failed.
                let key = exit::first_server_error(&e)
                    .and_then(|(i, _)| i.checked_sub(1))
                    .and_then(|i| ops.get(i))
                    .map(|o| format!("{} (replaying {file})", o.key()))
                    .unwrap_or_else(|| at.clone());
                return Err(store.error(e, &key));
            }
        }
    }
    Err(fail_transient(
        Kind::Unavailable,
        format!(
            "Redis {}: {at} changed {WATCH_TRIES} times during the replay; left for the next one",
            store.place
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ops() -> Vec<Op> {
        vec![
            Op::Set {
                key: "t-1:bin".into(),
                value: b"\x00\xff\r\n*1\r\n".to_vec(),
            },
            Op::HSet {
                key: "t-1:h".into(),
                fields: vec![
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"b=c".to_vec(), b"".to_vec()),
                ],
            },
            Op::RPush {
                key: "t-1_2:log".into(),
                values: vec![b"x".to_vec(), b"".to_vec(), b"line 3".to_vec()],
            },
        ]
    }

    #[test]
    fn dir_per_tag_beside_the_launch_spool() {
        let tag = Tag::new("exp.1").unwrap();
        let env: HashMap<&str, &str> = [("XDG_STATE_HOME", "/s"), ("HOME", "/h")].into();
        assert_eq!(dir(&tag, &env), PathBuf::from("/s/rj/exp.1.results"));
        let env: HashMap<&str, &str> = [("HOME", "/h")].into();
        assert_eq!(
            dir(&tag, &env),
            PathBuf::from("/h/.local/state/rj/exp.1.results")
        );
    }

    #[test]
    fn files_round_trip_any_bytes() {
        let bytes = encode(&ops());
        assert!(bytes.starts_with(b"*2\r\n$10\r\nrj-results\r\n$1\r\n1\r\n"));
        assert_eq!(decode(&bytes).unwrap(), ops());
        assert_eq!(decode(&encode(&[])).unwrap(), []);
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let good = encode(&ops());
        for cut in [1, 10, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(b"").is_err());
        assert!(decode(b"hello\n").is_err());
        let mut other = Vec::new();
        push_array(&mut other, &[MAGIC, b"2"]);
        assert!(decode(&other).unwrap_err().contains("rj-results 1"));
        let mut del = encode(&[]);
        push_array(&mut del, &[b"DEL", b"t-1:x"]);
        assert!(decode(&del).unwrap_err().contains("not a write"));
        let mut odd = encode(&[]);
        push_array(&mut odd, &[b"HSET", b"t-1:x", b"f"]);
        assert!(decode(&odd).is_err());
    }

    #[test]
    fn only_the_tags_data_keys() {
        let keys = Keys::new(Tag::new("t").unwrap());
        assert!(keys_of_tag(&keys, ops()).is_ok());
        let other = vec![Op::Set {
            key: "t_ALL".into(),
            value: b"1".to_vec(),
        }];
        assert!(keys_of_tag(&keys, other).unwrap_err().contains("t_ALL"));
        let other = vec![Op::Set {
            key: "t-2-5:x".into(),
            value: b"1".to_vec(),
        }];
        assert!(keys_of_tag(&keys, other).is_err());
    }

    #[test]
    fn names_are_unique_and_sort_in_the_order_written() {
        let names: Vec<String> = (0..100).map(|_| new_file_name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, names);
        assert!(names[0].ends_with(SUFFIX) && !names[0].starts_with('.'));
    }

    #[test]
    fn written_files_are_whole_and_listed_in_order() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("rj/t.results");
        assert!(pending(&dir).unwrap().is_empty());
        let a = write(&dir, &ops()[..1]).unwrap();
        let b = write(&dir, &ops()[1..]).unwrap();
        std::fs::write(dir.join(".x.put.tmp"), b"partial").unwrap();
        std::fs::write(dir.join("y.put.bad"), b"bad").unwrap();
        assert_eq!(pending(&dir).unwrap(), [a.clone(), b]);
        assert_eq!(decode(&std::fs::read(&a).unwrap()).unwrap(), ops()[..1]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
