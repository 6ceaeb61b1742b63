//! Calls to Slurm's commands. Running them is here; parsing their output is pure and unit-tested.
use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::exit::{fail, Kind};
use crate::keys::{split_cluster, JobId};
use crate::process::truncate;

/// Find a Slurm command on PATH, or fail with 69 naming it.
pub fn find(cmd: &str) -> anyhow::Result<std::path::PathBuf> {
    crate::process::find(cmd, "is Slurm installed and loaded (module load slurm)?")
}

/// A command line for messages: the program and its arguments, shell-quoted where needed.
pub fn display_cmd<S: AsRef<OsStr>>(prog: &str, args: &[S]) -> String {
    let mut s = prog.to_string();
    for a in args {
        let a = a.as_ref().to_string_lossy();
        s.push(' ');
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:@%+".contains(c))
        {
            s.push_str(&a);
        } else {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        }
    }
    s
}

/// Run `sbatch --parsable ARGS` with extra environment (`env` set, `unset` removed); stdout is
/// captured, stderr goes to the user's terminal (sbatch's own messages). stdin is inherited
/// (`rj-launch -- <<EOF` works), or is `stdin` when rj-launch has read the script itself.
pub fn sbatch(
    args: &[String],
    env: &[(&str, String)],
    unset: &[&str],
    stdin: Option<Vec<u8>>,
) -> anyhow::Result<Output> {
    let prog = find("sbatch")?;
    let mut cmd = Command::new(&prog);
    cmd.arg("--parsable")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let shown = display_cmd("sbatch --parsable", args);
    let cannot = |e: std::io::Error| fail(Kind::Unavailable, format!("cannot run {shown}: {e}"));
    let mut child = cmd.spawn().map_err(cannot)?;
    if let (Some(body), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // From a thread: sbatch may write to stdout before it has read all of stdin.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&body);
        });
    }
    let out = child.wait_with_output().map_err(cannot)?;
    // `sbatch --wait` prints the ID at submission, then exits with the job's own status: a
    // job ID on stdout means Slurm accepted the job, whatever the status says.
    if !out.status.success() && parse_sbatch_output(&String::from_utf8_lossy(&out.stdout)).is_ok() {
        return Ok(out);
    }
    if !out.status.success() {
        let how = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(fail(
            Kind::Unavailable,
            format!("{shown} failed ({how}); nothing was recorded"),
        ));
    }
    Ok(out)
}

/// A submitted job as `sbatch --parsable` reports it: `123` or `123;cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Canonical ([`JobId::canonical`]): `00012` is stored as `12`.
    pub id: String,
    pub cluster: Option<String>,
}

/// Parse one job reference (`123`, `123_4`, `123;cluster`) without allocating: the ID and the
/// cluster, if any. For inputs of millions of IDs (`rj-launch --record -`).
pub fn parse_job_word(s: &str) -> Result<(JobId, Option<&str>), String> {
    let (id, cluster) = split_cluster(s.trim());
    Ok((id.parse::<JobId>()?, cluster))
}

/// Parse one job reference (`123`, `123_4`, `123;cluster`); the ID comes back canonical.
pub fn parse_job_ref(s: &str) -> Result<Submitted, String> {
    let (id, cluster) = parse_job_word(s)?;
    Ok(Submitted {
        id: id.to_string(),
        cluster: cluster.map(str::to_string),
    })
}

/// What `sbatch --parsable` printed on stdout: the job, and the lines around it that are not a
/// job ID (a site's sbatch wrapper or job_submit plugin may print warnings there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbatchOutput {
    pub job: Submitted,
    pub other: Vec<String>,
}

/// Is this line what `--parsable` prints for a job: `123` or `123;cluster` (never a task, never
/// 0, no spaces)?
fn sbatch_id_line(line: &str) -> Option<Submitted> {
    let (id, cluster) = split_cluster(line);
    if !id.bytes().all(|b| b.is_ascii_digit())
        || cluster.is_some_and(|c| c.contains(char::is_whitespace))
    {
        return None;
    }
    parse_job_ref(line).ok()
}

/// Parse the stdout of `sbatch --parsable`: the one line that is a job ID, wherever it is among
/// the others. No such line, or two lines with different IDs, is an error that quotes the whole
/// output (as one line, shortened): rj-launch does not guess which number is the job.
pub fn parse_sbatch_output(stdout: &str) -> Result<SbatchOutput, String> {
    let mut job: Option<Submitted> = None;
    let mut other = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match (sbatch_id_line(line), &job) {
            (Some(j), Some(first)) if j.id != first.id => {
                return Err(format!(
                    "sbatch printed two job IDs, {} and {}, in {}; rj-launch does not guess which one is the job",
                    first.id,
                    j.id,
                    quoted_output(stdout)
                ))
            }
            (Some(j), None) => job = Some(j),
            (Some(_), Some(_)) => {}
            (None, _) => other.push(line.to_string()),
        }
    }
    match job {
        Some(job) => Ok(SbatchOutput { job, other }),
        None if other.is_empty() => Err("sbatch printed no job ID (its stdout was empty)".into()),
        None => Err(format!(
            "cannot find a job ID in sbatch output {}",
            quoted_output(stdout)
        )),
    }
}

/// A program's whole output for a one-line message: trimmed, lines joined by `\n`, at most 300
/// characters.
fn quoted_output(s: &str) -> String {
    let s = s.trim();
    let short = truncate(s, 300);
    if short.len() < s.len() {
        format!("{:?}…", short)
    } else {
        format!("{short:?}")
    }
}

// ---------------------------------------------------------------- queries (rj-track)

/// How long one squeue/sacct/scontrol may take before it is killed. squeue needs 9–18 s to
/// give up on a stopped slurmctld; this leaves room for a slow controller without hanging a tick.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest comma-joined `-j` list passed as one argument: Linux refuses any single argument
/// over 128 KiB (MAX_ARG_STRLEN), whatever ARG_MAX says.
pub const MAX_ID_ARG: usize = 100_000;

/// The `squeue -O` fields rj-track reads, `|`-terminated; the name is last because it may hold `|`.
pub const SQUEUE_FORMAT: &str = "JobArrayID:|,ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:|,\
StartTime:|,EndTime:|,TimeUsed:|,NodeList:|,Partition:|,RestartCnt:|,Name:|";

/// The `sacct -o` fields rj-track reads (with `--parsable2`); the name is last.
pub const SACCT_FORMAT: &str = "JobID,State,ExitCode,Start,End,Elapsed,NodeList,Partition,JobName";

