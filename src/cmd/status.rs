//! rj-status: the jobs of a tag, per set, as a table or as data; --check and --repair of the sets.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;

use crate::bench::conn::Raw;
use crate::cli::{self, ConnArgs, TagArg};
use crate::exit::{fail, Kind};
use crate::invariant::{self, Change, Op, Violation};
use crate::keys::{JobId, Keys, Set, Tag};
use crate::output::{self, Format};
#[cfg(test)]
use crate::record::JobRecord;
use crate::store::{Store, BATCH};

pub const EXAMPLES: &str = "\
  rj-status --tag exp1
  rj-status --state FAILED --format plain | xargs -n1 sacct -j
  rj-status --count --state PENDING_AND_RUNNING --format plain
  rj-status --long --format csv > jobs.csv
  rj-status --check || rj-status --check --repair
  rj-status --format openmetrics --all-tags > rj.prom.tmp && mv rj.prom.tmp rj.prom
";

/// Show the jobs of a tag: for each of the six sets, its count and its IDs in numeric order.
///
/// A tag without jobs is listed with zero counts and exits 0, with a note on stderr (-q hides
/// it), since a mistyped tag looks the same.
///
/// The sets must keep one rule: every ID of TAG_ALL is in exactly one of the five state sets,
/// and no state-set ID is missing from TAG_ALL. A Redis that evicts keys (maxmemory-policy
/// allkeys-*) or a script that edits the sets can break it. A listing that sees the rule broken
/// still shows the sets as they are on stdout and exits 0, but says so in one warning line on
/// stderr (counts per kind, a few IDs, and the hint to run --check); before warning it re-reads
/// the suspect IDs in one MULTI/EXEC, so that a job rj-track moved during the listing raises no
/// alarm. A listing of all six sets checks every ID; with --state or --count (which reads no
/// IDs) only the counts are compared: SCARD of TAG_ALL against the sum of the five others. A
/// mismatch is certainly a broken rule; equal counts do not prove the rule holds (a job in two
/// sets and another in none cancel out), --check does.
#[derive(Debug, Parser)]
#[command(name = "rj-status", version = cli::VERSION, after_long_help = cli::footer(EXAMPLES))]
pub struct Args {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json). Repeatable with
    /// --format openmetrics, which gives the metrics of every tag named.
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// With --format openmetrics: every tag that has a TAG_ALL set (found by SCAN).
    #[arg(long, conflicts_with = "tag")]
    pub all_tags: bool,
    /// Only these sets: ALL, PENDING_AND_RUNNING (or PENDING, RUNNING), COMPLETED, FAILED,
    /// TIMEOUT, CANCELLED; repeatable. Sets are always listed in this order, whatever the order
    /// of the options (so `--count --format plain` gives one number per line in this order).
    #[arg(long, value_name = "STATE", value_parser = parse_set)]
    pub state: Vec<Set>,
    /// Only the counts (SCARD; no IDs are read).
    #[arg(long, conflicts_with = "long")]
    pub count: bool,
    /// One row per job, joined with its record: state, exit code, elapsed, nodes, ….
    #[arg(short, long)]
    pub long: bool,
    /// Output form; `plain` prints one job ID per line (or one count per line with --count).
    /// `openmetrics`: the Prometheus/OpenMetrics text of the tag's (or tags') figures: gauges of
    /// the job counts per set (rj_jobs), the tracker's lease holder and what is left of its
    /// lease, and the time, age, duration, Slurm commands and unknown jobs of rj-track's last
    /// tick (from TAG_TRACKER:tick), ending in `# EOF`; for node_exporter's textfile collector
    /// or a scrape wrapper.
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub format: StatusFormat,
    /// Check the one-set-per-job rule instead of listing: one line per violation on stdout
    /// (`123: in TAG_COMPLETED but not in TAG_ALL`, `124: in TAG_PENDING_AND_RUNNING and
    /// TAG_FAILED`, `125: in TAG_ALL but in no state set`), in numeric order. The six sets are
    /// read under WATCH and confirmed by an EXEC, so the answer is one instant's truth even while
    /// rj-track moves jobs (the read is retried when they changed; after 10 tries, exit 75).
    /// `--format json`: one document {tag, consistent, changes, violations}, each violation
    /// {job_id, kind, sets, message} with kind not_in_all, several_sets or no_set; csv/tsv: rows
    /// job_id,kind,sets,message; plain: the IDs concerned. Exit 0 when the rule holds (a note on
    /// stderr says so), 65 when any ID breaks it.
    #[arg(long, conflicts_with_all = ["count", "long", "state"])]
    pub check: bool,
    /// With --check: repair what follows from the data without guessing, in one MULTI/EXEC
    /// under WATCH (redone when rj-track moved a job meanwhile, so no move is undone): an ID in
    /// a state set but not in TAG_ALL is added to TAG_ALL; an ID in TAG_PENDING_AND_RUNNING and
    /// a final set is removed from TAG_PENDING_AND_RUNNING; a TAG_ALL member in no state set is
    /// added to the final set its record TAG_JOB:<id> names when rj-track wrote one at a move,
    /// else to TAG_PENDING_AND_RUNNING, so that rj-track judges it from Slurm (and, if Slurm no
    /// longer knows the job, moves it to TAG_FAILED as LOST after --lost-after). An ID in two
    /// final sets is reported, not changed: see `sacct -j ID` and SREM it from the wrong set.
    /// Prints one line per change (json/csv/tsv: kind added or removed), then what is left; exit
    /// 0 when the sets are consistent afterwards, else 65. The ACL user needs +watch +multi +exec
    /// +sadd +srem +hmget besides +sscan.
    #[arg(long, requires = "check")]
    pub repair: bool,
}

/// rj-status's output forms: the data forms every tool has, and the metrics text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Aligned text for people.
    Human,
    /// One value per line, for xargs and `while read`.
    Plain,
    /// One JSON document.
    Json,
    /// Comma-separated, with a header line.
    Csv,
    /// Tab-separated, with a header line.
    Tsv,
    /// Prometheus/OpenMetrics text exposition.
    Openmetrics,
}

impl StatusFormat {
    fn data(self) -> Option<Format> {
        Some(match self {
            StatusFormat::Human => Format::Human,
            StatusFormat::Plain => Format::Plain,
            StatusFormat::Json => Format::Json,
            StatusFormat::Csv => Format::Csv,
            StatusFormat::Tsv => Format::Tsv,
            StatusFormat::Openmetrics => return None,
        })
    }
}

/// ANSI colour of a non-empty set in the human table (only on a terminal, never with NO_COLOR).
fn set_color(set: &str) -> Option<&'static str> {
    match set {
        "COMPLETED" => Some("\x1b[32m"),
        "FAILED" => Some("\x1b[31m"),
        "TIMEOUT" | "CANCELLED" => Some("\x1b[33m"),
        "PENDING_AND_RUNNING" => Some("\x1b[36m"),
        _ => None,
    }
}

/// A `--state` value for clap (also rj-last's): a set suffix in any case, or PENDING/RUNNING.
pub fn parse_set(s: &str) -> Result<Set, String> {
    Set::from_suffix(s).ok_or_else(|| {
        format!("unknown state {s:?}; one of ALL, PENDING_AND_RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED")
    })
}

#[derive(Debug, Serialize)]
struct SetRow<'a> {
    set: &'static str,
    key: String,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<&'a Ids>,
}

#[derive(Debug, Default, Serialize)]
struct Membership {
    set: &'static str,
    job_id: String,
}

#[derive(Debug, Default, Serialize)]
struct CountRow<'a> {
    set: &'static str,
    key: &'a str,
    count: u64,
}

/// `--long`: one job with its record; empty strings where the record lacks a field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct JobRow {
    job_id: String,
    set: &'static str,
    state: String,
    exit_code: String,
    elapsed: String,
    start: String,
    end: String,
    nodes: String,
    partition: String,
    name: String,
    submitted: String,
    cluster: String,
    /// Why Slurm kept the job pending, as rj-track last saw it.
    reason: String,
    restarts: String,
    stdout: String,
    stderr: String,
    /// Bytes, from accounting.
    max_rss: String,
    /// TotalCPU / (Elapsed x AllocCPUS), a fraction.
    cpu_efficiency: String,
}

impl JobRow {
    /// The row of a job from the values of [`ROW_FIELDS`], in that order (bytes that are not
    /// UTF-8 shown with U+FFFD, as everywhere).
    fn of(id: Id, set: Set, fields: &Fields) -> JobRow {
        let text = |i: usize| fields[i].map(|b| String::from_utf8_lossy(b).into_owned());
        let mut job_id = Vec::new();
        put_id(&mut job_id, id);
        JobRow {
            job_id: String::from_utf8_lossy(&job_id).into_owned(),
            set: set.suffix(),
            state: text(0).unwrap_or_default(),
            exit_code: text(1).unwrap_or_default(),
            elapsed: text(2).unwrap_or_default(),
            start: text(3).unwrap_or_default(),
            end: text(4).unwrap_or_default(),
            nodes: text(5).unwrap_or_default(),
            partition: text(6).unwrap_or_default(),
            name: text(7).unwrap_or_default(),
            submitted: text(8).unwrap_or_default(),
            cluster: text(9).unwrap_or_default(),
            reason: text(10).unwrap_or_default(),
            restarts: text(11).unwrap_or_default(),
            stdout: text(12).unwrap_or_default(),
            stderr: text(13).unwrap_or_default(),
            max_rss: text(14).unwrap_or_default(),
            cpu_efficiency: text(15).unwrap_or_default(),
        }
    }

    #[cfg(test)]
    fn new(job_id: String, set: Set, r: JobRecord) -> JobRow {
        JobRow {
            job_id,
            set: set.suffix(),
            state: r.state.unwrap_or_default(),
            exit_code: r.exit_code.unwrap_or_default(),
            elapsed: r.elapsed.unwrap_or_default(),
            start: r.start.unwrap_or_default(),
            end: r.end.unwrap_or_default(),
            nodes: r.nodes.unwrap_or_default(),
            partition: r.partition.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
            submitted: r.submitted.unwrap_or_default(),
            cluster: r.cluster.unwrap_or_default(),
            reason: r.reason.unwrap_or_default(),
            restarts: r.restarts.map(|n| n.to_string()).unwrap_or_default(),
            stdout: r.stdout.unwrap_or_default(),
            stderr: r.stderr.unwrap_or_default(),
            max_rss: r.max_rss.map(|n| n.to_string()).unwrap_or_default(),
            cpu_efficiency: r.cpu_efficiency.unwrap_or_default(),
        }
    }
}

/// The human table shows the fields that tell what became of a job; the data forms all of them.
impl output::Row for JobRow {
    fn headings() -> anyhow::Result<Vec<String>> {
        Ok([
            "JOBID",
            "SET",
            "STATE",
            "EXITCODE",
            "ELAPSED",
            "NODES",
            "PARTITION",
            "NAME",
            "MAXRSS",
            "CPU",
            "REASON",
        ]
        .map(String::from)
        .to_vec())
    }

