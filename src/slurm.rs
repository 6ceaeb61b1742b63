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

/// The `squeue -O` fields rj-track reads, `|`-terminated; the name is last because it may hold
/// `|`. Reason (of a pending job), JobID (the raw job ID of an array task, for `%j`), UserName,
/// WorkDir, STDOUT and STDERR give the record's details (ARCHITECTURE.md §7).
pub const SQUEUE_FORMAT: &str = "JobArrayID:|,ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:|,\
StartTime:|,EndTime:|,TimeUsed:|,NodeList:|,Partition:|,RestartCnt:|,Reason:|,JobID:|,\
UserName:|,WorkDir:|,STDOUT:|,STDERR:|,Name:|";

/// The `sacct -o` fields rj-track reads (with `--parsable2 --noconvert`, steps included: a job's
/// MaxRSS is only on its steps' lines, and its TotalCPU only sums them when they are listed);
/// the name is last.
pub const SACCT_FORMAT: &str = "JobID,State,ExitCode,Start,End,Elapsed,NodeList,Partition,\
ElapsedRaw,AllocCPUS,TotalCPU,MaxRSS,JobName";

/// Pending reasons that Slurm never satisfies: the job will never start (its dependency failed,
/// and Slurm was told not to kill it, `--kill-on-invalid-dep=no` or the site's default).
pub const NEVER_REASONS: [&str; 1] = ["DependencyNeverSatisfied"];

/// Is this pending reason one that Slurm never satisfies ([`NEVER_REASONS`])?
pub fn never_satisfied(reason: &str) -> bool {
    NEVER_REASONS.contains(&reason)
}

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
    /// Always `code:signal` (`3:0`, `0:9`); empty when Slurm gave none rj can read.
    pub exit_code: String,
    pub start: String,
    pub end: String,
    /// Always `[D-]HH:MM:SS`, whichever command printed it.
    pub elapsed: String,
    pub nodes: String,
    pub partition: String,
    pub name: String,
    /// How often Slurm requeued the job (squeue's RestartCnt, scontrol's Restarts); empty where
    /// the query does not say (sacct has no such field).
    pub restarts: String,
    /// Why a pending job waits (squeue's and scontrol's Reason); empty for `None` and where the
    /// query does not say (`squeue --only-job-state`, sacct).
    pub reason: String,
    /// The output paths with their patterns expanded ([`expand_stdio`]); empty where the query
    /// does not say (sacct).
    pub stdout: String,
    pub stderr: String,
    /// Elapsed seconds (sacct's ElapsedRaw, else the elapsed time read).
    pub elapsed_secs: Option<u64>,
    /// sacct's AllocCPUS.
    pub alloc_cpus: Option<u64>,
    /// sacct's TotalCPU (user + system of all steps), in milliseconds; None when accounting
    /// gathered none (it then prints 0).
    pub total_cpu_ms: Option<u64>,
    /// The largest MaxRSS of the job's steps in sacct, in bytes; None when accounting has none.
    pub max_rss: Option<u64>,
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

    /// Is this row a job waiting to start ([`NEVER_REASONS`] included)?
    pub fn is_pending(&self) -> bool {
        self.state == "PENDING"
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

/// An exit code as `code:signal`, whichever command printed it: squeue 22.05's `exit_code` is
/// the raw wait status (768 for exit 3, 9 for SIGKILL), squeue 24.11, sacct and scontrol print
/// `code:signal`. Anything else is no exit code rj can read: empty.
pub fn wait_status_to_exit_code(s: &str) -> String {
    let s = s.trim();
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some((code, signal)) = s.split_once(':') {
        return if number(code) && number(signal) {
            s.to_string()
        } else {
            String::new()
        };
    }
    match s.parse::<u32>() {
        Ok(w) => format!("{}:{}", (w >> 8) & 0xff, w & 0x7f),
        Err(_) => String::new(),
    }
}

/// Seconds of a Slurm time: `S`, `M:S`, `H:M:S`, `D-H:M:S` (squeue's `0:05`, sacct's
/// `00:00:05`, `1-00:00:00`, TotalCPU's `00:01.611`); a fraction is cut off. None for anything
/// else (`INVALID`, `UNLIMITED`, empty).
pub fn clock_secs(s: &str) -> Option<u64> {
    clock_ms(s).map(|ms| ms / 1000)
}

/// [`clock_secs`] in milliseconds, keeping the fraction (`00:01.611` is 1611).
fn clock_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let (whole, frac) = match parts[parts.len() - 1].split_once('.') {
        Some((w, f)) => (w, f),
        None => (parts[parts.len() - 1], ""),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) {
        return None;
    }
    let mut secs: u64 = whole.parse().ok()?;
    let mut unit = 60;
    for p in parts[..parts.len() - 1].iter().rev() {
        if !digits(p) {
            return None;
        }
        secs = secs.checked_add(p.parse::<u64>().ok()?.checked_mul(unit)?)?;
        unit *= 60;
    }
    secs = secs.checked_add(days.checked_mul(86_400)?)?;
    let ms: u64 = format!("{frac:0<3}")[..3].parse().unwrap_or(0);
    secs.checked_mul(1000)?.checked_add(ms)
}

