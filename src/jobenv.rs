//! What a job submitted by rj-launch finds in its environment, and how it gets there: the tag,
//! where its server is (RJ_CONFIG, a private copy of the settings when they came from a URL),
//! and an `--export` that carries them whatever export form the user chose.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{xdg_dir, Addr, Config, Env, Source};
use crate::exit::{fail, Kind};

// ---------------------------------------------------------------- sbatch's command line

/// How an sbatch option takes its value, as getopt_long sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    /// `--opt=value` or `--opt value` (`-x value`, `-xvalue`).
    Required,
    /// Only `--opt=value` (`-xvalue`): the next word is never the value.
    Optional,
}

/// sbatch's long options that take a value, from Slurm's src/common/slurm_opt.c (22.05 and 24.11
/// together). A name missing here (a newer option, a site's SPANK plugin option) is read as
/// taking no value, so a value given as the next word would be taken for the script.
const LONG_REQUIRED: &[&str] = &[
    "account",
    "acctg-freq",
    "array",
    "autocomplete",
    "batch",
    "bb",
    "bbf",
    "begin",
    "chdir",
    "cluster",
    "cluster-constraint",
    "clusters",
    "comment",
    "constraint",
    "container",
    "container-id",
    "context",
    "core-spec",
    "cores-per-socket",
    "cpu-freq",
    "cpus-per-gpu",
    "cpus-per-task",
    "deadline",
    "delay-boot",
    "dependency",
    "distribution",
    "error",
    "exclude",
    "export",
    "export-file",
    "extra",
    "extra-node-info",
    "gid",
    "gpu-bind",
    "gpu-freq",
    "gpus",
    "gpus-per-node",
    "gpus-per-socket",
    "gpus-per-task",
    "gres",
    "gres-flags",
    "hint",
    "input",
    "job-name",
    "kill-on-invalid-dep",
    "licenses",
    "mail-type",
    "mail-user",
    "mcs-label",
    "mem",
    "mem-bind",
    "mem-per-cpu",
    "mem-per-gpu",
    "mincpus",
    "network",
    "nodefile",
    "nodelist",
    "nodes",
    "ntasks",
    "ntasks-per-core",
    "ntasks-per-gpu",
    "ntasks-per-node",
    "ntasks-per-socket",
    "ntasks-per-tres",
    "open-mode",
    "output",
    "partition",
    "power",
    "prefer",
    "priority",
    "profile",
    "qos",
    "reservation",
    "segment",
    "signal",
    "sockets-per-node",
    "switches",
    "tasks-per-node",
    "thread-spec",
    "threads-per-core",
    "time",
    "time-min",
    "tmp",
    "tres-bind",
    "tres-per-task",
    "uid",
    "wait-all-nodes",
    "wckey",
    "wrap",
];

/// sbatch's long options with an optional value (`--exclusive[=user]`).
const LONG_OPTIONAL: &[&str] = &[
    "exclusive",
    "get-user-env",
    "nice",
    "no-kill",
    "oom-kill-step",
    "propagate",
    "resv-ports",
];

/// sbatch's long options without a value; needed to tell an abbreviation (`--part`) apart from
/// an ambiguous one (`--par`: parsable or partition).
const LONG_NOTHING: &[&str] = &[
    "contiguous",
    "help",
    "hold",
    "ignore-pbs",
    "no-requeue",
    "overcommit",
    "oversubscribe",
    "parsable",
    "quiet",
    "reboot",
    "requeue",
    "spread-job",
    "stepmgr",
    "test-only",
    "usage",
    "use-min-nodes",
    "verbose",
    "version",
    "wait",
];

/// Short options with a value (`-J name`, `-Jname`); `-k` takes an optional one.
const SHORT_REQUIRED: &str = "ABCDFGJLMNSabcdeimnopqtwx";
const SHORT_OPTIONAL: &str = "k";

