//! Calls to Slurm's commands. Running them is here; parsing their output is pure and unit-tested.
use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use crate::exit::{fail, Kind};
use crate::keys::{split_cluster, JobId};

/// Find a Slurm command on PATH, or fail with 69 naming it.
pub fn find(cmd: &str) -> anyhow::Result<std::path::PathBuf> {
    which::which(cmd).map_err(|_| {
        fail(
            Kind::Unavailable,
            format!("{cmd} not found on PATH; is Slurm installed and loaded (module load slurm)?"),
        )
    })
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

/// Run `sbatch --parsable ARGS` with extra environment; stdout is captured, stderr goes to the
/// user's terminal (sbatch's own messages), stdin is inherited (`rj-launch -- <<EOF` works).
pub fn sbatch(args: &[String], env: &[(&str, String)]) -> anyhow::Result<Output> {
    let prog = find("sbatch")?;
    let mut cmd = Command::new(&prog);
    cmd.arg("--parsable")
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shown = display_cmd("sbatch --parsable", args);
    let out = cmd
        .output()
        .map_err(|e| fail(Kind::Unavailable, format!("cannot run {shown}: {e}")))?;
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
    pub id: String,
    pub cluster: Option<String>,
}

/// Parse one job reference (`123`, `123_4`, `123;cluster`).
pub fn parse_job_ref(s: &str) -> Result<Submitted, String> {
    let (id, cluster) = split_cluster(s.trim());
    id.parse::<JobId>()?;
    Ok(Submitted {
        id: id.to_string(),
        cluster: cluster.map(str::to_string),
    })
}

/// Parse the stdout of `sbatch --parsable`: the last non-empty line holds `id[;cluster]`.
pub fn parse_sbatch_output(stdout: &str) -> Result<Submitted, String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| "sbatch printed no job ID".to_string())?;
    parse_job_ref(line).map_err(|_| format!("cannot find a job ID in sbatch output {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_parsable_forms() {
        assert_eq!(
            parse_sbatch_output("4238610\n").unwrap(),
            Submitted {
                id: "4238610".into(),
                cluster: None
            }
        );
        assert_eq!(
            parse_sbatch_output("4238610;cluster1\n").unwrap(),
            Submitted {
                id: "4238610".into(),
                cluster: Some("cluster1".into())
            }
        );
        // A site's job_submit plugin may print a line first.
        assert_eq!(
            parse_sbatch_output("note: using default account\n77\n")
                .unwrap()
                .id,
            "77"
        );
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
        ] {
            assert!(parse_sbatch_output(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_quotes() {
        assert_eq!(
            display_cmd("sbatch", &["--wrap", "echo hi", "a'b"]),
            r"sbatch --wrap 'echo hi' 'a'\''b'"
        );
    }
}
