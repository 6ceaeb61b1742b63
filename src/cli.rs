//! Shared command-line pieces: connection options, messages on stderr, and `main_with`.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};
use std::sync::OnceLock;

use clap::Parser;

use crate::config::{self, Config, ProcessEnv};
use crate::exit;
use crate::keys::Tag;

/// `--version`: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RJ_GIT_COMMIT"), ")");

/// Connection options every tool takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json,
    /// ~/.config/rj/redis.json).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides
    /// redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line
    /// is visible to every user.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more on stderr (where the config came from, what is done).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl ConnArgs {
    /// Set the verbosity, load the config and print its warnings.
    pub fn load(&self) -> anyhow::Result<Config> {
        set_verbosity(if self.quiet { -1 } else { self.verbose as i8 });
        let req = config::Request {
            config: self.config.clone(),
            url: self.url.clone(),
        };
        let cfg = config::load(&req, &ProcessEnv)?;
        for w in &cfg.warnings {
            warn(w);
        }
        info(&format!("Redis at {}", cfg.place()));
        Ok(cfg)
    }
}

/// The tag option of the tools that work on one tag.
#[derive(Debug, Clone, clap::Args)]
pub struct TagArg {
    /// Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
}

impl TagArg {
    pub fn resolve(&self, cfg: &Config) -> anyhow::Result<Tag> {
        cfg.tag(self.tag.as_deref(), &ProcessEnv)
    }
}

static PROGRAM: OnceLock<String> = OnceLock::new();
static VERBOSITY: AtomicI8 = AtomicI8::new(0);

pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("rj")
}

pub fn set_verbosity(v: i8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

pub fn verbosity() -> i8 {
    VERBOSITY.load(Ordering::Relaxed)
}

static TIMESTAMPS: AtomicBool = AtomicBool::new(false);

/// Prefix every message with an RFC 3339 time: for daemons whose stderr goes to a log for weeks.
pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, Ordering::Relaxed);
}

/// A message on stderr, shown when the verbosity is at least `level`.
fn emit(level: i8, msg: &str) {
    if verbosity() < level {
        return;
    }
    if TIMESTAMPS.load(Ordering::Relaxed) {
        eprintln!("{} {}: {msg}", crate::clock::now_rfc3339(), program());
    } else {
        eprintln!("{}: {msg}", program());
    }
}

/// An error that does not end the program (a daemon's failed tick): shown even with `-q`.
pub fn error(msg: &str) {
    emit(-1, &format!("error: {msg}"));
}

/// A warning: shown unless `-q`.
pub fn warn(msg: &str) {
    emit(0, &format!("warning: {msg}"));
}

/// A note: shown by default, hidden by `-q`.
pub fn note(msg: &str) {
    emit(0, msg);
}

/// Detail: shown under `-v`.
pub fn info(msg: &str) {
    emit(1, msg);
}

/// A humantime duration (`10s`, `5m`, `1h`, `7d`) that is more than zero, for clap.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 5m, 1h, 7d)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// Is colour allowed on stdout? Only on a terminal, and never with `NO_COLOR`.
pub fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Set once a write to stdout failed for another reason than a closed pipe (a full disk, a
/// file system gone): the tool's error is then about its output, whatever wrapped it.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Standard output for a tool's data. A failed write is remembered, so that `main_with` says
/// "cannot write to stdout" with 74 instead of 1 ("nothing found") or a bare OS message.
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

pub struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    fn check<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                STDOUT_FAILED.store(true, Ordering::Relaxed);
            }
        }
        r
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::check(self.0.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Self::check(self.0.write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::check(self.0.flush())
    }
}