/// Seconds as `[D-]HH:MM:SS`, the one form of `elapsed` in every record (sacct's own).
pub fn hms(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let t = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if d > 0 {
        format!("{d}-{t}")
    } else {
        t
    }
}

/// An elapsed time in the one form ([`hms`]) and in seconds; empty (and None) when it cannot be
/// read.
fn elapsed(s: &str) -> (String, Option<u64>) {
    match clock_secs(&value(s)) {
        Some(n) => (hms(n), Some(n)),
        None => (String::new(), None),
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

/// What an output file name's patterns are expanded with: the job as Slurm reports it.
#[derive(Debug, Clone, Copy)]
pub struct StdioJob<'a> {
    /// The job's own ID (an array task's, once it has one: squeue's JobID).
    pub job_id: &'a str,
    /// The array job ID and task ID of an array task.
    pub array: Option<(&'a str, &'a str)>,
    pub user: &'a str,
    pub name: &'a str,
    pub work_dir: &'a str,
}

/// Slurm's NO_VAL, which `%a` of a job that is no array task becomes (and so the file slurmd
/// writes for it).
const NO_VAL: &str = "4294967294";

/// Expand the patterns of an output file name (`sbatch -o/-e`) as `scontrol show job` of Slurm
/// 24.11 prints them, which is also the file slurmd writes: `%%`, `%A`, `%a`, `%b` (task ID
/// modulo 10), `%j`, `%u`, `%x`, each with an optional width (`%3j` is `007`; more than one digit
/// is ten wide, as in Slurm); others (`%N`, `%n`, `%s`, `%t`) stay as they are. A relative path
/// is under the working directory. (22.05's scontrol leaves `%%` and widths unexpanded.)
pub fn expand_stdio(pattern: &str, job: &StdioJob) -> String {
    let b = pattern.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'%') {
            out.push_str(&pattern[copied..=i]);
            i += 2;
            copied = i;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let digits = &pattern[i + 1..j];
        let width = match digits.len() {
            0 => 0,
            1 => digits.parse().unwrap_or(0),
            _ => 10,
        };
        let Some(&c) = b.get(j) else { break };
        let task = job.array.map_or(NO_VAL, |(_, t)| t);
        let number = |n: &str| format!("{n:0>width$}");
        let text = match c {
            b'A' => Some(number(job.array.map_or(job.job_id, |(a, _)| a))),
            b'a' => Some(number(task)),
            b'b' => Some(number(
                &task
                    .parse::<u64>()
                    .map_or_else(|_| task.to_string(), |t| (t % 10).to_string()),
            )),
            b'j' => Some(number(job.job_id)),
            b'u' => Some(job.user.to_string()),
            b'x' => Some(job.name.to_string()),
            _ => None,
        };
        match text {
            Some(t) => {
                out.push_str(&pattern[copied..i]);
                out.push_str(&t);
                i = j + 1;
                copied = i;
            }
            None => i = j,
        }
    }
    out.push_str(&pattern[copied..]);
    if out.starts_with('/') || job.work_dir.is_empty() {
        out
    } else {
        format!("{}/{out}", job.work_dir.trim_end_matches('/'))
    }
}

