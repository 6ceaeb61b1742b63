//! rj-track on several clusters (`sbatch -M`), end to end: the real clusters a and b of
//! scripts/slurm-clusters in one slurmdbd, a real redis-server (ARCHITECTURE.md §7 step 5).
use crate::util::check::{ok, run};
use crate::util::clusters::{self, rj};
use crate::util::{self, RedisServer, TestEnv};

/// Submit through rj-launch with `sbatch_args` (and `env`), and return the ID it printed.
fn launch(env: &TestEnv, vars: &[(&str, &str)], sbatch_args: &[&str]) -> String {
    let mut c = rj(env, "rj-launch");
    for (k, v) in vars {
        c.env(k, v);
    }
    let mut args = vec!["--", "-o", "/dev/null"];
    args.extend_from_slice(sbatch_args);
    ok(&run(c.args(&args))).trim().to_string()
}

fn script(env: &TestEnv, body: &str) -> String {
    let p = util::write_script(env.path(), "job.sbatch", &format!("#!/bin/sh\n{body}\n"));
    p.to_string_lossy().into_owned()
}

fn in_set(server: &RedisServer, env: &TestEnv, set: &str, id: &str) -> bool {
    server.smembers(&env.key(set)).iter().any(|m| m == id)
}

/// `rj-launch -- -M b job.sbatch` records the job with its cluster, and rj-track asks b about
/// it: it ends COMPLETED with b's record (its name, and no look at cluster a, where the same
/// job ID may be another job or none).
#[test]
fn a_job_submitted_with_minus_m_is_tracked_on_its_cluster() {
    let Some((server, env, _hold)) = clusters::setup(false) else {
        return;
    };
    let name = format!("on-b-{}", env.tag);
    let job = script(&env, "exit 0");
    let id = launch(&env, &[], &["-M", "b", "-J", &name, &job]);
    assert_eq!(server.hgetall(&env.job(&id))["cluster"], "b");
    clusters::wait_state("b", &id, "COMPLETED", |s, _| s == "COMPLETED");
    let out = run(rj(&env, "rj-track").args(["--once", "-v"]));
    let stdout = ok(&out);
    assert!(in_set(&server, &env, "COMPLETED", &id), "{stdout}");
    let rec = server.hgetall(&env.job(&id));
    assert_eq!(rec["state"], "COMPLETED");
    assert_eq!(rec["name"], name);
    assert_eq!(rec["cluster"], "b");
    assert_eq!(rec["exit_code"], "0:0");
}

/// One tag with a job on a (the default cluster, no -M) and one on b (chosen by
/// SLURM_CLUSTERS, recorded with its cluster too): both are tracked, with one squeue per
/// cluster per tick (and one sacct per cluster once its job finished, for the record's usage
/// figures), and end in their sets.
#[test]
fn one_tag_on_two_clusters_is_one_squeue_per_cluster() {
    let Some((server, env, _hold)) = clusters::setup(false) else {
        return;
    };
    let on_a = launch(&env, &[], &["-J", "on-a", "--wrap", "sleep 2; exit 3"]);
    let on_b = launch(
        &env,
        &[("SLURM_CLUSTERS", "b")],
        &["-J", "on-b", "--wrap", "sleep 2"],
    );
    assert!(!server.hgetall(&env.job(&on_a)).contains_key("cluster"));
    assert_eq!(server.hgetall(&env.job(&on_b))["cluster"], "b");

    let out = run(rj(&env, "rj-track").args(["--once", "-v"]));
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("2 tracked"), "{err}");
    assert!(err.contains(" 2 Slurm command(s)"), "{err}");
    let tick = server.hgetall(&env.key("TRACKER:tick"));
    assert_eq!(tick["slurm_commands"], "2");

    clusters::wait_state("a", &on_a, "FAILED", |s, _| s == "FAILED");
    clusters::wait_state("b", &on_b, "COMPLETED", |s, _| s == "COMPLETED");
    let out = run(rj(&env, "rj-track").args(["--once", "-v"]));
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("2 moved"), "{err}");
    assert!(err.contains(" 4 Slurm command(s)"), "{err}");
    assert!(in_set(&server, &env, "FAILED", &on_a));
    assert!(in_set(&server, &env, "COMPLETED", &on_b));
    assert_eq!(server.hgetall(&env.job(&on_a))["name"], "on-a");
    assert_eq!(server.hgetall(&env.job(&on_a))["exit_code"], "3:0");
    assert_eq!(server.hgetall(&env.job(&on_b))["name"], "on-b");
    assert!(server.smembers(&env.key("PENDING_AND_RUNNING")).is_empty());
}
