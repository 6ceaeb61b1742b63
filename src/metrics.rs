//! The ledger's figures as OpenMetrics text (ARCHITECTURE.md §8): what `rj-status --format
//! openmetrics` prints and what rj-track's `--metrics-file` writes for node_exporter's textfile
//! collector. Collecting reads a few keys per tag; rendering and writing are pure or local.
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::exit::{fail, Kind};
use crate::keys::{Keys, Set};
use crate::store::Store;

/// What one tag's metrics say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagFigures {
    pub tag: String,
    /// SCARD of each set, in `Set::ALL` order.
    pub counts: [u64; 6],
    /// The lease holder of the tag's rj-track (GET T_TRACKER), if one holds it.
    pub lease_owner: Option<String>,
    /// What is left of that lease (PTTL), in milliseconds.
    pub lease_left_ms: Option<u64>,
    /// rj-track's figures of its last tick for the tag (T_TRACKER:tick), as integers; absent
    /// fields (or ones that are not integers) are left out.
    pub tick: Tick,
}

/// The `T_TRACKER:tick` hash: written by the lease holder once per tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tick {
    /// Unix seconds of the tick's start.
    pub at: Option<u64>,
    pub duration_ms: Option<u64>,
    pub slurm_commands: Option<u64>,
    pub tracked: Option<u64>,
    pub moved: Option<u64>,
    pub unknown: Option<u64>,
    pub owner: Option<String>,
}

impl Tick {
    /// The hash's fields (HGETALL's pairs).
    pub fn from_fields(fields: &[(String, String)]) -> Tick {
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let num = |k: &str| get(k).and_then(|v| v.trim().parse::<u64>().ok());
        Tick {
            at: num("at"),
            duration_ms: num("duration_ms"),
            slurm_commands: num("slurm_commands"),
            tracked: num("tracked"),
            moved: num("moved"),
            unknown: num("unknown"),
            owner: get("owner").map(str::to_string),
        }
    }
}

/// Read one tag's figures: six SCARDs, the lease (GET, PTTL) and the tick hash (HGETALL), in
/// one pipelined round trip.
pub fn collect(store: &mut Store, keys: &Keys) -> anyhow::Result<TagFigures> {
    let mut p = redis::pipe();
    for set in Set::ALL {
        p.cmd("SCARD").arg(keys.set(set));
    }
    p.cmd("GET").arg(keys.tracker());
    p.cmd("PTTL").arg(keys.tracker());
    p.cmd("HGETALL").arg(keys.tracker_tick());
    type Replies = (
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        Option<String>,
        i64,
        Vec<(String, String)>,
    );
    let (c0, c1, c2, c3, c4, c5, owner, pttl, tick): Replies = store.pipe_raw(&p).map_err(|e| {
        let names: Vec<String> = Set::ALL
            .iter()
            .map(|s| keys.set(*s))
            .chain([keys.tracker(), keys.tracker(), keys.tracker_tick()])
            .collect();
        let at = crate::exit::first_server_error(&e)
            .and_then(|(i, _)| names.get(i).cloned())
            .unwrap_or_else(|| keys.tracker_tick());
        store.error(e, &at)
    })?;
    Ok(TagFigures {
        tag: keys.tag().to_string(),
        counts: [c0, c1, c2, c3, c4, c5],
        // PTTL: -1 no expiry, -2 no key.
        lease_left_ms: owner.as_ref().and_then(|_| u64::try_from(pttl).ok()),
        lease_owner: owner,
        tick: Tick::from_fields(&tick),
    })
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its HELP and TYPE lines, then one sample per (labels, value).
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    samples: Vec<(String, String)>,
}

/// Seconds, from milliseconds, in the shortest exact decimal form.
fn secs_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
            .trim_end_matches('0')
            .to_string()
    }
}