/// The stdout and stderr paths of a job from squeue's STDOUT and STDERR (patterns), as
/// scontrol gives them: stderr goes where stdout goes unless told otherwise, and without
/// either Slurm writes `slurm-%j.out` (`slurm-%A_%a.out` for an array task) in the working
/// directory. squeue 22.05 prints that default itself, as `slurm-<job ID>.out` even for an array
/// task, which is not the file slurmd writes: taken for the default it is.
fn stdio_paths(stdout: &str, stderr: &str, job: &StdioJob) -> (String, String) {
    let dir = job.work_dir.trim_end_matches('/');
    let squeue_default = |p: &str| {
        job.array.is_some_and(|(array, _)| {
            [job.job_id, array]
                .iter()
                .any(|id| p == format!("{dir}/slurm-{id}.out"))
        })
    };
    let given = |p: &str| {
        let p = value(p);
        (!p.is_empty() && !squeue_default(&p)).then_some(p)
    };
    let default = match job.array {
        Some(_) => "slurm-%A_%a.out",
        None => "slurm-%j.out",
    };
    let out = expand_stdio(given(stdout).as_deref().unwrap_or(default), job);
    let err = given(stderr).map_or_else(|| out.clone(), |p| expand_stdio(&p, job));
    (out, err)
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

/// The field names of a `squeue -O` format (`JobArrayID:|,State:|` → JobArrayID, State).
fn squeue_names(format: &str) -> Vec<&str> {
    format
        .split(',')
        .map(|f| f.split(':').next().unwrap_or(f))
        .collect()
}

/// Parse `squeue --only-job-state -h -O SQUEUE_STATE_FORMAT` output: IDs and states only.
pub fn parse_squeue_states(stdout: &str) -> Result<Vec<JobRow>, String> {
    parse_squeue_as(SQUEUE_STATE_FORMAT, stdout)
}

/// Parse `squeue -h -O SQUEUE_FORMAT` output.
pub fn parse_squeue(stdout: &str) -> Result<Vec<JobRow>, String> {
    parse_squeue_as(SQUEUE_FORMAT, stdout)
}

/// Parse the output of `squeue -h -O FORMAT`, where FORMAT (`|`-terminated fields) starts with
/// [`SQUEUE_STATE_FORMAT`]'s four and, if it has `Name`, ends with it (a name may hold `|`).
/// Fields the format lacks stay empty, so output captured with an older format still reads.
pub fn parse_squeue_as(format: &str, stdout: &str) -> Result<Vec<JobRow>, String> {
    let names = squeue_names(format);
    let n = names.len();
    let named_last = names.last() == Some(&"Name");
    let mut rows = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = if named_last {
            line.splitn(n, '|').collect()
        } else {
            line.split('|').collect()
        };
        let fits = if named_last {
            f.len() == n
        } else {
            f.len() == n + 1 && f[n].trim().is_empty()
        };
        if !fits {
            return Err(format!(
                "unexpected squeue line {line:?} (expected {n} |-terminated fields)"
            ));
        }
        let mut r = squeue_row(&f, line)?;
        let get = |name: &str| names.iter().position(|k| *k == name).map_or("", |i| f[i]);
        r.exit_code = wait_status_to_exit_code(get("exit_code"));
        r.start = value(get("StartTime"));
        r.end = value(get("EndTime"));
        (r.elapsed, r.elapsed_secs) = elapsed(get("TimeUsed"));
        r.nodes = value(get("NodeList"));
        r.partition = value(get("Partition"));
        r.restarts = value(get("RestartCnt"));
        r.reason = value(get("Reason"));
        let raw_name = get("Name");
        let name = raw_name.strip_suffix('|').unwrap_or(raw_name);
        r.name = name.trim_end().to_string();
        // A `|` in the last field is a name or a path holding one: which fields it shifted
        // cannot be told, so the paths are left out rather than guessed.
        let stdout = get("STDOUT");
        if !stdout.is_empty() && !name.contains('|') {
            let job_id = value(get("JobID"));
            let job = StdioJob {
                job_id: if job_id.is_empty() { &r.base } else { &job_id },
                array: r.tasks.as_deref().map(|t| (r.base.as_str(), t)),
                user: get("UserName").trim(),
                name: &r.name,
                work_dir: get("WorkDir").trim(),
            };
            (r.stdout, r.stderr) = stdio_paths(stdout, get("STDERR"), &job);
        }
        rows.push(r);
    }
    Ok(rows)
}

/// Parse `sacct -n --parsable2 --noconvert -o SACCT_FORMAT` output.
pub fn parse_sacct(stdout: &str) -> Result<Vec<JobRow>, String> {
    parse_sacct_as(SACCT_FORMAT, stdout)
}