    fn cells(&self) -> anyhow::Result<Vec<String>> {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        Ok(vec![
            self.job_id.clone(),
            self.set.to_string(),
            dash(&self.state),
            dash(&self.exit_code),
            dash(&self.elapsed),
            dash(&self.nodes),
            dash(&self.partition),
            dash(&self.name),
            dash(&human_bytes(&self.max_rss)),
            dash(&percent(&self.cpu_efficiency)),
            dash(&self.reason),
        ])
    }

    fn plain(&self) -> anyhow::Result<String> {
        Ok(self.job_id.clone())
    }
}

/// `1536` → `1.5K`, `2147483648` → `2.0G` (binary units, as Slurm prints sizes); text that is
/// not a number is shown as it is.
fn human_bytes(s: &str) -> String {
    let Ok(n) = s.parse::<u64>() else {
        return s.to_string();
    };
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64;
    for unit in ["K", "M", "G", "T", "P"] {
        v /= 1024.0;
        if v < 1024.0 {
            return format!("{v:.1}{unit}");
        }
    }
    format!("{:.1}E", v / 1024.0)
}

/// A fraction as a whole percentage (`0.873` → `87%`); text that is not a number as it is.
fn percent(s: &str) -> String {
    match s.parse::<f64>() {
        Ok(f) => format!("{:.0}%", f * 100.0),
        Err(_) => s.to_string(),
    }
}

impl output::Row for Membership {}
impl output::Row for CountRow<'_> {}

#[derive(Debug, Serialize)]
struct StatusDoc<'a> {
    tag: &'a str,
    sets: Vec<SetRow<'a>>,
}

/// What a listing read of the sets.
#[derive(Debug, Default)]
struct Sets {
    /// The sets asked for, in `Set::ALL` order.
    asked: Vec<Set>,
    /// Every set's count, indexed in `Set::ALL` order (also of sets not asked for: the check
    /// of the counts reads them).
    counts: [u64; 6],
    /// The IDs of the sets read (those asked for, and with --long and ALL asked the five state
    /// sets too, to place each job), indexed in `Set::ALL` order; none with --count.
    members: Option<[Ids; 6]>,
}

impl Sets {
    fn ids(&self, set: Set) -> Option<&Ids> {
        self.members.as_ref().map(|m| &m[invariant::index(set)])
    }
}

/// A set's members in numeric order without repeats, compactly: a tag of a million jobs is
/// listed in a few megabytes. An ID that is its own canonical spelling (ARCHITECTURE.md §2)
/// with a job and task below 2^32 (Slurm's IDs are 32-bit) takes 8 bytes, `job << 32 | task+1`
/// (0: no task), which sorts as [`crate::keys::JobId`] does; anything else a script may have
/// added (`007`, junk) is kept as its text, in its place in the same order.
#[derive(Debug, Default, Clone, PartialEq)]
struct Ids {
    packed: Vec<u64>,
    /// Sorted by [`Id::key`]: valid IDs by number, then junk by bytes.
    other: Vec<(Option<JobId>, String)>,
}

/// Sort by LSD radix, a byte at a time, skipping the bytes that all keys share (the high bytes
/// of the job numbers, the task bytes of a tag without arrays): a few linear passes where a
/// comparison sort of a million keys takes twenty, and the most of a listing's own time.
fn radix_sort(v: &mut Vec<u64>) {
    if v.len() < 1 << 10 {
        v.sort_unstable();
        return;
    }
    let mut counts = [[0usize; 256]; 8];
    for x in v.iter() {
        for (byte, c) in counts.iter_mut().enumerate() {
            c[(x >> (8 * byte)) as usize & 0xff] += 1;
        }
    }
    let mut from = std::mem::take(v);
    let mut to = vec![0u64; from.len()];
    for (byte, c) in counts.iter().enumerate() {
        if c.contains(&from.len()) {
            continue;
        }
        let mut at = [0usize; 256];
        let mut sum = 0;
        for (a, n) in at.iter_mut().zip(c) {
            *a = sum;
            sum += n;
        }
        for x in &from {
            let d = (x >> (8 * byte)) as usize & 0xff;
            to[at[d]] = *x;
            at[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    *v = from;
}

/// One member of [`Ids`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id<'a> {
    Packed(u64),
    Text(Option<JobId>, &'a str),
}

fn pack(s: &[u8]) -> Option<u64> {
    // Only the canonical spelling packs, so that unpacking gives back the member's bytes.
    if s.is_empty() || s[0] == b'0' || s.len() > 21 {
        return None;
    }
    let (job, task) = match s.iter().position(|b| *b == b'_') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let num = |d: &[u8]| -> Option<u64> {
        if d.is_empty() || d.len() > 10 || (d.len() > 1 && d[0] == b'0') {
            return None;
        }
        d.iter().try_fold(0u64, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
        })
    };
    let job = num(job).filter(|j| *j < 1 << 32)?;
    let task = match task {
        Some(t) => num(t).filter(|t| *t < u64::from(u32::MAX))? + 1,
        None => 0,
    };
    Some(job << 32 | task)
}

impl<'a> Id<'a> {
    fn job_id(self) -> Option<JobId> {
        match self {
            Id::Packed(x) => Some(JobId {
                job: x >> 32,
                task: (x & 0xffff_ffff).checked_sub(1),
            }),
            Id::Text(j, _) => j,
        }
    }

    /// The order of IdKey: valid IDs numerically (a packed one before a text one of the same
    /// number, `7` before `007`), then everything else by bytes.
    fn key(self) -> (bool, Option<JobId>, &'static str, &'a str) {
        match self {
            Id::Packed(_) => (false, self.job_id(), "", ""),
            Id::Text(j, s) => (j.is_none(), j, "text", s),
        }
    }

    fn cmp(self, other: Id) -> std::cmp::Ordering {
        match (self, other) {
            (Id::Packed(a), Id::Packed(b)) => a.cmp(&b),
            _ => self.key().cmp(&other.key()),
        }
    }
}

/// Append `id` as its text: the digits of a packed ID without the formatting machinery (a
/// listing writes a million of them), a text ID as it is.
fn put_id(out: &mut Vec<u8>, id: Id) {
    match id {
        Id::Packed(x) => {
            put_u64(out, x >> 32);
            let task = x & 0xffff_ffff;
            if task != 0 {
                out.push(b'_');
                put_u64(out, task - 1);
            }
        }
        Id::Text(_, s) => out.extend_from_slice(s.as_bytes()),
    }
}

fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&d[i..]);
}

impl std::fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Packed(_) => match self.job_id() {
                Some(j) => j.fmt(f),
                None => Ok(()),
            },
            Id::Text(_, s) => f.write_str(s),
        }
    }
}

impl Serialize for Id<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The JSON array of the IDs, written from the compact form without a `String` each.
impl Serialize for Ids {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for id in self.iter() {
            seq.serialize_element(&id)?;
        }
        seq.end()
    }
}

impl Ids {
    /// Add a member as Redis sent it; [`Ids::finish`] sorts.
    fn push(&mut self, b: &[u8]) -> Result<(), std::str::Utf8Error> {
        match pack(b) {
            Some(x) => self.packed.push(x),
            None => {
                let s = std::str::from_utf8(b)?;
                self.other.push((s.parse().ok(), s.to_string()));
            }
        }
        Ok(())
    }

    /// Sort and drop repeats (SSCAN may hand a member more than once).
    fn finish(&mut self) {
        radix_sort(&mut self.packed);
        self.packed.dedup();
        self.other
            .sort_by(|a, b| Id::Text(a.0, &a.1).cmp(Id::Text(b.0, &b.1)));
        self.other.dedup_by(|a, b| a.1 == b.1);
        self.packed.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.packed.len() + self.other.len()
    }

    /// The members in order.
    fn iter(&self) -> impl Iterator<Item = Id<'_>> + '_ {
        let mut p = self.packed.iter().copied().map(Id::Packed).peekable();
        let mut o = self
            .other
            .iter()
            .map(|(j, s)| Id::Text(*j, s.as_str()))
            .peekable();
        std::iter::from_fn(move || match (p.peek(), o.peek()) {
            (Some(a), Some(b)) if b.cmp(*a).is_lt() => o.next(),
            (Some(_), _) => p.next(),
            (None, _) => o.next(),
        })
    }

    #[cfg(test)]
    fn of(ids: &[&str]) -> Ids {
        let mut out = Ids::default();
        for id in ids {
            out.push(id.as_bytes()).unwrap();
        }
        out.finish();
        out
    }
}

/// Walk the six sets' members together in order: each ID once, with the mask of the sets that
/// hold it (bit `invariant::index(set)`). Sets not read are empty. Linear; no map of IDs.
fn merge<'a>(
    sets: &'a [Ids; 6],
    mut each: impl FnMut(Id<'a>, u8) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut heads: Vec<_> = sets.iter().map(|s| s.iter().peekable()).collect();
    loop {
        let mut min: Option<Id> = None;
        for h in heads.iter_mut() {
            if let Some(id) = h.peek() {
                if min.is_none_or(|m| id.cmp(m).is_lt()) {
                    min = Some(*id);
                }
            }
        }
        let Some(id) = min else {
            return Ok(());
        };
        let mut mask = 0u8;
        for (i, h) in heads.iter_mut().enumerate() {
            if h.peek() == Some(&id) {
                mask |= 1 << i;
                h.next();
            }
        }
        each(id, mask)?;
    }
}

/// Members per SSCAN step: large steps are fewer round trips, and a reply of this many IDs is
/// still only a few hundred kilobytes.
const SSCAN_COUNT: usize = 10_000;

// ---- the bulk reads (SSCAN, HGETALL) on a connection of rj-status's own ----------------------

/// The byte stream under [`Own`]: rbench's raw connection in use, bytes in memory in the tests.
trait Socket: Read + Write {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()>;
}

/// A connection of `bench::conn` (TCP, unix socket or TLS; logged in, database selected,
/// PINGed) as a [`Socket`].
struct RawSocket(Raw);

impl Read for RawSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Raw::Tcp(s) => s.read(buf),
            Raw::Unix(s) => s.read(buf),
            Raw::Tls(s) => s.read(buf),
        }
    }
}

impl Write for RawSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Raw::Tcp(s) => s.write(buf),
            Raw::Unix(s) => s.write(buf),
            Raw::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Raw::Tcp(s) => s.flush(),
            Raw::Unix(s) => s.flush(),
            Raw::Tls(s) => s.flush(),
        }
    }
}

impl Socket for RawSocket {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match &self.0 {
            Raw::Tcp(s) => s.set_read_timeout(Some(t)),
            Raw::Unix(s) => s.set_read_timeout(Some(t)),
            Raw::Tls(s) => s.sock.set_read_timeout(Some(t)),
        }
    }
}

/// How far one read may overrun a reply's deadline: the socket's timeout is set again when it
/// is this much older, or when the deadline moves (as `store`'s bounded calls do).
const REARM: Duration = Duration::from_secs(1);

