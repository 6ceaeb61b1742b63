//! rj-wait against a real redis-server: jobs moved the way rj-track moves them (sets, record and
//! T_EVENTS entry in one MULTI/EXEC), before and while it waits, across a server restart and a
//! trimmed stream; its exit statuses and its messages.
use std::time::Duration;

use crate::util::check::{self, run};
use crate::util::wait_support::{self as ws, cancelled, completed, failed, Waiting};
use crate::util::{RedisOptions, RedisServer, TestEnv};

/// Longer than any of these tests needs, shorter than rj-wait's once-a-minute read of the sets:
/// a test that passes only thanks to that read (an event missed) ends in 124 and fails.
const LIMIT: &str = "30s";
const EXIT_WITHIN: Duration = Duration::from_secs(40);

fn lease(server: &RedisServer, env: &TestEnv) {
    server.cli(&["SET", &env.key("TRACKER"), ws::TRACKER, "PX", "600000"]);
}

fn line(env: &TestEnv, id: &str, set: &str, exit: &str, state: &str) -> String {
    format!("{} {id} {set} {exit} {state}\n", env.tag)
}

#[test]
fn exits_0_when_every_job_completes() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    lease(&server, &env);
    ws::record(&server, &env, &["11", "12", "13"]);
    let mut w = Waiting::start(&server, &env, &["--timeout", LIMIT, "11", "12", "13"]);
    ws::moves(&server, &env, &[completed("12")], None);
    assert_eq!(
        w.lines(1),
        line(&env, "12", "COMPLETED", "0:0", "COMPLETED")
    );
    ws::moves(&server, &env, &[completed("11"), completed("13")], None);
    let end = w.end(EXIT_WITHIN);
    assert_eq!(end.code(), Some(0), "{}", end.stderr);
    assert_eq!(
        end.stdout,
        [
            line(&env, "12", "COMPLETED", "0:0", "COMPLETED"),
            line(&env, "11", "COMPLETED", "0:0", "COMPLETED"),
            line(&env, "13", "COMPLETED", "0:0", "COMPLETED"),
        ]
        .concat()
    );
    assert_eq!(end.stderr, "");
}

#[test]
fn exits_3_naming_the_jobs_that_failed_or_were_cancelled() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    lease(&server, &env);
    ws::record(&server, &env, &["21", "22", "23"]);
    let w = Waiting::start(&server, &env, &["--timeout", LIMIT, "21", "22", "23"]);
    ws::moves(
        &server,
        &env,
        &[failed("23"), completed("21"), cancelled("22")],
        None,
    );
    let end = w.end(EXIT_WITHIN);
    assert_eq!(end.code(), Some(3), "{}", end.stderr);
    assert_eq!(
        end.stdout,
        [
            line(&env, "23", "FAILED", "3:0", "FAILED"),
            line(&env, "21", "COMPLETED", "0:0", "COMPLETED"),
            line(&env, "22", "CANCELLED", "0:15", "CANCELLED by 1000"),
        ]
        .concat()
    );
    assert_eq!(
        end.stderr,
        "rj-wait: error: 2 of 3 jobs did not complete: 22 CANCELLED, 23 FAILED\n"
    );
}

#[test]
fn jobs_final_before_the_start_count_at_once() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    lease(&server, &env);
    ws::record(&server, &env, &["31", "32", "33"]);
    ws::moves(&server, &env, &[failed("32"), completed("31")], None);
    // Only finished jobs: no event to wait for, at once, in job order, from the records.
    let out = run(env
        .cmd("rj-wait")
        .args(["--timeout", LIMIT, "32", "0031;cluster"])
        .timeout(EXIT_WITHIN));
    check::code(&out, 3);
    assert_eq!(
        check::stdout(&out),
        [
            line(&env, "31", "COMPLETED", "0:0", "COMPLETED"),
            line(&env, "32", "FAILED", "3:0", "FAILED"),
        ]
        .concat()
    );
    let out = run(env
        .cmd("rj-wait")
        .args(["--format", "json", "31"])
        .timeout(EXIT_WITHIN));
    let doc: serde_json::Value = serde_json::from_str(&check::ok(&out)).unwrap();
    assert_eq!(doc["job_id"], "31");
    assert_eq!(doc["set"], "COMPLETED");
    assert_eq!(doc["exit_code"], "0:0");
    assert_eq!(doc["tracker"], ws::TRACKER);
    assert_eq!(doc["source"], "sets");
    // A finished job and a pending one: the first line comes before any move.
    let mut w = Waiting::start(
        &server,
        &env,
        &["--timeout", LIMIT, "--format", "plain", "33", "31"],
    );
    assert_eq!(w.lines(1), "31\n");
    ws::moves(&server, &env, &[completed("33")], None);
    let end = w.end(EXIT_WITHIN);
    assert_eq!(end.code(), Some(0), "{}", end.stderr);
    assert_eq!(end.stdout, "31\n33\n");
}

