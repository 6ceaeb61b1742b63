//! The local spool of job IDs that sbatch accepted while Redis could not be written, and its
//! replay. One JSON line per job; an exclusive flock guards appends and replays.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::PathBuf;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::config::{xdg_dir, Env};
use crate::keys::{Keys, Tag};
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

/// Append jobs to the spool and fsync, so that a crash right after cannot lose them.
pub fn append(p: &PathBuf, entries: &[Entry]) -> anyhow::Result<()> {
    let mut f = open_locked(p)?;
    let mut buf = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut buf, e)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write spool {}", p.display()))?;
    Ok(())
}

/// Record every spooled job, then empty the spool. Returns how many were replayed. A missing
/// spool is nothing to do; if Redis fails half-way the spool is kept whole (recording is
/// idempotent, so the next replay finishes the job).
pub fn replay(store: &mut Store, keys: &Keys, p: &PathBuf) -> anyhow::Result<usize> {
    match std::fs::metadata(p) {
        Ok(m) if m.len() > 0 => {}
        _ => return Ok(0),
    }
    let mut f = open_locked(p)?;
    f.rewind()?;
    let mut jobs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in BufReader::new(&*f).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read spool {}", p.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_str(&line).map_err(|e| {
            crate::exit::fail(
                crate::exit::Kind::DataErr,
                format!("spool {} line {}: {e}", p.display(), n + 1),
            )
        })?;
        // A job spooled by two failed attempts is one job: keep its first record.
        if seen.insert(e.id.clone()) {
            jobs.push((e.id, e.fields));
        }
    }
    if jobs.is_empty() {
        return Ok(0);
    }
    store.record(keys, &jobs)?;
    f.set_len(0)
        .with_context(|| format!("cannot empty spool {}", p.display()))?;
    f.sync_all()?;
    Ok(jobs.len())
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
    fn append_writes_one_json_line_per_job() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rj/t.spool");
        let e = |id: &str| Entry {
            id: id.into(),
            fields: vec![("cluster".into(), "c".into())],
        };
        append(&p, &[e("1"), e("2_3")]).unwrap();
        append(&p, &[e("4")]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let back: Vec<Entry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, [e("1"), e("2_3"), e("4")]);
    }
}
