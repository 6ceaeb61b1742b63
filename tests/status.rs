//! rj-status (ARCHITECTURE.md §4): numeric order, --state, --count, --long, every --format, SSCAN.
use crate::util::check::{self, calls, run, sadd};
use crate::util::{self, seed, RedisServer, TestEnv};

#[test]
fn human_lists_every_set_in_numeric_order() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    let out = env.run("rj-status", &[]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    let words = |i: usize| -> Vec<&str> { lines[i].split_whitespace().collect() };
    assert_eq!(
        words(0),
        [
            &env.key("ALL") as &str,
            "6",
            "9",
            "10",
            "10_1",
            "10_2",
            "77",
            "100"
        ]
    );
    assert_eq!(
        words(1),
        [&env.key("PENDING_AND_RUNNING") as &str, "2", "10_2", "100"]
    );
    assert_eq!(words(2), [&env.key("COMPLETED") as &str, "2", "9", "10"]);
    assert_eq!(words(3), [&env.key("FAILED") as &str, "1", "10_1"]);
    assert_eq!(words(4), [&env.key("TIMEOUT") as &str, "0"]);
    assert_eq!(words(5), [&env.key("CANCELLED") as &str, "1", "77"]);
}

#[test]
fn plain_is_one_id_per_line_numeric_order() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    let out = env.run("rj-status", &["--format", "plain"]).ok();
    assert_eq!(out, "9\n10\n10_1\n10_2\n77\n100\n");
    let out = env
        .run(
            "rj-status",
            &["--format", "plain", "--state", "PENDING_AND_RUNNING"],
        )
        .ok();
    assert_eq!(out, "10_2\n100\n");
}

#[test]
fn json_with_repeated_state_and_aliases() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    let v = env
        .run(
            "rj-status",
            &[
                "--format",
                "json",
                "--state",
                "cancelled",
                "--state",
                "COMPLETED",
                "--state",
                "COMPLETED",
            ],
        )
        .json();
    assert_eq!(v["tag"], env.tag.as_str());
    let sets = v["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{v}");
    assert_eq!(sets[0]["set"], "COMPLETED");
    assert_eq!(sets[0]["key"], env.key("COMPLETED").as_str());
    assert_eq!(sets[0]["count"], 2);
    assert_eq!(sets[0]["ids"], serde_json::json!(["9", "10"]));
    assert_eq!(sets[1]["set"], "CANCELLED");
    assert_eq!(sets[1]["ids"], serde_json::json!(["77"]));
    // RUNNING / PENDING name the one live set.
    let v = env
        .run("rj-status", &["--format", "json", "--state", "running"])
        .json();
    assert_eq!(v["sets"][0]["key"], env.key("PENDING_AND_RUNNING").as_str());
    assert_eq!(v["sets"][0]["ids"], serde_json::json!(["10_2", "100"]));
    // All six by default, in the documented order.
    let v = env.run("rj-status", &["--format", "json"]).json();
    let names: Vec<&str> = v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["set"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ALL",
            "PENDING_AND_RUNNING",
            "COMPLETED",
            "FAILED",
            "TIMEOUT",
            "CANCELLED"
        ]
    );
}

#[test]
fn unknown_state_is_usage_error() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let out = env.run("rj-status", &["--state", "DONE"]);
    out.code(2);
    assert!(out.stderr().contains("unknown state \"DONE\""));
    assert!(out.stdout.is_empty());
}

#[test]
fn count_reads_no_ids() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let v = env
        .run("rj-status", &["--count", "--format", "json"])
        .json();
    let counts: Vec<u64> = v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(s.get("ids").is_none(), "{s}");
            s["count"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(counts, [6, 2, 2, 1, 0, 1]);
    assert_eq!(calls(&server, "sscan"), 0);
    assert_eq!(calls(&server, "smembers"), 0);
    assert_eq!(calls(&server, "scard"), 6);

    let out = env
        .run(
            "rj-status",
            &[
                "--count", "--format", "plain", "--state", "FAILED", "--state", "ALL",
            ],
        )
        .ok();
    assert_eq!(out, "6\n1\n");
    let out = env.run("rj-status", &["--count", "--format", "csv"]).ok();
    let mut r = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(r.headers().unwrap(), vec!["set", "key", "count"]);
    let rows: Vec<(String, String, u64)> = r.deserialize().map(Result::unwrap).collect();
    assert_eq!(
        rows[1],
        (
            "PENDING_AND_RUNNING".into(),
            env.key("PENDING_AND_RUNNING"),
            2
        )
    );
    assert_eq!(rows.len(), 6);
}

#[test]
fn csv_and_tsv_are_set_job_id_rows() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    for (format, delim) in [("csv", b','), ("tsv", b'\t')] {
        let out = env
            .run(
                "rj-status",
                &["--format", format, "--state", "ALL", "--state", "FAILED"],
            )
            .ok();
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delim)
            .from_reader(out.as_bytes());
        assert_eq!(r.headers().unwrap(), vec!["set", "job_id"]);
        let rows: Vec<(String, String)> = r.deserialize().map(Result::unwrap).collect();
        let want: Vec<(String, String)> = ["9", "10", "10_1", "10_2", "77", "100"]
            .iter()
            .map(|id| ("ALL".to_string(), id.to_string()))
            .chain([("FAILED".to_string(), "10_1".to_string())])
            .collect();
        assert_eq!(rows, want, "{format}");
    }
    // An empty selection still has its header.
    let out = env
        .run("rj-status", &["--format", "csv", "--state", "TIMEOUT"])
        .ok();
    assert_eq!(out, "set,job_id\n");
}

