//! rj-cleanup (ARCHITECTURE.md §4): the six sets; --keys only for jobs in T_ALL, --records every job hash of
//! the tag, never another tag's; key names as bytes; --dry-run; confirmation or --yes.
use crate::util::check::{self, all_keys, ok, run, sadd};
use crate::util::{self, RedisServer, TestEnv};

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
    // A record of a job no longer in T_ALL (a script removed it): still the tag's own key.
    server.cli(&["HSET", &format!("{t}_JOB:9"), "state", "FAILED"]);
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
    util::SETS.iter().map(|s| env.key(s)).collect()
}

/// The data keys [`seed`] writes for T's jobs in T_ALL, after the tag: what --keys deletes.
const JOB_KEYS: [&str; 7] = [
    "-2:a",
    "-2:b:c",
    "-5:a",
    "-5:h",
    "-7_1:a",
    "-30_1:task",
    "-30_2:task",
];

/// The job records and rj-track's memory [`seed`] writes, after the tag: what --records deletes.
const RECORDS: [&str; 4] = ["_JOB:2", "_JOB:5", "_JOB:9", "_TRACKER:unknown"];

/// `suffixes` after the tag of `env`.
fn of_tag(env: &TestEnv, suffixes: &[&str]) -> Vec<String> {
    suffixes.iter().map(|k| format!("{}{k}", env.tag)).collect()
}

#[test]
fn default_deletes_the_six_sets_only() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let survivors = seed(&server, &env);
    let before = all_keys(&server);
    let out = env.run("rj-cleanup", &[]);
    out.ok();
    let mut want: Vec<String> = before
        .into_iter()
        .filter(|k| !sets(&env).contains(k))
        .collect();
    want.sort();
    assert_eq!(all_keys(&server), want);
    assert!(survivors.iter().all(|k| want.contains(k)));
    // The summary is one note on stderr; stdout carries no data here.
    assert_eq!(out.stderr().lines().count(), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn keys_and_records_delete_only_jobs_in_all_never_another_tags() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let survivors = seed(&server, &env);
    env.run("rj-cleanup", &["--keys", "--yes"]).ok();
    let mut want = survivors.clone();
    want.extend(of_tag(&env, &RECORDS));
    want.sort();
    assert_eq!(all_keys(&server), want, "--keys keeps the job records");

    // --records alone, on a fresh seed: data keys stay, records of T_ALL's jobs go.
    server.cli(&["FLUSHALL"]);
    seed(&server, &env);
    env.run("rj-cleanup", &["--records", "--yes"]).ok();
    let mut want = survivors.clone();
    want.extend(of_tag(&env, &JOB_KEYS));
    want.sort();
    assert_eq!(all_keys(&server), want);

    server.cli(&["FLUSHALL"]);
    seed(&server, &env);
    env.run("rj-cleanup", &["--keys", "--records", "-y"]).ok();
    assert_eq!(all_keys(&server), survivors);
}

#[test]
fn keys_are_found_by_scan_and_unlinked_in_batches() {
    let Some((server, env)) = util::redis() else {
        return;
    };
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
    env.run("rj-cleanup", &["--keys", "--yes"]).ok();
    assert_eq!(check::calls(&server, "keys"), 0);
    assert!(check::calls(&server, "unlink") >= 2, "batches of UNLINK");
    assert_eq!(all_keys(&server), ["unrelated"]);
}

#[test]
fn dry_run_lists_and_deletes_nothing() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed(&server, &env);
    let before = all_keys(&server);
    let out = env.run("rj-cleanup", &["--keys", "--records", "--dry-run"]);
    let mut listed: Vec<String> = out.ok().lines().map(str::to_string).collect();
    listed.sort();
    let mut want: Vec<String> = sets(&env);
    want.extend(of_tag(&env, &JOB_KEYS));
    want.extend(of_tag(&env, &RECORDS));
    want.sort();
    assert_eq!(listed, want);
    assert!(out.stderr().contains("would delete"));
    assert_eq!(all_keys(&server), before);

    let out = env.run("rj-cleanup", &["-n"]).ok();
    let mut listed: Vec<String> = out.lines().map(str::to_string).collect();
    listed.sort();
    let mut six = sets(&env);
    six.sort();
    assert_eq!(listed, six);
    assert_eq!(all_keys(&server), before);
}

