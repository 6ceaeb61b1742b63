//! Pure naming of everything a tag owns in Redis (ARCHITECTURE.md §2), job IDs and their numeric order.
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::exit::{fail, Kind};

/// A validated experiment tag: `[A-Za-z0-9_.-]+`, which may start with one Redis Cluster hash
/// tag `{name}` (`{exp}`, `{exp}.v2`; the name itself of those characters). On a Redis Cluster
/// only the hash tag is hashed, so every key of the tag (`{exp}_ALL`, `{exp}-<id>:*`, …) is in
/// one slot, which SMOVE, the recording transaction and the scripts need (ARCHITECTURE.md §2).
/// Braces anywhere else, empty or nested, are refused with every other character: tags become
/// parts of key names and SCAN patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// The characters of a tag, and of the name inside its hash tag.
fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl Tag {
    pub fn new(s: &str) -> anyhow::Result<Tag> {
        if s.is_empty() {
            return Err(fail(Kind::Config, "the tag is empty; set --tag or JOB_TAG"));
        }
        let rule = "tags are [A-Za-z0-9_.-]+, optionally starting with one Redis Cluster hash \
                    tag such as {exp}";
        let rest = match s.strip_prefix('{') {
            Some(inner) => {
                let Some((name, rest)) = inner.split_once('}') else {
                    return Err(fail(
                        Kind::Config,
                        format!("invalid tag {s:?}: the hash tag has no closing '}}' ({rule})"),
                    ));
                };
                if name.is_empty() {
                    return Err(fail(
                        Kind::Config,
                        format!("invalid tag {s:?}: the hash tag {{}} is empty ({rule})"),
                    ));
                }
                if let Some(bad) = name.chars().find(|c| !tag_char(*c)) {
                    return Err(fail(
                        Kind::Config,
                        format!(
                            "invalid tag {s:?}: character {bad:?} is not allowed in its hash \
                             tag ({rule})"
                        ),
                    ));
                }
                rest
            }
            None => s,
        };
        if let Some(bad) = rest.chars().find(|c| !tag_char(*c)) {
            let why = if matches!(bad, '{' | '}') {
                "a hash tag {…} only opens the tag, once"
            } else {
                "it is not allowed"
            };
            return Err(fail(
                Kind::Config,
                format!("invalid tag {s:?}: character {bad:?}: {why} ({rule})"),
            ));
        }
        Ok(Tag(s.to_string()))
    }

    /// The name inside the tag's Redis Cluster hash tag (`exp` of `{exp}.v2`), if it has one:
    /// what a cluster hashes for every key of the tag.
    pub fn hash_tag(&self) -> Option<&str> {
        self.0
            .strip_prefix('{')?
            .split_once('}')
            .map(|(name, _)| name)
    }

    /// The Redis Cluster hash slot of every key of the tag, when it has a hash tag.
    pub fn slot(&self) -> Option<u16> {
        self.hash_tag().map(|h| key_slot(h.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The six sets of a tag, in the order the tools show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Set {
    All,
    PendingAndRunning,
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

impl Set {
    pub const ALL: [Set; 6] = [
        Set::All,
        Set::PendingAndRunning,
        Set::Completed,
        Set::Failed,
        Set::Timeout,
        Set::Cancelled,
    ];
    /// The four sets a finished job can end in.
    pub const FINAL: [Set; 4] = [Set::Completed, Set::Failed, Set::Timeout, Set::Cancelled];

    /// The suffix after `T_`, which is also the state name users type (`--state COMPLETED`).
    pub fn suffix(self) -> &'static str {
        match self {
            Set::All => "ALL",
            Set::PendingAndRunning => "PENDING_AND_RUNNING",
            Set::Completed => "COMPLETED",
            Set::Failed => "FAILED",
            Set::Timeout => "TIMEOUT",
            Set::Cancelled => "CANCELLED",
        }
    }

    pub fn from_suffix(s: &str) -> Option<Set> {
        let up = s.to_ascii_uppercase();
        Set::ALL
            .into_iter()
            .find(|set| set.suffix() == up)
            .or(match up.as_str() {
                "PENDING" | "RUNNING" | "ACTIVE" => Some(Set::PendingAndRunning),
                _ => None,
            })
    }
}

/// Key names of one tag.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: Tag,
}

impl Keys {
    pub fn new(tag: Tag) -> Keys {
        Keys { tag }
    }

    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    pub fn set(&self, set: Set) -> String {
        format!("{}_{}", self.tag, set.suffix())
    }

    /// The job hash rj keeps per job: `T_JOB:<id>`.
    pub fn job_hash(&self, id: &str) -> String {
        format!("{}_JOB:{id}", self.tag)
    }

    /// SCAN pattern for all job hashes of the tag.
    pub fn job_hash_pattern(&self) -> String {
        format!("{}_JOB:*", escape_glob(self.tag.as_str()))
    }

    /// The tracker's lease key.
    pub fn tracker(&self) -> String {
        format!("{}_TRACKER", self.tag)
    }

    /// rj-track's hash of jobs Slurm does not know, with the time each was first missed.
    pub fn tracker_unknown(&self) -> String {
        format!("{}_TRACKER:unknown", self.tag)
    }

    /// The tag's event stream: one entry per job recorded (rj-launch) and per move (rj-track),
    /// written in the same transaction or script as the change it reports, so a reader that
    /// follows it (`XREAD BLOCK`, rj-wait) never sees a move that did not happen nor misses one
    /// that did. The name matches neither the six set names nor `T-<digits>…:*`.
    pub fn events(&self) -> String {
        format!("{}_EVENTS", self.tag)
    }

    /// rj-track's figures of its last tick for the tag (a hash beside the lease), read by
    /// `rj-status --format openmetrics`.
    pub fn tracker_tick(&self) -> String {
        format!("{}_TRACKER:tick", self.tag)
    }

    /// The data key a job writes: `T-<id>:<name>` (the name checked with [`check_name`]).
    pub fn data_key(&self, id: &str, name: &str) -> String {
        format!("{}-{id}:{name}", self.tag)
    }

    /// The marker that a file of rj-put's results spool was applied: `T_REPLAYED:<file>`. It
    /// lets a replay that was killed after EXEC and before deleting the file, or that raced
    /// another replayer, skip the file instead of pushing its lists twice.
    pub fn replayed(&self, file: &str) -> String {
        format!("{}_REPLAYED:{file}", self.tag)
    }

    /// SCAN pattern for rj-put's replay markers [`Keys::replayed`]: the tag's alone, as
    /// [`Keys::job_hash_pattern`] is (tags cannot hold `:`).
    pub fn replayed_pattern(&self) -> String {
        format!("{}_REPLAYED:*", escape_glob(self.tag.as_str()))
    }

    /// SCAN pattern for the data keys the jobs of this tag write: `T-<digits>*:*`. Matches may
    /// still belong to another tag (`exp-2-…` for tag `exp`), so callers check with
    /// [`Keys::data_key_job`] and against `T_ALL`.
    pub fn data_pattern(&self) -> String {
        format!("{}-[0-9]*:*", escape_glob(self.tag.as_str()))
    }

    /// SCAN pattern for the data keys of one job.
    pub fn job_data_pattern(&self, id: &str) -> String {
        format!("{}-{}:*", escape_glob(self.tag.as_str()), escape_glob(id))
    }

    /// The job ID of a data key of this tag (`T-<id>:<name>`), if the key is one.
    pub fn data_key_job<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(self.tag.as_str())?.strip_prefix('-')?;
        let (id, _name) = rest.split_once(':')?;
        JobId::from_str(id).ok()?;
        Some(id)
    }
}

/// Check a key name a job gives rj-put (the part after `T-<id>:`). The key stays in the job's
/// own space whatever the name, since the prefix is fixed; what is refused are names that are
/// surely mistakes or that would trouble the readers: empty; starting with `:` (the colon is
/// rj-put's, `T-1::x` is a typo); a control character (a newline breaks the `Key:`/`Value:`
/// lines and TSV); a glob character `* ? [ ] \` (a `redis-cli --scan --pattern T-1:<name>`
/// that users' scripts run to read one key would match others).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the key name is empty".into());
    }
    if name.starts_with(':') {
        return Err(format!(
            "key name {name:?} starts with ':'; give the name alone (rj-put adds TAG-JOB:)"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "key name {name:?} holds the control character {c:?}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '*' | '?' | '[' | ']' | '\\'))
    {
        return Err(format!(
            "key name {name:?} holds the glob character {c:?}, which SCAN patterns read as a wildcard"
        ));
    }
    Ok(())
}

/// Escape the glob metacharacters of Redis MATCH patterns. Tags cannot hold them, but job IDs
/// read from Redis might.
pub fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// CRC16/XMODEM (polynomial 0x1021), the checksum Redis Cluster hashes keys with.
const CRC16: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut b = 0;
        while b < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            b += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag (the text between the
/// first `{` and the next `}`, when not empty) or of the whole key, modulo 16384, as the server
/// computes it (`CLUSTER KEYSLOT`). Table-driven: rbench hashes every key it sends.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    let mut k = key;
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                k = &key[open + 1..open + 1 + len];
            }
        }
    }
    let mut crc: u16 = 0;
    for &b in k {
        crc = (crc << 8) ^ CRC16[((crc >> 8) as u8 ^ b) as usize];
    }
    crc % 16384
}