#[test]
fn long_joins_the_job_hash() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    server.cli(&[
        "HSET",
        &env.key("JOB:10_1"),
        "state",
        "OUT_OF_MEMORY",
        "exit_code",
        "0:125",
        "elapsed",
        "00:01:02",
        "nodes",
        "node[01-02]",
        "partition",
        "debug",
        "name",
        "train, big",
    ]);
    server.cli(&[
        "HSET",
        &env.key("JOB:9"),
        "state",
        "COMPLETED",
        "exit_code",
        "0:0",
        "cluster",
        "clusterA",
    ]);
    let v = env.run("rj-status", &["--long", "--format", "json"]).json();
    let rows = v.as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["9", "10", "10_1", "10_2", "77", "100"],
        "each job once"
    );
    let sets: Vec<&str> = rows.iter().map(|r| r["set"].as_str().unwrap()).collect();
    assert_eq!(
        sets,
        [
            "COMPLETED",
            "COMPLETED",
            "FAILED",
            "PENDING_AND_RUNNING",
            "CANCELLED",
            "PENDING_AND_RUNNING"
        ],
        "the job's own set, not ALL"
    );
    let r = &rows[2];
    assert_eq!(r["state"], "OUT_OF_MEMORY");
    assert_eq!(r["exit_code"], "0:125");
    assert_eq!(r["elapsed"], "00:01:02");
    assert_eq!(r["nodes"], "node[01-02]");
    assert_eq!(r["partition"], "debug");
    assert_eq!(r["name"], "train, big");
    assert_eq!(rows[0]["cluster"], "clusterA");
    assert_eq!(rows[1]["state"], "", "no record: empty fields");

    let out = env
        .run(
            "rj-status",
            &["--long", "--format", "csv", "--state", "FAILED"],
        )
        .ok();
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let h = r.headers().unwrap().clone();
    let rec = r.records().next().unwrap().unwrap();
    let get = |name: &str| rec.get(h.iter().position(|x| x == name).unwrap()).unwrap();
    assert_eq!(get("job_id"), "10_1");
    assert_eq!(get("name"), "train, big");
    assert_eq!(get("nodes"), "node[01-02]");

    let out = env.run("rj-status", &["--long", "--state", "FAILED"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("JOBID"), "{out}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cells[..6],
        [
            "10_1",
            "FAILED",
            "OUT_OF_MEMORY",
            "0:125",
            "00:01:02",
            "node[01-02]"
        ]
    );
    let out = env
        .run(
            "rj-status",
            &["--long", "--format", "plain", "--state", "ALL"],
        )
        .ok();
    assert_eq!(out, "9\n10\n10_1\n10_2\n77\n100\n");
}

/// The IDs and records are read on rj-status's own connection, scanned in place; through
/// Sentinel, which only the Store's connection follows, on that one. Both give the same bytes,
/// also for a record larger than the own connection's buffer, odd bytes in a field and text
/// that is no job ID.
#[test]
fn the_own_connection_and_the_stores_list_the_same_bytes() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    sadd(&server, &env.key("ALL"), &["123_[5-9]", "007"]);
    sadd(&server, &env.key("FAILED"), &["123_[5-9]", "007"]);
    let big = "n".repeat(600_000);
    let mut c = server.client();
    redis::cmd("HSET")
        .arg(env.job("10_1"))
        .arg("name")
        .arg(&big)
        .arg("state")
        .arg("FAILED")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("HSET")
        .arg(env.job("9"))
        .arg("name")
        .arg(&b"tab\there \"q\" \xff"[..])
        .arg("cluster")
        .arg("c1")
        .query::<()>(&mut c)
        .unwrap();
    let sentinel = crate::util::sentinel_support::SentinelProc::start("st", server.port, 1, "");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redis.json");
    std::fs::write(
        &config,
        serde_json::json!({"sentinels": [sentinel.addr()], "master": "st"}).to_string(),
    )
    .unwrap();
    util::set_mode(&config, 0o600);
    let via = TestEnv {
        dir,
        tag: env.tag.clone(),
        config,
        port: 0,
    };
    for args in [
        &["--long", "--format", "json"][..],
        &["--long", "--format", "tsv", "--state", "FAILED"],
        &["--long"],
        &["--format", "plain"],
        &["--format", "json"],
        &[],
    ] {
        let direct = env.run("rj-status", args).ok();
        assert_eq!(via.run("rj-status", args).ok(), direct, "{args:?}");
        if args.len() == 3 {
            let v: serde_json::Value = serde_json::from_str(&direct).unwrap();
            let rows = v.as_array().unwrap();
            let ids: Vec<&str> = rows.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
            assert_eq!(
                ids,
                ["007", "9", "10", "10_1", "10_2", "77", "100", "123_[5-9]"],
                "`007` is job 7"
            );
            assert_eq!(rows[3]["name"].as_str().unwrap().len(), big.len());
            assert_eq!(rows[1]["name"], "tab\there \"q\" \u{fffd}");
        }
    }
}