/// One job (or array task, or a range of pending tasks) as Slurm reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRow {
    /// As Slurm prints it: `12`, `14_1`, `14_[2-3]`.
    pub id: String,
    /// The job ID of a plain job, the array job ID of a task.
    pub base: String,
    /// The task part of an array task: `1`, or a range `2-3,5`; None for a plain job.
    pub tasks: Option<String>,
    /// As Slurm prints it: `COMPLETED`, `CANCELLED by 0`.
    pub state: String,
    /// `exit:signal`, as sacct prints it (`3:0`, `0:9`).
    pub exit_code: String,
    pub start: String,
    pub end: String,
    pub elapsed: String,
    pub nodes: String,
    pub partition: String,
    pub name: String,
    /// How often Slurm requeued the job (squeue's RestartCnt, scontrol's Restarts); empty where
    /// the query does not say (sacct has no such field).
    pub restarts: String,
}

impl JobRow {
    /// Does this row report on the tracked ID `id` (the job, its array parent, or one of its tasks)?
    pub fn covers(&self, id: &str) -> bool {
        if self.id == id || self.base == id {
            return true;
        }
        match (id.split_once('_'), &self.tasks) {
            (Some((base, task)), Some(range)) if base == self.base => {
                task.parse::<u64>().is_ok_and(|t| {
                    task_range(range)
                        .iter()
                        .any(|(a, b)| (*a..=*b).contains(&t))
                })
            }
            _ => false,
        }
    }

    /// How many tasks this row stands for (a pending range `[2-5]` is four).
    pub fn task_count(&self) -> u64 {
        match &self.tasks {
            None => 1,
            // Saturating: the bounds are whatever Slurm printed, up to u64::MAX.
            Some(r) => task_range(r)
                .iter()
                .map(|(a, b)| b.saturating_sub(*a).saturating_add(1))
                .fold(0u64, u64::saturating_add)
                .max(1),
        }
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_string();
        match id.split_once('_') {
            Some((base, t)) => {
                self.base = base.to_string();
                self.tasks = Some(t.trim_start_matches('[').trim_end_matches(']').to_string());
            }
            None => {
                // A heterogeneous job component `9+1` belongs to job 9.
                self.base = id.split('+').next().unwrap_or(id).to_string();
                self.tasks = None;
            }
        }
    }
}

/// `1-3,5,7-11:2%4` → [(1,3),(5,5),(7,11)] (steps and throttles are ignored: the bounds are
/// what matters for "is task N in it", and counts of pending ranges are only informative).
fn task_range(spec: &str) -> Vec<(u64, u64)> {
    spec.trim_start_matches('[')
        .trim_end_matches(']')
        .split('%')
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|part| {
            let part = part.split(':').next()?;
            match part.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => part.parse().ok().map(|n| (n, n)),
            }
        })
        .collect()
}

/// squeue's `exit_code` is the raw wait status (768 for exit 3, 9 for SIGKILL); sacct and
/// scontrol print `exit:signal`. Normalise to the latter.
pub fn wait_status_to_exit_code(s: &str) -> String {
    let s = s.trim();
    if s.contains(':') {
        return s.to_string();
    }
    match s.parse::<u32>() {
        Ok(w) => format!("{}:{}", (w >> 8) & 0xff, w & 0x7f),
        Err(_) => s.to_string(),
    }
}

/// `N/A`, `Unknown`, `None`, `(null)` mean "no value"; so does sacct's `None assigned` (the
/// node list of a job cancelled before it ran).
fn value(s: &str) -> String {
    match s.trim() {
        "N/A" | "Unknown" | "None" | "NONE" | "(null)" | "None assigned" => String::new(),
        v => v.to_string(),
    }
}

/// The ID and state fields every squeue line of rj starts with: JobArrayID, ArrayJobID,
/// ArrayTaskID, State.
fn squeue_row(f: &[&str], line: &str) -> Result<JobRow, String> {
    let mut r = JobRow::default();
    let array_job = f[1].trim();
    let task = f[2].trim();
    if !task.is_empty() && task != "N/A" {
        r.id = f[0].trim().to_string();
        r.base = array_job.to_string();
        r.tasks = Some(
            task.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        );
    } else {
        r.set_id(f[0].trim());
    }
    if r.base.is_empty() || !r.base.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("unexpected job ID in squeue line {line:?}"));
    }
    r.state = f[3].trim().to_string();
    if r.state.is_empty() {
        return Err(format!("no state in squeue line {line:?}"));
    }
    Ok(r)
}

/// Parse `squeue --only-job-state -h -O SQUEUE_STATE_FORMAT` output: IDs and states only.
pub fn parse_squeue_states(stdout: &str) -> Result<Vec<JobRow>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 5 || !f[4].trim().is_empty() {
            return Err(format!(
                "unexpected squeue line {line:?} (expected 4 |-terminated fields)"
            ));
        }
        rows.push(squeue_row(&f, line)?);
    }
    Ok(rows)
}

/// Parse `squeue -h -O SQUEUE_FORMAT` output.
pub fn parse_squeue(stdout: &str) -> Result<Vec<JobRow>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(12, '|').collect();
        if f.len() != 12 {
            return Err(format!(
                "unexpected squeue line {line:?} (expected 12 |-separated fields)"
            ));
        }
        let mut r = squeue_row(&f, line)?;
        r.exit_code = wait_status_to_exit_code(f[4]);
        r.start = value(f[5]);
        r.end = value(f[6]);
        r.elapsed = value(f[7]);
        r.nodes = value(f[8]);
        r.partition = value(f[9]);
        r.restarts = value(f[10]);
        r.name = f[11]
            .strip_suffix('|')
            .unwrap_or(f[11])
            .trim_end()
            .to_string();
        rows.push(r);
    }
    Ok(rows)
}

/// Parse `sacct -n -X --parsable2 -o SACCT_FORMAT` output.
pub fn parse_sacct(stdout: &str) -> Result<Vec<JobRow>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(9, '|').collect();
        if f.len() != 9 {
            return Err(format!(
                "unexpected sacct line {line:?} (expected 9 |-separated fields)"
            ));
        }
        let mut r = JobRow::default();
        r.set_id(f[0].trim());
        if r.base.is_empty() || !r.base.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("unexpected job ID in sacct line {line:?}"));
        }
        r.state = f[1].trim().to_string();
        r.exit_code = f[2].trim().to_string();
        r.start = value(f[3]);
        r.end = value(f[4]);
        r.elapsed = value(f[5]);
        r.nodes = value(f[6]);
        r.partition = value(f[7]);
        r.name = f[8].to_string();
        rows.push(r);
    }
    Ok(rows)
}