#[test]
fn without_terminal_and_yes_refuses_and_deletes_nothing() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed(&server, &env);
    let before = all_keys(&server);
    for flags in [&["--keys"][..], &["--records"], &["--keys", "--records"]] {
        let out = run(env.cmd("rj-cleanup").args(flags).write_stdin("y\n"));
        let line = out.fails(2);
        assert!(line.contains("--yes"), "{line}");
        assert_eq!(all_keys(&server), before, "{flags:?}");
    }
}

/// Every key of the server as bytes: `all_keys` cannot hold names that are not UTF-8.
fn all_raw_keys(server: &RedisServer) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.client())
        .unwrap();
    v.sort();
    v
}

/// A data key whose name is not UTF-8 neither stops the cleanup nor survives it: --dry-run lists
/// it with U+FFFD, --keys deletes exactly those bytes (not a lossy spelling of them), and the
/// same name under a job that is not in T_ALL, or under another tag, stays.
#[test]
fn key_names_that_are_not_utf8_are_deleted_exactly() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["7", "30"]);
    let raw = |s: &str, tail: &[u8]| [s.as_bytes(), tail].concat();
    let gone = [
        raw(&format!("{t}-7:bad"), b"\xffname"),
        raw(&format!("{t}-7:ok"), b""),
        raw(&format!("{t}-30_1:"), b"\xfe"),
        raw(&format!("{t}_JOB:7"), b"\xff"),
    ];
    let kept = [
        raw(&format!("{t}-8:bad"), b"\xffname"),
        raw(&format!("{t}-2-7:bad"), b"\xffname"),
        // What a lossy spelling of the deleted key would have hit instead.
        raw(&format!("{t}-8:bad\u{fffd}name"), b""),
        raw("unrelated", b"\xff"),
    ];
    let mut c = server.client();
    let mut p = redis::pipe();
    for k in gone.iter().chain(&kept) {
        p.cmd("SET").arg(k).arg("v").ignore();
    }
    p.query::<()>(&mut c).unwrap();

    let out = env.run("rj-cleanup", &["--keys", "--records", "--dry-run"]);
    let mut listed: Vec<String> = out.ok().lines().map(str::to_string).collect();
    listed.sort();
    let mut want: Vec<String> = sets(&env);
    want.extend([
        format!("{t}-7:bad\u{fffd}name"),
        format!("{t}-7:ok"),
        format!("{t}-30_1:\u{fffd}"),
        format!("{t}_JOB:7\u{fffd}"),
    ]);
    want.sort();
    assert_eq!(listed, want);
    assert!(
        out.stderr().contains("3 data keys of 2 jobs, 1 job record"),
        "{}",
        out.stderr()
    );

    let out = env.run("rj-cleanup", &["--keys", "--records", "--yes"]);
    out.ok();
    assert!(
        out.stderr().contains("(5 keys existed)"),
        "{}",
        out.stderr()
    );
    let mut want: Vec<Vec<u8>> = kept.to_vec();
    want.sort();
    assert_eq!(all_raw_keys(&server), want);
}