/// 20 000 IDs written with one pipeline; rj-status reads them with SSCAN, in order.
#[test]
fn many_ids_stream_via_sscan() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let n = 20_000u64;
    seed::many_ids(&server, &env, &["ALL", "PENDING_AND_RUNNING"], 1..=n);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = env
        .run("rj-status", &["--format", "plain", "--state", "ALL"])
        .ok();
    let ids: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>());
    assert!(calls(&server, "sscan") > 1, "read in SSCAN steps");
    assert_eq!(calls(&server, "smembers"), 0);
    assert_eq!(calls(&server, "keys"), 0);

    // `| head`: a closed stdout is success, with nothing on stderr.
    let (first, out) = check::head_1(&env, "rj-status", &[]);
    assert!(first.starts_with(&env.key("ALL")), "{first}");
    assert_eq!(out.status.code(), Some(0), "{}", check::stderr(&out));
    assert!(out.stderr.is_empty(), "{}", check::stderr(&out));
}

#[test]
fn empty_tag_shows_zero_counts() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let res = env.run("rj-status", &[]);
    let out = res.ok();
    assert_eq!(out.lines().count(), 6);
    assert!(
        out.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("0")),
        "{out}"
    );
    let err = res.stderr();
    assert!(
        err.lines().count() == 1
            && err.contains(&format!("no jobs under tag {}", env.tag))
            && err.contains("is the tag right?"),
        "{err}"
    );
    assert_eq!(env.run("rj-status", &["-q"]).stderr(), "");
    assert_eq!(env.run("rj-status", &["--format", "plain"]).ok(), "");
    // A tag with jobs, none of them in the sets asked for, is not worth a note.
    sadd(&server, &env.key("ALL"), &["7"]);
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["7"]);
    let res = env.run("rj-status", &["--state", "FAILED"]);
    res.ok();
    assert_eq!(res.stderr(), "");
}

#[test]
fn long_tsv_keeps_columns_when_a_field_holds_a_tab() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("ALL"), &["3"]);
    sadd(&server, &env.key("COMPLETED"), &["3"]);
    server.cli(&[
        "HSET",
        &env.key("JOB:3"),
        "name",
        "a\tb\nc",
        "state",
        "COMPLETED",
    ]);
    let out = env.run("rj-status", &["--long", "--format", "tsv"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split('\t').collect();
    let row: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(header.len(), row.len(), "{out}");
    let name = header.iter().position(|h| *h == "name").unwrap();
    assert_eq!(row[name], "a b c");
    assert_eq!(row[0], "3");
}

/// Colour only on a terminal, and never with NO_COLOR or a data format.
#[test]
fn colour_only_on_a_terminal_without_no_color() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    if which::which("script").is_err() {
        crate::util::missing("script (util-linux), to give rj-status a terminal");
        return;
    }
    let env = TestEnv::new(&server);
    sadd(&server, &env.key("ALL"), &["1", "2"]);
    sadd(&server, &env.key("COMPLETED"), &["1"]);
    sadd(&server, &env.key("FAILED"), &["2"]);
    let in_pty = |args: &str, no_color: bool| {
        let line = format!("{} {args}", crate::util::bin_path("rj-status").display());
        let mut cmd = check::program(&env, "script");
        cmd.args(["-qec", &line, "/dev/null"]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        run(&mut cmd).stdout().to_string()
    };
    let green = "\x1b[32m";
    let tty = in_pty("", false);
    assert!(tty.contains(green), "{tty:?}");
    assert!(tty.contains("\x1b[31m"), "{tty:?}");
    for plain in [in_pty("", true), in_pty("--format csv", false)] {
        assert!(!plain.contains('\x1b'), "{plain:?}");
    }
    let piped = env.run("rj-status", &[]).ok();
    assert!(!piped.contains('\x1b'), "{piped:?}");
}

#[test]
fn a_set_of_the_wrong_type_is_bad_data_naming_the_key() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // A script wrote the tag's FAILED set as a string.
    server.cli(&["SET", &env.key("FAILED"), "oops"]);
    sadd(&server, &env.key("ALL"), &["5"]);
    let out = env.run("rj-status", &[]);
    let line = out.fails(65);
    assert!(
        line.contains(&env.key("FAILED")) && line.contains("WRONGTYPE"),
        "{line}"
    );
    assert_eq!(server.cli(&["GET", &env.key("FAILED")]).trim(), "oops");
}

#[test]
fn a_job_record_of_the_wrong_type_is_bad_data_naming_that_key() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("ALL"), &["1", "2"]);
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["1", "2"]);
    server.cli(&["SET", &env.job("2"), "str"]);
    let out = env.run("rj-status", &["--long"]);
    let line = out.fails(65);
    assert!(
        line.contains(&format!("at {}:", env.job("2"))) && line.contains("WRONGTYPE"),
        "{line}"
    );
    assert!(!line.contains("Pipeline"), "client internals: {line}");
}