/// The option a `--name` word means: an exact name, or the one option it abbreviates (as
/// getopt_long allows). None for an unknown or ambiguous name (sbatch refuses those anyway).
fn long_option(name: &str) -> Option<(&'static str, Takes)> {
    let all = LONG_REQUIRED
        .iter()
        .map(|n| (*n, Takes::Required))
        .chain(LONG_OPTIONAL.iter().map(|n| (*n, Takes::Optional)))
        .chain(LONG_NOTHING.iter().map(|n| (*n, Takes::Nothing)));
    let mut prefixed = None;
    let mut count = 0;
    for (n, t) in all {
        if n == name {
            return Some((n, t));
        }
        if n.starts_with(name) {
            prefixed = Some((n, t));
            count += 1;
        }
    }
    (count == 1).then_some(prefixed).flatten()
}

/// An `--export` found among options: where its value is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExportAt {
    /// The word holding the value (`--export=V` itself, or the word after `--export`).
    word: usize,
    /// Whether that word is `--export=V` (true) or just `V`.
    joined: bool,
    value: String,
}

/// Where sbatch takes the script from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Script {
    /// The word at this index (the rest are the script's arguments).
    File(usize),
    /// No script word: sbatch reads the script from stdin.
    Stdin,
    /// `--wrap`: sbatch writes the script itself, without directives.
    Wrap,
}

/// What a scan of options found: the `--export`s of the first job component (a heterogeneous
/// job's components are separated by `:`), those of the others, and the script.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scan {
    first: Vec<ExportAt>,
    later: Vec<ExportAt>,
    script: Script,
}

/// Read options as sbatch's getopt_long does (`+`: options stop at the first word that is not
/// one, which is the script; `--` ends them too).
fn scan(words: &[String]) -> Scan {
    let mut s = Scan {
        first: Vec::new(),
        later: Vec::new(),
        script: Script::Stdin,
    };
    let mut wrap = false;
    let mut component = 0;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let exports = if component == 0 {
            &mut s.first
        } else {
            &mut s.later
        };
        if w == ":" {
            component += 1;
        } else if w == "--" {
            if i + 1 < words.len() {
                s.script = Script::File(i + 1);
            }
            break;
        } else if let Some(long) = w.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let opt = long_option(name);
            let name = opt.map_or(name, |(n, _)| n);
            wrap |= name == "wrap";
            match (opt, value) {
                (Some(("export", _)), Some(v)) => exports.push(ExportAt {
                    word: i,
                    joined: true,
                    value: v.to_string(),
                }),
                (Some((_, Takes::Required)), None) => {
                    if name == "export" && i + 1 < words.len() {
                        exports.push(ExportAt {
                            word: i + 1,
                            joined: false,
                            value: words[i + 1].clone(),
                        });
                    }
                    i += 1;
                }
                _ => {}
            }
        } else if w.len() > 1 && w.starts_with('-') {
            // A cluster of short options: `-vJname`, `-J name`.
            for (pos, c) in w.char_indices().skip(1) {
                if SHORT_REQUIRED.contains(c) {
                    if pos + c.len_utf8() == w.len() {
                        i += 1;
                    }
                    break;
                }
                if SHORT_OPTIONAL.contains(c) {
                    break;
                }
            }
        } else {
            s.script = Script::File(i);
            break;
        }
        i += 1;
    }
    if wrap {
        s.script = Script::Wrap;
    }
    s
}

/// The words of a script's `#SBATCH` directives for the first job component, as sbatch reads
/// them: from the top, until the first line that is neither blank nor a comment or until a
/// `#SBATCH hetjob` line; quotes group, a backslash escapes, an unquoted `#` starts a comment.
fn directives(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    for line in script.lines() {
        let rest = match line
            .strip_prefix("#SBATCH")
            .or_else(|| line.strip_prefix("#SLURM"))
        {
            Some(r) => r,
            None if line.trim_start().is_empty() || line.trim_start().starts_with('#') => continue,
            None => break,
        };
        let first = rest.split_whitespace().next().unwrap_or("");
        if ["hetjob", "packjob"]
            .iter()
            .any(|h| first.eq_ignore_ascii_case(h))
        {
            break;
        }
        words.extend(directive_words(rest));
    }
    words
}