#[test]
fn an_id_not_recorded_is_an_error_naming_it() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    lease(&server, &env);
    ws::record(&server, &env, &["41"]);
    let out = run(env.cmd("rj-wait").args(["41", "49"]).timeout(EXIT_WITHIN));
    let err = check::fails(&out, 1, "rj-wait");
    assert!(
        err.contains("job is not recorded under tag")
            && err.contains(&env.key("ALL"))
            && err.ends_with(
                ": 49; is the tag right? (rj-launch --record ID records a job submitted otherwise)"
            ),
        "{err}"
    );
    assert_eq!(check::stdout(&out), "");
    let out = run(env.cmd("rj-wait").arg("abc"));
    check::fails(&out, 2, "rj-wait");
}

#[test]
fn without_ids_it_waits_for_every_job_pending_at_its_start() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    // No job at all under the tag: a mistyped tag, not success.
    let out = run(env.cmd("rj-wait").timeout(EXIT_WITHIN));
    let err = check::fails(&out, 1, "rj-wait");
    assert!(err.contains("no jobs are recorded under tag"), "{err}");
    lease(&server, &env);
    ws::record(&server, &env, &["51", "52", "53"]);
    ws::moves(&server, &env, &[failed("51")], None);
    let w = Waiting::start(&server, &env, &["--timeout", LIMIT]);
    // Recorded after the start: not awaited (it stays pending, so waiting for it would time out).
    ws::record(&server, &env, &["54"]);
    ws::moves(&server, &env, &[completed("53"), completed("52")], None);
    let end = w.end(EXIT_WITHIN);
    assert_eq!(end.code(), Some(0), "{}", end.stderr);
    assert_eq!(
        end.stdout,
        [
            line(&env, "53", "COMPLETED", "0:0", "COMPLETED"),
            line(&env, "52", "COMPLETED", "0:0", "COMPLETED"),
        ]
        .concat()
    );
    // Nothing pending but job 54: once it is done, nothing to wait for.
    ws::moves(&server, &env, &[completed("54")], None);
    let out = run(env.cmd("rj-wait").timeout(EXIT_WITHIN));
    assert_eq!(check::ok(&out), "");
    assert_eq!(
        check::stderr(&out),
        format!(
            "rj-wait: nothing to wait for: no job of tag {} is pending\n",
            env.tag
        )
    );
}

#[test]
fn timeout_is_124_saying_what_is_still_pending() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    lease(&server, &env);
    ws::record(&server, &env, &["61", "62", "63"]);
    ws::moves(&server, &env, &[cancelled("62")], None);
    let out = run(env
        .cmd("rj-wait")
        .args(["--timeout", "1s", "61", "62", "63"])
        .timeout(EXIT_WITHIN));
    let err = check::fails(&out, 124, "rj-wait");
    assert_eq!(
        err,
        "rj-wait: error: timed out after 1s: 2 of 3 jobs still pending: 61, 63; \
         1 did not complete: 62 CANCELLED"
    );
    assert_eq!(
        check::stdout(&out),
        line(&env, "62", "CANCELLED", "0:15", "CANCELLED by 1000")
    );
}

