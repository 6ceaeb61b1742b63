//! The user's Slurm environment cannot change what rj-track reads (ARCHITECTURE.md §7): the same
//! finished jobs tracked once with a clean environment and once with hostile `SQUEUE_*`,
//! `SACCT_*`, `SCONTROL_*`, `SLURM_TIME_FORMAT`, `SLURM_BITSTR_LEN` and `SLURM_CLUSTERS` end in
//! the same sets with the same records. Real Slurm testbed, real redis-server.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::util::check::{ok, run};
use crate::util::{self, slurm, RedisServer, TestEnv, FIVE};

/// What a user may have in their shell for their own squeue/sacct/scontrol habits. Each would
/// change the fields, times, rows or cluster of a query that inherited it.
const HOSTILE: [(&str, &str); 16] = [
    ("SLURM_TIME_FORMAT", "relative"),
    ("SLURM_BITSTR_LEN", "4"),
    ("SLURM_CLUSTERS", "rj-no-such-cluster"),
    ("SQUEUE_FORMAT", "%i %T"),
    ("SQUEUE_FORMAT2", "JobID:6,State:4"),
    ("SQUEUE_SORT", "-i"),
    ("SQUEUE_STATES", "PENDING"),
    ("SQUEUE_ARRAY_UNIQUE", "1"),
    ("SQUEUE_USERS", "nobody"),
    ("SQUEUE_PARTITION", "rj-no-such-partition"),
    ("SQUEUE_NAMES", "rj-no-such-name"),
    ("SQUEUE_ALL", "1"),
    ("SACCT_FORMAT", "JobID%4,State%3"),
    ("SACCT_FEDERATION", "1"),
    ("SCONTROL_FUTURE", "1"),
    ("SCONTROL_ALL", "1"),
];

/// Fields the tracker writes that differ between two trackers by nature, not by what Slurm said:
/// who moved the job and when, and the reason it saw while a job (a task) was still pending,
/// which depends on when it looked.
const OWN: [&str; 3] = ["tracked_at", "tracked_by", "reason"];

/// Run `rj-track --once` on `tag` (with `extra` in its environment) until the tag's pending set
/// is empty or 60 s have passed; the last run's stderr, for the failure message.
fn track_until_drained(
    server: &RedisServer,
    env: &TestEnv,
    tag: &str,
    extra: &[(&str, &str)],
) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        let mut c = env.std_command(util::bin_path("rj-track"));
        c.args(["--once", "-v", "--tag", tag]);
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().expect("rj-track");
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if server
            .smembers(&format!("{tag}_PENDING_AND_RUNNING"))
            .is_empty()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}

fn sets(server: &RedisServer, tag: &str) -> BTreeMap<&'static str, Vec<String>> {
    FIVE.into_iter()
        .map(|s| {
            let mut ids = server.smembers(&format!("{tag}_{s}"));
            ids.sort();
            (s, ids)
        })
        .collect()
}

/// The fields rj-track added to a record (those not there right after recording), less [`OWN`].
fn moved_fields(
    server: &RedisServer,
    tag: &str,
    id: &str,
    before: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    server
        .hgetall(&format!("{tag}_JOB:{id}"))
        .into_iter()
        .filter(|(k, _)| !before.contains_key(k) && !OWN.contains(&k.as_str()))
        .collect()
}

#[test]
fn a_hostile_slurm_environment_changes_no_set_and_no_record() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let launch = |args: &[&str]| {
        let mut a = vec!["--", "-o", "/dev/null"];
        a.extend_from_slice(args);
        ok(&run(env.cmd("rj-launch").args(&a))).trim().to_string()
    };
    let done = launch(&["--wrap", "exit 0"]);
    let failed = launch(&["--wrap", "exit 3"]);
    let array = launch(&["--array=1-3", "--wrap", "[ $SLURM_ARRAY_TASK_ID != 2 ]"]);
    // A pending array whose task list (no ranges, no step) is longer than SLURM_BITSTR_LEN's
    // 64-byte default.
    let sparse: Vec<String> = (1..=40).map(|i| (i * (i + 1) / 2).to_string()).collect();
    let held = launch(&[
        "--hold",
        &format!("--array={}", sparse.join(",")),
        "--wrap",
        "exit 0",
    ]);
    slurm::run("scancel", &[&held]);
    let ids = [done.clone(), failed.clone(), array.clone(), held.clone()];
    for id in &ids {
        slurm::wait_finished(id, Duration::from_secs(90));
    }

    // The same jobs under a second tag, recorded after the fact.
    let hostile_tag = format!("{}_hostile", env.tag);
    let mut rec = vec!["--tag", hostile_tag.as_str(), "--record"];
    rec.extend(ids.iter().map(String::as_str));
    ok(&run(env.cmd("rj-launch").args(&rec)));
    let before_clean: BTreeMap<&str, _> = ids
        .iter()
        .map(|id| (id.as_str(), server.hgetall(&env.job(id))))
        .collect();
    let before_hostile: BTreeMap<&str, _> = ids
        .iter()
        .map(|id| {
            (
                id.as_str(),
                server.hgetall(&format!("{hostile_tag}_JOB:{id}")),
            )
        })
        .collect();

    let clean_err = track_until_drained(&server, &env, &env.tag, &[]);
    let hostile_err = track_until_drained(&server, &env, &hostile_tag, &HOSTILE);

    let clean = sets(&server, &env.tag);
    assert!(
        clean["PENDING_AND_RUNNING"].is_empty(),
        "clean tracking left jobs pending: {clean:?}\n{clean_err}"
    );
    assert_eq!(clean["COMPLETED"], std::slice::from_ref(&done));
    assert_eq!(
        sets(&server, &hostile_tag),
        clean,
        "with the hostile environment; rj-track said:\n{hostile_err}"
    );
    for id in &ids {
        let want = moved_fields(&server, &env.tag, id, &before_clean[id.as_str()]);
        let got = moved_fields(&server, &hostile_tag, id, &before_hostile[id.as_str()]);
        // A start for the jobs that ran; the held array was cancelled before any task started
        // (sacct says Start=None, and that is recorded as no start).
        if *id != held {
            assert!(want.contains_key("start"), "job {id}: {want:?}");
        }
        assert_eq!(got, want, "record of job {id}");
    }
    // Times as Slurm's standard format says, whatever SLURM_TIME_FORMAT said.
    let r = server.hgetall(&format!("{hostile_tag}_JOB:{failed}"));
    assert_eq!(r["exit_code"], "3:0");
    assert!(
        humantime::parse_rfc3339(&format!("{}Z", r["end"])).is_ok(),
        "end {:?}",
        r["end"]
    );
    assert_eq!(r["end"].len(), "2026-01-01T00:00:00".len(), "{r:?}");
    // Every task of the long list, though SLURM_BITSTR_LEN said 4, whether squeue answered or
    // sacct's one pending-range row (which covers squeue's task rows, so none counts twice).
    let h = server.hgetall(&format!("{hostile_tag}_JOB:{held}"));
    assert_eq!(h["tasks"], "40", "{h:?}");
}