/// Split one `scontrol show job -o` line into `Key=value` pairs. Values may hold spaces (a job
/// name, a command path): a word that does not start a new `Key=` continues the previous value.
fn scontrol_fields(line: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let key = word.split_once('=').map(|(k, _)| k).filter(|k| {
            !k.is_empty()
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":/_".contains(c))
        });
        match (key, out.last_mut()) {
            (Some(k), _) => out.push((k, word[k.len() + 1..].to_string())),
            (None, Some((_, v))) => {
                v.push(' ');
                v.push_str(word);
            }
            (None, None) => {}
        }
    }
    out
}

/// Parse `scontrol show job -o` output: one line per job, array task or pending task range.
pub fn parse_scontrol(stdout: &str) -> Result<Vec<JobRow>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        if line.trim() == "No jobs in the system" {
            continue;
        }
        let f = scontrol_fields(line.trim());
        let get = |k: &str| {
            f.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let job = get("JobId");
        if job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "no JobId in scontrol line {:?}",
                truncate(line, 120)
            ));
        }
        let mut r = JobRow::default();
        match (get("ArrayJobId"), get("ArrayTaskId")) {
            (a, t) if !a.is_empty() && !t.is_empty() => {
                if !a.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "unexpected ArrayJobId in scontrol line {:?}",
                        truncate(line, 120)
                    ));
                }
                let single = t.bytes().all(|b| b.is_ascii_digit());
                r.id = if single {
                    format!("{a}_{t}")
                } else {
                    format!("{a}_[{t}]")
                };
                r.base = a.to_string();
                r.tasks = Some(t.to_string());
            }
            _ => r.set_id(job),
        }
        r.state = get("JobState").to_string();
        if r.state.is_empty() {
            return Err(format!(
                "no JobState in scontrol line {:?}",
                truncate(line, 120)
            ));
        }
        r.exit_code = get("ExitCode").to_string();
        r.start = value(get("StartTime"));
        r.end = value(get("EndTime"));
        r.elapsed = value(get("RunTime"));
        r.nodes = value(get("NodeList"));
        r.partition = value(get("Partition"));
        r.name = get("JobName").to_string();
        r.restarts = value(get("Restarts"));
        rows.push(r);
    }
    Ok(rows)
}

/// What a failed Slurm client said, as far as the tracker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFailure {
    /// `Invalid job id specified`: none of the asked IDs is known (not an error for a tracker).
    NoSuchJobs,
    /// slurmctld (or slurmdbd) cannot be reached.
    Unreachable,
    /// `Slurm accounting storage is disabled`: sacct has nothing to say here.
    AccountingDisabled,
    /// The command answered, but not in the form rj reads.
    BadOutput,
    Other,
}

/// Classify the stderr of a failed squeue/sacct/scontrol.
pub fn classify_failure(stderr: &str) -> QueryFailure {
    if stderr.contains("accounting storage is disabled") {
        QueryFailure::AccountingDisabled
    } else if stderr.contains("Invalid job id specified") {
        QueryFailure::NoSuchJobs
    } else if stderr.contains("Unable to contact slurm controller")
        || stderr.contains("Socket timed out")
        || stderr.contains("Connection refused")
        || stderr.contains("Zero Bytes were transmitted")
        || stderr.contains("slurmdbd")
    {
        QueryFailure::Unreachable
    } else {
        QueryFailure::Other
    }
}

/// The result of one Slurm client run.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The command line, for messages.
    pub shown: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The first line of stderr (or the exit status), for a one-line message.
    pub fn why(&self) -> String {
        let first = self
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string);
        match (first, self.code) {
            (Some(l), _) => l,
            (None, Some(c)) => format!("exit status {c}"),
            (None, None) => "killed by a signal".into(),
        }
    }
}

/// Prefixes of the variables through which squeue, sacct and scontrol take options from the
/// environment (`SQUEUE_FORMAT`, `SQUEUE_STATES`, `SACCT_FORMAT`, `SCONTROL_FUTURE`, …): a
/// user's setting would change the fields, rows or order of a query (ARCHITECTURE.md §7).
pub const QUERY_ENV_PREFIXES: [&str; 3] = ["SQUEUE_", "SACCT_", "SCONTROL_"];

/// Other variables the query clients read that change what they print or which cluster they
/// ask: removed. `SLURM_CLUSTERS` would send every query to another cluster; a job's cluster is
/// passed as `-M` where rj knows it. `SLURM_DEBUG_FLAGS` adds debug lines to stderr.
pub const QUERY_ENV_REMOVED: [&str; 4] = [
    "SLURM_CLUSTERS",
    "SLURM_DEBUG_FLAGS",
    "SLURM_TOPO_LEN",
    "SLURM_CONF_OUT",
];

/// Variables pinned for the queries: times as `2026-01-01T00:00:00` whatever the user's
/// `SLURM_TIME_FORMAT` (`relative`, a strftime format) says, and array task expressions printed
/// whole (`0` = no limit; the default cuts `1,3,5,…` at 64 bytes, which would hide tasks).
pub const QUERY_ENV_PINNED: [(&str, &str); 2] =
    [("SLURM_TIME_FORMAT", "standard"), ("SLURM_BITSTR_LEN", "0")];

