//! The local spool of job IDs that sbatch accepted while Redis could not be written, and its
//! replay. One JSON line per job; an exclusive flock guards appends and replays.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::PathBuf;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::config::{xdg_dir, Env};
use crate::keys::{JobId, Keys, Tag};
use crate::store::Store;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: String,
    pub fields: Vec<(String, String)>,
}

/// `$XDG_STATE_HOME/rj/<tag>.spool` (default `~/.local/state/rj/<tag>.spool`).
pub fn path(tag: &Tag, env: &dyn Env) -> PathBuf {
    xdg_dir(env, "XDG_STATE_HOME", ".local/state")
        .unwrap_or_else(|| PathBuf::from("."))
        .join("rj")
        .join(format!("{tag}.spool"))
}

fn open_locked(p: &PathBuf) -> anyhow::Result<Flock<File>> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create spool directory {}", dir.display()))?;
    }
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(p)
        .with_context(|| format!("cannot open spool {}", p.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock spool {}: {e}", p.display()))
}

/// Append jobs to the spool and fsync, so that a crash right after cannot lose them. Entries are
/// written as they come (a million of them need not be in memory at once); a write that fails
/// half-way leaves at worst a torn last line, which the next replay sets aside.
pub fn append(p: &PathBuf, entries: impl IntoIterator<Item = Entry>) -> anyhow::Result<()> {
    let f = open_locked(p)?;
    let cannot = || format!("cannot write spool {}", p.display());
    let mut w = std::io::BufWriter::with_capacity(1 << 16, &*f);
    for e in entries {
        serde_json::to_writer(&mut w, &e).with_context(cannot)?;
        w.write_all(b"\n").with_context(cannot)?;
    }
    w.flush().with_context(cannot)?;
    drop(w);
    f.sync_all().with_context(cannot)?;
    Ok(())
}

/// Jobs per recording chunk: each one Lua script (or one MULTI/EXEC), so that a million IDs
/// neither sit in one client buffer nor block the server for one long call. A job's two SADDs,
/// its hash and its event are always in the same chunk, written whole or not at all
/// (ARCHITECTURE.md §2 holds per job).
pub const RECORD_BATCH: usize = 1000;

/// What one replay did.
#[derive(Debug, Default, PartialEq)]
pub struct Replay {
    /// Jobs recorded in Redis (or found already recorded there).
    pub recorded: usize,
    /// Lines that were not a spool entry (a torn write, a hand edit): each as `line N: why`.
    /// They were appended, as they were, to [`bad_path`] of the spool.
    pub set_aside: Vec<String>,
}

/// `<spool>.bad`: where replay keeps the lines it cannot read, for a human to look at.
pub fn bad_path(p: &std::path::Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".bad");
    PathBuf::from(s)
}

/// Record every spooled job, then empty the spool. A missing spool is nothing to do. A line
/// that is not an entry with a valid job ID does not block the others: it is appended to
/// `<spool>.bad` (and fsynced) before the spool is emptied. IDs are recorded as rj stores them
/// (`00012` as `12`), in transactions of [`RECORD_BATCH`]. If Redis or the disk fails half-way
/// the spool is kept whole (recording is idempotent, so the next replay finishes).
/// Each job gets its `recorded` event in `T_EVENTS` (trimmed to about
/// [`crate::store::EVENTS_MAX`] entries), as rj-launch would have written it.
pub fn replay(store: &mut Store, keys: &Keys, p: &PathBuf) -> anyhow::Result<Replay> {
    replay_with(store, keys, p, crate::store::EVENTS_MAX)
}

