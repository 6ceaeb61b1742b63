//! Preemption and requeue, end to end on cluster a of scripts/slurm-clusters
//! (PreemptType=preempt/partition_prio): a job of a low partition preempted by one of the high
//! partition, once with PreemptMode=REQUEUE and once with CANCEL (ARCHITECTURE.md §4, §7).
use std::time::Duration;

use crate::util::check::{ok, run};
use crate::util::clusters::{self, rj};
use crate::util::{self, RedisServer, TestEnv};

fn launch(env: &TestEnv, sbatch_args: &[&str]) -> String {
    let mut args = vec!["--", "-o", "/dev/null", "--exclusive"];
    args.extend_from_slice(sbatch_args);
    ok(&run(rj(env, "rj-launch").args(&args)))
        .trim()
        .to_string()
}

/// One `rj-track --once -v` tick; its stderr.
fn tick(env: &TestEnv, grace: &str) -> String {
    let out = run(rj(env, "rj-track").args(["--once", "-v", "--preempt-grace", grace]));
    ok(&out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn in_set(server: &RedisServer, env: &TestEnv, set: &str, id: &str) -> bool {
    server.smembers(&env.key(set)).iter().any(|m| m == id)
}

/// PreemptMode=REQUEUE: the preempted job comes back PENDING with the same ID. rj-track keeps
/// tracking it, notes restarts and requeued_at, and moves it to COMPLETED after its rerun.
#[test]
fn a_requeued_job_stays_tracked_and_completes_after_its_rerun() {
    let Some((server, env, _hold)) = clusters::setup(true) else {
        return;
    };
    let low = launch(&env, &["-p", "lowrq", "-J", "low", "--wrap", "sleep 4"]);
    clusters::wait_state("a", &low, "RUNNING", |s, _| s == "RUNNING");
    let high = launch(&env, &["-p", "high", "-J", "high", "--wrap", "sleep 1"]);
    clusters::wait_state("a", &low, "requeued", |s, r| s == "PENDING" && r == "1");

    let err = tick(&env, "2s");
    assert!(in_set(&server, &env, "PENDING_AND_RUNNING", &low), "{err}");
    let rec = server.hgetall(&env.job(&low));
    assert_eq!(rec["restarts"], "1", "{rec:?}\n{err}");
    assert!(rec["requeued_at"].ends_with('Z'), "{rec:?}");
    assert!(
        err.contains(&format!("job {low} of {} was requeued", env.tag)),
        "{err}"
    );
    let noted = rec["requeued_at"].clone();

    // Slurm holds a requeued job back for a while (Reason=BeginTime); let it start now.
    clusters::run(
        "scontrol",
        &["update", &format!("jobid={low}"), "StartTime=now"],
    );
    clusters::wait_state("a", &low, "COMPLETED", |s, _| s == "COMPLETED");
    clusters::wait_state("a", &high, "COMPLETED", |s, _| s == "COMPLETED");
    util::wait_until(Duration::from_secs(60), "both jobs moved", || {
        tick(&env, "2s");
        server.smembers(&env.key("PENDING_AND_RUNNING")).is_empty()
    });
    assert!(in_set(&server, &env, "COMPLETED", &low));
    assert!(in_set(&server, &env, "COMPLETED", &high));
    let rec = server.hgetall(&env.job(&low));
    assert_eq!(rec["state"], "COMPLETED");
    assert_eq!(rec["restarts"], "1");
    assert_eq!(rec["requeued_at"], noted, "noted once");
    assert!(!server.hgetall(&env.job(&high)).contains_key("restarts"));
}

/// PreemptMode=CANCEL: the job ends PREEMPTED. rj-track does not believe it at once (a requeue
/// could still bring it back) but once the grace period has passed: FAILED, state PREEMPTED.
#[test]
fn a_preempted_and_cancelled_job_is_failed_after_the_grace_period() {
    let Some((server, env, _hold)) = clusters::setup(true) else {
        return;
    };
    let low = launch(&env, &["-p", "lowca", "-J", "low", "--wrap", "sleep 60"]);
    clusters::wait_state("a", &low, "RUNNING", |s, _| s == "RUNNING");
    let high = launch(&env, &["-p", "high", "-J", "high", "--wrap", "sleep 1"]);
    clusters::wait_state("a", &low, "PREEMPTED", |s, _| s == "PREEMPTED");
    // Accounting agrees first (slurmdbd may lag the controller by a moment), in the job's own
    // record: before it arrives sacct shows slurmdbd's placeholder (`allocation`, no partition,
    // here already PREEMPTED), which rj-track takes as no answer until the next tick.
    util::wait_until(
        Duration::from_secs(30),
        "sacct's own record to say PREEMPTED",
        || {
            let own = [
                "-n",
                "-X",
                "-P",
                "-j",
                &low,
                "-o",
                "JobName,Partition,State",
            ];
            clusters::run("sacct", &own).trim() == "low|lowca|PREEMPTED"
        },
    );

    let err = tick(&env, "30s");
    assert!(in_set(&server, &env, "PENDING_AND_RUNNING", &low), "{err}");
    assert!(err.contains("PREEMPTED, final after 30s"), "{err}");

    util::wait_until(Duration::from_secs(60), "the preempted job moved", || {
        tick(&env, "3s");
        in_set(&server, &env, "FAILED", &low)
    });
    let rec = server.hgetall(&env.job(&low));
    assert_eq!(rec["state"], "PREEMPTED");
    assert_eq!(rec["source"], "sacct");
    clusters::wait_state("a", &high, "COMPLETED", |s, _| s == "COMPLETED");
    util::wait_until(Duration::from_secs(30), "the high job moved", || {
        tick(&env, "3s");
        in_set(&server, &env, "COMPLETED", &high)
    });
}