/// Split one directive line into words (Slurm's get_argument).
fn directive_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut escape = false;
    for c in line.chars() {
        if escape {
            escape = false;
        } else if c == '\\' {
            escape = true;
            cur.get_or_insert_with(String::new);
            continue;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
                continue;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
            cur.get_or_insert_with(String::new);
            continue;
        } else if c == '#' {
            break;
        } else if c.is_whitespace() {
            out.extend(cur.take());
            continue;
        }
        cur.get_or_insert_with(String::new).push(c);
    }
    out.extend(cur);
    out
}

/// Does this `--export` value export sbatch's whole environment (`ALL`, `ALL,X=1`, `X=1,all`)?
/// Tokens are split at commas outside quotes, and a token wholly in quotes is unquoted, as
/// Slurm's find_quote_token does.
fn exports_all(spec: &str) -> bool {
    split_spec(spec)
        .iter()
        .any(|t| t.eq_ignore_ascii_case("ALL"))
}

fn split_spec(spec: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut single, mut double) = (false, false);
    let mut start = 0;
    for (i, c) in spec.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ',' if !single && !double => {
                out.push(unquote(&spec[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(unquote(&spec[start..]));
    out
}

fn unquote(t: &str) -> &str {
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return &t[1..t.len() - 1];
        }
    }
    t
}

fn balanced(spec: &str) -> bool {
    let (mut single, mut double) = (false, false);
    for c in spec.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
    }
    !single && !double
}

/// The `--export` value that adds `names` (taken from sbatch's own environment, where rj-launch
/// sets them) to a list that would leave them out; None when `spec` exports everything already.
/// Naming variables rather than giving `NAME=value` keeps values with commas or quotes intact.
fn widen(spec: &str, names: &[&str]) -> anyhow::Result<Option<String>> {
    if exports_all(spec) {
        return Ok(None);
    }
    if !balanced(spec) {
        return Err(fail(
            Kind::Usage,
            format!(
                "cannot add {} to sbatch --export={spec}: it has an unclosed quote",
                names.join(",")
            ),
        ));
    }
    let mut out = spec.to_string();
    for n in names {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(n);
    }
    Ok(Some(out))
}

/// Where the export rule that sbatch applies to the job came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFrom {
    CommandLine,
    Environment,
    Script,
}

impl std::fmt::Display for ExportFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExportFrom::CommandLine => "the command line",
            ExportFrom::Environment => "SBATCH_EXPORT",
            ExportFrom::Script => "the script's #SBATCH lines",
        })
    }
}

/// The sbatch command rj-launch runs: the user's arguments with an `--export` that carries
/// rj's variables, and the script when rj-launch had to read it from stdin to see its
/// directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub args: Vec<String>,
    /// The script as read from rj-launch's stdin, to give to sbatch's stdin.
    pub stdin: Option<Vec<u8>>,
    /// The export rule that was widened: (what it was, where from, what it became).
    pub widened: Option<(String, ExportFrom, String)>,
}