// ---- the one-set-per-job rule: the warning of a listing, --check, --repair ------------------

/// The six sets as they are in Redis, each sorted as strings (for exact comparisons).
fn six(server: &RedisServer, env: &TestEnv) -> Vec<Vec<String>> {
    util::SETS
        .iter()
        .map(|s| server.smembers(&env.key(s)))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Each kind of violation, written with redis-cli as a broken script or an eviction leaves it:
/// 2 and 5 in T_ALL only (their state set lost), 3 in pending and COMPLETED, 4 pending but not in
/// T_ALL (T_ALL lost, then re-created by a later recording), 6 in two final sets and not in T_ALL;
/// 1 and 100 are fine.
fn seed_broken(server: &RedisServer, env: &TestEnv) {
    sadd(server, &env.key("ALL"), &["1", "2", "3", "5", "100"]);
    sadd(server, &env.key("PENDING_AND_RUNNING"), &["1", "3", "4"]);
    sadd(server, &env.key("COMPLETED"), &["3", "6", "100"]);
    sadd(server, &env.key("FAILED"), &["6"]);
}

/// What `--check` prints for `seed_broken`, with the real key names.
fn broken_lines(env: &TestEnv) -> String {
    let k = |s: &str| env.key(s);
    format!(
        "2: in {all} but in no state set\n\
         3: in {p} and {c}\n\
         4: in {p} but not in {all}\n\
         5: in {all} but in no state set\n\
         6: in {c} and {f} but not in {all}\n\
         6: in {c} and {f}\n",
        all = k("ALL"),
        p = k("PENDING_AND_RUNNING"),
        c = k("COMPLETED"),
        f = k("FAILED"),
    )
}

#[test]
fn check_prints_one_line_per_violation_and_exits_65() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed_broken(&server, &env);
    let out = env.run("rj-status", &["--check"]);
    let line = out.fails(65);
    assert_eq!(out.stdout(), broken_lines(&env));
    for part in [
        "2 IDs in a state set but not in",
        "(e.g. 4, 6)",
        "2 IDs in two or more state sets (e.g. 3, 6)",
        "2 IDs in ",
        "but in no state set (e.g. 2, 5)",
        "--check --repair",
    ] {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }

    let out = env.run("rj-status", &["--check", "--format", "json"]);
    out.code(65);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tag"], env.tag.as_str());
    assert_eq!(v["consistent"], false);
    assert_eq!(v["changes"], serde_json::json!([]));
    let got: Vec<(String, String, Vec<String>)> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["job_id"].as_str().unwrap().to_string(),
                x["kind"].as_str().unwrap().to_string(),
                serde_json::from_value(x["sets"].clone()).unwrap(),
            )
        })
        .collect();
    let want =
        |id: &str, kind: &str, sets: &[&str]| (id.to_string(), kind.to_string(), strings(sets));
    assert_eq!(
        got,
        [
            want("2", "no_set", &[]),
            want("3", "several_sets", &["PENDING_AND_RUNNING", "COMPLETED"]),
            want("4", "not_in_all", &["PENDING_AND_RUNNING"]),
            want("5", "no_set", &[]),
            want("6", "not_in_all", &["COMPLETED", "FAILED"]),
            want("6", "several_sets", &["COMPLETED", "FAILED"]),
        ]
    );

    for (format, delim) in [("csv", b','), ("tsv", b'\t')] {
        let out = env.run("rj-status", &["--check", "--format", format]);
        out.code(65);
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delim)
            .from_reader(&out.stdout[..]);
        assert_eq!(
            r.headers().unwrap(),
            vec!["job_id", "kind", "sets", "message"]
        );
        let rows: Vec<(String, String, String, String)> =
            r.deserialize().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 6, "{format}");
        assert_eq!(
            (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].2.as_str()),
            ("3", "several_sets", "PENDING_AND_RUNNING COMPLETED"),
            "{format}"
        );
    }
    let out = env.run("rj-status", &["--check", "--format", "plain"]);
    out.code(65);
    assert_eq!(out.stdout(), "2\n3\n4\n5\n6\n", "each ID once");
}

#[test]
fn check_of_consistent_sets_exits_0_and_says_so() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // An empty tag keeps the rule too.
    let out = env.run("rj-status", &["--check"]);
    assert_eq!(out.ok(), "");
    seed::small_tag(&server, &env);
    let out = env.run("rj-status", &["--check"]);
    assert_eq!(out.ok(), "");
    let err = out.stderr();
    assert_eq!(
        err,
        format!(
            "rj-status: the sets of tag {} are consistent: 6 jobs in {}, each in exactly one state set\n",
            env.tag,
            env.key("ALL")
        )
    );
    assert_eq!(env.run("rj-status", &["--check", "-q"]).stderr(), "");
    let out = env.run("rj-status", &["--check", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.ok()).unwrap();
    assert_eq!(v["consistent"], true);
    assert_eq!(v["violations"], serde_json::json!([]));
    let out = env.run("rj-status", &["--check", "--format", "csv"]);
    assert_eq!(out.ok(), "job_id,kind,sets,message\n");
    // --check reads and writes nothing else: the sets are as they were.
    assert_eq!(
        six(&server, &env),
        [
            strings(&["10", "100", "10_1", "10_2", "77", "9"]),
            strings(&["100", "10_2"]),
            strings(&["10", "9"]),
            strings(&["10_1"]),
            vec![],
            strings(&["77"]),
        ]
    );
}