/// Once the six sets are gone (a plain rj-cleanup, or the original script's DEL of the sets), the
/// job hashes `T_JOB:<id>` are still found by their own prefix and removed by --records; no key
/// of a tag with a near-miss name is touched, and the data keys (whose owner only T_ALL can tell)
/// stay.
#[test]
fn records_are_found_after_the_sets_are_gone() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    for delete_sets in ["rj-cleanup", "redis-cli DEL"] {
        server.cli(&["FLUSHALL"]);
        let survivors = seed(&server, &env);
        // Tags whose names start like T's records: `T_JOB` (its records are `T_JOB_JOB:<id>`),
        // `T_x`, `Tx`; and a key of no tag one letter past T's pattern.
        let near = [
            format!("{t}_JOB_JOB:2"),
            format!("{t}_JOB_ALL"),
            format!("{t}_JOB-2:x"),
            format!("{t}_JOB_TRACKER:unknown"),
            format!("{t}_x_JOB:2"),
            format!("{t}x_JOB:2"),
            format!("{t}_JOBS:2"),
            format!("{t}_JOB"),
        ];
        for k in &near {
            server.cli(&["HSET", k, "state", "COMPLETED"]);
        }
        if delete_sets == "rj-cleanup" {
            env.run("rj-cleanup", &[]).ok();
        } else {
            let mut args = vec!["DEL".to_string()];
            args.extend(sets(&env));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            server.cli(&args);
        }
        let before = all_keys(&server);
        assert!(!before.contains(&env.key("ALL")), "{delete_sets}");

        let out = env.run("rj-cleanup", &["--records", "--dry-run"]);
        let mut listed: Vec<String> = out.ok().lines().map(str::to_string).collect();
        listed.sort();
        let records = of_tag(&env, &RECORDS);
        let mut want = sets(&env);
        want.extend(records.iter().cloned());
        want.sort();
        assert_eq!(listed, want, "{delete_sets}");
        assert_eq!(all_keys(&server), before, "--dry-run deletes nothing");

        env.run("rj-cleanup", &["--records", "--yes"]).ok();
        let mut want: Vec<String> = before
            .iter()
            .filter(|k| !records.contains(k))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(all_keys(&server), want, "{delete_sets}");
        assert!(survivors.iter().all(|k| want.contains(k)));
        assert!(near.iter().all(|k| want.contains(k)));

        // Without T_ALL no data key can be told from another tag's: --keys leaves them all.
        env.run("rj-cleanup", &["--keys", "--yes"]).ok();
        assert_eq!(all_keys(&server), want, "{delete_sets}");
    }
}

/// The tag's event stream and rj-track's tick figures are records of the tag too: --records
/// deletes them with TAG_TRACKER:unknown (and --dry-run lists them); a plain cleanup keeps them,
/// and neither touches the lease TAG_TRACKER nor another tag's stream.
#[test]
fn records_take_the_event_stream_and_the_tick_figures() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    let t = &env.tag;
    seed(&server, &env);
    server.cli(&[
        "XADD",
        &env.key("EVENTS"),
        "*",
        "job",
        "5",
        "set",
        "PENDING_AND_RUNNING",
    ]);
    server.cli(&[
        "HSET",
        &env.key("TRACKER:tick"),
        "at",
        "1700000000",
        "moved",
        "0",
    ]);
    let other = format!("{t}-2");
    server.cli(&["XADD", &format!("{other}_EVENTS"), "*", "job", "5"]);
    server.cli(&["HSET", &format!("{other}_TRACKER:tick"), "at", "1"]);
    let tag_keys = [
        env.key("EVENTS"),
        env.key("TRACKER:tick"),
        env.key("TRACKER:unknown"),
    ];

    ok(&run(&mut env.cmd("rj-cleanup")));
    let before = all_keys(&server);
    assert!(tag_keys.iter().all(|k| before.contains(k)), "{before:?}");

    let out = run(env.cmd("rj-cleanup").args(["--records", "--dry-run"]));
    let listed: Vec<String> = ok(&out).lines().map(str::to_string).collect();
    for k in &tag_keys {
        assert!(listed.contains(k), "{k} not listed: {listed:?}");
    }
    assert!(
        check::stderr(&out).contains(&env.key("EVENTS")),
        "{}",
        check::stderr(&out)
    );
    assert_eq!(all_keys(&server), before, "--dry-run deletes nothing");

    ok(&run(env.cmd("rj-cleanup").args(["--records", "--yes"])));
    let after = all_keys(&server);
    for k in &tag_keys {
        assert!(!after.contains(k), "{k} left: {after:?}");
    }
    for k in [
        env.key("TRACKER"),
        format!("{other}_EVENTS"),
        format!("{other}_TRACKER:tick"),
    ] {
        assert!(after.contains(&k), "{k} deleted: {after:?}");
    }
}