#[test]
fn without_a_tracker_it_says_nothing_will_move() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    ws::record(&server, &env, &["71"]);
    let out = run(env
        .cmd("rj-wait")
        .args(["--timeout", "1s", "71"])
        .timeout(EXIT_WITHIN));
    check::code(&out, 124);
    let err = check::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "rj-wait: warning: no rj-track holds the lease of tag {} ({} does not exist): no job \
             will move",
            env.tag,
            env.key("TRACKER")
        )) && lines[0].ends_with("1 of 1 job still pending"),
        "{err}"
    );
    assert!(lines[1].starts_with("rj-wait: error: timed out"), "{err}");
    // With a tracker holding the lease: only the timeout.
    lease(&server, &env);
    let out = run(env
        .cmd("rj-wait")
        .args(["--timeout", "1s", "71"])
        .timeout(EXIT_WITHIN));
    check::fails(&out, 124, "rj-wait");
    // -q: only the error.
    server.cli(&["DEL", &env.key("TRACKER")]);
    let out = run(env
        .cmd("rj-wait")
        .args(["-q", "--timeout", "1s", "71"])
        .timeout(EXIT_WITHIN));
    check::fails(&out, 124, "rj-wait");
}

/// kill -9 of the server while rj-wait blocks, a restart from the AOF: rj-wait reconnects,
/// resumes from the entry it read last, and counts each job once.
#[test]
fn survives_a_redis_kill_and_restart() {
    let Some(mut server) = RedisServer::with(RedisOptions {
        persistent: true,
        ..RedisOptions::default()
    }) else {
        return;
    };
    let env = TestEnv::new(&server);
    lease(&server, &env);
    ws::record(&server, &env, &["81", "82", "83"]);
    let mut w = Waiting::start(&server, &env, &["--timeout", LIMIT, "81", "82", "83"]);
    ws::moves(&server, &env, &[completed("81")], None);
    w.lines(1);
    server.kill();
    std::thread::sleep(Duration::from_millis(700));
    server.restart();
    // Moved at once after the restart: before or after rj-wait is back, it must see it.
    ws::moves(&server, &env, &[failed("82")], None);
    w.lines(2);
    ws::moves(&server, &env, &[completed("83")], None);
    let end = w.end(EXIT_WITHIN);
    assert_eq!(end.code(), Some(3), "{}", end.stderr);
    assert_eq!(
        end.stdout,
        [
            line(&env, "81", "COMPLETED", "0:0", "COMPLETED"),
            line(&env, "82", "FAILED", "3:0", "FAILED"),
            line(&env, "83", "COMPLETED", "0:0", "COMPLETED"),
        ]
        .concat()
    );
    let err: Vec<&str> = end.stderr.lines().collect();
    assert_eq!(err.len(), 3, "{}", end.stderr);
    assert!(
        err[0].starts_with("rj-wait: warning: ") && err[0].ends_with("; reconnecting"),
        "{}",
        end.stderr
    );
    assert!(
        err[1].starts_with("rj-wait: reconnected to Redis at "),
        "{}",
        end.stderr
    );
    assert_eq!(
        err[2],
        "rj-wait: error: 1 of 3 jobs did not complete: 82 FAILED"
    );
}

/// Entries trimmed away before rj-wait read them (a tracker with a small --events-max, a reader
/// that lagged): it notices from the stream's deleted IDs and counts the jobs from the sets.
#[test]
fn a_stream_trimmed_below_its_position_falls_back_to_the_sets() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    lease(&server, &env);
    ws::record(&server, &env, &["91", "92", "93", "94"]);
    let mut w = Waiting::start(
        &server,
        &env,
        &[
            "--timeout",
            LIMIT,
            "--format",
            "json",
            "91",
            "92",
            "93",
            "94",
        ],
    );
    ws::moves(&server, &env, &[completed("91")], None);
    w.lines(1);
    // In one transaction: 92's and 93's events are trimmed away by 94's (MAXLEN 1) before
    // rj-wait is woken.
    ws::moves(
        &server,
        &env,
        &[completed("92"), failed("93"), completed("94")],
        Some(1),
    );
    let end = w.end(EXIT_WITHIN);
    assert_eq!(end.code(), Some(3), "{}", end.stderr);
    let got: Vec<(String, String, String)> = end
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("job_id"), s("set"), s("source"))
        })
        .collect();
    let want = |id: &str, set: &str, source: &str| (id.into(), set.into(), source.into());
    assert_eq!(
        got,
        [
            want("91", "COMPLETED", "event"),
            want("94", "COMPLETED", "event"),
            want("92", "COMPLETED", "sets"),
            want("93", "FAILED", "sets"),
        ]
    );
}