/// Parse the output of `sacct -n --parsable2 --noconvert -o FORMAT`, FORMAT starting with JobID
/// and ending with JobName; fields it lacks stay empty (output captured with an older format
/// still reads). A step's line (`9.batch`, `12_3.0`) gives its MaxRSS to its job's row.
pub fn parse_sacct_as(format: &str, stdout: &str) -> Result<Vec<JobRow>, String> {
    let names: Vec<&str> = format.split(',').collect();
    let n = names.len();
    let mut rows = Vec::new();
    let mut step_rss: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(n, '|').collect();
        if f.len() != n {
            return Err(format!(
                "unexpected sacct line {line:?} (expected {n} |-separated fields)"
            ));
        }
        let get = |name: &str| names.iter().position(|k| *k == name).map_or("", |i| f[i]);
        let id = f[0].trim();
        let rss = value(get("MaxRSS")).parse::<u64>().ok().filter(|b| *b > 0);
        if let Some((job, _step)) = id.split_once('.') {
            if let Some(b) = rss {
                let max = step_rss.entry(job.to_string()).or_default();
                *max = (*max).max(b);
            }
            continue;
        }
        let mut r = JobRow::default();
        r.set_id(id);
        if r.base.is_empty() || !r.base.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("unexpected job ID in sacct line {line:?}"));
        }
        r.state = get("State").trim().to_string();
        r.exit_code = wait_status_to_exit_code(get("ExitCode"));
        r.start = value(get("Start"));
        r.end = value(get("End"));
        (r.elapsed, r.elapsed_secs) = elapsed(get("Elapsed"));
        if let Ok(raw) = get("ElapsedRaw").trim().parse::<u64>() {
            (r.elapsed, r.elapsed_secs) = (hms(raw), Some(raw));
        }
        r.nodes = value(get("NodeList"));
        r.partition = value(get("Partition"));
        r.alloc_cpus = get("AllocCPUS").trim().parse().ok();
        // Without gathering (JobAcctGatherType=jobacct_gather/none) sacct prints 00:00:00 for
        // every job: 0 is no figure.
        r.total_cpu_ms = clock_ms(get("TotalCPU")).filter(|ms| *ms > 0);
        r.max_rss = rss;
        r.name = f[n - 1].to_string();
        rows.push(r);
    }
    for r in &mut rows {
        if let Some(b) = step_rss.get(&r.id) {
            r.max_rss = Some(r.max_rss.unwrap_or(0).max(*b));
        }
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
/// StdOut and StdErr are as scontrol expanded them.
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
        r.exit_code = wait_status_to_exit_code(get("ExitCode"));
        r.start = value(get("StartTime"));
        r.end = value(get("EndTime"));
        (r.elapsed, r.elapsed_secs) = elapsed(get("RunTime"));
        r.nodes = value(get("NodeList"));
        r.partition = value(get("Partition"));
        r.name = get("JobName").to_string();
        r.restarts = value(get("Restarts"));
        r.reason = value(get("Reason"));
        r.stdout = value(get("StdOut"));
        r.stderr = value(get("StdErr"));
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

/// Prefixes of the variables through which squeue, sacct, scontrol and scancel take options
/// from the environment (`SQUEUE_FORMAT`, `SQUEUE_STATES`, `SACCT_FORMAT`, `SCONTROL_FUTURE`,
/// `SCANCEL_SIGNAL`, …): a user's setting would change the fields, rows or order of a query, or
/// what `rj-track --cancel-never` does (ARCHITECTURE.md §7).
pub const QUERY_ENV_PREFIXES: [&str; 4] = ["SQUEUE_", "SACCT_", "SCONTROL_", "SCANCEL_"];

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
/// job (until MinJobAge) the controller knows, with all the fields rj reads. One call per
/// [`MAX_ID_ARG`] bytes of IDs.
pub fn squeue(cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
    squeue_with(cluster, ids, &[], SQUEUE_FORMAT, parse_squeue)
}

/// `squeue --only-job-state [-M C] -h -t all -r -j IDS -O …` (Slurm ≥ 23.11.5, see
/// [`only_job_state`]): answered from the controller's job-state cache, with IDs and states only.
/// Arrays are asked by their job ID ([`state_query_ids`]) and only the rows of the asked IDs
/// kept ([`asked_rows`]). Which of them are asked again with the full fields is the tracker's
/// choice (ARCHITECTURE.md §7).
pub fn squeue_states(cluster: Option<&str>, ids: &[String]) -> Result<Vec<JobRow>, QueryError> {
    let rows = squeue_with(
        cluster,
        &state_query_ids(ids),
        &["--only-job-state"],
        SQUEUE_STATE_FORMAT,
        parse_squeue_states,
    )?;
    Ok(asked_rows(rows, ids))
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

/// `sacct -n -a --parsable2 --noconvert -j IDS -o …`: final records from the accounting
/// database, with the jobs' steps (whose MaxRSS the job line lacks) and sizes in bytes.
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
                "--allusers",
                "--parsable2",
                "--noconvert",
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

/// `scancel [-M C] ID…`: cancel these jobs (rj-track `--cancel-never`), all in one call (one
/// per [`MAX_ID_ARG`] bytes of IDs). scancel goes on past an ID it cannot cancel and then fails;
/// the error names the first such line.
pub fn scancel(cluster: Option<&str>, ids: &[String]) -> Result<(), QueryError> {
    for chunk in id_chunks(ids, MAX_ID_ARG) {
        let mut args = on_cluster(cluster, &[]);
        args.extend(chunk.split(',').map(str::to_string));
        let ran = run_query("scancel", &args, QUERY_TIMEOUT).map_err(|e| QueryError {
            kind: QueryFailure::Unreachable,
            msg: format!("{e:#}"),
        })?;
        if !ran.ok() {
            return Err(query_error(&ran, classify_failure(&ran.stderr)));
        }
    }
    Ok(())
}

/// The formats the fixtures captured before the record's details were asked with (`*-details*`
/// fixtures are of today's [`SQUEUE_FORMAT`] and [`SACCT_FORMAT`], the others of these, with
/// sacct's `-X`).
#[cfg(test)]
pub(crate) const SQUEUE_FORMAT_V1: &str = "JobArrayID:|,ArrayJobID:|,ArrayTaskID:|,State:|,\
exit_code:|,StartTime:|,EndTime:|,TimeUsed:|,NodeList:|,Partition:|,RestartCnt:|,Name:|";
#[cfg(test)]
pub(crate) const SACCT_FORMAT_V1: &str =
    "JobID,State,ExitCode,Start,End,Elapsed,NodeList,Partition,JobName";

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_squeue(s: &str) -> Result<Vec<JobRow>, String> {
        parse_squeue_as(SQUEUE_FORMAT_V1, s)
    }

    fn v1_sacct(s: &str) -> Result<Vec<JobRow>, String> {
        parse_sacct_as(SACCT_FORMAT_V1, s)
    }

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
        let rows = v1_squeue(&fixture("squeue-all-finished.txt")).unwrap();
        let failed = find(&rows, "1");
        assert_eq!(failed.state, "FAILED");
        assert_eq!(failed.exit_code, "3:0");
        assert_eq!(failed.nodes, "vm");
        assert_eq!(failed.partition, "debug");
        assert_eq!(failed.name, "wrap");
        assert_eq!(failed.start, "2026-11-21T23:57:56");
        // squeue's `0:01`, in the one form of every record.
        assert_eq!(failed.elapsed, "00:00:01");
        assert_eq!(failed.elapsed_secs, Some(1));
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
        let rows = v1_squeue(&fixture("squeue-preempted.txt")).unwrap();
        assert_eq!(find(&rows, "4").state, "PREEMPTED");
        assert_eq!(find(&rows, "4").restarts, "0");
        assert_eq!(find(&rows, "2").restarts, "1");
        assert_eq!(find(&rows, "2").name, "wrap");
    }

    #[test]
    fn squeue_live_array_and_pending_ranges() {
        let rows = v1_squeue(&fixture("squeue-live.txt")).unwrap();
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
        assert!(v1_squeue(&fixture("squeue-invalid-one.out"))
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
            assert!(v1_squeue(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sacct_odd_lines() {
        let rows = v1_sacct(
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
        assert!(v1_sacct("1|COMPLETED\n").is_err());
    }

    /// Real `sacct` output with slurmdbd: exit 0, exit 3, cancelled while pending and while
    /// running (`CANCELLED by 0`), an array with a failing task, and a live array with a
    /// pending range.
    #[test]
    fn sacct_slurmdbd_captured() {
        let rows = v1_sacct(&fixture("sacct-slurmdbd.txt")).unwrap();
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

        let live = v1_sacct(&fixture("sacct-slurmdbd-live.txt")).unwrap();
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
        assert_eq!(v1_squeue(one).unwrap()[0].task_count(), u64::MAX);
        let two = "5_[1-18446744073709551615,1-18446744073709551615]|5|1-18446744073709551615,1-18446744073709551615|PENDING|0|N/A|N/A|0:00||debug|0|wrap|\n";
        assert_eq!(v1_squeue(two).unwrap()[0].task_count(), u64::MAX);
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
        let old = v1_squeue(&fixture("squeue-all-finished.txt")).unwrap();
        let new = v1_squeue(&fixture("squeue-24.11-all-finished.txt")).unwrap();
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
        let n = v1_squeue(&fixture("squeue-24.11-all-finished.txt")).unwrap();
        assert_eq!(find(&n, "61").state, "FAILED");
        assert_eq!(find(&n, "61").exit_code, "0:9");
        assert_eq!(find(&n, "66").state, "NODE_FAIL");
        assert_eq!(find(&n, "66").exit_code, "0:1");
        assert_eq!(find(&n, "65").state, "TIMEOUT");
        assert_eq!(find(&n, "65").exit_code, "0:15");
        assert_eq!(find(&n, "65").elapsed, "00:01:05");
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
        let rows = v1_sacct(&fixture("sacct-24.11-slurmdbd.txt")).unwrap();
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

    /// The job IDs of a `*-details-ids` capture: `m=9 c=10 …` (see the fixtures' tests).
    fn details_ids(v: &str) -> std::collections::HashMap<&'static str, String> {
        let line = match v {
            "22.05" => "m=9 c=10 f=11 d=12 a=13 h=14 s=15",
            _ => "m=12 c=13 f=14 d=15 a=16 h=17 s=18",
        };
        line.split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                let k: &'static str = match k {
                    "m" => "mem",
                    "c" => "cpu",
                    "f" => "fail",
                    "d" => "dep",
                    "a" => "arr",
                    "h" => "held",
                    _ => "sleeper",
                };
                (k, v.to_string())
            })
            .collect()
    }

    /// Captured on private copies of both testbeds with JobAcctGatherType=jobacct_gather/linux
    /// (JobAcctGatherFrequency=1) and slurmdbd, from /tmp/rjd/w: `mem` (holds 150 MB for 2 s,
    /// `-o mem-%j.out`), `cpu` (named "cpu job", busy 3 s, `-o /tmp/rjd/w/cpu-%x-%j.out -e
    /// cpu-%j-%%-%3j.err`), `fail` (exit 3, no -o), `dep` (afterok:fail,
    /// --kill-on-invalid-dep=no), `arr` (1-3, task 2 fails, `-o arr-%A_%a.out`), `held`
    /// (cancelled while held), `sleeper` (sleep 2, -o /dev/null). Today's SQUEUE_FORMAT.
    #[test]
    fn squeue_details_of_both_versions_captured() {
        for v in ["22.05", "24.11"] {
            let id = details_ids(v);
            let name = |f: &str| match v {
                "22.05" => f.to_string(),
                _ => f.replacen("squeue-", "squeue-24.11-", 1),
            };
            let rows = parse_squeue(&fixture(&name("squeue-details-finished.txt"))).unwrap();
            let w = "/tmp/rjd/w";
            let mem = find(&rows, &id["mem"]);
            assert_eq!(mem.state, "COMPLETED", "{v}");
            assert_eq!(mem.stdout, format!("{w}/mem-{}.out", id["mem"]), "{v}");
            assert_eq!(mem.stderr, mem.stdout, "{v}: stderr goes with stdout");
            assert!(mem.elapsed.starts_with("00:00:0"), "{v}: {}", mem.elapsed);
            assert_eq!(mem.reason, "", "{v}: None is no reason");
            let cpu = find(&rows, &id["cpu"]);
            assert_eq!(cpu.name, "cpu job");
            assert_eq!(
                cpu.stdout,
                format!("{w}/cpu-cpu job-{}.out", id["cpu"]),
                "{v}"
            );
            // `%%` and `%3j` as slurmd wrote the file (seen in /tmp/rjd/w: cpu-10-%-010.err).
            let c = &id["cpu"];
            assert_eq!(cpu.stderr, format!("{w}/cpu-{c}-%-0{c}.err"), "{v}");
            let fail = find(&rows, &id["fail"]);
            assert_eq!(
                (fail.exit_code.as_str(), fail.reason.as_str()),
                ("3:0", "NonZeroExitCode")
            );
            assert_eq!(fail.stdout, format!("{w}/slurm-{}.out", id["fail"]), "{v}");
            let dep = find(&rows, &id["dep"]);
            assert!(dep.is_pending(), "{v}");
            assert_eq!(dep.reason, "DependencyNeverSatisfied", "{v}");
            assert!(never_satisfied(&dep.reason));
            assert_eq!(find(&rows, &id["held"]).reason, "JobHeldUser", "{v}");
            assert_eq!(find(&rows, &id["sleeper"]).stdout, "/dev/null");
            // Array tasks: %A and %a of the task, whatever its own job ID.
            let a = &id["arr"];
            for t in 1..=3 {
                let task = find(&rows, &format!("{a}_{t}"));
                assert_eq!(task.stdout, format!("{w}/arr-{a}_{t}.out"), "{v}");
            }
            assert_eq!(find(&rows, &format!("{a}_2")).exit_code, "1:0");
        }
        // Pending: the reasons as squeue gives them.
        let live = parse_squeue(&fixture("squeue-details-live.txt")).unwrap();
        let reasons: Vec<(&str, &str)> = live
            .iter()
            .filter(|r| r.is_pending())
            .map(|r| (r.id.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("11", "Resources"),
                ("12", "Dependency"),
                ("13_1", "Priority"),
                ("13_2", "Priority"),
                ("13_3", "Priority"),
                ("15", "Priority"),
                ("14", "JobHeldUser")
            ]
        );
        let live = parse_squeue(&fixture("squeue-24.11-details-live.txt")).unwrap();
        // 24.11 gives a pending array's tasks no reason (None).
        assert_eq!(find(&live, "16_2").reason, "");
        assert_eq!(find(&live, "15").reason, "Dependency");
    }

    /// squeue's patterns expanded by rj are what `scontrol show job` prints for the same jobs:
    /// on 24.11 every one of them; on 22.05 all but the `%%` and `%3j` that 22.05's scontrol
    /// leaves unexpanded (and slurmd does not: the file is cpu-10-%-010.err).
    #[test]
    fn expanded_paths_are_scontrols() {
        for v in ["22.05", "24.11"] {
            let (sq, sc) = match v {
                "22.05" => ("squeue-details-finished.txt", "scontrol-details.txt"),
                _ => (
                    "squeue-24.11-details-finished.txt",
                    "scontrol-24.11-details.txt",
                ),
            };
            let squeue = parse_squeue(&fixture(sq)).unwrap();
            let scontrol = parse_scontrol(&fixture(sc)).unwrap();
            assert_eq!(squeue.len(), scontrol.len(), "{v}");
            for c in &scontrol {
                let q = find(&squeue, &c.id);
                assert_eq!(q.stdout, c.stdout, "{v} job {}", c.id);
                if v == "22.05" && c.name == "cpu job" {
                    assert_eq!(c.stderr, "/tmp/rjd/w/cpu-10-%%-%3j.err");
                    assert_eq!(q.stderr, "/tmp/rjd/w/cpu-10-%-010.err");
                } else {
                    assert_eq!(q.stderr, c.stderr, "{v} job {}", c.id);
                }
                assert_eq!(q.elapsed, c.elapsed, "{v} job {}", c.id);
            }
            let dep = scontrol
                .iter()
                .find(|r| r.reason == "DependencyNeverSatisfied")
                .expect("the job that can never start");
            assert!(dep.is_pending());
        }
    }

    #[test]
    fn patterns_expand_as_slurm_does() {
        let plain = StdioJob {
            job_id: "42",
            array: None,
            user: "ana",
            name: "train",
            work_dir: "/home/ana/exp/",
        };
        let task = StdioJob {
            job_id: "57",
            array: Some(("40", "17")),
            ..plain
        };
        let e = |p: &str, j: &StdioJob| expand_stdio(p, j);
        assert_eq!(e("out-%j.txt", &plain), "/home/ana/exp/out-42.txt");
        assert_eq!(e("/o/%x-%u-%j", &plain), "/o/train-ana-42");
        assert_eq!(e("/o/%A_%a", &task), "/o/40_17");
        assert_eq!(e("/o/%j", &task), "/o/57");
        assert_eq!(e("/o/%A-%a-%b", &plain), "/o/42-4294967294-4");
        assert_eq!(e("/o/%b", &task), "/o/7");
        assert_eq!(e("/o/%4a", &task), "/o/0017");
        assert_eq!(e("/o/%12j", &plain), "/o/0000000042");
        assert_eq!(
            e("/o/100%%-%N-%n-%s-%t-%3N", &plain),
            "/o/100%-%N-%n-%s-%t-%3N"
        );
        assert_eq!(e("/o/end%", &plain), "/o/end%");
        assert_eq!(e("/o/%5", &plain), "/o/%5");
        assert_eq!(e("/dev/null", &task), "/dev/null");
        let no_dir = StdioJob {
            work_dir: "",
            ..plain
        };
        assert_eq!(e("x-%j", &no_dir), "x-42");
        // squeue's values as they come: unset, 22.05's own default, a given pattern.
        let (out, err) = stdio_paths("(null)", "(null)", &plain);
        assert_eq!(
            (out.as_str(), err.as_str()),
            ("/home/ana/exp/slurm-42.out", "/home/ana/exp/slurm-42.out")
        );
        let (out, _) = stdio_paths(
            "/home/ana/exp/slurm-57.out",
            "/home/ana/exp/slurm-57.out",
            &task,
        );
        assert_eq!(out, "/home/ana/exp/slurm-40_17.out");
        let (out, err) = stdio_paths("/o/%j.out", "/e/%j.err", &task);
        assert_eq!((out.as_str(), err.as_str()), ("/o/57.out", "/e/57.err"));
    }

    /// A `|` in the last field (a name, or a path, holding one) shifts fields that cannot be
    /// told apart: the row keeps its state but gets no paths.
    #[test]
    fn a_bar_in_a_name_or_path_leaves_the_paths_out() {
        let line = "7|7|N/A|COMPLETED|0|2026-01-01T00:00:00|2026-01-01T00:00:05|0:05|n1|debug|0|None|7|ana|/w|/w/a|b.out|(null)|x|\n";
        let r = &parse_squeue(line).unwrap()[0];
        assert_eq!(r.state, "COMPLETED");
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
        assert_eq!(r.elapsed, "00:00:05");
    }

    /// Today's sacct query (steps included, --noconvert) on both testbed copies with gathering:
    /// the job's MaxRSS is its steps' (bytes), TotalCPU and AllocCPUS are the job line's, and a
    /// step is no row of its own. Without gathering (the real 24.11 testbed) TotalCPU is
    /// 00:00:00 and MaxRSS empty: no figures.
    #[test]
    fn sacct_usage_of_both_versions_captured() {
        for (v, file) in [
            ("22.05", "sacct-details.txt"),
            ("24.11", "sacct-24.11-details.txt"),
        ] {
            let id = details_ids(v);
            let rows = parse_sacct(&fixture(file)).unwrap();
            assert_eq!(
                rows.len(),
                9,
                "{v}: one row per job and task, none per step"
            );
            assert!(rows.iter().all(|r| !r.id.contains('.')));
            let mem = find(&rows, &id["mem"]);
            assert!(mem.max_rss.unwrap() > 150_000_000, "{v}: {mem:?}");
            assert_eq!(mem.alloc_cpus, Some(1));
            let cpu = find(&rows, &id["cpu"]);
            assert_eq!(cpu.elapsed_secs, Some(3), "{v}");
            assert_eq!(cpu.elapsed, "00:00:03");
            assert!(cpu.total_cpu_ms.unwrap() > 1000, "{v}: {cpu:?}");
            assert!(cpu.max_rss.unwrap() < 10_000_000, "{v}: {cpu:?}");
            let fail = find(&rows, &id["fail"]);
            assert_eq!(fail.exit_code, "3:0");
            assert_eq!(fail.max_rss, None, "{v}: too short for a sample");
            assert_eq!(fail.elapsed_secs, Some(0));
            let dep = find(&rows, &id["dep"]);
            assert_eq!((dep.state.as_str(), dep.total_cpu_ms), ("PENDING", None));
            assert_eq!(find(&rows, &id["held"]).state, "CANCELLED by 0");
            assert_eq!(find(&rows, &format!("{}_2", id["arr"])).exit_code, "1:0");
        }
        assert_eq!(
            find(&parse_sacct(&fixture("sacct-details.txt")).unwrap(), "9").max_rss,
            Some(217_579_520)
        );
        let none = parse_sacct(&fixture("sacct-24.11-nogather.txt")).unwrap();
        assert_eq!(none.len(), 1);
        assert_eq!((none[0].total_cpu_ms, none[0].max_rss), (None, None));
        assert_eq!(none[0].elapsed_secs, Some(3));
    }

    #[test]
    fn slurm_times_in_one_form() {
        assert_eq!(clock_secs("0:05"), Some(5));
        assert_eq!(clock_secs("1:02:03"), Some(3723));
        assert_eq!(clock_secs("1-02:03:04"), Some(93_784));
        assert_eq!(clock_secs("00:00:05"), Some(5));
        assert_eq!(clock_ms("00:01.611"), Some(1611));
        assert_eq!(clock_ms("01:00:00"), Some(3_600_000));
        assert_eq!(clock_ms("00:00.5"), Some(500));
        for bad in [
            "",
            "INVALID",
            "UNLIMITED",
            "1:2:3:4",
            "a:05",
            "-1",
            "1-",
            "0:0x",
        ] {
            assert_eq!(clock_secs(bad), None, "{bad:?}");
        }
        assert_eq!(hms(0), "00:00:00");
        assert_eq!(hms(65), "00:01:05");
        assert_eq!(hms(90_061), "1-01:01:01");
        assert_eq!(elapsed("Unknown"), (String::new(), None));
    }

    #[test]
    fn wait_status() {
        assert_eq!(wait_status_to_exit_code("0"), "0:0");
        assert_eq!(wait_status_to_exit_code("768"), "3:0");
        assert_eq!(wait_status_to_exit_code("9"), "0:9");
        assert_eq!(wait_status_to_exit_code("1:0"), "1:0");
        // Always code:signal, or nothing.
        for odd in ["", "x", "1:x", ":0", "N/A"] {
            assert_eq!(wait_status_to_exit_code(odd), "", "{odd:?}");
        }
    }
}
