//! rj-cleanup (DESIGN §4): the six sets; --keys/--records only for jobs in T_ALL and never another
//! tag's; --dry-run; confirmation or --yes.
use crate::util::check::{self, all_keys, fails, ok, run, sadd};
use crate::util::{RedisServer, TestEnv};

/// Tag T with jobs 2 and 5 (and their keys and records), plus everything that must survive:
/// tag `T-2` whose keys `T-2-5:x` look like T's job 2 or 5 to a careless prefix match, a job of
/// T's shape that is not in T_ALL, and unrelated keys. Returns the keys that must survive.
fn seed(server: &RedisServer, env: &TestEnv) -> Vec<String> {
    let t = &env.tag;
    sadd(server, &env.key("ALL"), &["2", "5", "7_1", "30"]);
    sadd(server, &env.key("PENDING_AND_RUNNING"), &["5"]);
    sadd(server, &env.key("COMPLETED"), &["2"]);
    sadd(server, &env.key("FAILED"), &["7_1"]);
    sadd(server, &env.key("TIMEOUT"), &["0"]);
    sadd(server, &env.key("CANCELLED"), &["0"]);
    for k in [
        format!("{t}-2:a"),
        format!("{t}-2:b:c"),
        format!("{t}-5:a"),
        format!("{t}-7_1:a"),
        format!("{t}-30_1:task"), // a task of array job 30
        format!("{t}-30_2:task"),
    ] {
        server.cli(&["SET", &k, "v"]);
    }
    server.cli(&["HSET", &format!("{t}-5:h"), "f", "v"]);
    server.cli(&["HSET", &format!("{t}_JOB:2"), "state", "COMPLETED"]);
    server.cli(&["HSET", &format!("{t}_JOB:5"), "submitted", "x"]);
    // rj-track's memory of jobs Slurm did not know goes with the records.
    server.cli(&["HSET", &format!("{t}_TRACKER:unknown"), "5", "1700000000"]);
    let other = format!("{t}-2");
    let survivors = vec![
        format!("{other}-5:x"),
        format!("{other}-2:x"),
        format!("{other}_ALL"),
        format!("{other}_JOB:5"),
        format!("{other}_TRACKER:unknown"),
        format!("{t}-9:not_in_all"),
        format!("{t}-7_2:other_task_of_7"),
        format!("{t}-300_1:x"),
        format!("{t}_JOB:9"),
        format!("{t}-abc:x"),
        format!("{t}_TRACKER"),
        format!("{t}x-2:x"),
        "unrelated".to_string(),
    ];
    for k in &survivors {
        server.cli(&["SET", k, "keep"]);
    }
    let mut s = survivors;
    s.sort();
    s
}

fn sets(env: &TestEnv) -> Vec<String> {
    [
        "ALL",
        "PENDING_AND_RUNNING",
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "CANCELLED",
    ]
    .iter()
    .map(|s| env.key(s))
    .collect()
}

#[test]
fn default_deletes_the_six_sets_only() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let survivors = seed(&server, &env);
    let before = all_keys(&server);
    let out = run(&mut env.cmd("rj-cleanup"));
    ok(&out);
    let mut want: Vec<String> = before
        .into_iter()
        .filter(|k| !sets(&env).contains(k))
        .collect();
    want.sort();
    assert_eq!(all_keys(&server), want);
    assert!(survivors.iter().all(|k| want.contains(k)));
    // The summary is one note on stderr; stdout carries no data here.
    assert_eq!(check::stderr(&out).lines().count(), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn keys_and_records_delete_only_jobs_in_all_never_another_tags() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let survivors = seed(&server, &env);
    ok(&run(env.cmd("rj-cleanup").args(["--keys", "--yes"])));
    let t = &env.tag;
    let mut want = survivors.clone();
    want.push(format!("{t}_JOB:2"));
    want.push(format!("{t}_JOB:5"));
    want.push(format!("{t}_TRACKER:unknown"));
    want.sort();
    assert_eq!(all_keys(&server), want, "--keys keeps the job records");

    // --records alone, on a fresh seed: data keys stay, records of T_ALL's jobs go.
    server.cli(&["FLUSHALL"]);
    seed(&server, &env);
    ok(&run(env.cmd("rj-cleanup").args(["--records", "--yes"])));
    let mut want = survivors.clone();
    for k in [
        "-2:a",
        "-2:b:c",
        "-5:a",
        "-5:h",
        "-7_1:a",
        "-30_1:task",
        "-30_2:task",
    ] {
        want.push(format!("{t}{k}"));
    }
    want.sort();
    assert_eq!(all_keys(&server), want);

    server.cli(&["FLUSHALL"]);
    seed(&server, &env);
    ok(&run(env.cmd("rj-cleanup").args([
        "--keys",
        "--records",
        "-y",
    ])));
    assert_eq!(all_keys(&server), survivors);
}

#[test]
fn keys_are_found_by_scan_and_unlinked_in_batches() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let mut c = server.client();
    let mut p = redis::pipe();
    let ids: Vec<String> = (1..=1500).map(|i| i.to_string()).collect();
    p.cmd("SADD").arg(env.key("ALL")).arg(&ids).ignore();
    for id in &ids {
        p.cmd("SET")
            .arg(format!("{}-{id}:k", env.tag))
            .arg(1)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    server.cli(&["SET", "unrelated", "keep"]);
    server.cli(&["CONFIG", "RESETSTAT"]);
    ok(&run(env.cmd("rj-cleanup").args(["--keys", "--yes"])));
    assert_eq!(check::calls(&server, "keys"), 0);
    assert!(check::calls(&server, "unlink") >= 2, "batches of UNLINK");
    assert_eq!(all_keys(&server), ["unrelated"]);
}

#[test]
fn dry_run_lists_and_deletes_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    let before = all_keys(&server);
    let t = &env.tag;
    let out = run(env
        .cmd("rj-cleanup")
        .args(["--keys", "--records", "--dry-run"]));
    let mut listed: Vec<String> = ok(&out).lines().map(str::to_string).collect();
    listed.sort();
    let mut want: Vec<String> = sets(&env);
    for k in [
        "-2:a",
        "-2:b:c",
        "-5:a",
        "-5:h",
        "-7_1:a",
        "-30_1:task",
        "-30_2:task",
        "_JOB:2",
        "_JOB:5",
        "_TRACKER:unknown",
    ] {
        want.push(format!("{t}{k}"));
    }
    want.sort();
    assert_eq!(listed, want);
    assert!(check::stderr(&out).contains("would delete"));
    assert_eq!(all_keys(&server), before);

    let out = ok(&run(env.cmd("rj-cleanup").arg("-n")));
    let mut listed: Vec<String> = out.lines().map(str::to_string).collect();
    listed.sort();
    let mut six = sets(&env);
    six.sort();
    assert_eq!(listed, six);
    assert_eq!(all_keys(&server), before);
}

#[test]
fn without_terminal_and_yes_refuses_and_deletes_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    let before = all_keys(&server);
    for flags in [&["--keys"][..], &["--records"], &["--keys", "--records"]] {
        let out = run(env.cmd("rj-cleanup").args(flags).write_stdin("y\n"));
        let line = fails(&out, 2, "rj-cleanup");
        assert!(line.contains("--yes"), "{line}");
        assert_eq!(all_keys(&server), before, "{flags:?}");
    }
}