/// A real rj-track on the tag of `env`, quiet but for errors, with this package's tools first
/// on PATH as on a node where rj is installed; killed when the guard drops.
fn quiet_tracker(env: &TestEnv) -> crate::util::Guard {
    let track = env
        .std_command(crate::util::bin_path("rj-track"))
        .env("PATH", crate::util::path_with_rj())
        .args(["-q", "--interval", "1s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::util::Guard(track)
}

/// On the real Slurm testbed, with a real rj-track: the README's one-liner, and
/// share/examples/driver.sh (launch, rj-track, rj-wait, rj-last --all). An rj-track that writes
/// no events is followed through rj-wait's once-a-minute read of the sets, one that does at once.
#[test]
fn the_one_liner_and_the_driver_script_work_with_real_slurm() {
    let Some((_server, env, _node)) = crate::util::slurm::setup() else {
        return;
    };
    let driver = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("share/examples");
    let _track = quiet_tracker(&env);
    let one_liner = format!(
        "jid=$(rj-launch -- {}) && rj-wait --timeout 5m \"$jid\" && rj-last --job \"$jid\"",
        driver.join("job.sbatch").display()
    );
    let out = run(check::program(&env, "bash")
        .env("PATH", crate::util::path_with_rj())
        .args(["-c", &one_liner])
        .timeout(Duration::from_secs(300)));
    let text = check::ok(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{} ", env.tag)) && first.contains(" COMPLETED 0:0 COMPLETED"),
        "{text}"
    );
    assert!(
        text.contains(":finished"),
        "rj-last shows no keys of the job:\n{text}"
    );

    let out = run(check::program(&env, driver.join("driver.sh"))
        .env("PATH", crate::util::path_with_rj())
        .env("TIMEOUT", "5m")
        .args(["2", &driver.join("job.sbatch").display().to_string()])
        .timeout(Duration::from_secs(300)));
    let text = check::ok(&out);
    let done = text
        .lines()
        .filter(|l| l.starts_with(&format!("{} ", env.tag)) && l.ends_with(" COMPLETED"))
        .count();
    assert_eq!(done, 2, "{text}\n{}", check::stderr(&out));
    assert!(text.contains("finished"), "no rj-last --all table:\n{text}");
}

/// With a real rj-track on the Slurm testbed: rj-wait on a job that fails (exit 3) and one that
/// is cancelled while held exits 3 naming both; on a job that completes it exits 0; on a held
/// job nobody releases it gives up at --timeout with 124. Each line is the one rj-track prints.
#[test]
fn real_jobs_that_fail_are_cancelled_or_never_end() {
    let Some((_server, env, _node)) = crate::util::slurm::setup() else {
        return;
    };
    let launch = |sbatch: &[&str]| {
        let mut args = vec!["--", "-o", "/dev/null"];
        args.extend_from_slice(sbatch);
        env.run("rj-launch", &args).ok().trim().to_string()
    };
    let _track = quiet_tracker(&env);

    let good = launch(&["--wrap", "exit 0"]);
    let bad = launch(&["--wrap", "exit 3"]);
    let held = launch(&["--hold", "--wrap", "exit 0"]);
    crate::util::slurm::run("scancel", &[&held]);
    let out = run(env
        .cmd("rj-wait")
        .args(["--timeout", "4m", &bad, &held])
        .timeout(Duration::from_secs(300)));
    let err = check::fails(&out, 3, "rj-wait");
    assert!(err.contains(&bad) && err.contains(&held), "{err}");
    let text = check::stdout(&out);
    assert!(
        text.contains(&format!("{} {bad} FAILED 3:0", env.tag)),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} {held} CANCELLED", env.tag)),
        "{text}"
    );

    let out = env.run("rj-wait", &["--timeout", "4m", &good]).ok();
    assert!(
        out.contains(&format!("{} {good} COMPLETED 0:0", env.tag)),
        "{out}"
    );

    let never = launch(&["--hold", "--wrap", "exit 0"]);
    let out = run(env.cmd("rj-wait").args(["--timeout", "3s", &never]));
    let err = check::fails(&out, 124, "rj-wait");
    assert!(err.contains(&never), "{err}");
    crate::util::slurm::run("scancel", &[&never]);
}