/// A Slurm job ID: `123`, or an array task `123_7`. Ordered numerically, task after parent.
///
/// Parsing accepts leading zeros (`00012`, `7_03`) and [`fmt::Display`] never prints them, so
/// that one Slurm job is one member of `T_ALL` however its ID was typed: every place where an ID
/// enters the ledger stores [`JobId::canonical`]. Job 0 does not exist (Slurm counts from 1, and
/// 0 stands for "no job" in its API); task 0 does (`--array=0-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId {
    pub job: u64,
    pub task: Option<u64>,
}

/// Sort key of an ID read from Redis: valid IDs numerically, anything else after them in byte
/// order (a foreign script may have added junk; it must not crash a listing). Used with
/// `sort_by_cached_key`, so each ID is parsed once, not once per comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdKey {
    Id(JobId),
    Other(String),
}

impl IdKey {
    pub fn of(s: &str) -> IdKey {
        s.parse()
            .map_or_else(|_| IdKey::Other(s.to_string()), IdKey::Id)
    }
}

impl Ord for JobId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.job
            .cmp(&other.job)
            .then_with(|| match (self.task, other.task) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(&b),
            })
    }
}

impl PartialOrd for JobId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.task {
            Some(t) => write!(f, "{}_{t}", self.job),
            None => write!(f, "{}", self.job),
        }
    }
}