/// Run a tool: parse its arguments, run it, print an error once and choose the exit status.
pub fn main_with<A: Parser>(run: fn(A) -> anyhow::Result<ExitCode>) -> ExitCode {
    let name = A::command().get_name().to_string();
    let _ = PROGRAM.set(name.clone());
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `rbench` alone: the help, on stderr, as a usage error.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!(
                "{name}: error: {}",
                usage_error_line(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    let result = run(args);
    let flushed = std::io::stdout().flush();
    let no_output = exit::Kind::Output.code();
    match (result, flushed) {
        (Ok(code), Ok(())) => code,
        (Ok(code), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        (Ok(_), Err(e)) => {
            eprintln!("{name}: error: cannot write to stdout: {e}");
            ExitCode::from(no_output)
        }
        (Err(e), _) if exit::is_broken_pipe(&e) => ExitCode::SUCCESS,
        (Err(e), _) if STDOUT_FAILED.load(Ordering::Relaxed) => {
            eprintln!("{name}: error: cannot write to stdout: {e:#}");
            ExitCode::from(no_output)
        }
        (Err(e), _) => {
            eprintln!("{name}: error: {e:#}");
            exit::exit_code(&e)
        }
    }
}

/// clap's usage error (several lines: the error, hints, a usage line, "For more information…")
/// as the one line every other error is: what is wrong, then the hints, then where to look.
pub fn usage_error_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    if let Some(first) = parts.first_mut() {
        *first = first.strip_prefix("error: ").unwrap_or(first);
    }
    format!("{} (see --help)", parts.join(" "))
}

/// The EXIT STATUS text of every `--help` and man page.
pub fn exit_status_text() -> String {
    let mut s = String::from("Exit status:\n");
    for (code, what) in exit::TABLE {
        s.push_str(&format!("  {code:>3}  {what}\n"));
    }
    s
}

/// Environment variables every tool reads, for `--help` and the man pages.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("JOB_TAG", "the experiment tag when --tag is not given"),
    ("job_tag", "the tag as the original launch script exported it into jobs (after JOB_TAG)"),
    ("RJ_CONFIG", "path of redis.json (after --config)"),
    ("REDIS_URL", "redis://, rediss://, unix:// or redis+sentinel://host:port,host:port/MASTER[/db] URL; overrides host, port, db, user, password, TLS, sentinels of redis.json"),
    ("REDISCLI_AUTH", "Redis password when neither redis.json nor the URL holds one"),
    ("XDG_CONFIG_HOME", "redis.json is looked for in $XDG_CONFIG_HOME/rj/ (default ~/.config/rj/)"),
    ("XDG_STATE_HOME", "the launch spool and the results spool live in $XDG_STATE_HOME/rj/ (default ~/.local/state/rj/)"),
    ("SLURM_JOB_ID", "rj-put: the job whose keys are written, inside a Slurm job"),
    ("SLURM_ARRAY_JOB_ID", "rj-put: with SLURM_ARRAY_TASK_ID, the array task (<array>_<task>) whose keys are written"),
    ("SLURM_ARRAY_TASK_ID", "rj-put: see SLURM_ARRAY_JOB_ID"),
    ("NO_COLOR", "when set and not empty, no colour"),
    ("SLURM_CONF", "the Slurm configuration used by sbatch, squeue, sacct and scontrol"),
];

/// Files every tool reads or writes, for `--help` and the man pages.
pub const FILES: &[(&str, &str)] = &[
    (
        "./redis.json",
        "Redis settings, looked for after --config and $RJ_CONFIG: host, port, db, username, password, url; tls, tls_ca, tls_cert, tls_key (PEM files relative to it); sentinels, master, sentinel_username, sentinel_password (Redis Sentinel); min_replicas_acked (see the README)",
    ),
    (
        "~/.config/rj/redis.json",
        "Redis settings, the last place looked",
    ),
    (
        "~/.local/state/rj/TAG.spool",
        "job IDs submitted while Redis was unreachable; replayed by the next rj-launch or rj-track",
    ),
    (
        "~/.local/state/rj/TAG.results/",
        "rj-put's writes that Redis could not take, one file per attempt; replayed by the next rj-put or rj-track, each file exactly once",
    ),
    (
        "~/.local/state/rj/TAG.spool.bad",
        "spool lines a replay could not read (a torn write, a hand edit), set aside for a human; the others are replayed",
    ),
];

/// The Redis commands of a least-privilege ACL user: what a tool always runs, or what one of
/// its options (or situations) runs on top of that. One table for `--help`, the man pages, the
/// README and the test that creates exactly these users, so none of them can drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRow {
    /// The tool, which is also the user's name in the ACL lines.
    pub tool: &'static str,
    /// "" for what the tool always needs; else the option or situation that needs more.
    pub with: &'static str,
    /// Lower-case command names, as Redis names them in a NOPERM error.
    pub commands: &'static [&'static str],
}