/// The OpenMetrics text of the tags' figures (gauges only, names `rj_…`, ending in `# EOF`).
/// `now` (unix seconds) gives the age of each tag's last tick. A figure a tag does not have
/// (no tracker yet, a tick hash without that field) has no sample, rather than a made-up 0.
pub fn render(tags: &[TagFigures], now: u64) -> String {
    let mut fams = vec![
        Family {
            name: "rj_jobs",
            help: "Jobs in each set of the tag (SCARD; set ALL is every job recorded).",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_lease_holder",
            help: "1 for the rj-track holding the tag's lease (owner is host:pid:nonce).",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_lease_remaining_seconds",
            help: "Time left on the tracker's lease; it is renewed every tick.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_timestamp_seconds",
            help: "Unix time of the start of rj-track's last tick for the tag.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_age_seconds",
            help: "Seconds since the start of rj-track's last tick for the tag.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_duration_seconds",
            help: "How long rj-track's last tick took.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_slurm_commands",
            help: "Slurm commands (squeue, sacct, scontrol) rj-track ran in its last tick.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_tracked_jobs",
            help: "Jobs pending in the tag at rj-track's last tick.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_moved_jobs",
            help: "Jobs rj-track moved to a final set in its last tick.",
            samples: Vec::new(),
        },
        Family {
            name: "rj_tracker_last_tick_unknown_jobs",
            help: "Jobs Slurm did not know at rj-track's last tick (LOST after --lost-after).",
            samples: Vec::new(),
        },
    ];
    for t in tags {
        let tag = format!("tag=\"{}\"", label(&t.tag));
        for (set, n) in Set::ALL.iter().zip(t.counts) {
            fams[0]
                .samples
                .push((format!("{tag},set=\"{}\"", set.suffix()), n.to_string()));
        }
        if let Some(o) = &t.lease_owner {
            fams[1]
                .samples
                .push((format!("{tag},owner=\"{}\"", label(o)), "1".into()));
        }
        if let Some(ms) = t.lease_left_ms {
            fams[2].samples.push((tag.clone(), secs_ms(ms)));
        }
        let k = &t.tick;
        let mut put = |i: usize, v: Option<String>| {
            if let Some(v) = v {
                fams[i].samples.push((tag.clone(), v));
            }
        };
        put(3, k.at.map(|a| a.to_string()));
        put(4, k.at.map(|a| now.saturating_sub(a).to_string()));
        put(5, k.duration_ms.map(secs_ms));
        put(6, k.slurm_commands.map(|v| v.to_string()));
        put(7, k.tracked.map(|v| v.to_string()));
        put(8, k.moved.map(|v| v.to_string()));
        put(9, k.unknown.map(|v| v.to_string()));
    }
    let mut out = String::new();
    for f in &fams {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, v) in &f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {v}", f.name);
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Write `text` to `path` atomically, for node_exporter's textfile collector, which must never
/// read half a file: a temporary file in the same directory, fsynced, renamed over `path`, and
/// the directory fsynced so that the rename survives a crash.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        fail(
            Kind::Config,
            format!("metrics file {} names no file", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |what: &str, e: std::io::Error| {
        fail(
            Kind::Output,
            format!("cannot {what} metrics file {}: {e}", path.display()),
        )
    };
    let r = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create a temporary", e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io("write the temporary", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("rename the temporary to the", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> TagFigures {
        TagFigures {
            tag: "exp\"1".into(),
            counts: [6, 2, 2, 1, 0, 1],
            lease_owner: Some("login1:42:ab\\c".into()),
            lease_left_ms: Some(29_500),
            tick: Tick {
                at: Some(1_700_000_000),
                duration_ms: Some(1_250),
                slurm_commands: Some(2),
                tracked: Some(2),
                moved: Some(1),
                unknown: Some(0),
                owner: Some("login1:42:ab\\c".into()),
            },
        }
    }

    #[test]
    fn every_figure_is_one_gauge_sample_with_escaped_labels() {
        let text = render(&[figures()], 1_700_000_010);
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in [
            "rj_jobs{tag=\"exp\\\"1\",set=\"ALL\"} 6",
            "rj_jobs{tag=\"exp\\\"1\",set=\"CANCELLED\"} 1",
            "rj_tracker_lease_holder{tag=\"exp\\\"1\",owner=\"login1:42:ab\\\\c\"} 1",
            "rj_tracker_lease_remaining_seconds{tag=\"exp\\\"1\"} 29.5",
            "rj_tracker_last_tick_timestamp_seconds{tag=\"exp\\\"1\"} 1700000000",
            "rj_tracker_last_tick_age_seconds{tag=\"exp\\\"1\"} 10",
            "rj_tracker_last_tick_duration_seconds{tag=\"exp\\\"1\"} 1.25",
            "rj_tracker_last_tick_slurm_commands{tag=\"exp\\\"1\"} 2",
            "rj_tracker_last_tick_unknown_jobs{tag=\"exp\\\"1\"} 0",
            "# TYPE rj_jobs gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn a_tag_without_tracker_has_counts_only() {
        let mut f = figures();
        f.lease_owner = None;
        f.lease_left_ms = None;
        f.tick = Tick::default();
        let text = render(&[f], 0);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 6, "{text}");
        assert!(text.contains("# HELP rj_tracker_last_tick_unknown_jobs "));
    }

    #[test]
    fn the_tick_hash_is_read_leniently() {
        let t = Tick::from_fields(&[
            ("at".into(), "1700000000".into()),
            ("duration_ms".into(), "x".into()),
            ("owner".into(), "o".into()),
        ]);
        assert_eq!(t.at, Some(1_700_000_000));
        assert_eq!(t.duration_ms, None);
        assert_eq!(t.owner.as_deref(), Some("o"));
        assert_eq!(secs_ms(1000), "1");
        assert_eq!(secs_ms(1), "0.001");
        assert_eq!(secs_ms(1500), "1.5");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rj.prom");
        write_file(&p, "a 1\n# EOF\n").unwrap();
        write_file(&p, "a 2\n# EOF\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n# EOF\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        let e = write_file(&dir.path().join("no/such/dir/x.prom"), "").unwrap_err();
        assert!(e.to_string().contains("no/such/dir/x.prom"), "{e}");
    }
}