/// rj-status's own connection for the bulk reads of a listing, beside the [`Store`]'s
/// (ARCHITECTURE.md §4, rj-status): RESP2 replies are scanned in place in one buffer, and each
/// member or field is handed on as a slice of it. The redis crate's parser builds a value and a
/// `Vec` of each, about 2,000 instructions a member: most of a listing's own time. Each reply
/// is due one `store::IO_TIMEOUT` after its request was sent (§5).
struct Own<S> {
    io: S,
    /// Bytes read and not yet scanned: `buf[pos..end]`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Start of the reply being scanned whose slices are still wanted: kept when the buffer
    /// is compacted, and slices of it are given relative to it.
    mark: usize,
    /// The requests to send, encoded.
    req: Vec<u8>,
    /// When the reply being read is due.
    due: Instant,
    /// When the socket's read timeout was last set (None: set it before the next read).
    armed: Option<Instant>,
}

/// What went wrong on the own connection; the caller names the key.
#[derive(Debug)]
enum Fault {
    Io(io::Error),
    /// An error reply (`-WRONGTYPE …`, `-NOPERM …`), as the redis crate makes it of the line.
    Server(redis::RedisError),
    /// Bytes that are not the RESP2 reply expected.
    Protocol(String),
}

impl Fault {
    /// The error of a failure at `what`, worded and classified as `Store`'s own.
    fn at(self, store: &Store, what: &str) -> anyhow::Error {
        match self {
            Fault::Io(e) => store.error(e.into(), what),
            Fault::Server(e) => store.error(e, what),
            Fault::Protocol(m) => store.error(
                redis::RedisError::from((
                    redis::ErrorKind::Parse,
                    "the reply is not the Redis protocol",
                    m,
                )),
                what,
            ),
        }
    }
}

type Reply<T> = Result<T, Fault>;

/// A range of `Own::buf` relative to the mark.
type Span = (usize, usize);

/// The values of [`ROW_FIELDS`] of one record, `None` where the hash has no such field.
type Fields<'b> = [Option<&'b [u8]>; ROW_FIELDS.len()];

impl Own<RawSocket> {
    /// Connect as `bench::conn` does (the target's TLS files, login and database), with a
    /// write timeout too: none of the bulk reads may block for longer (§5).
    fn connect(cfg: &crate::config::Config) -> anyhow::Result<Own<RawSocket>> {
        let raw = crate::bench::conn::connect(cfg)?;
        let timeout = match &raw {
            Raw::Tcp(s) => s.set_write_timeout(Some(crate::store::IO_TIMEOUT)),
            Raw::Unix(s) => s.set_write_timeout(Some(crate::store::IO_TIMEOUT)),
            Raw::Tls(s) => s.sock.set_write_timeout(Some(crate::store::IO_TIMEOUT)),
        };
        timeout.map_err(|e| {
            fail(
                Kind::Unavailable,
                format!("cannot connect to Redis at {}: {e}", cfg.place()),
            )
        })?;
        Ok(Own::new(RawSocket(raw)))
    }
}

impl<S: Socket> Own<S> {
    fn new(io: S) -> Own<S> {
        Own {
            io,
            buf: vec![0; 1 << 18],
            pos: 0,
            end: 0,
            mark: 0,
            req: Vec::with_capacity(1 << 16),
            due: Instant::now() + crate::store::IO_TIMEOUT,
            armed: None,
        }
    }

    /// Append one command to the requests to send.
    fn command(&mut self, args: &[&[u8]]) {
        crate::bench::resp::encode(&mut self.req, args);
    }

    /// Send the requests encoded; the moment they left, from which their replies are due.
    fn send(&mut self) -> Reply<Instant> {
        let at = Instant::now();
        self.io
            .write_all(&self.req)
            .and_then(|()| self.io.flush())
            .map_err(Fault::Io)?;
        self.req.clear();
        Ok(at)
    }

    /// The replies read next are due at `sent` + `IO_TIMEOUT`.
    fn expect(&mut self, sent: Instant) {
        self.due = sent + crate::store::IO_TIMEOUT;
        self.armed = None;
    }