pub const ACL: &[AclRow] = &[
    AclRow {
        tool: "rj-launch",
        with: "",
        commands: &[
            "ping",
            "watch",
            "smismember",
            "unwatch",
            "multi",
            "sadd",
            "hset",
            "exec",
            "type",
            "xadd",
        ],
    },
    AclRow {
        tool: "rj-launch",
        with: "\"min_replicas_acked\"",
        commands: &["wait"],
    },
    AclRow {
        tool: "rj-status",
        with: "",
        commands: &["ping", "sscan", "scard"],
    },
    AclRow {
        tool: "rj-status",
        with: "--long",
        commands: &["hgetall"],
    },
    AclRow {
        tool: "rj-status",
        with: "--format openmetrics",
        commands: &["get", "pttl", "hgetall"],
    },
    AclRow {
        tool: "rj-status",
        with: "--all-tags",
        commands: &["scan"],
    },
    AclRow {
        tool: "rj-status",
        with: "--check",
        commands: &["watch", "multi", "exec"],
    },
    AclRow {
        tool: "rj-status",
        with: "--check --repair",
        commands: &["watch", "multi", "exec", "sadd", "srem", "hmget"],
    },
    AclRow {
        tool: "rj-last",
        with: "",
        commands: &[
            "ping", "sscan", "scan", "type", "get", "hgetall", "lrange", "smembers", "zrange",
            "xrange",
        ],
    },
    AclRow {
        tool: "rj-cleanup",
        with: "",
        commands: &["ping", "unlink"],
    },
    AclRow {
        tool: "rj-cleanup",
        with: "--keys",
        commands: &["sscan", "scan"],
    },
    AclRow {
        tool: "rj-cleanup",
        with: "--records",
        commands: &["scan", "exists"],
    },
    AclRow {
        tool: "rj-track",
        with: "",
        commands: &[
            "ping",
            "eval",
            "get",
            "set",
            "pexpire",
            "smembers",
            "smove",
            "hset",
            "type",
            "hkeys",
            "hdel",
            "hsetnx",
            "hget",
            "sismember",
            "hmget",
            "del",
            "xadd",
        ],
    },
    AclRow {
        tool: "rj-track",
        with: "a spool to replay",
        commands: &["smismember", "sadd"],
    },
    AclRow {
        tool: "rj-track",
        with: "rj-put results to replay",
        commands: &["watch", "exists", "type", "multi", "exec", "rpush"],
    },
    AclRow {
        tool: "rj-track",
        with: "--record-ttl",
        commands: &["expire"],
    },
    AclRow {
        tool: "rj-track",
        with: "--all-tags",
        commands: &["scan"],
    },
    AclRow {
        tool: "rj-track",
        with: "\"min_replicas_acked\"",
        commands: &["wait"],
    },
    AclRow {
        tool: "rj-put",
        with: "",
        commands: &["ping", "set", "hset", "rpush"],
    },
    AclRow {
        tool: "rj-put",
        with: "results to replay",
        commands: &["watch", "exists", "type", "multi", "exec"],
    },
    AclRow {
        tool: "rj-wait",
        with: "",
        commands: &[
            "ping",
            "multi",
            "smismember",
            "xrevrange",
            "get",
            "exec",
            "hmget",
            "xread",
            "xinfo",
        ],
    },
    AclRow {
        tool: "rj-wait",
        with: "no ID",
        commands: &["scard", "smembers"],
    },
];

/// The longest ACL line: indented by a man page (14 columns; `--help` gives 6), still one line
/// of an 80-column terminal, so that none is wrapped and each can be pasted as it is.
pub const ACL_LINE_MAX: usize = 66;