/// Build the sbatch arguments so that the variables `names` reach the job under every export
/// rule: sbatch takes `--export` from its command line, else from `$SBATCH_EXPORT` (`env`, even
/// when empty), else from the script's `#SBATCH` lines; anything but an ALL list is widened by
/// exactly these names, so nothing else the user left out is exported. `read_script` reads a
/// script file; `read_stdin` the script sbatch would read from stdin.
pub fn submission(
    args: &[String],
    sbatch_export: Option<String>,
    names: &[&str],
    read_script: impl Fn(&str) -> Option<String>,
    read_stdin: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Submission> {
    let found = scan(args);
    let mut out = Submission {
        args: args.to_vec(),
        stdin: None,
        widened: None,
    };
    // Every --export of the command line is widened (a later component's too); the first
    // component's last one is the rule of the batch script.
    for at in found.first.iter().chain(&found.later) {
        if let Some(w) = widen(&at.value, names)? {
            out.args[at.word] = if at.joined {
                format!("--export={w}")
            } else {
                w.clone()
            };
            if Some(at) == found.first.last() {
                out.widened = Some((at.value.clone(), ExportFrom::CommandLine, w));
            }
        }
    }
    if !found.first.is_empty() {
        return Ok(out);
    }
    let (spec, from) = if let Some(e) = sbatch_export {
        (e, ExportFrom::Environment)
    } else {
        let text = match found.script {
            Script::Wrap => None,
            Script::File(i) => read_script(&args[i]),
            Script::Stdin => {
                let body = read_stdin()?;
                let text = String::from_utf8_lossy(&body).into_owned();
                out.stdin = Some(body);
                Some(text)
            }
        };
        let spec = text.and_then(|t| {
            scan(&directives(&t))
                .first
                .last()
                .map(|at| at.value.clone())
        });
        match spec {
            Some(s) => (s, ExportFrom::Script),
            None => return Ok(out),
        }
    };
    if let Some(w) = widen(&spec, names)? {
        // The command line beats both SBATCH_EXPORT and the script.
        out.args.insert(0, format!("--export={w}"));
        out.widened = Some((spec, from, w));
    }
    Ok(out)
}

/// The file sbatch would read for a script word: as given when absolute or `./`-relative,
/// otherwise the first of the current directory and `$PATH` that has it (Slurm's search_path).
pub fn script_path(word: &str, env: &dyn Env) -> PathBuf {
    let p = Path::new(word);
    if p.is_absolute() || word.starts_with('.') {
        return p.to_path_buf();
    }
    let path = env.var("PATH").unwrap_or_default();
    std::iter::once(PathBuf::from("."))
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(word))
        .find(|c| c.is_file())
        .unwrap_or_else(|| p.to_path_buf())
}

// ---------------------------------------------------------------- where the job's server is

/// How the job learns where its server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEnv {
    /// The redis.json the job reads (absolute), if any.
    pub rj_config: Option<PathBuf>,
    /// What to do with `REDIS_URL` in sbatch's environment.
    pub redis_url: UrlEnv,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlEnv {
    /// Leave the environment as it is.
    Keep,
    /// Set it to the URL rj-launch used (it holds no password).
    Set(String),
    /// Take it out: it holds a password, which slurmctld would store with the job.
    Remove,
}

/// Where a job finds the server rj-launch recorded it on. A redis.json (found by --config,
/// RJ_CONFIG, ./redis.json or ~/.config/rj) is passed as RJ_CONFIG, as it is. Settings from
/// `--url` or `REDIS_URL` (on top of any redis.json) are written to a private redis.json under
/// `$XDG_STATE_HOME/rj/job-config/` and passed as RJ_CONFIG; REDIS_URL reaches the job only when
/// it holds no password, because the environment of a job is stored by slurmctld (and, with
/// `AccountingStoreFlags=job_env`, in the accounting database, which `sacct --env-vars` reads).
pub fn server_env(cfg: &Config, url: Option<&str>, env: &dyn Env) -> anyhow::Result<ServerEnv> {
    let url = match (&cfg.source, url) {
        (Source::UrlOption | Source::UrlEnv, Some(u)) => u,
        _ => {
            return Ok(ServerEnv {
                rj_config: cfg.file.clone(),
                redis_url: UrlEnv::Keep,
            })
        }
    };
    let dir = xdg_dir(env, "XDG_STATE_HOME", ".local/state")
        .unwrap_or_else(|| PathBuf::from("."))
        .join("rj/job-config");
    let (name, text) = job_config(cfg)?;
    let path = write_private(&dir, &name, &text)?;
    let has_password = crate::config::parse_url(url).is_ok_and(|t| t.password.is_some());
    Ok(ServerEnv {
        rj_config: Some(path),
        redis_url: if has_password {
            UrlEnv::Remove
        } else {
            UrlEnv::Set(url.to_string())
        },
    })
}