    /// Read at least once more from the socket, into `buf[end..]`.
    fn read_more(&mut self) -> Reply<()> {
        loop {
            let now = Instant::now();
            let left = self.due.saturating_duration_since(now);
            if left.is_zero() {
                return Err(Fault::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out",
                )));
            }
            if self.armed.is_none_or(|t| now.duration_since(t) >= REARM) {
                self.io.set_read_timeout(left).map_err(Fault::Io)?;
                self.armed = Some(now);
            }
            match self.io.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(Fault::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )))
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The socket's timeout: checked against the deadline at the top.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    self.armed = None;
                }
                Err(e) => return Err(Fault::Io(e)),
            }
        }
    }

    /// Make `n` bytes from `pos` readable in `buf`: move what is kept to the front and grow
    /// the buffer when they would not fit, then read.
    fn want(&mut self, n: usize) -> Reply<()> {
        while self.end - self.pos < n {
            if self.pos + n > self.buf.len() {
                let from = self.mark.min(self.pos);
                self.buf.copy_within(from..self.end, 0);
                self.pos -= from;
                self.end -= from;
                self.mark -= from;
                if self.pos + n > self.buf.len() {
                    self.buf.resize((self.pos + n).next_power_of_two(), 0);
                }
            }
            self.read_more()?;
        }
        Ok(())
    }

    /// Start a reply whose slices are wanted until the next `begin`.
    fn begin(&mut self) {
        if self.pos == self.end {
            // Nothing left over: read into the whole buffer again.
            self.pos = 0;
            self.end = 0;
        }
        self.mark = self.pos;
    }

    /// The bytes of a span of the reply begun last.
    fn at(&self, s: Span) -> &[u8] {
        &self.buf[self.mark + s.0..self.mark + s.1]
    }

    /// The next line (a reply's header): its type byte and the span of the rest, without CRLF.
    fn line(&mut self) -> Reply<(u8, Span)> {
        let mut seen = 0;
        loop {
            let start = self.pos;
            if let Some(i) = self.buf[start + seen..self.end]
                .iter()
                .position(|b| *b == b'\n')
            {
                let nl = start + seen + i;
                if nl < start + 2 || self.buf[nl - 1] != b'\r' {
                    return Err(Fault::Protocol("a line without CRLF".into()));
                }
                self.pos = nl + 1;
                return Ok((self.buf[start], (start + 1 - self.mark, nl - 1 - self.mark)));
            }
            seen = self.end - start;
            if seen > 1 << 20 {
                return Err(Fault::Protocol("a header line of over 1 MiB".into()));
            }
            self.want(seen + 1)?;
        }
    }

    /// The number of a header of type `kind` (`*` or `$`); an error reply is the server's.
    fn head(&mut self, kind: u8) -> Reply<i64> {
        let (t, s) = self.line()?;
        let text = self.at(s);
        if t == b'-' {
            let mut line = Vec::with_capacity(text.len() + 3);
            line.push(b'-');
            line.extend_from_slice(text);
            line.extend_from_slice(b"\r\n");
            return Err(match redis::parse_redis_value(&line) {
                Ok(redis::Value::ServerError(e)) => Fault::Server(e.into()),
                _ => Fault::Protocol(format!("an error reply {:?}", output::lossy(text))),
            });
        }
        let number = || -> Option<i64> {
            let (neg, digits) = match text.split_first() {
                Some((b'-', d)) => (true, d),
                _ => (false, text),
            };
            if digits.is_empty() || digits.len() > 18 {
                return None;
            }
            let n = digits.iter().try_fold(0i64, |n, b| {
                b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
            })?;
            Some(if neg { -n } else { n })
        };
        match number() {
            Some(n) if t == kind => Ok(n),
            _ => Err(Fault::Protocol(format!(
                "{:?} where a {:?} header was expected",
                output::lossy(&[&[t], text].concat()),
                char::from(kind)
            ))),
        }
    }

    /// The span of a bulk string, or None for nil.
    fn bulk(&mut self) -> Reply<Option<Span>> {
        // The usual case first: `$<length>\r\n<bytes>\r\n` whole in the buffer.
        let b = &self.buf[self.pos..self.end];
        if b.first() == Some(&b'$') {
            let mut n = 0usize;
            let mut i = 1;
            while i < b.len().min(12) && b[i].is_ascii_digit() {
                n = n * 10 + usize::from(b[i] - b'0');
                i += 1;
            }
            if i > 1 && b.len() >= i + 2 + n + 2 && b[i] == b'\r' && b[i + 1] == b'\n' {
                let start = i + 2;
                if &b[start + n..start + n + 2] == b"\r\n" {
                    let at = self.pos + start;
                    self.pos = at + n + 2;
                    return Ok(Some((at - self.mark, at + n - self.mark)));
                }
            }
        }
        let n = self.head(b'$')?;
        let Ok(n) = usize::try_from(n) else {
            return Ok(None);
        };
        self.want(n + 2)?;
        let start = self.pos;
        if &self.buf[start + n..start + n + 2] != b"\r\n" {
            return Err(Fault::Protocol(
                "a bulk string longer than its length".into(),
            ));
        }
        self.pos = start + n + 2;
        Ok(Some((start - self.mark, start + n - self.mark)))
    }

    /// A bulk string that must be there (a member, a cursor).
    fn bulk_some(&mut self) -> Reply<Span> {
        self.bulk()?
            .ok_or_else(|| Fault::Protocol("a nil where a string was expected".into()))
    }

    /// Every member of a set by SSCAN, handed to `each` in the order they come. The next step's
    /// request leaves as soon as a reply's cursor is read, so Redis gathers the next members
    /// while this side scans the current ones.
    fn sscan(
        &mut self,
        key: &str,
        mut each: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<(), Stop> {
        let count = SSCAN_COUNT.to_string();
        let step = |own: &mut Self, cursor: &[u8]| -> Reply<Instant> {
            own.command(&[b"SSCAN", key.as_bytes(), cursor, b"COUNT", count.as_bytes()]);
            own.send()
        };
        let mut sent = step(self, b"0")?;
        loop {
            self.expect(sent);
            self.begin();
            if self.head(b'*')? != 2 {
                return Err(Fault::Protocol("an SSCAN reply that is not two parts".into()).into());
            }
            let c = self.bulk_some()?;
            let cursor = self.at(c).to_vec();
            let last = cursor == b"0";
            if !last {
                sent = step(self, &cursor)?;
            }
            let n = self.head(b'*')?;
            for _ in 0..n {
                // A member is used at once: the buffer need not keep it.
                self.begin();
                let m = self.bulk_some()?;
                each(self.at(m)).map_err(Stop::Other)?;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Queue the HGETALLs of a batch of records (`prefix` + each ID is the key);
    /// [`Own::send`] sends them.
    fn hgetall(&mut self, prefix: &[u8], ids: &[(Id, Set)]) {
        let mut key = Vec::with_capacity(prefix.len() + 24);
        for (id, _) in ids {
            key.clear();
            key.extend_from_slice(prefix);
            put_id(&mut key, *id);
            crate::bench::resp::header(&mut self.req, b'*', 2);
            crate::bench::resp::bulk(&mut self.req, b"HGETALL");
            crate::bench::resp::bulk(&mut self.req, &key);
        }
    }

    /// One HGETALL reply (field, value, field, value…; none for a missing key): the values of
    /// [`ROW_FIELDS`], for `each`.
    fn record(&mut self, each: impl FnOnce(&Fields) -> anyhow::Result<()>) -> Result<(), Stop> {
        self.begin();
        let n = self.head(b'*')?;
        if n < 0 || n % 2 != 0 {
            return Err(Fault::Protocol(format!("an HGETALL reply of {n} parts")).into());
        }
        let mut spans: [Option<Span>; ROW_FIELDS.len()] = [None; ROW_FIELDS.len()];
        for _ in 0..n / 2 {
            let name = self.bulk_some()?;
            let value = self.bulk_some()?;
            if let Some(i) = row_field(self.at(name)) {
                spans[i] = Some(value);
            }
        }
        let fields: Fields = spans.map(|s| s.map(|s| self.at(s)));
        each(&fields).map_err(Stop::Other)
    }
}

/// The place of a record field in [`ROW_FIELDS`], if a row shows it.
fn row_field(name: &[u8]) -> Option<usize> {
    ROW_FIELDS.iter().position(|f| f.as_bytes() == name)
}

/// Why a bulk read stopped: the connection (the caller names the key), or the consumer.
enum Stop {
    Fault(Fault),
    Other(anyhow::Error),
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::Fault(f)
    }
}

impl Stop {
    fn at(self, store: &Store, what: &str) -> anyhow::Error {
        match self {
            Stop::Fault(f) => f.at(store, what),
            Stop::Other(e) => e,
        }
    }
}

/// All members of a set by SSCAN (never one huge SMEMBERS reply), compactly and sorted: on the
/// own connection when there is one, else on the Store's (a master named by Sentinel, whose
/// address only the Store knows).
fn read_ids(store: &mut Store, own: Option<&mut Own<RawSocket>>, key: &str) -> anyhow::Result<Ids> {
    let mut ids = Ids::default();
    let place = store.place.clone();
    let mut push = |b: &[u8]| {
        ids.push(b).map_err(|_| {
            fail(
                Kind::DataErr,
                format!(
                    "Redis {place} holds a member of {key} that is not UTF-8 text, so not a job ID"
                ),
            )
        })
    };
    match own {
        Some(own) => own.sscan(key, push).map_err(|e| e.at(store, key))?,
        None => {
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = store.query(
                    redis::cmd("SSCAN")
                        .arg(key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SSCAN_COUNT),
                    key,
                )?;
                for b in &batch {
                    push(b)?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
    }
    ids.finish();
    Ok(ids)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(format) = args.format.data() else {
        return metrics(&args);
    };
    if args.all_tags || args.tag.len() > 1 {
        return Err(fail(
            Kind::Usage,
            "several --tag and --all-tags go with --format openmetrics only",
        ));
    }
    let tag = TagArg {
        tag: args.tag.first().cloned(),
    };
    let (cfg, keys, mut store) = super::open(&args.conn, &tag)?;
    if args.check {
        return check(&mut store, &keys, args.repair, format);
    }
    let mut asked: Vec<Set> = if args.state.is_empty() {
        Set::ALL.to_vec()
    } else {
        args.state.clone()
    };
    asked.sort();
    asked.dedup();
    // The IDs and records are read on a connection of their own, scanned in place; a master
    // named by Sentinel, or the master of the tag's slot on a Redis Cluster, is known only to
    // the Store, whose connection reads them then.
    let mut own = match (args.count, &cfg.target.sentinel, store.is_cluster()) {
        (false, None, false) => Some(Own::connect(&cfg)?),
        _ => None,
    };
    let (sets, broken) = read_sets(
        &mut store,
        own.as_mut(),
        &keys,
        asked,
        !args.count,
        args.long,
    )?;
    if let Some(line) = broken {
        cli::warn(&line);
    }
    // One write per 64 KiB, not per line: a listing may be a million lines.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, cli::stdout());
    if args.long {
        if format == Format::Json {
            let mut rows = JobsJson::new(&mut out)?;
            read_jobs(&mut store, own.as_mut(), &keys, &sets, |id, set, f| {
                rows.row(id, set, f)
            })?;
            rows.finish()?;
        } else {
            let mut rows = output::exporter::<JobRow>(format.into(), &mut out)?;
            read_jobs(&mut store, own.as_mut(), &keys, &sets, |id, set, f| {
                rows.row(&JobRow::of(id, set, f))
            })?;
            rows.finish()?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if sets.counts.iter().all(|c| *c == 0) {
        // Exit 0 (an experiment may simply not have started), but a mistyped tag looks just
        // like that: say it where a human sees it.
        cli::note(&format!(
            "no jobs under tag {} ({} is empty or absent); is the tag right?",
            keys.tag(),
            keys.set(Set::All)
        ));
    }
    write_sets(&mut out, &keys, &sets, format, cli::color_stdout())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--format openmetrics`: the figures of each tag named (or found), in one text.
fn metrics(args: &Args) -> anyhow::Result<ExitCode> {
    if args.long || args.count || args.check || !args.state.is_empty() {
        return Err(fail(
            Kind::Usage,
            "--format openmetrics shows every set's count and the tracker; it takes no --long, --count, --check or --state",
        ));
    }
    let cfg = args.conn.load()?;
    let mut store = Store::connect(&cfg)?;
    let mut tags: Vec<Tag> = Vec::new();
    if args.all_tags {
        let mut found = std::collections::BTreeSet::new();
        store.scan_each("*_ALL", crate::store::BATCH, |k| {
            if let Some(t) = std::str::from_utf8(&k)
                .ok()
                .and_then(|k| k.strip_suffix("_ALL"))
                .and_then(|t| Tag::new(t).ok())
            {
                found.insert(t);
            }
        })?;
        tags.extend(found.into_iter().filter(|t| store.fits(t)));
    } else if args.tag.is_empty() {
        tags.push(TagArg { tag: None }.resolve(&cfg)?);
    } else {
        for t in &args.tag {
            tags.push(
                TagArg {
                    tag: Some(t.clone()),
                }
                .resolve(&cfg)?,
            );
        }
        tags.dedup();
    }
    if !args.all_tags {
        for t in &tags {
            store.check_tag(t)?;
        }
    }
    let mut figures = Vec::with_capacity(tags.len());
    for t in tags {
        figures.push(crate::metrics::collect(&mut store, &Keys::new(t))?);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = cli::stdout();
    out.write_all(crate::metrics::render(&figures, now).as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Read the sets asked for (their IDs, or with `ids` false only their counts) and check them
/// against the one-set-per-job rule: every ID when all six were read, else the counts. With
/// `place` (--long) and ALL asked, the five state sets are read too, to place each job. The
/// sets, and the warning line when they break the rule.
fn read_sets(
    store: &mut Store,
    mut own: Option<&mut Own<RawSocket>>,
    keys: &Keys,
    asked: Vec<Set>,
    ids: bool,
    place: bool,
) -> anyhow::Result<(Sets, Option<String>)> {
    let mut members: [Ids; 6] = Default::default();
    let mut counts: [Option<u64>; 6] = [None; 6];
    let read: Vec<Set> = if ids && place && asked.contains(&Set::All) {
        Set::ALL.to_vec()
    } else {
        asked.clone()
    };
    for set in &read {
        let i = invariant::index(*set);
        if ids {
            members[i] = read_ids(store, own.as_deref_mut(), &keys.set(*set))?;
            if asked.contains(set) {
                counts[i] = Some(members[i].len() as u64);
            }
        } else {
            counts[i] = Some(store.card(&keys.set(*set))?);
        }
    }
    let (counts, broken) = if ids && asked.len() == Set::ALL.len() {
        (
            counts.map(|c| c.unwrap_or(0)),
            listing_check(store, keys, &members),
        )
    } else {
        counts_check(store, keys, counts)?
    };
    let sets = Sets {
        asked,
        counts,
        members: ids.then_some(members),
    };
    Ok((sets, broken))
}

/// Output gathered in a buffer and written a chunk at a time: one `write_all` per 64 KiB, not
/// one per ID.
struct Chunks<'a> {
    out: &'a mut dyn Write,
    buf: Vec<u8>,
}

impl<'a> Chunks<'a> {
    const SIZE: usize = 1 << 16;

    fn new(out: &'a mut dyn Write) -> Chunks<'a> {
        Chunks {
            out,
            buf: Vec::with_capacity(Self::SIZE + 256),
        }
    }

    /// Write the buffer once it is full.
    fn spill(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= Self::SIZE {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        self.out.write_all(&self.buf)
    }
}

/// The listing of the sets in one form: a line per set (human), the IDs (plain: every ID once,
/// or one count per line with --count), one document (json), or set,job_id rows (csv, tsv;
/// set,key,count with --count). `color`: ANSI colours on non-empty sets of the human form.
/// Written from the compact IDs as they are walked, without a row or a `String` per ID.
fn write_sets(
    out: &mut dyn Write,
    keys: &Keys,
    sets: &Sets,
    format: Format,
    color: bool,
) -> anyhow::Result<()> {
    let rows: Vec<SetRow> = sets
        .asked
        .iter()
        .map(|set| SetRow {
            set: set.suffix(),
            key: keys.set(*set),
            count: sets.counts[invariant::index(*set)],
            ids: sets.ids(*set),
        })
        .collect();
    let count = sets.members.is_none();
    match format {
        Format::Human => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            for r in &rows {
                let (on, off) = match set_color(r.set) {
                    Some(c) if color && r.count > 0 => (c, "\x1b[0m"),
                    _ => ("", ""),
                };
                write!(out, "{on}{:<width$}  {:>6}{off}", r.key, r.count)?;
                let mut line = Chunks::new(out);
                let mut sep: &[u8] = b"  ";
                for id in r.ids.iter().flat_map(|ids| ids.iter()) {
                    line.buf.extend_from_slice(sep);
                    put_id(&mut line.buf, id);
                    line.spill()?;
                    sep = b" ";
                }
                line.buf.push(b'\n');
                line.finish()?;
            }
        }
        Format::Plain if count => {
            for r in &rows {
                writeln!(out, "{}", r.count)?;
            }
        }
        Format::Plain => {
            let mut lines = Chunks::new(out);
            match (&sets.members, &sets.asked[..]) {
                (Some(m), [one]) => {
                    for id in m[invariant::index(*one)].iter() {
                        put_id(&mut lines.buf, id);
                        lines.buf.push(b'\n');
                        lines.spill()?;
                    }
                }
                (Some(m), _) => {
                    // Every ID once: the union of the sets asked for.
                    let asked: u8 = sets.asked.iter().map(|s| invariant::bit(*s)).sum();
                    merge(m, |id, mask| {
                        if mask & asked != 0 {
                            put_id(&mut lines.buf, id);
                            lines.buf.push(b'\n');
                            lines.spill()?;
                        }
                        Ok(())
                    })?;
                }
                (None, _) => {}
            }
            lines.finish()?;
        }
        Format::Json => output::write_json(
            out,
            &StatusDoc {
                tag: keys.tag().as_str(),
                sets: rows,
            },
        )?,
        Format::Csv | Format::Tsv if count => {
            let c: Vec<CountRow> = rows
                .iter()
                .map(|r| CountRow {
                    set: r.set,
                    key: &r.key,
                    count: r.count,
                })
                .collect();
            output::write_rows(format.into(), out, &c)?
        }
        Format::Csv | Format::Tsv => {
            let mut e = output::exporter::<Membership>(format.into(), out)?;
            // One row, refilled for each ID.
            let mut m = Membership::default();
            for r in &rows {
                m.set = r.set;
                for id in r.ids.iter().flat_map(|ids| ids.iter()) {
                    m.job_id.clear();
                    write!(m.job_id, "{id}")?;
                    e.row(&m)?;
                }
            }
            e.finish()?
        }
    }
    Ok(())
}

/// Jobs per pipeline of record reads: a few hundred kilobytes of replies at a time.
const RECORD_BATCH: usize = 1000;

/// The record fields a job row shows. The records are read whole (HGETALL), although rows
/// leave out what rj-launch wrote about the command line and the tracker's bookkeeping: Redis
/// finds each field an HMGET names by a walk along the hash (to its end for a field the record
/// lacks), and on 1,000,000 records of 5 to 16 fields HMGET of these 16 cost it a third more
/// CPU than HGETALL (bench/status.md).
const ROW_FIELDS: [&str; 16] = [
    "state",
    "exit_code",
    "elapsed",
    "start",
    "end",
    "nodes",
    "partition",
    "name",
    "submitted",
    "cluster",
    "reason",
    "restarts",
    "stdout",
    "stderr",
    "max_rss",
    "cpu_efficiency",
];

/// The jobs of the sets read, each once in numeric order, joined with its record and handed to
/// `each` as it comes: each job in the first set asked for that holds it (ALL only if asked
/// alone), and a job of ALL in no state set asked for in the first state set that holds it.
/// Records are read in pipelined batches in that order, so memory stays a few batches.
fn read_jobs(
    store: &mut Store,
    own: Option<&mut Own<RawSocket>>,
    keys: &Keys,
    sets: &Sets,
    mut each: impl FnMut(Id, Set, &Fields) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(members) = &sets.members else {
        return Ok(());
    };
    let all = invariant::bit(Set::All);
    let asked_states: u8 = sets
        .asked
        .iter()
        .filter(|s| **s != Set::All)
        .map(|s| invariant::bit(*s))
        .sum();
    let all_asked = sets.asked.contains(&Set::All);
    let first = |bits: u8| Set::ALL[bits.trailing_zeros() as usize];
    let mut reader = Records::new(store, own, keys);
    let mut batch: Vec<(Id, Set)> = Vec::with_capacity(RECORD_BATCH);
    let r = merge(members, |id, mask| {
        let set = if mask & asked_states != 0 {
            first(mask & asked_states)
        } else if all_asked && mask & all != 0 {
            match mask & !all {
                0 => Set::All,
                states => first(states),
            }
        } else {
            return Ok(());
        };
        batch.push((id, set));
        if batch.len() == RECORD_BATCH {
            reader.send(std::mem::take(&mut batch), &mut each)?;
        }
        Ok(())
    })
    .and_then(|()| reader.send(batch, &mut each))
    .and_then(|()| reader.drain(&mut each));
    reader.done(r)
}

/// The job records of batches of jobs, read with two pipelines in flight: while rj-status
/// turns one batch's replies into rows, Redis already answers the next, so the two work at
/// once instead of in turns. Each batch's replies are bounded by one `store::IO_TIMEOUT` from
/// when it was sent (ARCHITECTURE.md §5); Redis buffers the replies not yet read, so a batch
/// sent ahead cannot block either side.
struct Records<'a, 'm> {
    store: &'a mut Store,
    /// The own connection; without one, the Store's.
    own: Option<&'a mut Own<RawSocket>>,
    keys: &'a Keys,
    /// `T_JOB:`, to which an ID is appended for its record's key.
    prefix: Vec<u8>,
    sent: std::collections::VecDeque<(Instant, Vec<(Id<'m>, Set)>)>,
}

impl<'a, 'm> Records<'a, 'm> {
    fn new(
        store: &'a mut Store,
        own: Option<&'a mut Own<RawSocket>>,
        keys: &'a Keys,
    ) -> Records<'a, 'm> {
        Records {
            store,
            own,
            keys,
            prefix: keys.job_hash("").into_bytes(),
            sent: Default::default(),
        }
    }

    /// Send one batch's HGETALLs; read the oldest batch when two are in flight.
    fn send(
        &mut self,
        batch: Vec<(Id<'m>, Set)>,
        each: &mut impl FnMut(Id, Set, &Fields) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let at = match &mut self.own {
            Some(own) => {
                own.hgetall(&self.prefix, &batch);
                own.send()
                    .map_err(|f| f.at(self.store, &self.keys.job_hash_pattern()))?
            }
            None => {
                let mut p = redis::pipe();
                for (id, _) in &batch {
                    p.cmd("HGETALL").arg(self.keys.job_hash(&id.to_string()));
                }
                let packed = p.get_packed_pipeline();
                let at = Instant::now();
                self.store
                    .conn()
                    .send_packed_command(&packed)
                    .map_err(|e| self.store.error(e, &self.keys.job_hash_pattern()))?;
                at
            }
        };
        self.sent.push_back((at, batch));
        if self.sent.len() > 1 {
            self.receive(each)?;
        }
        Ok(())
    }

    fn drain(
        &mut self,
        each: &mut impl FnMut(Id, Set, &Fields) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while !self.sent.is_empty() {
            self.receive(each)?;
        }
        Ok(())
    }

    /// The replies of the oldest batch, as rows.
    fn receive(
        &mut self,
        each: &mut impl FnMut(Id, Set, &Fields) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let Some((at, batch)) = self.sent.pop_front() else {
            return Ok(());
        };
        if let Some(own) = &mut self.own {
            own.expect(at);
            for (id, set) in batch {
                own.record(|f| each(id, set, f))
                    .map_err(|e| e.at(self.store, &self.keys.job_hash(&id.to_string())))?;
            }
            return Ok(());
        }
        let left =
            (at + crate::store::IO_TIMEOUT).saturating_duration_since(std::time::Instant::now());
        let conn = self.store.conn();
        let timeout = if left.is_zero() {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out").into())
        } else {
            conn.set_read_timeout(Some(left))
        };
        timeout.map_err(|e| self.store.error(e, &self.keys.job_hash_pattern()))?;
        for (id, set) in batch {
            let reply = loop {
                match self.store.conn().recv_response() {
                    Ok(redis::Value::Push { .. }) => continue,
                    r => break r,
                }
            };
            let key = || self.keys.job_hash(&id.to_string());
            // RESP2 gives the pairs as a flat list, RESP3 as a map.
            let pairs: Vec<(redis::Value, redis::Value)> = match reply {
                Ok(redis::Value::Array(v)) if v.len() % 2 == 0 => {
                    let mut v = v.into_iter();
                    std::iter::from_fn(|| Some((v.next()?, v.next()?))).collect()
                }
                Ok(redis::Value::Map(m)) => m,
                Ok(redis::Value::ServerError(e)) => return Err(self.store.error(e.into(), &key())),
                Ok(other) => {
                    return Err(fail(
                        Kind::DataErr,
                        format!(
                            "Redis {} sent a reply to HGETALL {} that is not field-value pairs: {other:?}",
                            self.store.place,
                            key()
                        ),
                    ))
                }
                Err(e) => return Err(self.store.error(e, &key())),
            };
            let mut fields: Fields = [None; ROW_FIELDS.len()];
            for (name, value) in &pairs {
                if let (redis::Value::BulkString(n), redis::Value::BulkString(v)) = (name, value) {
                    if let Some(i) = row_field(n) {
                        fields[i] = Some(v.as_slice());
                    }
                }
            }
            each(id, set, &fields)?;
        }
        Ok(())
    }

    /// Put the Store connection's own read timeout back; `r` is the walk's outcome.
    fn done(self, r: anyhow::Result<()>) -> anyhow::Result<()> {
        if self.own.is_some() {
            return r;
        }
        let back = self
            .store
            .conn()
            .set_read_timeout(Some(crate::store::IO_TIMEOUT));
        r?;
        back.map_err(|e| self.store.error(e, &self.keys.job_hash_pattern()))
    }
}

/// `--long --format json` written straight from the replies: byte for byte what
/// `output::exporter::<JobRow>(Form::Json)` writes (serde_json's pretty form, row after row),
/// without a `JobRow`, a `String` per field or a document per row.
struct JobsJson<'a> {
    out: &'a mut dyn Write,
    /// Before each value: `\n    "job_id": `, then `,\n    "set": ` and so on, from the names
    /// `JobRow` serializes, in its order.
    names: Vec<Vec<u8>>,
    row: Vec<u8>,
    rows: u64,
}

impl<'a> JobsJson<'a> {
    fn new(out: &'a mut dyn Write) -> anyhow::Result<JobsJson<'a>> {
        let columns = output::columns::<JobRow>()?;
        let mut names = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let mut n = if i == 0 {
                b"\n    ".to_vec()
            } else {
                b",\n    ".to_vec()
            };
            serde_json::to_writer(&mut n, c)?;
            n.extend_from_slice(b": ");
            names.push(n);
        }
        anyhow::ensure!(
            names.len() == 2 + ROW_FIELDS.len(),
            "JobRow's columns are job_id, set and the fields read"
        );
        Ok(JobsJson {
            out,
            names,
            row: Vec::with_capacity(1024),
            rows: 0,
        })
    }

    fn row(&mut self, id: Id, set: Set, fields: &Fields) -> anyhow::Result<()> {
        let row = &mut self.row;
        row.clear();
        row.extend_from_slice(if self.rows == 0 { b"[\n  {" } else { b",\n  {" });
        row.extend_from_slice(&self.names[0]);
        match id {
            Id::Packed(_) => {
                row.push(b'"');
                put_id(row, id);
                row.push(b'"');
            }
            Id::Text(_, s) => json_str(row, s.as_bytes())?,
        }
        row.extend_from_slice(&self.names[1]);
        json_str(row, set.suffix().as_bytes())?;
        for (name, f) in self.names[2..].iter().zip(fields) {
            row.extend_from_slice(name);
            json_str(row, f.unwrap_or_default())?;
        }
        row.extend_from_slice(b"\n  }");
        self.out.write_all(row)?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        self.out
            .write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        Ok(())
    }
}

/// A JSON string of Redis bytes, as serde_json writes the text (bytes that are not UTF-8 shown
/// with U+FFFD): copied as it is when nothing in it needs escaping, as is usual.
fn json_str(out: &mut Vec<u8>, b: &[u8]) -> anyhow::Result<()> {
    /// The bytes copied as they are: printable ASCII but `"` and `\`.
    const PLAIN: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0x20;
        while c < 0x80 {
            t[c] = c != b'"' as usize && c != b'\\' as usize;
            c += 1;
        }
        t
    };
    if b.iter().all(|c| PLAIN[usize::from(*c)]) {
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(&mut *out, &String::from_utf8_lossy(b))?;
    Ok(())
}

/// The hint every warning about broken sets ends with.
const CHECK_HINT: &str =
    "the sets are shown as they are; `rj-status --check` lists every violation";

/// A full listing's check: every ID of the six sets read. The sets were read one after the
/// other, so a job that rj-track moved (or rj-launch recorded) in between looks like a broken
/// rule; the suspects are read again in one MULTI/EXEC and only what that confirms is reported.
/// The warning line, or None when the rule holds.
fn listing_check(store: &mut Store, keys: &Keys, members: &[Ids; 6]) -> Option<String> {
    let mut seen = Vec::new();
    let all = invariant::bit(Set::All);
    // Infallible: the closure returns no error.
    let _ = merge(members, |id, mask| {
        // The rule kept (in ALL and one state set) needs no look, nor the ID as text.
        if mask & all == 0 || (mask & !all).count_ones() != 1 {
            invariant::judge(&id.to_string(), mask, &mut seen);
        }
        Ok(())
    });
    if seen.is_empty() {
        return None;
    }
    let mut suspects: Vec<String> = seen.iter().map(|v| v.id.clone()).collect();
    suspects.dedup();
    match confirm_ids(store, keys, &suspects) {
        Ok(confirmed) if confirmed.is_empty() => None,
        Ok(confirmed) => Some(format!(
            "{}; {CHECK_HINT}",
            invariant::summary(keys, &confirmed)
        )),
        // A user who may not run MULTI still gets the warning, with what it is worth.
        Err(e) => Some(format!(
            "{} (not confirmed in one transaction, so a job moving meanwhile could cause it: {e:#}); {CHECK_HINT}",
            invariant::summary(keys, &seen)
        )),
    }
}

/// The violations among `ids`, from one MULTI/EXEC of SMISMEMBER on the six sets: one instant.
fn confirm_ids(store: &mut Store, keys: &Keys, ids: &[String]) -> anyhow::Result<Vec<Violation>> {
    let mut cmds = Vec::new();
    for set in Set::ALL {
        for chunk in ids.chunks(BATCH) {
            let mut c = redis::cmd("SMISMEMBER");
            c.arg(keys.set(set)).arg(chunk);
            cmds.push(c);
        }
    }
    let all = keys.set(Set::All);
    let replies = transaction(store, cmds, &all)?.unwrap_or_default();
    let hits: Vec<Vec<bool>> = redis::from_redis_value(redis::Value::Array(replies))
        .map_err(|e| store.error(e.into(), &all))?;
    let per_set = ids.len().div_ceil(BATCH);
    let mut members: [Vec<String>; 6] = Default::default();
    for (i, m) in members.iter_mut().enumerate() {
        let flags = hits[i * per_set..(i + 1) * per_set].iter().flatten();
        m.extend(
            ids.iter()
                .zip(flags)
                .filter(|(_, hit)| **hit)
                .map(|(id, _)| id.clone()),
        );
    }
    Ok(invariant::check(&members))
}

/// The cheap check of a listing that does not read every ID (--state, --count): the six counts,
/// SCARD for those not known yet. Counts read one after the other disagree for a moment when a
/// job moves in between, so a disagreement is confirmed with the six SCARDs in one MULTI/EXEC.
/// The six counts, and the warning line when they disagree.
fn counts_check(
    store: &mut Store,
    keys: &Keys,
    known: [Option<u64>; 6],
) -> anyhow::Result<([u64; 6], Option<String>)> {
    let mut counts = [0u64; 6];
    for (i, set) in Set::ALL.iter().enumerate() {
        counts[i] = match known[i] {
            Some(c) => c,
            None => store.card(&keys.set(*set))?,
        };
    }
    if !invariant::counts_disagree(&counts) {
        return Ok((counts, None));
    }
    let cmds = Set::ALL
        .iter()
        .map(|set| {
            let mut c = redis::cmd("SCARD");
            c.arg(keys.set(*set));
            c
        })
        .collect();
    let all = keys.set(Set::All);
    let again = transaction(store, cmds, &all).and_then(|r| {
        redis::from_redis_value::<Vec<u64>>(redis::Value::Array(r.unwrap_or_default()))
            .map_err(|e| store.error(e.into(), &all))
    });
    let line = match again {
        Ok(again) => {
            let again: [u64; 6] = again.try_into().unwrap_or(counts);
            if !invariant::counts_disagree(&again) {
                return Ok((counts, None));
            }
            invariant::counts_summary(keys, &again)
        }
        // A user who may not run MULTI still gets the warning, with what it is worth.
        Err(e) => format!(
            "{} (not confirmed in one transaction, so a job moving meanwhile could cause it: {e:#})",
            invariant::counts_summary(keys, &counts),
        ),
    };
    Ok((counts, Some(format!("{line}; {CHECK_HINT}"))))
}

/// One MULTI/EXEC (Store sends MULTI alone first, so no command ever runs outside the
/// transaction, and returns the refused command's own error). The EXEC reply, or None when a
/// WATCHed key changed and nothing ran.
fn transaction(
    store: &mut Store,
    cmds: Vec<redis::Cmd>,
    what: &str,
) -> anyhow::Result<Option<Vec<redis::Value>>> {
    let mut p = redis::pipe();
    p.atomic();
    for c in cmds {
        p.add_command(c);
    }
    store.pipe(&p, what)
}

/// How often --check reads the sets again when they changed under its WATCH.
const CHECK_TRIES: u32 = 10;

/// What --check found at one instant, and what --repair changed.
struct Checked {
    jobs: usize,
    found: Vec<Violation>,
    changes: Vec<Change>,
    left: Vec<Violation>,
}

/// --check and --repair: read the six sets under WATCH, check, plan the repair, and EXEC the
/// changes (none for --check). A nil EXEC means a set changed after the WATCH (rj-track moved a
/// job): nothing was written, and it all starts again from a new read.
fn check(store: &mut Store, keys: &Keys, repair: bool, format: Format) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = Set::ALL.iter().map(|s| keys.set(*s)).collect();
    let all = keys.set(Set::All);
    let mut checked = None;
    for attempt in 1..=CHECK_TRIES {
        store.query::<()>(redis::cmd("WATCH").arg(&names), &all)?;
        let mut members: [Vec<String>; 6] = Default::default();
        for (m, name) in members.iter_mut().zip(&names) {
            *m = store.members(name)?;
        }
        let found = invariant::check(&members);
        let (changes, left) = if repair {
            let records = final_records(store, keys, &found)?;
            invariant::plan(&found, |id| records.get(id).cloned())
        } else {
            (Vec::new(), found.clone())
        };
        let mut cmds = Vec::new();
        for (op, set) in [
            (Op::Add, Set::All),
            (Op::Remove, Set::PendingAndRunning),
            (Op::Add, Set::PendingAndRunning),
            (Op::Add, Set::Completed),
            (Op::Add, Set::Failed),
            (Op::Add, Set::Timeout),
            (Op::Add, Set::Cancelled),
        ] {
            let ids: Vec<&str> = changes
                .iter()
                .filter(|c| c.op == op && c.set == set)
                .map(|c| c.id.as_str())
                .collect();
            let cmd = if op == Op::Add { "SADD" } else { "SREM" };
            for chunk in ids.chunks(BATCH) {
                let mut c = redis::cmd(cmd);
                c.arg(keys.set(set)).arg(chunk);
                cmds.push(c);
            }
        }
        if transaction(store, cmds, &all)?.is_some() {
            checked = Some(Checked {
                jobs: members[0].len(),
                found,
                changes,
                left,
            });
            break;
        }
        cli::info(&format!(
            "the sets of tag {} changed while they were read (try {attempt} of {CHECK_TRIES}); reading again",
            keys.tag()
        ));
        std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
    }
    let Some(c) = checked else {
        return Err(fail(
            Kind::TempFail,
            format!(
                "the sets of tag {} changed during each of {CHECK_TRIES} reads (is a tracker moving many jobs?); nothing was changed; run again",
                keys.tag()
            ),
        ));
    };
    let mut out = cli::stdout();
    write_check(&mut out, keys, &c, repair, format)?;
    // One line on stderr, whatever happened.
    let made = match c.changes.len() {
        0 => String::new(),
        1 => "1 change made in one transaction".to_string(),
        n => format!("{n} changes made in one transaction"),
    };
    if c.left.is_empty() {
        let jobs = c.jobs + c.changes.iter().filter(|x| x.set == Set::All).count();
        let now = if c.found.is_empty() { "" } else { " now" };
        let made = if made.is_empty() { made } else { made + "; " };
        cli::note(&format!(
            "{made}the sets of tag {} are{now} consistent: {jobs} jobs in {}, each in exactly one state set",
            keys.tag(),
            keys.set(Set::All)
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let tail = match (repair, made.is_empty()) {
        (false, _) => "`rj-status --check --repair` fixes what can be derived".to_string(),
        (true, true) => "left as they are, since they cannot be derived".to_string(),
        (true, false) => format!("left as they are, since they cannot be derived ({made})"),
    };
    cli::error(&format!("{}; {tail}", invariant::summary(keys, &c.left)));
    Ok(ExitCode::from(Kind::DataErr.code()))
}

/// For the T_ALL members in no state set: the final set (and state) of their tracker record,
/// when there is one (HMGET in pipelined batches). A record that cannot be read (not a hash,
/// not text) counts as none: the job goes back to be judged instead.
fn final_records(
    store: &mut Store,
    keys: &Keys,
    found: &[Violation],
) -> anyhow::Result<HashMap<String, (Set, String)>> {
    let ids: Vec<&str> = found
        .iter()
        .filter(|v| v.problem == invariant::Problem::NoSet)
        .map(|v| v.id.as_str())
        .collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let mut p = redis::pipe();
        p.ignore_errors();
        for id in chunk {
            p.cmd("HMGET")
                .arg(keys.job_hash(id))
                .arg("state")
                .arg("tracked_by");
        }
        let got: Vec<redis::RedisResult<(Option<String>, Option<String>)>> = store
            .pipe_raw(&p)
            .map_err(|e| store.error(e, &keys.job_hash_pattern()))?;
        for (id, r) in chunk.iter().zip(got) {
            match r {
                Ok((Some(state), tracked_by)) => {
                    if let Some(set) = invariant::record_set(Some(&state), tracked_by.as_deref()) {
                        out.insert(id.to_string(), (set, state));
                    }
                }
                // A refusal (NOPERM) is not "no record": guessing from it would put a finished
                // job back to be judged and maybe marked LOST.
                Err(e) if e.code().is_some_and(|c| c != "WRONGTYPE") => {
                    return Err(store.error(e, &keys.job_hash(id)));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// One line of --check output: a violation, or a change --repair made.
#[derive(Debug, Serialize)]
struct CheckRow {
    job_id: String,
    /// not_in_all, several_sets, no_set; added, removed for a change.
    kind: &'static str,
    /// The state sets a violating ID is in; the set a change touched.
    sets: Vec<&'static str>,
    message: String,
}

/// The same, for CSV and TSV, which have no lists: the sets joined by spaces.
#[derive(Debug, Default, Serialize)]
struct CheckCsvRow<'a> {
    job_id: &'a str,
    kind: &'static str,
    sets: String,
    message: &'a str,
}

impl output::Row for CheckCsvRow<'_> {}

#[derive(Debug, Serialize)]
struct CheckDoc<'a> {
    tag: &'a str,
    consistent: bool,
    changes: Vec<CheckRow>,
    violations: Vec<CheckRow>,
}

fn write_check(
    out: &mut dyn Write,
    keys: &Keys,
    c: &Checked,
    repair: bool,
    format: Format,
) -> anyhow::Result<()> {
    let changes: Vec<CheckRow> = c
        .changes
        .iter()
        .map(|ch| CheckRow {
            job_id: ch.id.clone(),
            kind: match ch.op {
                Op::Add => "added",
                Op::Remove => "removed",
            },
            sets: vec![ch.set.suffix()],
            message: ch.message(keys),
        })
        .collect();
    let violations: Vec<CheckRow> = c
        .left
        .iter()
        .map(|v| CheckRow {
            job_id: v.id.clone(),
            kind: v.problem.name(),
            sets: v.sets.iter().map(|s| s.suffix()).collect(),
            message: if repair {
                format!(
                    "{} ({})",
                    v.message(keys),
                    invariant::not_repaired_hint(keys, v)
                )
            } else {
                v.message(keys)
            },
        })
        .collect();
    match format {
        Format::Human => {
            for r in changes.iter().chain(&violations) {
                writeln!(out, "{}: {}", r.job_id, r.message)?;
            }
        }
        Format::Plain => {
            let mut last = None;
            for r in &violations {
                if last != Some(&r.job_id) {
                    writeln!(out, "{}", r.job_id)?;
                }
                last = Some(&r.job_id);
            }
        }
        Format::Json => output::write_json(
            out,
            &CheckDoc {
                tag: keys.tag().as_str(),
                consistent: violations.is_empty(),
                changes,
                violations,
            },
        )?,
        Format::Csv | Format::Tsv => {
            let rows: Vec<CheckCsvRow> = changes
                .iter()
                .chain(&violations)
                .map(|r| CheckCsvRow {
                    job_id: &r.job_id,
                    kind: r.kind,
                    sets: r.sets.join(" "),
                    message: &r.message,
                })
                .collect();
            output::write_rows(format.into(), out, &rows)?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Tag;

    fn keys() -> Keys {
        Keys::new(Tag::new("t").unwrap())
    }

    /// ALL, PENDING_AND_RUNNING and FAILED read; the others empty.
    fn sets(asked: &[Set], ids: bool) -> Sets {
        let members = [
            Ids::of(&["9", "10", "10_1"]),
            Ids::of(&["10_1"]),
            Ids::default(),
            Ids::of(&["9", "10"]),
            Ids::default(),
            Ids::default(),
        ];
        Sets {
            asked: asked.to_vec(),
            counts: [3, 1, 0, 2, 0, 0],
            members: ids.then_some(members),
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sets_as_lines_ids_and_documents() {
        let k = keys();
        let s = sets(&Set::ALL, true);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Human, false)),
            "t_ALL                       3  9 10 10_1\n\
             t_PENDING_AND_RUNNING       1  10_1\n\
             t_COMPLETED                 0\n\
             t_FAILED                    2  9 10\n\
             t_TIMEOUT                   0\n\
             t_CANCELLED                 0\n"
        );
        let coloured = text(|o| write_sets(o, &k, &s, Format::Human, true));
        assert!(coloured.contains("\x1b[31mt_FAILED                    2\x1b[0m  9 10\n"));
        assert!(coloured.starts_with("t_ALL "), "ALL has no colour");
        assert!(!coloured.contains("\x1b[32m"), "an empty set has no colour");
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Plain, false)),
            "9\n10\n10_1\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&text(|o| write_sets(o, &k, &s, Format::Json, false))).unwrap();
        assert_eq!(v["tag"], "t");
        assert_eq!(v["sets"][3]["ids"], serde_json::json!(["9", "10"]));
        assert_eq!(v["sets"][3]["key"], "t_FAILED");
        let s = sets(&[Set::PendingAndRunning, Set::Failed], true);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Csv, false)),
            "set,job_id\nPENDING_AND_RUNNING,10_1\nFAILED,9\nFAILED,10\n"
        );
        let s = sets(&[Set::Timeout], true);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Tsv, false)),
            "set\tjob_id\n"
        );
    }

    #[test]
    fn counts_without_ids() {
        let k = keys();
        let s = sets(&[Set::All, Set::Failed], false);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Plain, false)),
            "3\n2\n"
        );
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Csv, false)),
            "set,key,count\nALL,t_ALL,3\nFAILED,t_FAILED,2\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&text(|o| write_sets(o, &k, &s, Format::Json, false))).unwrap();
        assert!(v["sets"][0].get("ids").is_none(), "{v}");
        assert_eq!(v["sets"][1]["count"], 2);
        assert_eq!(
            text(|o| write_sets(o, &k, &s, Format::Human, false)),
            "t_ALL          3\nt_FAILED       2\n"
        );
    }

    fn jobs() -> Vec<JobRow> {
        let rec = JobRecord::from_fields([
            ("state", "FAILED"),
            ("exit_code", "1:0"),
            ("name", "a\tb"),
            ("cluster", "c1"),
            ("tracked_by", "x"),
            ("max_rss", "1048576"),
            ("cpu_efficiency", "0.5"),
            ("stdout", "/home/u/slurm-9.out"),
        ]);
        vec![
            JobRow::new("9".into(), Set::Failed, rec),
            JobRow::new("10".into(), Set::PendingAndRunning, JobRecord::default()),
        ]
    }

    fn write_jobs(out: &mut Vec<u8>, rows: &[JobRow], format: Format) -> anyhow::Result<()> {
        output::write_rows(format.into(), out, rows)
    }

    #[test]
    fn ids_pack_in_8_bytes_and_keep_their_order_and_spelling() {
        let typed = [
            "100",
            "10_2",
            "9",
            "10",
            "10_10",
            "10_1",
            "007",
            "junk",
            "7",
            "4294967296",
            "1_0",
            "10",
            "b",
            "",
        ];
        let ids = Ids::of(&typed);
        assert_eq!(ids.packed.len(), 8, "{ids:?}");
        let listed: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            listed,
            [
                "1_0",
                "7",
                "007",
                "9",
                "10",
                "10_1",
                "10_2",
                "10_10",
                "100",
                "4294967296",
                "",
                "b",
                "junk"
            ]
        );
        // The same order as IdKey's, which the whole listing used before (`7` and `007` are
        // one number: the canonical spelling first).
        let key = |v: &[&str]| -> Vec<crate::keys::IdKey> {
            v.iter().map(|s| crate::keys::IdKey::of(s)).collect()
        };
        let mut want: Vec<&str> = typed.to_vec();
        want.sort_by_cached_key(|s| crate::keys::IdKey::of(s));
        want.dedup();
        let listed_str: Vec<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(key(&listed_str), key(&want));
        assert_eq!(ids.len(), 13);
        for bad in ["0", "0_1", "01", "1_01", "1__2", "_1", "1_", "1_4294967295"] {
            assert_eq!(pack(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(pack(b"4294967295_4294967294"), Some(0xffff_ffff_ffff_ffff));
    }

    #[test]
    fn the_merge_gives_each_id_once_with_its_sets() {
        let sets = [
            Ids::of(&["1", "2", "3"]),
            Ids::of(&["3", "007"]),
            Ids::of(&["1", "3"]),
            Ids::default(),
            Ids::default(),
            Ids::of(&["x"]),
        ];
        let mut seen = Vec::new();
        merge(&sets, |id, mask| {
            seen.push((id.to_string(), mask));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("1".to_string(), 0b101),
                ("2".to_string(), 0b1),
                ("3".to_string(), 0b111),
                ("007".to_string(), 0b10),
                ("x".to_string(), 0b100000),
            ]
        );
    }

    #[test]
    fn sizes_and_fractions_read_as_a_user_reads_them() {
        assert_eq!(human_bytes("512"), "512B");
        assert_eq!(human_bytes("1536"), "1.5K");
        assert_eq!(human_bytes("2147483648"), "2.0G");
        assert_eq!(human_bytes("12K"), "12K", "not a number: as it is");
        assert_eq!(percent("0.873"), "87%");
        assert_eq!(percent("1"), "100%");
    }

    #[test]
    fn jobs_with_their_records_in_every_form() {
        let rows = jobs();
        assert_eq!(
            text(|o| write_jobs(o, &rows, Format::Human)),
            "JOBID  SET                  STATE   EXITCODE  ELAPSED  NODES  PARTITION  NAME  MAXRSS  CPU  REASON\n\
             9      FAILED               FAILED  1:0       -        -      -          a\tb   1.0M    50%  -\n\
             10     PENDING_AND_RUNNING  -       -         -        -      -          -     -       -    -\n"
        );
        assert_eq!(text(|o| write_jobs(o, &rows, Format::Plain)), "9\n10\n");
        let v: serde_json::Value =
            serde_json::from_str(&text(|o| write_jobs(o, &rows, Format::Json))).unwrap();
        assert_eq!(v[0]["name"], "a\tb");
        assert_eq!(v[0]["cluster"], "c1");
        assert_eq!(v[0]["max_rss"], "1048576");
        assert_eq!(v[0]["cpu_efficiency"], "0.5");
        assert_eq!(v[0]["stdout"], "/home/u/slurm-9.out");
        assert_eq!(v[1]["state"], "", "no record: empty fields");
        let header = "job_id,set,state,exit_code,elapsed,start,end,nodes,partition,name,submitted,\
                      cluster,reason,restarts,stdout,stderr,max_rss,cpu_efficiency";
        assert_eq!(
            text(|o| write_jobs(o, &rows, Format::Csv)),
            format!(
                "{header}\n9,FAILED,FAILED,1:0,,,,,,a\tb,,c1,,,/home/u/slurm-9.out,,1048576,0.5\n\
                 10,PENDING_AND_RUNNING,,,,,,,,,,,,,,,,\n"
            )
        );
        let tsv = text(|o| write_jobs(o, &rows, Format::Tsv));
        assert_eq!(tsv.lines().nth(1).unwrap().split('\t').nth(9), Some("a b"));
        assert_eq!(
            text(|o| write_jobs(o, &[], Format::Csv)),
            format!("{header}\n")
        );
        assert_eq!(text(|o| write_jobs(o, &[], Format::Json)), "[]\n");
    }

    /// Array ranges and `;cluster` spellings are no canonical IDs: they stay text, after every
    /// job ID, in byte order, as `IdKey` sorts them; the IDs written are the members' bytes.
    #[test]
    fn array_ranges_and_cluster_suffixes_keep_their_place() {
        let typed = [
            "123_[5-9]",
            "124",
            "123;c1",
            "123_10",
            "123",
            "122_[1-3]",
            "123_4",
            "4294967295_4294967294",
            "123_4",
        ];
        let ids = Ids::of(&typed);
        assert_eq!(ids.packed.len(), 5, "{ids:?}");
        let mut written = Vec::new();
        for id in ids.iter() {
            put_id(&mut written, id);
            written.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(written).unwrap(),
            "123\n123_4\n123_10\n124\n4294967295_4294967294\n122_[1-3]\n123;c1\n123_[5-9]\n"
        );
        let mut want: Vec<&str> = typed.to_vec();
        want.sort_by_cached_key(|s| crate::keys::IdKey::of(s));
        want.dedup();
        let listed: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(listed, want);
        // put_id writes what Display does.
        for id in ids.iter() {
            let mut b = Vec::new();
            put_id(&mut b, id);
            assert_eq!(String::from_utf8(b).unwrap(), id.to_string());
        }
    }

    #[test]
    fn radix_sort_sorts_as_sort_unstable() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0, 1, 1023, 1024, 5000, 100_000] {
            let cases: [Vec<u64>; 4] = [
                (0..n).map(|_| next()).collect(),
                // Job IDs as a tag holds them: the high bytes and most task bytes shared.
                (0..n)
                    .map(|_| ((4_000_000 + next() % 900_000) << 32) | (next() % 8))
                    .collect(),
                (0..n).map(|_| next() % 3).collect(),
                vec![7; n],
            ];
            for mut v in cases {
                let mut want = v.clone();
                want.sort_unstable();
                radix_sort(&mut v);
                assert_eq!(v, want, "{n}");
            }
        }
    }

    /// Bytes in memory for [`Own`]: what the server sends, handed out `chunk` bytes a read so
    /// that headers and values are cut everywhere; each write with how much had been read.
    struct Script {
        input: Vec<u8>,
        at: usize,
        chunk: usize,
        writes: Vec<(usize, Vec<u8>)>,
    }

    impl Read for Script {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(b.len()).min(self.input.len() - self.at);
            if n == 0 && self.chunk == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            b[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Script {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes.push((self.at, b.to_vec()));
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Script {
        fn set_read_timeout(&self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn own(input: &[u8], chunk: usize, buffer: usize) -> Own<Script> {
        let mut o = Own::new(Script {
            input: input.to_vec(),
            at: 0,
            chunk,
            writes: Vec::new(),
        });
        o.buf = vec![0; buffer];
        o
    }

    fn array(out: &mut Vec<u8>, items: &[Option<&[u8]>]) {
        crate::bench::resp::header(out, b'*', items.len());
        for i in items {
            match i {
                Some(b) => crate::bench::resp::bulk(out, b),
                None => out.extend_from_slice(b"$-1\r\n"),
            }
        }
    }

    fn sscan_reply(out: &mut Vec<u8>, cursor: &[u8], members: &[&[u8]]) {
        out.extend_from_slice(b"*2\r\n");
        crate::bench::resp::bulk(out, cursor);
        let m: Vec<Option<&[u8]>> = members.iter().map(|m| Some(*m)).collect();
        array(out, &m);
    }

    #[test]
    fn sscan_hands_out_every_member_and_asks_for_the_next_step_first() {
        let mut input = Vec::new();
        sscan_reply(&mut input, b"17", &[b"a", b"10_1", b"007"]);
        let first = input.len();
        let long = vec![b'9'; 300];
        sscan_reply(&mut input, b"0", &[b"x", &long, b""]);
        // Every cut of every header and value, and buffers that must grow and move.
        for (chunk, buffer) in [(1, 4), (3, 16), (7, 1 << 18), (1 << 20, 1)] {
            let mut o = own(&input, chunk, buffer);
            let mut got: Vec<Vec<u8>> = Vec::new();
            o.sscan("t_ALL", |m| {
                got.push(m.to_vec());
                Ok(())
            })
            .map_err(|e| match e {
                Stop::Fault(f) => format!("{f:?}"),
                Stop::Other(e) => e.to_string(),
            })
            .unwrap();
            let want: Vec<&[u8]> = vec![b"a", b"10_1", b"007", b"x", &long, b""];
            assert_eq!(got, want, "{chunk} {buffer}");
            let w = &o.io.writes;
            let step = |cursor: &[u8]| {
                let mut r = Vec::new();
                crate::bench::resp::encode(
                    &mut r,
                    &[b"SSCAN", b"t_ALL", cursor, b"COUNT", b"10000"],
                );
                r
            };
            assert_eq!(w.len(), 2, "{chunk} {buffer}");
            assert_eq!((w[0].0, &w[0].1), (0, &step(b"0")));
            assert_eq!(w[1].1, step(b"17"));
            if chunk < first {
                assert!(
                    w[1].0 < first,
                    "the next step leaves before the members are read"
                );
            }
            assert_eq!(o.io.at, input.len(), "nothing left unread");
        }
    }

    fn fault(r: Result<(), Stop>) -> Fault {
        match r {
            Err(Stop::Fault(f)) => f,
            Err(Stop::Other(e)) => panic!("{e}"),
            Ok(()) => panic!("no fault"),
        }
    }

    #[test]
    fn records_nils_server_errors_and_garbage() {
        let mut input = Vec::new();
        let big = vec![b'n'; 5000];
        let mut values: Vec<Option<&[u8]>> = vec![None; ROW_FIELDS.len()];
        values[0] = Some(b"COMPLETED");
        values[7] = Some(&big);
        values[9] = Some(b"");
        // The hash's fields in its own order (here the reverse of the row's), with fields the
        // row does not show among them; an empty hash (no record) is an empty list.
        let mut pairs: Vec<Option<&[u8]>> = vec![Some(b"sbatch_args"), Some(b"[\"a.sh\"]")];
        for (name, v) in ROW_FIELDS.iter().zip(&values).rev() {
            if let Some(v) = v {
                pairs.extend([Some(name.as_bytes()), Some(*v)]);
            }
        }
        pairs.extend([Some(&b"tracked_by"[..]), Some(b"login1:1:ab")]);
        array(&mut input, &pairs);
        array(&mut input, &[]);
        input.extend_from_slice(
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        );
        for (chunk, buffer) in [(1, 8), (5, 64), (1 << 20, 1 << 18)] {
            let mut o = own(&input, chunk, buffer);
            let mut seen = Vec::new();
            o.record(|f| {
                seen = f.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
                Ok(())
            })
            .map_err(|_| "a record")
            .unwrap();
            let want: Vec<Option<Vec<u8>>> = values.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
            assert_eq!(seen, want, "{chunk} {buffer}");
            o.record(|f| {
                seen = f.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
                Ok(())
            })
            .map_err(|_| "no record")
            .unwrap();
            assert_eq!(seen, vec![None; ROW_FIELDS.len()], "{chunk} {buffer}");
            match fault(o.record(|_| Ok(()))) {
                Fault::Server(e) => {
                    assert_eq!(e.code(), Some("WRONGTYPE"));
                    assert!(crate::store::redis_message(&e).starts_with("WRONGTYPE Operation"));
                }
                f => panic!("{f:?}"),
            }
            // The connection ends: a read at the end is the server gone.
            match fault(o.record(|_| Ok(()))) {
                Fault::Io(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                f => panic!("{f:?}"),
            }
        }
        for bad in [
            &b"+OK\r\n"[..],
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
            b"*2\r\n$-1\r\n$1\r\nb\r\n",
            b"*-1\r\n",
            b"*10\r\n$3\r\nabcd\r\n",
            b"*10\r\n$x\r\n",
            b"*10\n",
        ] {
            assert!(
                matches!(
                    fault(own(bad, 3, 16).record(|_| Ok(()))),
                    Fault::Protocol(_)
                ),
                "{}",
                output::lossy(bad)
            );
        }
    }

    #[test]
    fn a_reply_not_there_by_its_deadline_is_a_timeout() {
        // chunk 0: every read would block, as a socket whose timeout ran out.
        let mut o = own(b"", 0, 16);
        let sent = Instant::now()
            .checked_sub(crate::store::IO_TIMEOUT + Duration::from_millis(1))
            .unwrap();
        o.expect(sent);
        match fault(o.record(|_| Ok(()))) {
            Fault::Io(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn hgetall_requests_name_each_record() {
        let mut o = own(b"", 1, 16);
        let ids = Ids::of(&["9", "10_1", "a b"]);
        let batch: Vec<(Id, Set)> = ids.iter().map(|i| (i, Set::All)).collect();
        let k = keys();
        o.hgetall(k.job_hash("").as_bytes(), &batch);
        let mut want = Vec::new();
        for id in ["9", "10_1", "a b"] {
            let key = k.job_hash(id);
            crate::bench::resp::encode(&mut want, &[b"HGETALL", key.as_bytes()]);
        }
        assert_eq!(output::lossy(&o.req), output::lossy(&want));
    }

    /// The JSON written from the replies is the exporter's, byte for byte: escapes, text that is
    /// not UTF-8, missing fields, IDs that are text.
    #[test]
    fn jobs_json_is_the_exporters_json() {
        let ids = Ids::of(&["9", "10_1", "007", "x\"y", "x\\y"]);
        let odd: [&[u8]; 9] = [
            b"say \"hi\"",
            b"a\tb\nc\r\x01\x1f",
            "caf\u{e9} \u{1F600}".as_bytes(),
            b"bad \xff\xfe bytes",
            b"quote \" and \\ backslash",
            b"",
            b"\x7f del",
            b"</script>",
            b"plain",
        ];
        let mut rows: Vec<(Id, Set, Fields)> = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let f: Fields =
                std::array::from_fn(|i| ((i + n) % 3 != 0).then_some(odd[(i + n) % odd.len()]));
            rows.push((id, Set::ALL[n % 6], f));
        }
        for n in [0, 1, rows.len()] {
            let mut fast = Vec::new();
            let mut w = JobsJson::new(&mut fast).unwrap();
            let mut slow = Vec::new();
            let mut e = output::exporter::<JobRow>(output::Form::Json, &mut slow).unwrap();
            for (id, set, f) in &rows[..n] {
                w.row(*id, *set, f).unwrap();
                e.row(&JobRow::of(*id, *set, f)).unwrap();
            }
            w.finish().unwrap();
            e.finish().unwrap();
            assert_eq!(output::lossy(&fast), output::lossy(&slow), "{n} rows");
        }
    }
}
