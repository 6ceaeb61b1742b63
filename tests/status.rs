//! rj-status (DESIGN §4): numeric order, --state, --count, --long, every --format, SSCAN.
use crate::util::check::{self, calls, ok, run, sadd};
use crate::util::{RedisServer, TestEnv};

/// The six sets of a small tag, as the original scripts would have left them.
fn seed(server: &RedisServer, env: &TestEnv) {
    sadd(
        server,
        &env.key("ALL"),
        &["100", "10_2", "9", "10", "10_1", "77"],
    );
    sadd(server, &env.key("PENDING_AND_RUNNING"), &["100", "10_2"]);
    sadd(server, &env.key("COMPLETED"), &["10", "9"]);
    sadd(server, &env.key("FAILED"), &["10_1"]);
    sadd(server, &env.key("CANCELLED"), &["77"]);
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("stdout is one JSON document")
}

#[test]
fn human_lists_every_set_in_numeric_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    let out = ok(&run(&mut env.cmd("rj-status")));
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    let out = ok(&run(env.cmd("rj-status").args(["--format", "plain"])));
    assert_eq!(out, "9\n10\n10_1\n10_2\n77\n100\n");
    let out = ok(&run(env.cmd("rj-status").args([
        "--format",
        "plain",
        "--state",
        "PENDING_AND_RUNNING",
    ])));
    assert_eq!(out, "10_2\n100\n");
}

#[test]
fn json_with_repeated_state_and_aliases() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    let v = json(&run(env.cmd("rj-status").args([
        "--format",
        "json",
        "--state",
        "cancelled",
        "--state",
        "COMPLETED",
        "--state",
        "COMPLETED",
    ])));
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
    let v = json(&run(env
        .cmd("rj-status")
        .args(["--format", "json", "--state", "running"])));
    assert_eq!(v["sets"][0]["key"], env.key("PENDING_AND_RUNNING").as_str());
    assert_eq!(v["sets"][0]["ids"], serde_json::json!(["10_2", "100"]));
    // All six by default, in the documented order.
    let v = json(&run(env.cmd("rj-status").args(["--format", "json"])));
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let out = run(env.cmd("rj-status").args(["--state", "DONE"]));
    check::code(&out, 2);
    assert!(check::stderr(&out).contains("unknown state \"DONE\""));
    assert!(out.stdout.is_empty());
}

#[test]
fn count_reads_no_ids() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let v = json(&run(env
        .cmd("rj-status")
        .args(["--count", "--format", "json"])));
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

    let out = ok(&run(env.cmd("rj-status").args([
        "--count", "--format", "plain", "--state", "FAILED", "--state", "ALL",
    ])));
    assert_eq!(out, "6\n1\n");
    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--count", "--format", "csv"])));
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
    for (format, delim) in [("csv", b','), ("tsv", b'\t')] {
        let out = ok(&run(env
            .cmd("rj-status")
            .args(["--format", format, "--state", "ALL", "--state", "FAILED"])));
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
    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--format", "csv", "--state", "TIMEOUT"])));
    assert_eq!(out, "set,job_id\n");
}

#[test]
fn long_joins_the_job_hash() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    seed(&server, &env);
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
    let v = json(&run(env
        .cmd("rj-status")
        .args(["--long", "--format", "json"])));
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

    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--long", "--format", "csv", "--state", "FAILED"])));
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let h = r.headers().unwrap().clone();
    let rec = r.records().next().unwrap().unwrap();
    let get = |name: &str| rec.get(h.iter().position(|x| x == name).unwrap()).unwrap();
    assert_eq!(get("job_id"), "10_1");
    assert_eq!(get("name"), "train, big");
    assert_eq!(get("nodes"), "node[01-02]");

    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--long", "--state", "FAILED"])));
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
    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--long", "--format", "plain", "--state", "ALL"])));
    assert_eq!(out, "9\n10\n10_1\n10_2\n77\n100\n");
}

/// 20 000 IDs written with one pipeline; rj-status reads them with SSCAN, in order.
#[test]
fn many_ids_stream_via_sscan() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let n = 20_000u64;
    let mut c = server.client();
    let mut p = redis::pipe();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        p.cmd("SADD").arg(env.key("ALL")).arg(chunk).ignore();
        p.cmd("SADD")
            .arg(env.key("PENDING_AND_RUNNING"))
            .arg(chunk)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--format", "plain", "--state", "ALL"])));
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let res = run(&mut env.cmd("rj-status"));
    let out = ok(&res);
    assert_eq!(out.lines().count(), 6);
    assert!(
        out.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("0")),
        "{out}"
    );
    let err = check::stderr(&res);
    assert!(
        err.lines().count() == 1
            && err.contains(&format!("no jobs under tag {}", env.tag))
            && err.contains("is the tag right?"),
        "{err}"
    );
    assert_eq!(check::stderr(&run(env.cmd("rj-status").arg("-q"))), "");
    assert_eq!(
        ok(&run(env.cmd("rj-status").args(["--format", "plain"]))),
        ""
    );
    // A tag with jobs, none of them in the sets asked for, is not worth a note.
    sadd(&server, &env.key("ALL"), &["7"]);
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["7"]);
    let res = run(env.cmd("rj-status").args(["--state", "FAILED"]));
    ok(&res);
    assert_eq!(check::stderr(&res), "");
}

#[test]
fn long_tsv_keeps_columns_when_a_field_holds_a_tab() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
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
    let out = ok(&run(env
        .cmd("rj-status")
        .args(["--long", "--format", "tsv"])));
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
        check::stdout(&run(&mut cmd)).to_string()
    };
    let green = "\x1b[32m";
    let tty = in_pty("", false);
    assert!(tty.contains(green), "{tty:?}");
    assert!(tty.contains("\x1b[31m"), "{tty:?}");
    for plain in [in_pty("", true), in_pty("--format csv", false)] {
        assert!(!plain.contains('\x1b'), "{plain:?}");
    }
    let piped = ok(&run(&mut env.cmd("rj-status")));
    assert!(!piped.contains('\x1b'), "{piped:?}");
}

#[test]
fn a_set_of_the_wrong_type_is_bad_data_naming_the_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    // A script wrote the tag's FAILED set as a string.
    server.cli(&["SET", &env.key("FAILED"), "oops"]);
    sadd(&server, &env.key("ALL"), &["5"]);
    let out = run(&mut env.cmd("rj-status"));
    let line = check::fails(&out, 65, "rj-status");
    assert!(
        line.contains(&env.key("FAILED")) && line.contains("WRONGTYPE"),
        "{line}"
    );
    assert_eq!(server.cli(&["GET", &env.key("FAILED")]).trim(), "oops");
}

#[test]
fn a_job_record_of_the_wrong_type_is_bad_data_naming_that_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    sadd(&server, &env.key("ALL"), &["1", "2"]);
    sadd(&server, &env.key("PENDING_AND_RUNNING"), &["1", "2"]);
    server.cli(&["SET", &env.job("2"), "str"]);
    let out = run(env.cmd("rj-status").arg("--long"));
    let line = check::fails(&out, 65, "rj-status");
    assert!(
        line.contains(&format!("at {}:", env.job("2"))) && line.contains("WRONGTYPE"),
        "{line}"
    );
    assert!(!line.contains("Pipeline"), "client internals: {line}");
}