#[test]
fn check_options_are_usage_errors_where_they_make_no_sense() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    for args in [
        &["--repair"][..],
        &["--check", "--count"],
        &["--check", "--long"],
        &["--check", "--state", "FAILED"],
    ] {
        let out = run(env.cmd("rj-status").args(args));
        out.fails(2);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Every listing form still prints the sets as they are, and warns once on stderr.
#[test]
fn a_listing_of_broken_sets_warns_in_every_format() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed_broken(&server, &env);
    let warned = |out: &std::process::Output| {
        let err = check::stderr(out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one warning line: {err}");
        assert!(
            lines[0].starts_with(&format!(
                "rj-status: warning: the sets of tag {} break the one-set-per-job rule: ",
                env.tag
            )) && lines[0].contains("`rj-status --check`"),
            "{err}"
        );
        lines[0].to_string()
    };
    // A full listing checks every ID and names examples of each kind.
    for format in ["human", "plain", "json", "csv", "tsv"] {
        for long in [false, true] {
            let mut cmd = env.cmd("rj-status");
            cmd.args(["--format", format]);
            if long {
                cmd.arg("--long");
            }
            let out = run(&mut cmd);
            out.ok();
            let line = warned(&out);
            assert!(
                line.contains("2 IDs in a state set but not in")
                    && line.contains("(e.g. 4, 6)")
                    && line.contains("2 IDs in two or more state sets (e.g. 3, 6)")
                    && line.contains("(e.g. 2, 5)"),
                "{format} long={long}: {line}"
            );
        }
    }
    // The data stays the sets as they are.
    let out = env.run("rj-status", &["--format", "plain"]).ok();
    assert_eq!(out, "1\n2\n3\n4\n5\n6\n100\n");
    let v = env.run("rj-status", &["--format", "json"]).json();
    assert_eq!(
        v["sets"][0]["ids"],
        serde_json::json!(["1", "2", "3", "5", "100"])
    );
    assert_eq!(v["sets"][1]["ids"], serde_json::json!(["1", "3", "4"]));

    // --count and --state read fewer IDs: the counts disagree (T_ALL 5, the others 7).
    for args in [
        &["--count"][..],
        &["--count", "--format", "json"],
        &["--state", "FAILED"],
        &["--state", "FAILED", "--long", "--format", "csv"],
    ] {
        let out = run(env.cmd("rj-status").args(args));
        out.ok();
        let line = warned(&out);
        assert!(
            line.contains(&format!(
                "{} holds 5 IDs, the five state sets 7 together",
                env.key("ALL")
            )),
            "{args:?}: {line}"
        );
    }
    // -q: only errors.
    assert_eq!(env.run("rj-status", &["-q"]).stderr(), "");
}

#[test]
fn consistent_sets_raise_no_warning() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed::small_tag(&server, &env);
    for args in [
        &[][..],
        &["--long"],
        &["--count"],
        &["--state", "FAILED"],
        &["--format", "json"],
    ] {
        let out = run(env.cmd("rj-status").args(args));
        out.ok();
        assert_eq!(out.stderr(), "", "{args:?}");
    }
}

/// Counts that agree do not prove the rule; say so by showing that --count stays quiet where
/// --check does not (a job in two sets and another in none cancel out).
#[test]
fn equal_counts_are_not_a_proof() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("ALL"), &["1", "2"]);
    sadd(&server, &env.key("COMPLETED"), &["1"]);
    sadd(&server, &env.key("FAILED"), &["1"]);
    let out = env.run("rj-status", &["--count"]);
    out.ok();
    assert_eq!(out.stderr(), "");
    let out = env.run("rj-status", &[]);
    out.ok();
    assert!(out.stderr().contains("break the one-set-per-job rule"));
    env.run("rj-status", &["--check"]).code(65);
}

/// T_ALL gone while the state sets survive (what an evicting Redis does): not "no jobs".
#[test]
fn no_jobs_note_does_not_fire_when_state_sets_hold_ids() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["7", "8"]);
    for args in [
        &[][..],
        &["--count"],
        &["--state", "FAILED"],
        &["--state", "ALL"],
    ] {
        let out = run(env.cmd("rj-status").args(args));
        out.ok();
        let err = out.stderr();
        assert!(!err.contains("is the tag right?"), "{args:?}: {err}");
        assert!(
            err.contains("break the one-set-per-job rule"),
            "{args:?}: {err}"
        );
    }
    let out = env.run("rj-status", &[]);
    assert!(
        out.stderr().contains(&format!(
            "2 IDs in a state set but not in {} (e.g. 7, 8)",
            env.key("ALL")
        )),
        "{}",
        out.stderr()
    );
}