/// What a query must not inherit from `vars` (the caller's environment): the names to remove.
/// `SLURM_CONF` and everything else (PATH, munge's socket, a site's module settings) stays, and
/// so do `SBATCH_*`: sbatch is not a query, and rj-launch keeps the user's settings for it.
pub fn query_env_removed<K: AsRef<OsStr>>(vars: impl IntoIterator<Item = K>) -> Vec<String> {
    let mut out: Vec<String> = vars
        .into_iter()
        .filter_map(|k| k.as_ref().to_str().map(str::to_string))
        .filter(|k| {
            QUERY_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
                || QUERY_ENV_REMOVED.contains(&k.as_str())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The one place a Slurm query's command is built: `prog` with the caller's environment less
/// what [`query_env_removed`] names, plus [`QUERY_ENV_PINNED`]. Every squeue/sacct/scontrol rj
/// runs goes through here, so the user's environment cannot change what rj reads.
pub fn query_command(prog: &std::path::Path) -> Command {
    query_command_from(prog, std::env::vars_os().map(|(k, _)| k))
}

/// [`query_command`] for a given list of the caller's variable names (unit-testable).
pub fn query_command_from<K: AsRef<OsStr>>(
    prog: &std::path::Path,
    vars: impl IntoIterator<Item = K>,
) -> Command {
    let mut cmd = Command::new(prog);
    for k in query_env_removed(vars) {
        cmd.env_remove(k);
    }
    for (k, v) in QUERY_ENV_PINNED {
        cmd.env(k, v);
    }
    cmd
}

/// Slurm commands this process has spawned (rj-track reports it under -v).
pub static SPAWNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run a Slurm client with captured output, in its own process group (a Ctrl-C meant for
/// rj-track must not kill the query it is finishing), killed after `timeout`.
pub fn run_query(prog: &str, args: &[String], timeout: Duration) -> anyhow::Result<Ran> {
    SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    run_uncounted(prog, args, timeout)
}

/// [`run_query`] for a command that never reaches the controller (`squeue --version`), so it
/// is not counted among the Slurm commands a tick costs the controller.
fn run_uncounted(prog: &str, args: &[String], timeout: Duration) -> anyhow::Result<Ran> {
    use std::os::unix::process::CommandExt;
    let path = find(prog)?;
    let shown = display_cmd(prog, &abbreviate(args));
    let mut cmd = query_command(&path);
    cmd.args(args).process_group(0);
    let done = crate::process::run(&mut cmd, timeout)
        .map_err(|e| fail(Kind::Unavailable, format!("cannot run {shown}: {e}")))?;
    let status = done.status;
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    let mut stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    if status.is_none() {
        stderr.push_str(&format!(
            "\nkilled after {}s without an answer",
            timeout.as_secs()
        ));
    }
    Ok(Ran {
        shown,
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    })
}

/// Long `-j` lists are shortened in messages.
fn abbreviate(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| {
            if a.len() > 80 {
                let head: String = a.chars().take(60).collect();
                format!("{head}…({} IDs)", a.split(',').count())
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Split IDs into comma-joined `-j` arguments no longer than `max` bytes each.
pub fn id_chunks(ids: &[String], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        if !cur.is_empty() && cur.len() + 1 + id.len() > max {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(id);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Why a query gave no answer: the failure kind and a one-line message naming the command.
#[derive(Debug, Clone)]
pub struct QueryError {
    pub kind: QueryFailure,
    pub msg: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for QueryError {}

fn query_error(ran: &Ran, kind: QueryFailure) -> QueryError {
    QueryError {
        kind,
        msg: format!("{} failed: {}", ran.shown, ran.why()),
    }
}

/// `-M CLUSTER` first, for a job of another cluster than the default (`sbatch -M`); nothing for
/// the default one.
fn on_cluster(cluster: Option<&str>, args: &[&str]) -> Vec<String> {
    let m = cluster.map(|c| ["-M", c]);
    m.iter()
        .flatten()
        .chain(args)
        .map(|s| s.to_string())
        .collect()
}

/// `squeue [-M C] -h -t all -r -j IDS -O …`: every listed job, array task and recently finished
/// job (until MinJobAge) the controller knows. One call per [`MAX_ID_ARG`] bytes of IDs.
///
/// Where squeue has `--only-job-state` ([`only_job_state`]), the IDs are first asked with it:
/// that answer comes from the controller's job-state cache and holds only IDs and states, which
/// is all a job still pending or running needs. The jobs it shows finished are then asked again
/// with the full fields, so a tick runs one squeue more when something finished, never one per
/// job. A job the second call no longer lists is left out, as squeue leaves out any job it no
/// longer knows: the tracker then asks accounting (ARCHITECTURE.md §7).
pub fn squeue(cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
    if !only_job_state() {
        return squeue_with(cluster, ids, &[], SQUEUE_FORMAT, parse_squeue);
    }
    let states = match squeue_with(
        cluster,
        &state_query_ids(ids),
        &["--only-job-state"],
        SQUEUE_STATE_FORMAT,
        parse_squeue_states,
    ) {
        Ok(rows) => rows,
        // With slurmctld down the state RPC says only `Unable to query jobs state: Unspecified
        // error`; the full query then says what is wrong in the words rj-track knows
        // (`Unable to contact slurm controller`), or answers.
        Err(e) if e.kind == QueryFailure::Other => {
            return squeue_with(cluster, ids, &[], SQUEUE_FORMAT, parse_squeue)
        }
        Err(e) => return Err(e),
    };
    let (mut rows, finished): (Vec<JobRow>, Vec<JobRow>) = asked_rows(states, ids)
        .into_iter()
        .partition(|r| crate::state::classify(&r.state) == crate::state::Verdict::Active);
    if !finished.is_empty() {
        let again: Vec<String> = finished.into_iter().map(|r| r.id).collect();
        rows.extend(squeue_with(
            cluster,
            &again,
            &[],
            SQUEUE_FORMAT,
            parse_squeue,
        )?);
    }
    Ok(rows)
}

/// The IDs to give `squeue --only-job-state`: each array by its job ID, once. Slurm 24.11.5
/// answers `-r -j 7_1,7_2,…` with every asked task once per asked task of the array (k² lines
/// for k tasks: a million for a thousand), so tasks are asked through their array, whose
/// answer is one line per task.
pub fn state_query_ids(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .map(|id| id.split('_').next().unwrap_or(id))
        .filter(|base| seen.insert(*base))
        .map(str::to_string)
        .collect()
}

/// The rows of an answer to [`state_query_ids`] that report on an asked ID (the job, or the
/// task itself when only a task was asked), each once.
pub fn asked_rows(rows: Vec<JobRow>, ids: &[String]) -> Vec<JobRow> {
    let asked: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut seen = std::collections::HashSet::new();
    rows.into_iter()
        .filter(|r| asked.contains(r.id.as_str()) || asked.contains(r.base.as_str()))
        .filter(|r| seen.insert(r.id.clone()))
        .collect()
}

/// The `squeue --only-job-state -O` fields: what that RPC keeps (job and array IDs, the state).
pub const SQUEUE_STATE_FORMAT: &str = "JobArrayID:|,ArrayJobID:|,ArrayTaskID:|,State:|";

/// The first Slurm release whose squeue has `--only-job-state`.
pub const ONLY_JOB_STATE_SINCE: (u32, u32, u32) = (23, 11, 5);

/// Does squeue here have `--only-job-state`? Asked once per process (`squeue --version`); a
/// version that cannot be read means no. `RJ_ONLY_JOB_STATE=0` keeps the full query (bench/track.sh
/// measures both).
pub fn only_job_state() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        if std::env::var_os("RJ_ONLY_JOB_STATE").is_some_and(|v| v == "0") {
            return false;
        }
        run_uncounted("squeue", &["--version".to_string()], QUERY_TIMEOUT)
            .ok()
            .filter(Ran::ok)
            .is_some_and(|ran| has_only_job_state(&ran.stdout))
    })
}

/// Is this `squeue --version` output (`slurm 23.11.5`, `slurm-wlm 24.11.5`) of a release with
/// `--only-job-state`?
pub fn has_only_job_state(version: &str) -> bool {
    slurm_version(version).is_some_and(|v| v >= ONLY_JOB_STATE_SINCE)
}

/// `slurm-wlm 22.05.8` → (22, 5, 8); a pre-release or package suffix (`24.11.0-0rc1`) ends the
/// number where it starts.
pub fn slurm_version(version: &str) -> Option<(u32, u32, u32)> {
    let word = version.split_whitespace().nth(1)?;
    let mut parts = word.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// One squeue per chunk of IDs, on `cluster`, with `extra` flags, `-O format`, its output read
/// by `parse`.
fn squeue_with(
    cluster: Option<&str>,
    ids: &[String],
    extra: &[&str],
    format: &str,
    parse: fn(&str) -> Result<Vec<JobRow>, String>,
) -> Result<Vec<JobRow>, QueryError> {
    let mut rows = Vec::new();
    for chunk in id_chunks(ids, MAX_ID_ARG) {
        let flags: Vec<&str> = extra
            .iter()
            .copied()
            .chain(["-h", "-t", "all", "-r", "-j", &chunk, "-O", format])
            .collect();
        let args = on_cluster(cluster, &flags);
        let ran = run_query("squeue", &args, QUERY_TIMEOUT).map_err(|e| QueryError {
            kind: QueryFailure::Unreachable,
            msg: format!("{e:#}"),
        })?;
        if !ran.ok() {
            match classify_failure(&ran.stderr) {
                QueryFailure::NoSuchJobs => continue,
                k => return Err(query_error(&ran, k)),
            }
        }
        rows.extend(parse(&ran.stdout).map_err(|e| QueryError {
            kind: QueryFailure::BadOutput,
            msg: format!("{}: {e}", ran.shown),
        })?);
    }
    Ok(rows)
}

/// `sacct -n -X -a --parsable2 -j IDS -o …`: final records from the accounting database.
/// `--allusers`: a tag's jobs may have been submitted by a colleague (a shared Redis, a group
/// account); without it sacct shows a non-root user only their own jobs, and the others would
/// look unknown and end as LOST. Where PrivateData hides them anyway, Slurm still decides.
pub fn sacct(cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
    let mut rows = Vec::new();
    for chunk in id_chunks(ids, MAX_ID_ARG) {
        let args = on_cluster(
            cluster,
            &[
                "-n",
                "-X",
                "--allusers",
                "--parsable2",
                "-j",
                &chunk,
                "-o",
                SACCT_FORMAT,
            ],
        );
        let ran = run_query("sacct", &args, QUERY_TIMEOUT).map_err(|e| QueryError {
            kind: QueryFailure::Unreachable,
            msg: format!("{e:#}"),
        })?;
        if !ran.ok() {
            return Err(query_error(&ran, classify_failure(&ran.stderr)));
        }
        rows.extend(parse_sacct(&ran.stdout).map_err(|e| QueryError {
            kind: QueryFailure::BadOutput,
            msg: format!("{}: {e}", ran.shown),
        })?);
    }
    Ok(rows)
}

/// `scontrol show job -o`: every job the controller holds, in one call (scontrol takes one ID
/// at a time, so asking for all is the batched form).
pub fn scontrol_all(cluster: Option<&str>) -> Result<Vec<JobRow>, QueryError> {
    let args = on_cluster(cluster, &["show", "job", "-o"]);
    let ran = run_query("scontrol", &args, QUERY_TIMEOUT).map_err(|e| QueryError {
        kind: QueryFailure::Unreachable,
        msg: format!("{e:#}"),
    })?;
    if !ran.ok() {
        return match classify_failure(&ran.stderr) {
            QueryFailure::NoSuchJobs => Ok(Vec::new()),
            k => Err(query_error(&ran, k)),
        };
    }
    parse_scontrol(&ran.stdout).map_err(|e| QueryError {
        kind: QueryFailure::BadOutput,
        msg: format!("{}: {e}", ran.shown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_parsable_forms() {
        assert_eq!(
            parse_sbatch_output("4238610\n").unwrap(),
            SbatchOutput {
                job: Submitted {
                    id: "4238610".into(),
                    cluster: None
                },
                other: vec![]
            }
        );
        assert_eq!(
            parse_sbatch_output("4238610;cluster1\n").unwrap().job,
            Submitted {
                id: "4238610".into(),
                cluster: Some("cluster1".into())
            }
        );
        // A site's job_submit plugin may print a line first.
        let out = parse_sbatch_output("note: using default account\n77\n").unwrap();
        assert_eq!(out.job.id, "77");
        assert_eq!(out.other, ["note: using default account"]);
        // A wrapper may print a warning after the ID, with blank lines and stray spaces.
        let out = parse_sbatch_output("  102 \n\nwarning: project quota at 91%\n").unwrap();
        assert_eq!(out.job.id, "102");
        assert_eq!(out.other, ["warning: project quota at 91%"]);
        // Said twice is still one job; leading zeros are not part of it.
        assert_eq!(parse_sbatch_output("0102\n102\n").unwrap().job.id, "102");
    }

    #[test]
    fn sbatch_garbage_is_rejected() {
        for bad in [
            "",
            "\n\n",
            "Submitted batch job 12",
            "sbatch: error: x",
            "12 13",
            "abc;c",
            "12_3",
            "0",
            "12;a b",
        ] {
            assert!(parse_sbatch_output(bad).is_err(), "{bad:?}");
        }
        let e = parse_sbatch_output("warning: a\nwarning: b\n").unwrap_err();
        assert_eq!(
            e,
            r#"cannot find a job ID in sbatch output "warning: a\nwarning: b""#
        );
        let e = parse_sbatch_output("102\nyou have 3 jobs queued\n3\n").unwrap_err();
        assert!(e.contains("two job IDs, 102 and 3"), "{e}");
        let long = format!("{}\n", "x".repeat(5000));
        let e = parse_sbatch_output(&long).unwrap_err();
        assert!(e.len() < 400 && e.ends_with('…'), "{e}");
    }

    #[test]
    fn job_refs_are_stored_canonical() {
        assert_eq!(parse_job_ref("00012").unwrap().id, "12");
        assert_eq!(parse_job_ref("7_03;c").unwrap().id, "7_3");
        assert_eq!(
            parse_job_ref("7_03;c").unwrap().cluster.as_deref(),
            Some("c")
        );
        assert!(parse_job_ref("0").is_err());
        let (id, c) = parse_job_word(" 12;x ").unwrap();
        assert_eq!((id.to_string(), c), ("12".to_string(), Some("x")));
    }

    #[test]
    fn display_quotes() {
        assert_eq!(
            display_cmd("sbatch", &["--wrap", "echo hi", "a'b"]),
            r"sbatch --wrap 'echo hi' 'a'\''b'"
        );
    }

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/slurm")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn find<'a>(rows: &'a [JobRow], id: &str) -> &'a JobRow {
        rows.iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no row {id}"))
    }

    #[test]
    fn squeue_finished_jobs_captured() {
        let rows = parse_squeue(&fixture("squeue-all-finished.txt")).unwrap();
        let failed = find(&rows, "1");
        assert_eq!(failed.state, "FAILED");
        assert_eq!(failed.exit_code, "3:0");
        assert_eq!(failed.nodes, "vm");
        assert_eq!(failed.partition, "debug");
        assert_eq!(failed.name, "wrap");
        assert_eq!(failed.start, "2026-11-21T23:57:56");
        assert_eq!(failed.elapsed, "0:01");
        assert_eq!(find(&rows, "8").state, "NODE_FAIL");
        assert_eq!(find(&rows, "8").exit_code, "0:15");
        let task = find(&rows, "3_2");
        assert_eq!(task.base, "3");
        assert_eq!(task.tasks.as_deref(), Some("2"));
        assert!(task.covers("3") && task.covers("3_2") && !task.covers("3_1"));
        assert!(!find(&rows, "2").covers("3"));
        // A job cancelled while pending never ran: no nodes.
        assert_eq!(find(&rows, "14_1").nodes, "");
    }

    /// Captured on scripts/slurm-clusters' cluster a: job 4 preempted in a CANCEL partition,
    /// job 2 requeued once from a REQUEUE partition and then completed.
    #[test]
    fn squeue_restart_count_captured() {
        let rows = parse_squeue(&fixture("squeue-preempted.txt")).unwrap();
        assert_eq!(find(&rows, "4").state, "PREEMPTED");
        assert_eq!(find(&rows, "4").restarts, "0");
        assert_eq!(find(&rows, "2").restarts, "1");
        assert_eq!(find(&rows, "2").name, "wrap");
    }

    #[test]
    fn squeue_live_array_and_pending_ranges() {
        let rows = parse_squeue(&fixture("squeue-live.txt")).unwrap();
        assert!(!rows.is_empty());
        for r in &rows {
            assert!(matches!(
                r.state.as_str(),
                "PENDING" | "RUNNING" | "COMPLETING" | "COMPLETED" | "FAILED"
            ));
        }
        let range = JobRow {
            id: "6_[2-3]".into(),
            base: "6".into(),
            tasks: Some("2-3".into()),
            ..JobRow::default()
        };
        assert!(range.covers("6") && range.covers("6_3") && !range.covers("6_4"));
        assert_eq!(range.task_count(), 2);
    }

    #[test]
    fn squeue_errors_captured() {
        assert!(parse_squeue(&fixture("squeue-invalid-one.out"))
            .unwrap()
            .is_empty());
        assert_eq!(
            classify_failure(&fixture("squeue-invalid-one.err")),
            QueryFailure::NoSuchJobs
        );
        assert_eq!(
            classify_failure(&fixture("squeue-ctld-down.err")),
            QueryFailure::Unreachable
        );
        assert_eq!(
            classify_failure(&fixture("sacct-disabled.err")),
            QueryFailure::AccountingDisabled
        );
        assert_eq!(
            classify_failure("squeue: error: something new"),
            QueryFailure::Other
        );
    }

    #[test]
    fn squeue_garbage_is_an_error() {
        for bad in ["hello", "1|2|3", "x|x|N/A|RUNNING|0|a|b|c|d|e|f|"] {
            assert!(parse_squeue(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sacct_odd_lines() {
        let rows = parse_sacct(
            "6_[2-3]|PENDING|0:0|Unknown|Unknown|00:00:00|None assigned|debug|a|b\n\
             9|CANCELLED by 0|0:0|2026-11-21T23:58:58|2026-11-21T23:58:59|00:00:01|vm|debug|x\n",
        )
        .unwrap();
        assert_eq!(rows[0].base, "6");
        assert_eq!(rows[0].tasks.as_deref(), Some("2-3"));
        assert_eq!(rows[0].name, "a|b");
        assert_eq!(rows[0].start, "");
        assert!(rows[0].covers("6_2"));
        assert_eq!(rows[1].state, "CANCELLED by 0");
        assert!(parse_sacct("1|COMPLETED\n").is_err());
    }

    /// Real `sacct` output with slurmdbd: exit 0, exit 3, cancelled while pending and while
    /// running (`CANCELLED by 0`), an array with a failing task, and a live array with a
    /// pending range.
    #[test]
    fn sacct_slurmdbd_captured() {
        let rows = parse_sacct(&fixture("sacct-slurmdbd.txt")).unwrap();
        assert_eq!(rows.len(), 12);
        let ok = find(&rows, "9");
        assert_eq!(ok.state, "COMPLETED");
        assert_eq!(ok.exit_code, "0:0");
        assert_eq!(ok.start, "2026-11-22T00:40:32");
        assert_eq!(ok.elapsed, "00:00:00");
        assert_eq!(ok.nodes, "vm");
        assert_eq!(ok.partition, "debug");
        assert_eq!(ok.name, "wrap");
        assert_eq!(find(&rows, "10").state, "FAILED");
        assert_eq!(find(&rows, "10").exit_code, "3:0");
        // Cancelled while pending: never started, no nodes.
        let pending = find(&rows, "11");
        assert_eq!(pending.state, "CANCELLED by 0");
        assert_eq!(pending.start, "");
        assert_eq!(pending.nodes, "");
        let running = find(&rows, "17");
        assert_eq!(running.state, "CANCELLED by 0");
        assert_eq!(running.nodes, "vm");
        assert_eq!(running.elapsed, "00:00:02");
        // The array: one row per task, all under the parent's ID.
        let tasks: Vec<&JobRow> = rows.iter().filter(|r| r.covers("12")).collect();
        assert_eq!(tasks.len(), 3);
        assert_eq!(find(&rows, "12_2").state, "FAILED");
        assert_eq!(find(&rows, "12_2").exit_code, "1:0");
        assert_eq!(find(&rows, "12_2").base, "12");

        let live = parse_sacct(&fixture("sacct-slurmdbd-live.txt")).unwrap();
        let range = find(&live, "25_[3-4]");
        assert_eq!(range.state, "PENDING");
        assert_eq!(range.task_count(), 2);
        assert_eq!(range.nodes, "");
        assert!(range.covers("25") && range.covers("25_4"));
        assert_eq!(find(&live, "25_1").end, "");
    }

    #[test]
    fn scontrol_all_jobs_captured() {
        let rows = parse_scontrol(&fixture("scontrol-all.txt")).unwrap();
        let failed = find(&rows, "1");
        assert_eq!(failed.state, "FAILED");
        assert_eq!(failed.exit_code, "3:0");
        assert_eq!(failed.elapsed, "00:00:01");
        assert_eq!(failed.nodes, "vm");
        assert_eq!(failed.name, "wrap");
        // The array task whose raw ID is the array's own ID.
        let t = find(&rows, "3_3");
        assert_eq!(t.base, "3");
        // A pending range cancelled before it was split.
        let r = find(&rows, "14_[1-3]");
        assert_eq!(r.task_count(), 3);
        assert!(r.covers("14") && r.covers("14_2"));
    }

    #[test]
    fn scontrol_values_with_spaces() {
        let rows = parse_scontrol(
            "JobId=5 JobName=my job x UserId=u(1) JobState=RUNNING Reason=None ExitCode=0:0 \
             RunTime=00:01:00 StartTime=2026-01-01T00:00:00 EndTime=Unknown Partition=p NodeList=n1\n\
             No jobs in the system\n",
        )
        .unwrap();
        assert_eq!(rows[0].name, "my job x");
        assert_eq!(rows[0].end, "");
        assert!(parse_scontrol("slurm_load_jobs error: Invalid job id specified").is_err());
    }

    #[test]
    fn chunks_respect_the_argument_limit() {
        let ids: Vec<String> = (0..30_000).map(|i| (1_000_000 + i).to_string()).collect();
        let chunks = id_chunks(&ids, MAX_ID_ARG);
        assert!(chunks.len() >= 2);
        assert!(chunks.iter().all(|c| c.len() <= MAX_ID_ARG));
        assert_eq!(
            chunks.iter().map(|c| c.split(',').count()).sum::<usize>(),
            30_000
        );
        assert_eq!(id_chunks(&ids[..3], MAX_ID_ARG).len(), 1);
        assert!(id_chunks(&[], MAX_ID_ARG).is_empty());
    }

    #[test]
    fn scontrol_array_job_id_must_be_a_job_id() {
        // Found by fuzz/fuzz_targets/scontrol.rs (a byte 0xb8 before the number).
        let line = "JobId=14 ArrayJobId=\u{b8}14 ArrayTaskId=1-3 JobName=wrap JobState=CANCELLED\n";
        let e = parse_scontrol(line).unwrap_err();
        assert!(e.contains("ArrayJobId"), "{e}");
        assert!(parse_scontrol("JobId=14 ArrayJobId=x ArrayTaskId=1 JobState=PENDING").is_err());
    }

    #[test]
    fn task_count_of_huge_ranges_saturates() {
        // Bounds up to u64::MAX are what a broken squeue could print; no overflow panic.
        let one = "5_[0-18446744073709551615]|5|0-18446744073709551615|PENDING|0|N/A|N/A|0:00||debug|0|wrap|\n";
        assert_eq!(parse_squeue(one).unwrap()[0].task_count(), u64::MAX);
        let two = "5_[1-18446744073709551615,1-18446744073709551615]|5|1-18446744073709551615,1-18446744073709551615|PENDING|0|N/A|N/A|0:00||debug|0|wrap|\n";
        assert_eq!(parse_squeue(two).unwrap()[0].task_count(), u64::MAX);
    }

    #[test]
    fn queries_drop_the_users_slurm_output_settings_and_keep_the_rest() {
        let user = [
            "SLURM_TIME_FORMAT",
            "SLURM_BITSTR_LEN",
            "SQUEUE_FORMAT",
            "SQUEUE_FORMAT2",
            "SQUEUE_SORT",
            "SQUEUE_STATES",
            "SQUEUE_ARRAY_UNIQUE",
            "SQUEUE_USERS",
            "SACCT_FORMAT",
            "SACCT_FEDERATION",
            "SCONTROL_FUTURE",
            "SLURM_CLUSTERS",
            "SLURM_DEBUG_FLAGS",
            "SLURM_CONF",
            "SBATCH_PARTITION",
            "SLURM_JOB_ID",
            "PATH",
            "HOME",
        ];
        let cmd = query_command_from(std::path::Path::new("squeue"), user);
        let envs: std::collections::BTreeMap<String, Option<String>> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        let removed: Vec<&str> = envs
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            removed,
            [
                "SACCT_FEDERATION",
                "SACCT_FORMAT",
                "SCONTROL_FUTURE",
                "SLURM_CLUSTERS",
                "SLURM_DEBUG_FLAGS",
                "SQUEUE_ARRAY_UNIQUE",
                "SQUEUE_FORMAT",
                "SQUEUE_FORMAT2",
                "SQUEUE_SORT",
                "SQUEUE_STATES",
                "SQUEUE_USERS",
            ]
        );
        assert_eq!(envs["SLURM_TIME_FORMAT"].as_deref(), Some("standard"));
        assert_eq!(envs["SLURM_BITSTR_LEN"].as_deref(), Some("0"));
        // SLURM_CONF, sbatch's settings and the rest are inherited untouched.
        for kept in [
            "SLURM_CONF",
            "SBATCH_PARTITION",
            "SLURM_JOB_ID",
            "PATH",
            "HOME",
        ] {
            assert!(!envs.contains_key(kept), "{kept}: {envs:?}");
        }
        // A name that is not UTF-8 is no Slurm variable: kept.
        use std::os::unix::ffi::OsStrExt;
        let odd = OsStr::from_bytes(b"SQUEUE_\xff");
        assert!(query_env_removed([odd]).is_empty());
    }

    /// The same cases on both testbeds: Slurm 22.05 (`squeue-all-finished.txt`, `scontrol-all.txt`,
    /// `sacct-slurmdbd.txt`) and Slurm 24.11 (`*-24.11-*`). 22.05's squeue prints the raw wait
    /// status (`768`, `9`, NODE_FAIL `15`), 24.11's prints `exit:signal`; both come out alike.
    /// Where the two versions' squeue and sacct disagree about a job it is Slurm's own view, kept
    /// as is: NODE_FAIL is `0:1` in 24.11's squeue and scontrol but `1:0` in its sacct, TIMEOUT and
    /// a cancelled running job `0:15` in squeue but `0:0` in sacct.
    #[test]
    fn squeue_of_both_versions_reads_alike() {
        let old = parse_squeue(&fixture("squeue-all-finished.txt")).unwrap();
        let new = parse_squeue(&fixture("squeue-24.11-all-finished.txt")).unwrap();
        let by_state = |rows: &[JobRow], state: &str, exit: &str| {
            rows.iter()
                .any(|r| r.state == state && r.exit_code == exit && r.nodes == "vm")
        };
        for rows in [&old, &new] {
            // Every field in its place: the name last, after RestartCnt.
            assert!(rows.iter().all(|r| r.name == "wrap"), "{rows:?}");
            assert!(by_state(rows, "FAILED", "3:0"), "{rows:?}");
            assert!(by_state(rows, "COMPLETED", "0:0"), "{rows:?}");
            assert!(rows
                .iter()
                .all(|r| r.start.len() == 19 || r.start.is_empty()));
        }
        assert_eq!(find(&old, "8").exit_code, "0:15");
        let n = parse_squeue(&fixture("squeue-24.11-all-finished.txt")).unwrap();
        assert_eq!(find(&n, "61").state, "FAILED");
        assert_eq!(find(&n, "61").exit_code, "0:9");
        assert_eq!(find(&n, "66").state, "NODE_FAIL");
        assert_eq!(find(&n, "66").exit_code, "0:1");
        assert_eq!(find(&n, "65").state, "TIMEOUT");
        assert_eq!(find(&n, "65").exit_code, "0:15");
        assert_eq!(find(&n, "65").elapsed, "1:05");
        // Cancelled while held: never ran, no nodes.
        assert_eq!(find(&n, "62").state, "CANCELLED");
        assert_eq!(find(&n, "62").nodes, "");
        let t = find(&n, "64_2");
        assert_eq!((t.base.as_str(), t.tasks.as_deref()), ("64", Some("2")));
        assert_eq!(t.exit_code, "1:0");
        assert_eq!(n.iter().filter(|r| r.covers("64")).count(), 3);
    }

    #[test]
    fn scontrol_24_11_without_power_and_tres() {
        let text = fixture("scontrol-24.11-all.txt");
        assert!(!text.contains(" Power=") && text.contains(" AllocTRES="));
        let rows = parse_scontrol(&text).unwrap();
        assert_eq!(find(&rows, "60").exit_code, "3:0");
        assert_eq!(find(&rows, "61").exit_code, "0:9");
        let nf = find(&rows, "66");
        assert_eq!(
            (nf.state.as_str(), nf.exit_code.as_str()),
            ("NODE_FAIL", "0:1")
        );
        assert_eq!(nf.elapsed, "00:02:07");
        assert_eq!(find(&rows, "65").state, "TIMEOUT");
        // Cancelled while held: scontrol gives the cancel time as StartTime, and no nodes.
        assert_eq!(find(&rows, "62").nodes, "");
        assert_eq!(find(&rows, "64_2").state, "FAILED");
        assert!(rows
            .iter()
            .all(|r| r.name == "wrap" && r.partition == "debug"));
    }

    #[test]
    fn sacct_24_11_captured() {
        let rows = parse_sacct(&fixture("sacct-24.11-slurmdbd.txt")).unwrap();
        assert_eq!(rows.len(), 10);
        let nf = find(&rows, "66");
        assert_eq!(
            (nf.state.as_str(), nf.exit_code.as_str()),
            ("NODE_FAIL", "1:0")
        );
        assert_eq!(find(&rows, "65").exit_code, "0:0");
        assert_eq!(find(&rows, "62").state, "CANCELLED by 0");
        assert_eq!(find(&rows, "62").nodes, "");
        assert_eq!(find(&rows, "62").start, "");
        assert_eq!(find(&rows, "63").elapsed, "00:00:04");
        assert_eq!(find(&rows, "64_2").exit_code, "1:0");
    }

    #[test]
    fn only_job_state_asks_arrays_whole_and_keeps_what_was_asked() {
        let ids: Vec<String> = ["64_1", "64_2", "59", "73", "64_1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(state_query_ids(&ids), ["64", "59", "73"]);
        let rows = parse_squeue_states(&fixture("squeue-24.11-only-job-state.txt")).unwrap();
        let mut twice = rows.clone();
        twice.extend(rows);
        let kept: Vec<String> = asked_rows(twice, &ids).into_iter().map(|r| r.id).collect();
        assert_eq!(kept, ["64_1", "59", "64_2", "73_1", "73_2", "73_3"]);
    }

    #[test]
    fn only_job_state_from_slurm_23_11_5_on() {
        // What `squeue --version` prints on the two testbeds.
        assert!(!has_only_job_state("slurm-wlm 22.05.8\n"));
        assert!(has_only_job_state("slurm-wlm 24.11.5\n"));
        assert!(!has_only_job_state("slurm 23.11.4"));
        assert!(has_only_job_state("slurm 23.11.5"));
        assert!(has_only_job_state("slurm 25.05.0-0rc1"));
        assert!(has_only_job_state("slurm 24.05"));
        assert_eq!(slurm_version("slurm 22.05.8"), Some((22, 5, 8)));
        for odd in ["", "slurm", "squeue: error: x", "slurm x.y.z", "slurm 23"] {
            assert!(!has_only_job_state(odd), "{odd:?}");
        }
    }

    #[test]
    fn squeue_only_job_state_captured() {
        // Slurm 24.11: `squeue --only-job-state -h -t all -r -O SQUEUE_STATE_FORMAT`.
        let rows = parse_squeue_states(&fixture("squeue-24.11-only-job-state.txt")).unwrap();
        assert!(rows.len() >= 4, "{rows:?}");
        assert!(rows
            .iter()
            .all(|r| r.exit_code.is_empty() && r.start.is_empty()));
        let task = rows
            .iter()
            .find(|r| r.tasks.is_some())
            .expect("an array task");
        assert!(task.covers(&task.base.clone()));
        assert_eq!(find(&rows, "72").state, "RUNNING");
        assert_eq!(find(&rows, "66").state, "NODE_FAIL");
        assert_eq!(find(&rows, "73_2").state, "PENDING");
        // What goes on to the full query: the finished ones only.
        let finished: Vec<&str> = rows
            .iter()
            .filter(|r| crate::state::classify(&r.state) != crate::state::Verdict::Active)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(finished.len(), 9, "{finished:?}");
        assert!(!finished.contains(&"72") && !finished.contains(&"73_1"));
        // slurmctld down: not a failure rj-track knows, so squeue() asks again the full way.
        assert_eq!(
            classify_failure(&fixture("squeue-24.11-only-job-state-ctld-down.err")),
            QueryFailure::Other
        );
        for bad in ["1|1|N/A|", "1|1|N/A|RUNNING|0:0|", "x|x|N/A|RUNNING|"] {
            assert!(parse_squeue_states(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wait_status() {
        assert_eq!(wait_status_to_exit_code("0"), "0:0");
        assert_eq!(wait_status_to_exit_code("768"), "3:0");
        assert_eq!(wait_status_to_exit_code("9"), "0:9");
        assert_eq!(wait_status_to_exit_code("1:0"), "1:0");
    }
}