/// The fields of redis.json that say where the server is and how to log in.
const CONNECTION_FIELDS: &[&str] = &[
    "host",
    "port",
    "db",
    "username",
    "password",
    "tls",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "url",
    "sentinels",
    "master",
    "sentinel_username",
    "sentinel_password",
];

/// A redis.json for the settings rj-launch connected with: the fields of the redis.json it read
/// (a job may read its own fields there), with the connection fields replaced by the effective
/// ones, one per line, so that a job script without a JSON parser can read them with sed.
/// Returns a file name (the server, and a hash of the text) and the text.
pub fn job_config(cfg: &Config) -> anyhow::Result<(String, String)> {
    let mut obj = serde_json::Map::new();
    if let Some(f) = &cfg.file {
        if let Ok(serde_json::Value::Object(m)) = std::fs::read(f)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice(&b).map_err(|_| ()))
        {
            obj = m;
        }
    }
    for k in CONNECTION_FIELDS {
        obj.remove(*k);
    }
    let t = &cfg.target;
    let from = match &cfg.file {
        Some(f) => format!("{} and {}", cfg.source, f.display()),
        None => cfg.source.to_string(),
    };
    obj.insert(
        "__info__".into(),
        format!(
            "written by rj-launch for the jobs it submits: the Redis settings it used ({from})"
        )
        .into(),
    );
    let base = match &t.addr {
        Addr::Tcp { host, port, tls } => {
            obj.insert("host".into(), host.clone().into());
            obj.insert("port".into(), (*port).into());
            obj.insert("tls".into(), (*tls).into());
            format!("{host}-{port}")
        }
        Addr::Unix(p) => {
            obj.insert(
                "url".into(),
                format!("unix://{}?db={}", percent_path(p), t.db).into(),
            );
            format!(
                "unix-{}",
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            )
        }
    };
    obj.insert("db".into(), t.db.into());
    if let Some(u) = &t.username {
        obj.insert("username".into(), u.clone().into());
    }
    if let Some(pw) = &t.password {
        obj.insert("password".into(), pw.clone().into());
    }
    for (field, path) in [
        ("tls_ca", &t.tls_ca),
        ("tls_cert", &t.tls_cert),
        ("tls_key", &t.tls_key),
    ] {
        if let Some(p) = path {
            let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            obj.insert(field.into(), p.display().to_string().into());
        }
    }
    if let Some(s) = &t.sentinel {
        let nodes: Vec<String> = s
            .nodes
            .iter()
            .map(|(h, p)| crate::config::host_port(h, *p))
            .collect();
        obj.insert("sentinels".into(), nodes.into());
        obj.insert("master".into(), s.master.clone().into());
        if let Some(u) = &s.username {
            obj.insert("sentinel_username".into(), u.clone().into());
        }
        if let Some(pw) = &s.password {
            obj.insert("sentinel_password".into(), pw.clone().into());
        }
    }
    let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(obj))?;
    text.push('\n');
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("{safe}-db{}-{:016x}.json", t.db, fnv1a(text.as_bytes()));
    Ok((name, text))
}