/// [`replay`], each job recorded with its `recorded` event in `T_EVENTS` trimmed to about
/// `events_max` entries (0: no event), as `rj-launch --events-max` records.
pub fn replay_with(
    store: &mut Store,
    keys: &Keys,
    p: &PathBuf,
    events_max: u64,
) -> anyhow::Result<Replay> {
    let bad = bad_path(p);
    let mut done = Replay::default();
    match std::fs::metadata(p) {
        Ok(m) if m.len() > 0 => {}
        _ => return Ok(done),
    }
    let mut f = open_locked(p)?;
    f.rewind()?;
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut seen = std::collections::HashSet::new();
    let mut bad_lines = Vec::new();
    for (n, line) in BufReader::new(&*f).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("cannot read spool {}", p.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(&line) {
            Ok((id, e)) => {
                // A job spooled by two failed attempts is one job: keep its first record.
                if seen.insert(id) {
                    batch.push((id.to_string(), e.fields));
                }
            }
            Err(why) => {
                done.set_aside.push(format!("line {}: {why}", n + 1));
                bad_lines.extend_from_slice(&line);
                bad_lines.push(b'\n');
            }
        }
        if batch.len() == RECORD_BATCH {
            store.record(keys, events_max, &batch)?;
            done.recorded += batch.len();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.record(keys, events_max, &batch)?;
        done.recorded += batch.len();
    }
    if !bad_lines.is_empty() {
        // Kept elsewhere first: if that fails the spool stays whole.
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&bad)
            .and_then(|mut b| {
                b.write_all(&bad_lines)?;
                b.sync_all()
            })
            .with_context(|| format!("cannot write {}", bad.display()))?;
    }
    f.set_len(0)
        .with_context(|| format!("cannot empty spool {}", p.display()))?;
    f.sync_all()?;
    Ok(done)
}

impl Replay {
    /// Say on stderr what the replay of `spool` did, for `tag`: a note for recorded jobs, a
    /// warning naming `<spool>.bad` for lines set aside.
    pub fn report(&self, tag: &Tag, spool: &std::path::Path) {
        if self.recorded > 0 {
            crate::cli::note(&format!(
                "recorded {} spooled job(s) of {tag} from {}",
                self.recorded,
                spool.display()
            ));
        }
        if let Some(first) = self.set_aside.first() {
            crate::cli::warn(&format!(
                "spool {}: set {} unreadable line(s) aside in {} ({first})",
                spool.display(),
                self.set_aside.len(),
                bad_path(spool).display()
            ));
        }
    }
}

/// One spool line: an [`Entry`] whose ID is a Slurm job ID, and that ID. Public for the fuzz targets.
pub fn parse_line(line: &[u8]) -> Result<(JobId, Entry), String> {
    let e: Entry = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok((e.id.parse::<JobId>()?, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn spool_path_per_tag_under_xdg_state_home_or_home() {
        let tag = Tag::new("exp.1").unwrap();
        let env: HashMap<&str, &str> = [("XDG_STATE_HOME", "/s"), ("HOME", "/h")].into();
        assert_eq!(path(&tag, &env), PathBuf::from("/s/rj/exp.1.spool"));
        let env: HashMap<&str, &str> = [("HOME", "/h")].into();
        assert_eq!(
            path(&tag, &env),
            PathBuf::from("/h/.local/state/rj/exp.1.spool")
        );
    }

    #[test]
    fn a_line_is_an_entry_with_a_job_id() {
        let (id, e) = parse_line(br#"{"id":"7_2","fields":[["k","v"]]}"#).unwrap();
        assert_eq!(id.to_string(), "7_2");
        assert_eq!(e.id, "7_2");
        let (id, _) = parse_line(br#"{"id":"007_02","fields":[]}"#).unwrap();
        assert_eq!(id.to_string(), "7_2", "replayed as rj stores it");
        assert!(parse_line(br#"{"id":"0","fields":[]}"#).is_err());
        assert_eq!(e.fields, [("k".to_string(), "v".to_string())]);
        assert!(parse_line(br#"{"id":"7","fie"#).is_err());
        let why = parse_line(br#"{"id":"7 8","fields":[]}"#).unwrap_err();
        assert!(why.contains("not a Slurm job ID"), "{why}");
        assert!(parse_line(b"\xff\xfe").is_err());
    }

    #[test]
    fn bad_lines_go_beside_the_spool() {
        assert_eq!(
            bad_path(std::path::Path::new("/s/rj/exp.1.spool")),
            PathBuf::from("/s/rj/exp.1.spool.bad")
        );
    }

    #[test]
    fn append_writes_one_json_line_per_job() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rj/t.spool");
        let e = |id: &str| Entry {
            id: id.into(),
            fields: vec![("cluster".into(), "c".into())],
        };
        append(&p, [e("1"), e("2_3")]).unwrap();
        append(&p, [e("4")]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let back: Vec<Entry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, [e("1"), e("2_3"), e("4")]);
    }
}