#[test]
fn repair_fixes_what_can_be_derived_and_reports_the_rest() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed_broken(&server, &env);
    // 5's state set was lost, but rj-track's record of its move survived.
    server.cli(&[
        "HSET",
        &env.job("5"),
        "state",
        "CANCELLED by 0",
        "tracked_by",
        "login1:4242",
    ]);
    // 2 has only rj-launch's record: back to pending, where rj-track judges it from Slurm.
    server.cli(&["HSET", &env.job("2"), "submitted", "2024-01-01T00:00:00Z"]);
    let out = env.run("rj-status", &["--check", "--repair"]);
    let line = out.fails(65);
    let k = |s: &str| env.key(s);
    assert_eq!(
        out.stdout(),
        format!(
            "2: added to {p} (it was in no state set and has no final record; rj-track will judge it from Slurm)\n\
             3: removed from {p} (a finished job: it stays in {c})\n\
             4: added to {all} (it was in {p})\n\
             5: added to {x} (it was in no state set; its record {j5} says state CANCELLED by 0)\n\
             6: added to {all} (it was in {c} and {f})\n\
             6: in {c} and {f} (not repaired: which final set is right cannot be derived; see `sacct -j 6` or rj-track's record {j6}, then SREM it from the wrong one)\n",
            all = k("ALL"),
            p = k("PENDING_AND_RUNNING"),
            c = k("COMPLETED"),
            f = k("FAILED"),
            x = k("CANCELLED"),
            j5 = env.job("5"),
            j6 = env.job("6"),
        )
    );
    assert!(
        line.contains("1 ID in two or more state sets (e.g. 6)")
            && line.ends_with("left as they are, since they cannot be derived (5 changes made in one transaction)"),
        "{line}"
    );
    assert_eq!(
        six(&server, &env),
        [
            strings(&["1", "100", "2", "3", "4", "5", "6"]),
            strings(&["1", "2", "4"]),
            strings(&["100", "3", "6"]),
            strings(&["6"]),
            vec![],
            strings(&["5"]),
        ]
    );
    // What is left is what --check reports; a second repair changes nothing.
    let out = env.run("rj-status", &["--check"]);
    out.code(65);
    assert_eq!(
        out.stdout(),
        format!("6: in {} and {}\n", k("COMPLETED"), k("FAILED"))
    );
    let out = env.run("rj-status", &["--check", "--repair", "--format", "json"]);
    out.code(65);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]));
    assert_eq!(v["violations"].as_array().unwrap().len(), 1);
    // The human decides; then the sets are consistent and a repair says so with 0.
    server.cli(&["SREM", &k("FAILED"), "6"]);
    let out = env.run("rj-status", &["--check", "--repair"]);
    assert_eq!(out.ok(), "");
    assert!(
        out.stderr().contains("are consistent: 7 jobs"),
        "{}",
        out.stderr()
    );
}

#[test]
fn repair_that_leaves_nothing_exits_0_with_json_changes() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["10", "9"]);
    sadd(&server, &env.key("TIMEOUT"), &["11"]);
    let out = env.run("rj-status", &["--check", "--repair", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.ok()).unwrap();
    assert_eq!(v["consistent"], true);
    let ids: Vec<(&str, &str, &str)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["job_id"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["sets"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("9", "added", "ALL"),
            ("10", "added", "ALL"),
            ("11", "added", "ALL")
        ]
    );
    let err = out.stderr();
    assert!(
        err == format!("rj-status: 3 changes made in one transaction; the sets of tag {} are now consistent: 3 jobs in {}, each in exactly one state set\n", env.tag, env.key("ALL")),
        "{err}"
    );
    assert_eq!(server.smembers(&env.key("ALL")), ["10", "11", "9"]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        ["10", "9"]
    );
    assert_eq!(server.smembers(&env.key("TIMEOUT")), ["11"]);
}