impl AclRow {
    /// The lines that create the tool's user (or, for an option, add to it): ACL SETUSER only
    /// adds to an existing user, so a long list is cut into several lines of [`ACL_LINE_MAX`].
    pub fn setuser(&self) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        if self.with.is_empty() {
            words.extend(
                // `reset` first: an existing user of that name keeps no old password, key
                // pattern or command (it implies -@all).
                ["reset", "on", ">PASSWORD", "~TAG*", "resetchannels"].map(String::from),
            );
        }
        words.extend(self.commands.iter().map(|c| format!("+{c}")));
        let head = format!("ACL SETUSER {}", self.tool);
        let mut lines = vec![head.clone()];
        for w in words {
            let last = lines.last_mut().expect("one line at least");
            if last.len() > head.len() && last.len() + 1 + w.len() > ACL_LINE_MAX {
                lines.push(format!("{head} {w}"));
            } else {
                last.push(' ');
                last.push_str(&w);
            }
        }
        lines
    }

    /// What the line is for: `rj-status`, `rj-status --long`, `rj-track with a spool to replay`.
    pub fn label(&self) -> String {
        match self.with {
            "" => self.tool.to_string(),
            w if w.starts_with('-') => format!("{} {w}", self.tool),
            w => format!("{} with {w}", self.tool),
        }
    }
}

/// What the ACL lines need said around them, for `--help`, the man pages and the README.
pub const ACL_NOTES: &[&str] = &[
    "One user per tool, made by its lines; an option's lines add to its tool's user. Choose \
     the password; ~TAG* covers every key of tag TAG (TAG_ALL and the other sets, TAG_JOB:<id>, \
     TAG_TRACKER, TAG-<id>:*) and those of the tags that begin with TAG.",
    "rj-track records the jobs rj-launch spooled while Redis could not be written: wherever \
     rj-launch runs, give rj-track the spool line too.",
    "rj-track --all-tags reads every tag's keys: give its user ~* (or one ~TAG* per tag).",
    "+eval is optional for rj-launch: with it each 1,000 jobs are recorded by one Lua script, \
     which runs rj-launch's own commands and costs the server less; refused, rj-launch records \
     with MULTI/EXEC, as its lines above allow. rj-track, which has +eval, replays a spool with \
     the script.",
    "+info is optional: with it rj tells a Sentinel or Cluster node at connect and warns about a \
     server that evicts keys; refused, these checks are skipped.",
    "+role is optional: with \"sentinels\" rj checks that the master a sentinel names is still \
     one (not a replica in mid-failover); refused, its first write gets READONLY instead.",
    "+select is needed when redis.json sets a \"db\" other than 0.",
    "The jobs rj-launch submits write TAG-<id>:* keys with commands of their own (SET, HSET or \
     others): give them a user of their own, or add those commands to rj-launch's user.",
];

/// The "Redis permissions" text of every `--help`.
pub fn acl_text() -> String {
    let mut s = String::from("Redis permissions (least privilege):\n");
    for row in ACL {
        s.push_str(&format!("  {}:\n", row.label()));
        for line in row.setuser() {
            s.push_str(&format!("      {line}\n"));
        }
    }
    for note in ACL_NOTES {
        s.push_str(&format!("  {note}\n"));
    }
    s
}

/// The text after the options in `--help`: environment, files, exit status, Redis
/// permissions, examples.
pub fn footer(examples: &str) -> String {
    let mut s = String::from("Environment:\n");
    for (k, v) in ENVIRONMENT {
        s.push_str(&format!("  {k:<16} {v}\n"));
    }
    s.push_str("\nFiles:\n");
    for (k, v) in FILES {
        s.push_str(&format!("  {k}\n      {v}\n"));
    }
    s.push('\n');
    s.push_str(&exit_status_text());
    s.push('\n');
    s.push_str(&acl_text());
    s.push_str("\nExamples:\n");
    s.push_str(examples);
    s
}