/// A path for a `unix://` URL: every byte that is not unreserved or `/` percent-encoded.
fn percent_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// 64-bit FNV-1a: a stable name for a file's content (not a secret: the file is private).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `dir/name` with `text`, mode 0600 in a 0700 directory. The name comes from the content, so a
/// file that is there already with that content and private is used as it is: a job that
/// reads its RJ_CONFIG days later finds what it was submitted with. Otherwise it is written to a
/// temporary name, fsynced and renamed.
fn write_private(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = dir.join(name);
    let cannot = |what: &str, p: &Path, e: std::io::Error| {
        fail(
            Kind::Unavailable,
            format!(
                "cannot {what} {} (the Redis settings for the job): {e}",
                p.display()
            ),
        )
    };
    if let Ok(m) = std::fs::metadata(&path) {
        if m.permissions().mode() & 0o077 == 0
            && std::fs::read(&path).is_ok_and(|b| b == text.as_bytes())
        {
            return Ok(path);
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| cannot("create", dir, e))?;
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(cannot("write", &path, e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    const NAMES: &[&str] = &["JOB_TAG", "job_tag", "RJ_CONFIG"];

    fn submit(args: &[&str], env: Option<&str>, script: Option<&str>) -> Submission {
        submission(
            &words(args),
            env.map(str::to_string),
            NAMES,
            |_| script.map(str::to_string),
            || Ok(script.unwrap_or("").as_bytes().to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn options_stop_at_the_script_and_values_are_skipped() {
        let s = scan(&words(&[
            "-J",
            "--export=NONE",
            "--time",
            "5",
            "-vo",
            "out",
            "job.sh",
            "--export=NONE",
        ]));
        assert_eq!(s.script, Script::File(6));
        assert!(s.first.is_empty(), "{s:?}");
        let s = scan(&words(&["--export", "NONE", "--part", "debug", "x.sh"]));
        assert_eq!(s.first.len(), 1);
        assert_eq!(s.first[0].word, 1);
        assert_eq!(s.script, Script::File(4));
        let s = scan(&words(&["-Jname", "--exclusive", "x.sh"]));
        assert_eq!(s.script, Script::File(2));
        let s = scan(&words(&["--time=5", "--", "-x.sh"]));
        assert_eq!(s.script, Script::File(2));
        assert_eq!(scan(&words(&["--time=5"])).script, Script::Stdin);
        assert_eq!(scan(&words(&["--wrap", "true"])).script, Script::Wrap);
        let s = scan(&words(&["--export=A", ":", "--export=B", "x.sh"]));
        assert_eq!((s.first.len(), s.later.len()), (1, 1));
    }

    #[test]
    fn abbreviations_resolve_as_getopt_does() {
        assert_eq!(long_option("export"), Some(("export", Takes::Required)));
        assert_eq!(long_option("part"), Some(("partition", Takes::Required)));
        assert_eq!(long_option("par"), None, "parsable or partition");
        assert_eq!(long_option("exp"), None, "export or export-file");
        assert_eq!(long_option("no-such"), None);
    }

    #[test]
    fn directives_are_read_as_sbatch_reads_them() {
        let script = "#!/bin/bash\n\
                      #SBATCH --time=5 # a comment\n\
                      \n\
                      # a plain comment\n\
                      #SBATCH --export=\"NONE\"\n\
                      #SBATCH -J 'my job'\n\
                      echo hi\n\
                      #SBATCH --export=ALL\n";
        assert_eq!(
            directives(script),
            ["--time=5", "--export=NONE", "-J", "my job"]
        );
        assert_eq!(
            directives("#!/bin/sh\n#SBATCH --export=A\n#SBATCH hetjob\n#SBATCH --export=B\n"),
            ["--export=A"]
        );
        assert_eq!(
            directive_words(r#" --comment=a\ b\#c "#),
            ["--comment=a b#c"]
        );
        assert_eq!(
            directives("  #SBATCH --export=NONE\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn only_lists_without_all_are_widened() {
        for all in ["ALL", "all", "ALL,X=1", "X=1,ALL", "\"ALL\""] {
            assert_eq!(widen(all, NAMES).unwrap(), None, "{all}");
        }
        assert_eq!(
            widen("NONE", NAMES).unwrap().as_deref(),
            Some("NONE,JOB_TAG,job_tag,RJ_CONFIG")
        );
        assert_eq!(
            widen("PATH,X=\"a,ALL\"", NAMES).unwrap().as_deref(),
            Some("PATH,X=\"a,ALL\",JOB_TAG,job_tag,RJ_CONFIG")
        );
        assert_eq!(
            widen("", NAMES).unwrap().as_deref(),
            Some("JOB_TAG,job_tag,RJ_CONFIG")
        );
        let e = widen("X=\"a", NAMES).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 2);
    }

    #[test]
    fn the_rule_sbatch_applies_is_the_one_widened() {
        let none = "NONE,JOB_TAG,job_tag,RJ_CONFIG";
        // Command line, both spellings.
        let s = submit(&["--export=NONE", "x.sh"], None, None);
        assert_eq!(s.args, [format!("--export={none}"), "x.sh".into()]);
        let s = submit(&["--export", "none", "x.sh"], Some("ALL"), None);
        assert_eq!(s.args[1], "none,JOB_TAG,job_tag,RJ_CONFIG");
        assert_eq!(s.widened.unwrap().1, ExportFrom::CommandLine);
        // The command line beats SBATCH_EXPORT and the script: ALL there means nothing to do.
        let s = submit(
            &["--export=ALL", "x.sh"],
            Some("NONE"),
            Some("#SBATCH --export=NONE"),
        );
        assert_eq!(s.args, ["--export=ALL", "x.sh"]);
        assert_eq!(s.widened, None);
        // SBATCH_EXPORT (even empty) beats the script.
        let s = submit(&["x.sh"], Some("NONE"), Some("#SBATCH --export=ALL\n"));
        assert_eq!(s.args, [format!("--export={none}"), "x.sh".into()]);
        assert_eq!(s.widened.unwrap().1, ExportFrom::Environment);
        let s = submit(&["x.sh"], Some(""), None);
        assert_eq!(s.args[0], "--export=JOB_TAG,job_tag,RJ_CONFIG");
        // The script's rule, from a file or from stdin (which is then handed on to sbatch).
        let script = "#!/bin/sh\n#SBATCH --export=HOME,PATH\ntrue\n";
        let s = submit(&["-t", "5", "x.sh"], None, Some(script));
        assert_eq!(s.args[0], "--export=HOME,PATH,JOB_TAG,job_tag,RJ_CONFIG");
        assert_eq!(s.stdin, None);
        let s = submit(&["-t", "5"], None, Some(script));
        assert_eq!(s.args[0], "--export=HOME,PATH,JOB_TAG,job_tag,RJ_CONFIG");
        assert_eq!(s.stdin.as_deref(), Some(script.as_bytes()));
        assert_eq!(s.widened.unwrap().1, ExportFrom::Script);
        // No rule anywhere: the default exports everything, the arguments stay as they are.
        let s = submit(&["x.sh", "--export=NONE"], None, Some("#!/bin/sh\ntrue\n"));
        assert_eq!(s.args, ["x.sh", "--export=NONE"]);
        let s = submit(&["--wrap", "true"], None, None);
        assert_eq!(s.args, ["--wrap", "true"]);
    }

    fn config_with(file: Option<PathBuf>, source: Source, url: &str) -> Config {
        Config {
            target: crate::config::parse_url(url).unwrap(),
            source,
            file,
            job_tag: None,
            namespace: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_redis_json_is_passed_as_it_is() {
        let cfg = config_with(
            Some("/etc/rj/redis.json".into()),
            Source::File("/etc/rj/redis.json".into()),
            "redis://h:1",
        );
        let env: HashMap<&str, &str> = HashMap::new();
        let s = server_env(&cfg, None, &env).unwrap();
        assert_eq!(
            s.rj_config.as_deref(),
            Some(Path::new("/etc/rj/redis.json"))
        );
        assert_eq!(s.redis_url, UrlEnv::Keep);
    }

    #[test]
    fn url_settings_go_to_a_private_file_that_reads_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let orig = d.path().join("redis.json");
        std::fs::write(
            &orig,
            r#"{"host": "old", "port": 1, "password": "file-pw", "namespace": "ns", "mine": 3}"#,
        )
        .unwrap();
        let st = state.display().to_string();
        let env: HashMap<&str, &str> = [("XDG_STATE_HOME", st.as_str())].into();
        for (url, pw_in_url) in [
            ("redis://:url-pw@10.0.0.7:6390/4", true),
            ("redis://10.0.0.7:6390/4", false),
        ] {
            let mut cfg = config_with(Some(orig.clone()), Source::UrlOption, url);
            if !pw_in_url {
                cfg.target.password = Some("file-pw".into());
            }
            let s = server_env(&cfg, Some(url), &env).unwrap();
            let p = s.rj_config.unwrap();
            assert!(
                p.starts_with(state.join("rj/job-config")),
                "{}",
                p.display()
            );
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
            if pw_in_url {
                assert_eq!(s.redis_url, UrlEnv::Remove);
            } else {
                assert_eq!(s.redis_url, UrlEnv::Set(url.into()));
            }
            // rj reads it back to the same server and login; the job's own fields survive.
            let req = crate::config::Request {
                config: Some(p.clone()),
                url: None,
            };
            let back = crate::config::load(&req, &HashMap::<&str, &str>::new()).unwrap();
            assert_eq!(back.target, cfg.target);
            assert_eq!(back.namespace.as_deref(), Some("ns"));
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.contains("\n  \"port\": 6390,\n"),
                "one field a line: {text}"
            );
            assert!(text.contains("\"mine\": 3"), "{text}");
            // The same settings again: the same file, untouched.
            let again = server_env(&cfg, Some(url), &env).unwrap();
            assert_eq!(again.rj_config.unwrap(), p);
        }
    }

    #[test]
    fn sentinels_read_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let st = d.path().display().to_string();
        let env: HashMap<&str, &str> = [("XDG_STATE_HOME", st.as_str())].into();
        let url = "redis+sentinel://:url-pw@10.0.0.7:26380,10.0.0.8/mym/3";
        let mut cfg = config_with(None, Source::UrlOption, url);
        let s = cfg.target.sentinel.as_mut().unwrap();
        s.username = Some("su".into());
        s.password = Some("spw".into());
        let p = server_env(&cfg, Some(url), &env)
            .unwrap()
            .rj_config
            .unwrap();
        let req = crate::config::Request {
            config: Some(p),
            url: None,
        };
        let back = crate::config::load(&req, &HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(back.target, cfg.target);
    }

    #[test]
    fn unix_sockets_and_tls_read_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let st = d.path().display().to_string();
        let env: HashMap<&str, &str> = [("XDG_STATE_HOME", st.as_str())].into();
        let mut tls = config_with(None, Source::UrlEnv, "rediss://u:p@h.example:6380/2");
        // A real certificate: loading checks that tls_ca holds one.
        let ca = d.path().join("site-ca.pem");
        std::fs::write(&ca, crate::config::tests::TEST_CA).unwrap();
        tls.target.tls_ca = Some(ca);
        let sock = config_with(None, Source::UrlEnv, "unix:///tmp/a%20dir/r.sock?db=5");
        for (cfg, url) in [
            (tls, "rediss://u:p@h.example:6380/2"),
            (sock, "unix:///tmp/a%20dir/r.sock?db=5"),
        ] {
            let p = server_env(&cfg, Some(url), &env)
                .unwrap()
                .rj_config
                .unwrap();
            let req = crate::config::Request {
                config: Some(p),
                url: None,
            };
            let back = crate::config::load(&req, &HashMap::<&str, &str>::new()).unwrap();
            assert_eq!(back.target, cfg.target);
        }
    }

    #[test]
    fn script_words_are_found_like_sbatch_finds_them() {
        let env: HashMap<&str, &str> = [("PATH", "/nonexistent")].into();
        assert_eq!(script_path("/abs/x.sh", &env), PathBuf::from("/abs/x.sh"));
        assert_eq!(script_path("./x.sh", &env), PathBuf::from("./x.sh"));
        assert_eq!(script_path("nowhere.sh", &env), PathBuf::from("nowhere.sh"));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("on-path.sh"), "").unwrap();
        let dir = d.path().display().to_string();
        let env: HashMap<&str, &str> = [("PATH", dir.as_str())].into();
        assert_eq!(script_path("on-path.sh", &env), d.path().join("on-path.sh"));
    }
}