/// `redis-cli monitor`, killed and waited for on drop.
struct Monitor(std::process::Child);

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `write` once, on its own connection, as soon as some client starts to SSCAN `key` (seen
/// through `redis-cli monitor`). Drop the monitor, then join: true if the write happened.
fn when_read(
    server: &RedisServer,
    key: &str,
    write: impl FnOnce(&mut redis::Connection) + Send + 'static,
) -> (Monitor, std::thread::JoinHandle<bool>) {
    use std::io::BufRead;
    let mut monitor = Monitor(
        std::process::Command::new("redis-cli")
            .args(["-p", &server.port.to_string(), "monitor"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-cli monitor"),
    );
    let mut lines = std::io::BufReader::new(monitor.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    let mut c = server.client();
    let needle = format!("\"SSCAN\" \"{key}\"");
    let writer = std::thread::spawn(move || {
        for line in lines {
            if line.unwrap().contains(&needle) {
                write(&mut c);
                return true;
            }
        }
        false
    });
    (monitor, writer)
}

/// A job rj-track moves while a listing reads the sets one after the other is seen in two sets
/// (or none); the one MULTI/EXEC re-read of the suspects shows it is not a broken rule.
#[test]
fn a_job_moving_during_a_listing_raises_no_alarm() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let n = 100_000u64;
    seed::many_ids(&server, &env, &["ALL", "FAILED"], 1000..1000 + n);
    sadd(&server, &env.key("ALL"), &["7"]);
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["7"]);
    // PENDING_AND_RUNNING is read already when FAILED is; CANCELLED comes after.
    let (pending, cancelled) = (env.key("PENDING_AND_RUNNING"), env.key("CANCELLED"));
    let (monitor, writer) = when_read(&server, &env.key("FAILED"), move |c| {
        let _: u64 = redis::cmd("SMOVE")
            .arg(&pending)
            .arg(&cancelled)
            .arg("7")
            .query(c)
            .unwrap();
    });
    let out = env.run("rj-status", &["--format", "json"]);
    drop(monitor);
    assert!(writer.join().unwrap(), "the move never happened");
    let v = out.json();
    assert_eq!(
        v["sets"][1]["ids"],
        serde_json::json!(["7"]),
        "read before the move"
    );
    assert_eq!(
        v["sets"][5]["ids"],
        serde_json::json!(["7"]),
        "read after the move"
    );
    assert_eq!(out.stderr(), "", "no false alarm");
}

/// A write between the repair's read and its EXEC must not be overwritten by a plan made from
/// the old read. Here job 50 is in T_ALL only, so the plan is "back to PENDING_AND_RUNNING";
/// while the repair reads the last (large) set, a script places 50 in COMPLETED. Acting on the
/// old read would leave 50 in two sets; WATCH makes that EXEC fail, and the repair starts again
/// from what is there now.
#[test]
fn repair_reads_again_when_the_sets_change_under_it() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // Enough IDs in the last set read that reading it takes many SSCAN round trips: the window.
    let n = 100_000u64;
    seed::many_ids(&server, &env, &["ALL", "CANCELLED"], 1000..1000 + n);
    sadd(&server, &env.key("ALL"), &["50"]); // in no state set
    sadd(&server, &env.key("FAILED"), &["60"]); // not in T_ALL
    server.cli(&["CONFIG", "RESETSTAT"]);

    let completed = env.key("COMPLETED");
    let (monitor, writer) = when_read(&server, &env.key("CANCELLED"), move |c| {
        let _: u64 = redis::cmd("SADD")
            .arg(&completed)
            .arg("50")
            .query(c)
            .unwrap();
    });
    let out = env.run("rj-status", &["--check", "--repair"]);
    drop(monitor);
    assert!(
        writer.join().unwrap(),
        "the writer never saw the repair read"
    );
    assert_eq!(
        out.ok(),
        format!(
            "60: added to {} (it was in {})\n",
            env.key("ALL"),
            env.key("FAILED")
        ),
        "50 is in COMPLETED now: nothing to repair for it"
    );
    assert_eq!(calls(&server, "watch"), 2, "one read spoiled, one more");
    assert_eq!(calls(&server, "exec"), 2);
    assert_eq!(server.smembers(&env.key("COMPLETED")), ["50"]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        Vec::<String>::new()
    );
    assert_eq!(server.smembers(&env.key("FAILED")), ["60"]);
    assert_eq!(
        server.cli(&["SCARD", &env.key("ALL")]).trim(),
        (n + 2).to_string()
    );
    env.run("rj-status", &["--check"]).ok();
}

/// T_ALL of 100k pending jobs evicted: --check lists every one in numeric order, --repair puts
/// them all back in one transaction.
#[test]
fn check_and_repair_100k_ids() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let n = 100_000u64;
    seed::many_ids(&server, &env, &["PENDING_AND_RUNNING"], 1..=n);
    let t = std::time::Instant::now();
    let out = env.run("rj-status", &["--check", "--format", "plain"]);
    let checked = t.elapsed();
    out.code(65);
    let ids: Vec<u64> = out.stdout().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>());
    server.cli(&["CONFIG", "RESETSTAT"]);
    let t = std::time::Instant::now();
    let out = env.run("rj-status", &["--check", "--repair"]);
    let repaired = t.elapsed();
    assert_eq!(out.ok().lines().count(), n as usize);
    assert_eq!(calls(&server, "smembers"), 0, "read by SSCAN");
    assert_eq!(calls(&server, "exec"), 1);
    assert_eq!(
        server.cli(&["SCARD", &env.key("ALL")]).trim(),
        n.to_string()
    );
    eprintln!("100k IDs: --check {checked:?}, --check --repair {repaired:?}");
}

/// A user who may read but not run MULTI still gets a listing and its warning; --check needs
/// the transaction and says which command is refused (77), never a client panic or parser noise.
#[test]
fn restricted_users_get_the_warning_and_a_clear_refusal() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    seed_broken(&server, &env);
    let pattern = format!("~{}*", env.tag);
    let user = |cmds: &[&str]| {
        let mut args = vec!["ACL", "SETUSER", "ro", "reset", "on", ">pw", &pattern];
        args.extend_from_slice(cmds);
        server.cli(&args);
    };
    let url = format!("redis://ro:pw@127.0.0.1:{}", server.port);
    user(&["+ping", "+sscan", "+scard"]);
    let out = env.run("rj-status", &["--url", &url]);
    out.ok();
    let err = out.stderr();
    assert!(
        err.contains("break the one-set-per-job rule")
            && err.contains("not confirmed")
            && err.contains("'multi'"),
        "{err}"
    );
    let out = env.run("rj-status", &["--url", &url, "--check"]);
    let line = out.fails(77);
    assert!(line.contains("'watch'"), "{line}");
    user(&["+ping", "+sscan", "+watch", "+multi"]);
    let out = env.run("rj-status", &["--url", &url, "--check"]);
    let line = out.fails(77);
    assert!(line.contains("NOPERM") && line.contains("'exec'"), "{line}");
    let before = six(&server, &env);
    user(&[
        "+ping", "+sscan", "+watch", "+multi", "+exec", "+sadd", "+hmget",
    ]);
    let out = env.run("rj-status", &["--url", &url, "--check", "--repair"]);
    let line = out.fails(77);
    assert!(line.contains("'srem'"), "{line}");
    assert_eq!(
        six(&server, &env),
        before,
        "a refused command aborts the whole repair"
    );
}