impl JobId {
    /// The one spelling of an ID that rj stores: `00012` → `12`, `7_03` → `7_3`.
    pub fn canonical(s: &str) -> Result<String, String> {
        s.parse::<JobId>().map(|j| j.to_string())
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<JobId, String> {
        let digits = |p: &str| -> Result<u64, String> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{s:?} is not a Slurm job ID (expected 123 or 123_4)"
                ));
            }
            p.parse::<u64>()
                .map_err(|_| format!("job ID {s:?} is out of range"))
        };
        let (job, task) = match s.split_once('_') {
            Some((j, t)) => (digits(j)?, Some(digits(t)?)),
            None => (digits(s)?, None),
        };
        if job == 0 {
            return Err(format!(
                "{s:?} is not a Slurm job ID (Slurm job IDs start at 1)"
            ));
        }
        Ok(JobId { job, task })
    }
}

/// Split `sbatch --parsable` style `id;cluster` into the ID and the cluster.
pub fn split_cluster(s: &str) -> (&str, Option<&str>) {
    match s.split_once(';') {
        Some((id, c)) if !c.is_empty() => (id, Some(c)),
        Some((id, _)) => (id, None),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(t: &str) -> Keys {
        Keys::new(Tag::new(t).unwrap())
    }

    #[test]
    fn set_names_are_the_original_contract() {
        let k = keys("rlmol_exp");
        let names: Vec<_> = Set::ALL.iter().map(|s| k.set(*s)).collect();
        assert_eq!(
            names,
            [
                "rlmol_exp_ALL",
                "rlmol_exp_PENDING_AND_RUNNING",
                "rlmol_exp_COMPLETED",
                "rlmol_exp_FAILED",
                "rlmol_exp_TIMEOUT",
                "rlmol_exp_CANCELLED"
            ]
        );
    }

    #[test]
    fn rj_keys_do_not_look_like_data_keys_or_sets() {
        let k = keys("exp");
        for key in [
            k.job_hash("42"),
            k.tracker(),
            k.tracker_unknown(),
            k.tracker_tick(),
            k.events(),
            k.replayed("1718000000.000000001-node1-77-0.put"),
        ] {
            assert!(k.data_key_job(&key).is_none(), "{key}");
            assert!(!Set::ALL.iter().any(|s| k.set(*s) == key));
        }
    }

    #[test]
    fn tag_rules() {
        for ok in [
            "a",
            "rlmol_exp",
            "A.b-c_9",
            "{exp}",
            "{exp}.v2",
            "{a.b-c_9}x",
        ] {
            assert!(Tag::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a*",
            "a:b",
            "x[1]",
            "é",
            "a/b",
            "{}",
            "{}x",
            "{exp",
            "exp}",
            "a{exp}",
            "{exp}}",
            "{{exp}}",
            "{exp}{v2}",
            "{e x}",
            "{e:x}",
            "{exp}.v}2",
            "{é}",
        ] {
            let e = Tag::new(bad).unwrap_err();
            assert_eq!(crate::exit::code_for(&e), 78, "{bad}");
            assert!(!format!("{e:#}").contains('\n'), "{bad}: one line");
        }
    }

    #[test]
    fn a_hash_tag_puts_every_key_of_the_tag_in_one_slot() {
        assert_eq!(Tag::new("exp").unwrap().hash_tag(), None);
        assert_eq!(Tag::new("exp").unwrap().slot(), None);
        let t = Tag::new("{exp}.v2").unwrap();
        assert_eq!(t.hash_tag(), Some("exp"));
        let k = Keys::new(t.clone());
        let slot = t.slot().unwrap();
        assert_eq!(slot, key_slot(b"exp"));
        for key in Set::ALL.iter().map(|s| k.set(*s)).chain([
            k.job_hash("42"),
            k.tracker(),
            k.tracker_unknown(),
            k.tracker_tick(),
            k.events(),
            k.replayed("f.put"),
            k.data_key("42_1", "loss"),
        ]) {
            assert_eq!(key_slot(key.as_bytes()), slot, "{key}");
        }
    }

    /// Slots `CLUSTER KEYSLOT` gives for these keys (Redis 7.0), and the rules for braces.
    #[test]
    fn key_slots_are_the_servers() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        // The CRC16/XMODEM check value of "123456789" is 0x31c3 (below 16384).
        assert_eq!(key_slot(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty hash tag is no hash tag: the whole key is hashed.
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn data_keys_of_other_tags_are_not_ours() {
        let k = keys("exp");
        assert_eq!(k.data_key_job("exp-4238610:bd29"), Some("4238610"));
        assert_eq!(k.data_key_job("exp-12_3:x"), Some("12_3"));
        assert_eq!(k.data_key_job("exp-2-77:x"), None);
        assert_eq!(k.data_key_job("expx-1:x"), None);
        assert_eq!(k.data_key_job("exp-1"), None);
        assert_eq!(k.data_key_job("exp_JOB:1"), None);
    }

    #[test]
    fn data_keys_are_the_jobs_own() {
        let k = keys("exp");
        assert_eq!(k.data_key("12_3", "loss"), "exp-12_3:loss");
        assert_eq!(k.data_key_job(&k.data_key("12_3", "a:b")), Some("12_3"));
    }

    #[test]
    fn key_names_are_checked() {
        for ok in [
            "loss",
            "a:b",
            "summary.json",
            "run 2",
            "bd291298-f442-11ea",
            "é",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", ":loss", "a\nb", "a\tb", "\u{7f}", "a*", "a?", "x[1]", "a]", "a\\b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns() {
        let k = keys("a.b");
        assert_eq!(k.data_pattern(), "a.b-[0-9]*:*");
        assert_eq!(k.job_data_pattern("5_1"), "a.b-5_1:*");
        assert_eq!(escape_glob("a*b[c]"), "a\\*b\\[c\\]");
        assert_eq!(escape_glob("?^\\"), "\\?\\^\\\\");
    }

    #[test]
    fn job_id_order_is_numeric_with_tasks_after_parent() {
        let mut ids = vec!["10", "9", "100", "10_2", "10_10", "10_1", "junk"];
        ids.sort_by_cached_key(|s| IdKey::of(s));
        assert_eq!(ids, ["9", "10", "10_1", "10_2", "10_10", "100", "junk"]);
    }

    #[test]
    fn job_id_parse() {
        assert_eq!(
            "4238610_7".parse::<JobId>().unwrap(),
            JobId {
                job: 4238610,
                task: Some(7)
            }
        );
        for bad in [
            "", "a", "1_", "_1", "1_[2-3]", "-1", "1 ", "+1", "0", "000", "0_1", "1_2_3",
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
        let zero = "0_1".parse::<JobId>().unwrap_err();
        assert!(zero.contains("start at 1"), "{zero}");
        assert_eq!(split_cluster("12;c1"), ("12", Some("c1")));
        assert_eq!(split_cluster("12"), ("12", None));
        assert_eq!(split_cluster("12;"), ("12", None));
        assert_eq!(split_cluster("12_3;c"), ("12_3", Some("c")));
    }

    #[test]
    fn one_job_has_one_spelling() {
        for (typed, stored) in [
            ("12", "12"),
            ("00012", "12"),
            ("7_03", "7_3"),
            ("007_000", "7_0"),
            ("4238610_7", "4238610_7"),
        ] {
            assert_eq!(JobId::canonical(typed).unwrap(), stored, "{typed}");
        }
        assert!(JobId::canonical("0").is_err());
        assert_eq!(IdKey::of("00012"), IdKey::of("12"));
    }

    #[test]
    fn state_names_parse() {
        assert_eq!(Set::from_suffix("completed"), Some(Set::Completed));
        assert_eq!(Set::from_suffix("RUNNING"), Some(Set::PendingAndRunning));
        assert_eq!(Set::from_suffix("nope"), None);
    }
}