/// A real evicting Redis: jobs recorded with rj-launch, then other keys fill memory until
/// allkeys-lru evicts some of the tag's sets. Whatever went, --check must tell the truth about
/// what is left, a listing must warn, and --repair must restore the rule.
#[test]
fn an_evicting_redis_breaks_the_rule_and_check_says_so() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let ids: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
    // Eviction may take all three sets in one step (nothing left, no rule broken): then again.
    let mut round = 0;
    let left = loop {
        round += 1;
        assert!(
            round <= 5,
            "every round evicted all of the tag's sets at once"
        );
        if let Some(left) = evict_some_of_the_tag(&server, &env, &ids) {
            break left;
        }
    };
    // The truth, computed here from what survived.
    let mut want: Vec<(u64, &str)> = Vec::new();
    for id in &ids {
        let in_all = left[0].contains(id);
        let n = left[1..].iter().filter(|s| s.contains(id)).count();
        let id: u64 = id.parse().unwrap();
        if !in_all && n > 0 {
            want.push((id, "not_in_all"));
        }
        if n > 1 {
            want.push((id, "several_sets"));
        }
        if in_all && n == 0 {
            want.push((id, "no_set"));
        }
    }
    assert!(
        !want.is_empty(),
        "one set of three lost always breaks the rule: {left:?}"
    );
    let out = env.run("rj-status", &["--check", "--format", "json"]);
    out.code(65);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(u64, &str)> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["job_id"].as_str().unwrap().parse().unwrap(),
                x["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let out = env.run("rj-status", &[]);
    out.ok();
    let err = out.stderr();
    assert!(
        err.contains("break the one-set-per-job rule") && !err.contains("is the tag right?"),
        "{err}"
    );
    // Every kind an eviction of whole sets leaves is derivable.
    env.run("rj-status", &["--check", "--repair"]).ok();
    env.run("rj-status", &["--check"]).ok();
}

/// Record `ids` with rj-launch, finish half of them as rj-track would, then fill an allkeys-lru
/// Redis with other keys until at least one of the tag's three sets is evicted. The six sets
/// as they are then (memory limit lifted, so that reading evicts nothing more), or None when
/// nothing of the tag's sets is left.
fn evict_some_of_the_tag(
    server: &RedisServer,
    env: &TestEnv,
    ids: &[String],
) -> Option<Vec<Vec<String>>> {
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cli(&["FLUSHALL"]);
    run(env.cmd("rj-launch").arg("--record").args(ids)).ok();
    for id in &ids[..ids.len() / 2] {
        server.cli(&[
            "SMOVE",
            &env.key("PENDING_AND_RUNNING"),
            &env.key("COMPLETED"),
            id,
        ]);
    }
    env.run("rj-status", &["--check"]).ok();
    // LRU idle times have a resolution of one second: let the tag's keys be the older ones.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut c = server.client();
    let value = "x".repeat(256);
    // Grow the key table ahead (to 8192 slots): its doubling under the limit would evict a
    // hundred keys at once, all of the tag's among them.
    let mut p = redis::pipe();
    for i in 0..4500 {
        p.cmd("SET").arg(format!("pre:{i}")).arg(&value).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    let info = server.cli(&["INFO", "memory"]);
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    server.cli(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(used + 256 * 1024).to_string(),
    ]);
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let sets = ["ALL", "PENDING_AND_RUNNING", "COMPLETED"].map(|s| env.key(s));
    // Small steps, so that each evicts a few keys and the loop stops at the first set lost.
    let mut filled = 0;
    loop {
        let _: () = redis::cmd("SET")
            .arg(format!("filler:{filled}"))
            .arg(&value)
            .query(&mut c)
            .unwrap();
        filled += 1;
        let alive: u64 = redis::cmd("EXISTS").arg(&sets).query(&mut c).unwrap();
        if alive < 3 {
            break;
        }
        assert!(
            filled < 200_000,
            "nothing of the tag was evicted after {filled} keys"
        );
    }
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let left = six(server, env);
    eprintln!(
        "evicted after {filled} keys; left: ALL {}, PENDING_AND_RUNNING {}, COMPLETED {}",
        left[0].len(),
        left[1].len(),
        left[2].len()
    );
    left.iter().any(|s| !s.is_empty()).then_some(left)
}
