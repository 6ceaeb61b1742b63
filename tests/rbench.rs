//! rbench: the redis-benchmark wrapper, the native engine and compare, against real servers.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::check::{self, fails, run};
use crate::util::{self, RedisOptions, RedisServer, TestEnv};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rbench")
        .join(name)
}

/// Run rbench, expect success, and parse its JSON stdout.
fn json(env: &TestEnv, args: &[&str]) -> Value {
    env.run("rbench", args).json()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The latency fields of a native result are ordered and plausible for a loopback server.
fn check_percentiles(name: &str, r: &Value) {
    let keys = [
        "min_latency_ms",
        "p50_latency_ms",
        "p90_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "p999_latency_ms",
        "max_latency_ms",
    ];
    let v: Vec<f64> = keys.iter().map(|k| f(&r[k])).collect();
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{name}: {v:?}");
    assert!(v[0] > 0.0, "{name}: min latency {v:?}");
    assert!(v[1] < 1000.0, "{name}: p50 {v:?}");
    let avg = f(&r["avg_latency_ms"]);
    assert!(
        v[0] <= avg && avg <= v[6],
        "{name}: avg {avg} outside {v:?}"
    );
    let curve = r["latency_percentiles"].as_array().unwrap();
    assert!(curve.len() >= 5, "{name}");
}

#[test]
fn wrap_runs_redis_benchmark_and_writes_the_json_shape() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    if which::which("redis-benchmark").is_err() {
        util::missing("redis-benchmark (apt-get install redis-tools)");
        return;
    }
    let env = TestEnv::new(&server);
    let out = env.path().join("wrap.json");
    env.cmd("rbench")
        .args([
            "wrap", "-t", "set,get", "-n", "2000", "-c", "4", "-d", "32", "-P", "2",
        ])
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    // Tests keep redis-benchmark's order.
    assert!(text.find("\"SET\": {").unwrap() < text.find("\"GET\": {").unwrap());
    assert!(doc["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(doc["config"]["tool"], "redis-benchmark");
    assert_eq!(doc["config"]["clients"], 4);
    assert_eq!(doc["config"]["pipeline"], 2);
    assert!(doc["raw_output"].as_str().unwrap().contains("\"SET\""));
    let tests = doc["results"]["tests"].as_object().unwrap();
    assert_eq!(tests.len(), 2);
    for (name, r) in tests {
        assert!(f(&r["requests_per_second"]) > 0.0, "{name}");
        for k in [
            "avg_latency_ms",
            "min_latency_ms",
            "p50_latency_ms",
            "p95_latency_ms",
            "p99_latency_ms",
            "max_latency_ms",
        ] {
            assert!(f(&r[k]) >= 0.0, "{name} {k}");
        }
        assert!(f(&r["min_latency_ms"]) <= f(&r["max_latency_ms"]));
    }
}

#[test]
fn wrap_gives_the_password_only_through_the_environment() {
    let pw = "wrap-s3cret-pw";
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some(pw.into()),
        ..Default::default()
    }) else {
        return;
    };
    // A stand-in redis-benchmark that records what it was given and prints real 7.0 CSV.
    let seen = env.path().join("seen");
    let csv = fixture("redis7.csv");
    let path = env.fake_tools(&[(
        "redis-benchmark",
        &format!(
            "[ \"$1\" = --version ] && {{ echo 'redis-benchmark 7.0.15'; exit 0; }}\n\
             echo \"$@\" > {seen}.args\necho \"$REDISCLI_AUTH\" > {seen}.env\ncat {csv}",
            seen = seen.display(),
            csv = csv.display()
        ),
    )]);
    let doc = {
        let out = env
            .cmd("rbench")
            .env("PATH", &path)
            .args(["wrap", "-t", "set", "--format", "json"])
            .assert()
            .success();
        serde_json::from_slice::<Value>(&out.get_output().stdout).unwrap()
    };
    let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
    assert!(!args.contains(pw), "password on the command line: {args}");
    assert!(
        args.contains("--csv") && args.contains(&format!("-p {}", server.port)),
        "{args}"
    );
    assert_eq!(
        std::fs::read_to_string(seen.with_extension("env"))
            .unwrap()
            .trim(),
        pw
    );
    assert!(!doc["config"].to_string().contains(pw));
    assert_eq!(f(&doc["results"]["tests"]["SET"]["p99_latency_ms"]), 0.135);
}

#[test]
fn wrap_exit_codes_missing_tool_and_bad_output() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let empty = env.only_tools("empty", &[]);
    let out = env
        .cmd("rbench")
        .env("PATH", &empty)
        .args(["wrap", "-t", "set"])
        .assert()
        .code(69);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("redis-benchmark not found"));

    let path = env.fake_tools(&[("redis-benchmark", "echo 'Segmentation fault? no: garbage'")]);
    let out = env
        .cmd("rbench")
        .env("PATH", &path)
        .args(["wrap", "-t", "set"])
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("cannot parse") && err.contains("line 1"),
        "{err}"
    );
}

/// An rbench started in the background; Drop kills and waits.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Background {
    fn start(env: &TestEnv, args: &[&str]) -> (Background, PathBuf) {
        let stderr = env.path().join("rbench.err");
        let child = std::process::Command::new(util::bin_path("rbench"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", env.path())
            .env("RJ_CONFIG", &env.config)
            .current_dir(env.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        (Background(child), stderr)
    }

    /// The exit status, or None when it is still running after `limit`.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

#[test]
fn run_fails_with_69_when_the_server_stops_answering() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // --duration cannot end a closed loop whose requests never come back.
    let (mut rbench, stderr) = Background::start(
        &env,
        &[
            "run",
            "-t",
            "set",
            "--duration",
            "5m",
            "-c",
            "4",
            "--key-prefix",
            "stall:",
        ],
    );
    util::wait_until(Duration::from_secs(10), "rbench to write keys", || {
        server.cli(&["DBSIZE"]).trim() != "0"
    });
    server.pause();
    let paused = Instant::now();
    let code = rbench.wait(Duration::from_secs(40));
    server.resume();
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(code, Some(69), "after {:?}: {err}", paused.elapsed());
    assert!(
        err.contains(&format!("127.0.0.1:{}", server.port)) && err.contains("no reply"),
        "{err}"
    );
}

#[test]
fn wrap_kills_a_redis_benchmark_that_never_finishes() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let path = env.fake_tools(&[(
        "redis-benchmark",
        "case \"$1\" in --version) echo 'redis-benchmark 7.0.15' ;; *) exec sleep 60 ;; esac",
    )]);
    let start = Instant::now();
    let out = env
        .cmd("rbench")
        .env("PATH", &path)
        .args(["wrap", "-t", "set", "--timeout", "1s"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(69);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("did not finish within 1s") && err.contains("--timeout"),
        "{err}"
    );
}

#[test]
fn run_records_every_request_it_issues() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "set,get,incr,exists,del",
            "-n",
            "3001",
            "-c",
            "7",
            "-P",
            "3",
            "-d",
            "100",
            "--keyspace",
            "50",
            "--key-prefix",
            "cnt:",
            "--format",
            "json",
        ],
    );
    let tests = doc["results"]["tests"].as_object().unwrap();
    assert_eq!(tests.len(), 5);
    for name in ["SET", "GET", "INCR", "EXISTS", "DEL"] {
        assert!(tests.contains_key(name), "{name}");
    }
    for (name, r) in tests {
        assert_eq!(u(&r["requests"]), 3001, "{name}");
        assert_eq!(u(&r["successes"]) + u(&r["errors"]), 3001, "{name}");
        assert_eq!(u(&r["errors"]), 0, "{name}: {}", r["first_error"]);
        assert!(f(&r["requests_per_second"]) > 0.0);
        check_percentiles(name, r);
    }
    assert_eq!(doc["config"]["clients"], 7);
    // INCR ran on its own keys: 3001 increments spread over at most 50 counters.
    let counters: u64 = (0..50)
        .map(|i| {
            server
                .cli(&["GET", &format!("cnt:counter:{i:012}")])
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(counters, 3001);
    // -d sets the size of what SET writes (DEL ran last above, so write a key of our own).
    json(
        &env,
        &[
            "run",
            "-t",
            "set",
            "-n",
            "20",
            "-c",
            "2",
            "-d",
            "100",
            "--keyspace",
            "1",
            "--key-prefix",
            "len:",
            "--format",
            "json",
        ],
    );
    assert_eq!(server.cli(&["STRLEN", "len:000000000000"]).trim(), "100");
}

#[test]
fn batched_mode_counts_operations_not_commands() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "set",
            "--mode",
            "batched",
            "--batch",
            "7",
            "-n",
            "1000",
            "-c",
            "3",
            "-P",
            "2",
            "--keyspace",
            "10000",
            "--key-prefix",
            "bat:",
            "--format",
            "json",
        ],
    );
    let r = &doc["results"]["tests"]["SET"];
    assert_eq!(u(&r["requests"]), 1000);
    assert_eq!(u(&r["successes"]), 1000);
    assert_eq!(doc["config"]["mode"], "batched");
    assert_eq!(doc["config"]["batch"], 7);
    check_percentiles("SET", r);
    let keys = server.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap();
    assert!(
        (800..=1000).contains(&keys),
        "{keys} keys from 1000 MSET operations"
    );
    let mixed = json(
        &env,
        &[
            "run",
            "--ratio",
            "set:1,get:2,incr:1",
            "--mode",
            "batched",
            "--batch",
            "5",
            "-n",
            "2000",
            "-c",
            "2",
            "--key-prefix",
            "bat:",
            "--format",
            "json",
        ],
    );
    let r = &mixed["results"]["tests"]["MIXED"];
    assert_eq!(u(&r["requests"]), 2000);
    let per_op: u64 = r["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| u(&o["count"]))
        .sum();
    assert_eq!(per_op, 2000);
}

#[test]
fn server_errors_are_counted_and_a_run_of_nothing_but_errors_fails() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    server.cli(&["RPUSH", "err:000000000000", "a"]);
    server.cli(&["SET", "err:counter:000000000000", "not-a-number"]);
    // Every request failed: nothing was measured, so no figure and a non-zero status chosen
    // by the error (a key of the wrong type is bad data, 65; other refusals 69).
    for (test, want, status) in [("get", "WRONGTYPE", 65), ("incr", "not an integer", 69)] {
        let out = env.run(
            "rbench",
            &[
                "run",
                "-t",
                test,
                "-n",
                "500",
                "-c",
                "5",
                "--keyspace",
                "1",
                "--key-prefix",
                "err:",
                "--format",
                "json",
            ],
        );
        let line = out.fails(status);
        assert!(
            line.contains(&format!("every {} request", test.to_uppercase())) && line.contains(want),
            "{test}: {line}"
        );
        assert_eq!(out.stdout(), "", "{test}");
    }
    // Two keys, one a list: some GETs fail, the rest succeed, all are counted.
    server.cli(&["SET", "err:000000000001", "v"]);
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "get",
            "-n",
            "1000",
            "-c",
            "4",
            "--keyspace",
            "2",
            "--key-prefix",
            "err:",
            "--format",
            "json",
        ],
    );
    let r = &doc["results"]["tests"]["GET"];
    let (ok, bad) = (u(&r["successes"]), u(&r["errors"]));
    assert_eq!(ok + bad, 1000);
    assert!(ok > 300 && bad > 300, "{ok} ok, {bad} errors");
}

#[test]
fn rate_holds_in_open_loop() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "set",
            "--rate",
            "2000",
            "--duration",
            "2s",
            "-c",
            "4",
            "--key-prefix",
            "rate:",
            "--format",
            "json",
        ],
    );
    let r = &doc["results"]["tests"]["SET"];
    assert_eq!(u(&r["requests"]), 4000, "2 s at 2000/s");
    let rps = f(&r["requests_per_second"]);
    assert!((rps - 2000.0).abs() / 2000.0 < 0.05, "{rps} req/s");
    assert_eq!(f(&doc["config"]["rate"]), 2000.0);
    check_percentiles("SET", r);
}

#[test]
fn duration_bounds_a_closed_loop_run() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "get",
            "--duration",
            "1s",
            "-c",
            "2",
            "--format",
            "json",
        ],
    );
    let r = &doc["results"]["tests"]["GET"];
    assert!(u(&r["requests"]) > 100);
    let secs = f(&r["duration_s"]);
    assert!((0.9..5.0).contains(&secs), "{secs}");
}

#[test]
fn run_formats_csv_and_output_file() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let out = env
        .cmd("rbench")
        .args([
            "run", "-t", "set", "-n", "200", "-c", "2", "--format", "csv",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let h = rdr.headers().unwrap().clone();
    assert_eq!(&h[0], "test");
    assert_eq!(&h[1], "requests_per_second");
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], "SET");
    let idx = h.iter().position(|c| c == "requests").unwrap();
    assert_eq!(&rows[0][idx], "200");

    let file = env.path().join("r.json");
    let out = env
        .cmd("rbench")
        .args(["run", "-t", "get", "-n", "100", "-c", "1"])
        .arg("-o")
        .arg(&file)
        .assert()
        .success();
    let human = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(human.contains("GET") && human.contains("REQ/S"), "{human}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(u(&doc["results"]["tests"]["GET"]["requests"]), 100);
    assert!(doc["raw_output"].as_str().unwrap().contains("GET"));
}

#[test]
fn run_authenticates_and_classifies_failures() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some("run-pw".into()),
        ..Default::default()
    }) else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run", "-t", "set", "-n", "100", "-c", "2", "--format", "json",
        ],
    );
    assert_eq!(u(&doc["results"]["tests"]["SET"]["successes"]), 100);

    let out = env
        .cmd("rbench")
        .args(["run", "-n", "10", "--url"])
        .arg(format!("redis://:wrong-pw@127.0.0.1:{}", server.port))
        .assert()
        .code(77);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!err.contains("wrong-pw"), "{err}");

    let dead = util::free_port();
    env.cmd("rbench")
        .args(["run", "-n", "10", "--url"])
        .arg(format!("redis://127.0.0.1:{dead}"))
        .assert()
        .code(69);
    env.cmd("rbench")
        .args(["run", "-t", "lrange"])
        .assert()
        .code(2);
    // Zero requests is no benchmark, in both modes.
    for mode in ["run", "wrap"] {
        env.cmd("rbench")
            .args([mode, "-n", "0"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains("'--requests <N>'"));
    }
}

#[test]
fn compare_tables_ratios_from_wrap_and_run_results() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let (a, b, old) = (
        fixture("wrap-set-get.json"),
        fixture("run-set-get.json"),
        fixture("old-rps-only.json"),
    );
    let rows = {
        let out = env
            .cmd("rbench")
            .arg("compare")
            .args([&a, &b, &old])
            .args(["--format", "json"])
            .assert()
            .success();
        serde_json::from_slice::<Vec<Value>>(&out.get_output().stdout).unwrap()
    };
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["test"].as_str().unwrap().into(),
                r["file"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(keys[0], ("SET".into(), "wrap-set-get.json".into()));
    assert_eq!(keys.len(), 5, "{keys:?}");
    let set_run = &rows[1];
    assert_eq!(set_run["file"], "run-set-get.json");
    assert!((f(&set_run["rps_ratio"]) - 1.5).abs() < 1e-9);
    assert!((f(&set_run["p50_ratio"]) - 0.5).abs() < 1e-9);
    let set_old = &rows[2];
    assert!((f(&set_old["rps_ratio"]) - 0.5).abs() < 1e-9);
    assert!(set_old["p50_ratio"].is_null());

    let out = env
        .cmd("rbench")
        .arg("compare")
        .args([&a, &b])
        .args(["--format", "markdown", "--tests", "get"])
        .assert()
        .success();
    let md = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 4, "{md}");
    assert!(
        lines[0].starts_with("| TEST | FILE | REQ/S | VS FIRST"),
        "{md}"
    );
    assert!(
        lines[3].contains("| GET | run-set-get.json | 150000 | 1.50x |"),
        "{md}"
    );

    let out = env
        .cmd("rbench")
        .arg("compare")
        .args([&a, &b])
        .assert()
        .success();
    let human = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("GET") && l.contains("run-set-get.json") && l.contains("1.50x"))
            && human.contains("wrap-set-get.json"),
        "{human}"
    );

    // A file from another wrapper, with its own config fields, compares by its results.
    let other = fixture("other-config.json");
    let out = env
        .cmd("rbench")
        .arg("compare")
        .args([&a, &other])
        .args(["--format", "json", "--tests", "GET"])
        .assert()
        .success();
    let rows: Vec<Value> = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!((f(&rows[1]["rps_ratio"]) - 0.9).abs() < 1e-9);

    let out = env
        .cmd("rbench")
        .arg("compare")
        .args([&a, &b])
        .args(["--format", "csv"])
        .assert()
        .success();
    let csv_text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        csv_text.starts_with("test,file,requests_per_second,rps_ratio"),
        "{csv_text}"
    );
}

#[test]
fn compare_plots_svg_with_labels_and_png() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let (a, b) = (fixture("wrap-set-get.json"), fixture("run-set-get.json"));
    let svg = env.path().join("lat.svg");
    let png = env.path().join("lat.png");
    for p in [&svg, &png] {
        env.cmd("rbench")
            .arg("compare")
            .args([&a, &b])
            .arg("--plot")
            .arg(p)
            .assert()
            .success();
        assert!(
            std::fs::metadata(p).unwrap().len() > 1000,
            "{}",
            p.display()
        );
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"));
    for label in [
        "wrap-set-get.json SET",
        "run-set-get.json GET",
        "latency (ms)",
        "percentile",
        "99.9%",
    ] {
        assert!(text.contains(label), "no {label:?} in the SVG");
    }
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    env.cmd("rbench")
        .arg("compare")
        .arg(&a)
        .args(["--plot", "x.gif"])
        .assert()
        .code(2);
    let bad = env.path().join("bad.json");
    std::fs::write(&bad, "{\"not\": 1}").unwrap();
    env.cmd("rbench").arg("compare").arg(&bad).assert().code(65);
}

#[test]
fn run_over_a_unix_socket_with_several_threads() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        unix_socket: true,
        ..Default::default()
    }) else {
        return;
    };
    let url = format!("unix://{}", server.socket_path().display());
    let doc = json(
        &env,
        &[
            "run",
            "--url",
            &url,
            "-t",
            "set,get",
            "-n",
            "1001",
            "-c",
            "5",
            "-P",
            "4",
            "--threads",
            "2",
            "--key-prefix",
            "unix:",
            "--format",
            "json",
        ],
    );
    for name in ["SET", "GET"] {
        let r = &doc["results"]["tests"][name];
        assert_eq!(u(&r["requests"]), 1001, "{name}");
        assert_eq!(u(&r["errors"]), 0, "{name}");
        check_percentiles(name, r);
    }
    assert!(doc["config"]["server"]
        .as_str()
        .unwrap()
        .starts_with("unix:"));
}

#[test]
fn help_and_version_need_no_server() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["--version"],
        &["run", "--help"],
        &["wrap", "--help"],
        &["compare", "--help"],
    ] {
        let out = assert_cmd::Command::new(util::bin_path("rbench"))
            .env_clear()
            .env("RJ_CONFIG", dir.path().join("missing.json"))
            .args(args)
            .assert()
            .success();
        assert!(!out.get_output().stdout.is_empty(), "{args:?}");
    }
    assert_cmd::Command::new(util::bin_path("rbench"))
        .env_clear()
        .assert()
        .code(2);
}

#[test]
fn wrap_with_a_password_never_puts_it_on_the_command_line() {
    let pw = "real-wrap-pw";
    let Some(server) = RedisServer::with(RedisOptions {
        password: Some(pw.into()),
        ..Default::default()
    }) else {
        return;
    };
    if which::which("redis-benchmark").is_err() {
        util::missing("redis-benchmark (apt-get install redis-tools)");
        return;
    }
    let env = TestEnv::new(&server);
    let out = env
        .cmd("rbench")
        .args([
            "wrap", "-t", "set", "-n", "200", "-c", "2", "--format", "json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains(pw), "{err}");
    match out.status.code() {
        // A redis-benchmark that reads REDISCLI_AUTH.
        Some(0) => {
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(!doc.to_string().contains(pw));
        }
        // redis-benchmark 7.0 reads the password only from -a: refused, and said why.
        Some(77) => assert!(err.contains("REDISCLI_AUTH"), "{err}"),
        other => panic!("exit {other:?}: {err}"),
    }
}

/// A second server made a read-only replica of `master` (REPLICAOF on a running server, as a
/// failover or an operator does), once its link to the master is up: writes are refused with
/// READONLY, reads are served.
fn read_only_replica(master: &RedisServer) -> Option<RedisServer> {
    let replica = RedisServer::start()?;
    replica.cli(&["CONFIG", "SET", "replica-read-only", "yes"]);
    replica.cli(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    util::wait_until(Duration::from_secs(20), "the replica's link", || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    Some(replica)
}

#[test]
fn run_where_every_request_fails_exits_non_zero_without_a_figure() {
    let Some(master) = RedisServer::start() else {
        return;
    };
    let Some(replica) = read_only_replica(&master) else {
        return;
    };
    let env = TestEnv::new(&replica);
    let place = format!("127.0.0.1:{}", replica.port);
    let file = env.path().join("r.json");
    let out = run(env
        .cmd("rbench")
        .args(["run", "-t", "set", "-n", "300", "-c", "2", "--output"])
        .arg(&file));
    let line = out.fails(69);
    assert!(
        line.contains("every SET request")
            && line.contains(&place)
            && line.contains("READONLY You can't write against a read only replica"),
        "{line}"
    );
    assert_eq!(out.stdout(), "", "a figure was printed");
    assert!(
        !file.exists(),
        "a result was written for a run that measured nothing"
    );

    // GET is served, SET is not: the run still fails, at the test that measured nothing.
    let out = env.run(
        "rbench",
        &[
            "run", "-t", "get,set", "-n", "200", "-c", "2", "--format", "json",
        ],
    );
    assert!(out.fails(69).contains("every SET request"));

    // A user whose ACL lacks the command: every request gets NOPERM, 77.
    master.cli(&[
        "ACL",
        "SETUSER",
        "bench",
        "on",
        ">bench-pw",
        "~*",
        "+@all",
        "-set",
    ]);
    let out = run(env
        .cmd("rbench")
        .args(["run", "-t", "set", "-n", "100", "-c", "1", "--url"])
        .arg(format!("redis://bench:bench-pw@127.0.0.1:{}", master.port)));
    let line = out.fails(77);
    assert!(
        line.contains("NOPERM") && !line.contains("bench-pw"),
        "{line}"
    );
}

#[test]
fn run_with_some_errors_reports_them_beside_the_rate() {
    let Some(master) = RedisServer::start() else {
        return;
    };
    let Some(replica) = read_only_replica(&master) else {
        return;
    };
    let env = TestEnv::new(&replica);
    // Half writes (refused by the replica), half reads (served).
    let args = [
        "run",
        "--ratio",
        "set:1,get:1",
        "-n",
        "1000",
        "-c",
        "2",
        "--keyspace",
        "10",
    ];
    let file = env.path().join("mixed.json");
    let out = run(env.cmd("rbench").args(args).arg("--output").arg(&file));
    let human = out.ok();
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let r = &doc["results"]["tests"]["MIXED"];
    let (requests, ok, bad) = (u(&r["requests"]), u(&r["successes"]), u(&r["errors"]));
    assert_eq!(requests, 1000);
    assert_eq!(ok + bad, 1000);
    let ops = r["ops"].as_array().unwrap();
    let op = |name: &str| ops.iter().find(|o| o["op"] == name).unwrap().clone();
    assert_eq!(u(&op("SET")["errors"]), u(&op("SET")["count"]), "{ops:?}");
    assert_eq!(u(&op("GET")["errors"]), 0, "{ops:?}");
    assert_eq!(bad, u(&op("SET")["count"]));
    assert!(bad > 300 && ok > 300, "{ok} ok, {bad} errors");
    assert!(
        (f(&r["error_rate"]) - bad as f64 / 1000.0).abs() < 1e-6,
        "{r}"
    );
    assert!(
        r["first_error"].as_str().unwrap().starts_with("READONLY"),
        "{r}"
    );
    // The rate counts the replies that succeeded, not the refusals.
    let (rps, secs) = (f(&r["requests_per_second"]), f(&r["duration_s"]));
    let served = rps * secs;
    assert!(
        (served - ok as f64).abs() <= ok as f64 * 0.01 + 1.0,
        "{rps} req/s over {secs} s is {served} requests; {ok} succeeded"
    );
    // The human table shows the count and share, and the first error, on stdout.
    let share = format!("{:.1}%", bad as f64 / 10.0);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("MIXED") && l.contains(&format!("{bad} ({share})"))),
        "{human}"
    );
    assert!(
        human.contains(&format!("{bad} of 1000 requests failed ({share})"))
            && human.contains("READONLY"),
        "{human}"
    );
    let err = out.stderr();
    assert!(
        err.contains("requests failed") && err.contains("READONLY"),
        "{err}"
    );

    // CSV carries the error columns.
    let out = run(env.cmd("rbench").args(args).args(["--format", "csv"]));
    let text = out.ok();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let h = rdr.headers().unwrap().clone();
    let row = rdr.records().next().unwrap().unwrap();
    let col = |name: &str| {
        let i = h
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no {name}: {h:?}"));
        row[i].to_string()
    };
    let bad: u64 = col("errors").parse().unwrap();
    assert!(bad > 300, "{text}");
    let rate: f64 = col("error_rate").parse().unwrap();
    assert!((rate - bad as f64 / 1000.0).abs() < 1e-6, "{text}");
    assert!(col("first_error").starts_with("READONLY"), "{text}");

    // compare reads the new fields, and shows the errors beside the rate; old files still load.
    let out = run(env
        .cmd("rbench")
        .arg("compare")
        .arg(fixture("run-set-get.json"))
        .arg(&file)
        .args(["--format", "json"]));
    let rows: Vec<Value> = serde_json::from_str(&out.ok()).unwrap();
    let mixed = rows.iter().find(|r| r["test"] == "MIXED").unwrap();
    assert_eq!(u(&mixed["errors"]), u(&r["errors"]));
    let set = rows.iter().find(|r| r["test"] == "SET").unwrap();
    assert_eq!(u(&set["errors"]), 0);
    let out = run(env
        .cmd("rbench")
        .arg("compare")
        .arg(fixture("wrap-set-get.json"))
        .arg(&file));
    let table = out.ok();
    assert!(
        table.lines().next().unwrap().contains("ERRORS")
            && table
                .lines()
                .any(|l| l.starts_with("MIXED") && l.contains(&share)),
        "{table}"
    );
}

#[test]
fn wrap_says_which_server_refused_redis_benchmark() {
    let Some(master) = RedisServer::start() else {
        return;
    };
    if which::which("redis-benchmark").is_err() {
        util::missing("redis-benchmark (apt-get install redis-tools)");
        return;
    }
    let Some(replica) = read_only_replica(&master) else {
        return;
    };
    let env = TestEnv::new(&replica);
    let out = env.run("rbench", &["wrap", "-t", "set", "-n", "200", "-c", "2"]);
    let line = out.fails(69);
    assert!(
        line.contains(&format!("127.0.0.1:{}", replica.port)) && line.contains("READONLY"),
        "{line}"
    );
    assert_eq!(out.stdout(), "");

    // A refused command is a permission problem, not a password one.
    master.cli(&["ACL", "SETUSER", "default", "-set"]);
    let env = TestEnv::new(&master);
    let out = env.run("rbench", &["wrap", "-t", "set", "-n", "100", "-c", "1"]);
    let line = out.fails(77);
    assert!(
        line.contains("NOPERM") && !line.contains("REDISCLI_AUTH"),
        "{line}"
    );
}

#[test]
fn wrap_refuses_figures_an_older_redis_benchmark_counted_errors_into() {
    // Before Redis 7, redis-benchmark counted error replies as served requests (printing them,
    // with -e, at most one a second) and had no --version: Debian 11's 6.0.16, from
    // scripts/redis-old.
    let Some(old) = std::env::var_os("RJ_REDIS_OLD_BENCHMARK") else {
        util::missing("RJ_REDIS_OLD_BENCHMARK (eval \"$(scripts/redis-old env)\")");
        return;
    };
    let Some(master) = RedisServer::start() else {
        return;
    };
    let old = old.to_str().unwrap();
    // Served: the rates, no latencies (6.0's CSV has none), and no version line made up.
    let env = TestEnv::new(&master);
    let wrap = [
        "wrap",
        "--program",
        old,
        "-n",
        "2000",
        "-c",
        "2",
        "--format",
        "json",
    ];
    let doc = json(&env, &[&wrap[..], &["-t", "set,get"]].concat());
    assert_eq!(doc["config"]["tool_version"], "", "{}", doc["config"]);
    for t in ["SET", "GET"] {
        let r = &doc["results"]["tests"][t];
        assert!(f(&r["requests_per_second"]) > 0.0, "{t}: {r}");
        assert!(r["p50_latency_ms"].is_null(), "{t}: {r}");
    }
    assert_ne!(
        master.cli(&["DBSIZE"]).trim(),
        "0",
        "the SETs reached the server"
    );

    // Refused by a read-only replica: told by the errors it printed, no figure.
    let Some(replica) = read_only_replica(&master) else {
        return;
    };
    let env = TestEnv::new(&replica);
    let out = env.run("rbench", &[&wrap[..], &["-t", "ping,set"]].concat());
    let line = out.fails(69);
    assert!(
        line.contains("SET")
            && line.contains("READONLY")
            && line.contains("counts them as served requests")
            && line.contains(&format!("127.0.0.1:{}", replica.port)),
        "{line}"
    );
    assert_eq!(out.stdout(), "");
}

#[test]
fn key_range_sequential_sizes_and_ttl_reach_the_server() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "set",
            "-n",
            "50",
            "-c",
            "3",
            "--key-dist",
            "sequential",
            "--key-min",
            "1000",
            "--key-max",
            "1049",
            "-d",
            "10-20",
            "--ttl",
            "500",
            "--key-prefix",
            "seq:",
            "--format",
            "json",
        ],
    );
    assert_eq!(doc["config"]["key_dist"], "sequential");
    assert_eq!(doc["config"]["keyspace"], 50);
    assert_eq!(doc["config"]["value_sizes"], "10-20");
    let keys = check::all_keys(&server);
    // A sequential SET run writes every key of the range once, and no other.
    let want: Vec<String> = (1000..1050).map(|i| format!("seq:{i:012}")).collect();
    assert_eq!(keys, want);
    let mut sizes = std::collections::BTreeSet::new();
    for k in &keys {
        let n: usize = server.cli(&["STRLEN", k]).trim().parse().unwrap();
        assert!((10..=20).contains(&n), "{k}: {n} bytes");
        sizes.insert(n);
        let ttl: i64 = server.cli(&["TTL", k]).trim().parse().unwrap();
        assert!((1..=500).contains(&ttl), "{k}: TTL {ttl}");
    }
    assert!(sizes.len() > 3, "{sizes:?}");
}

#[test]
fn get_counts_hits_and_misses_and_bytes() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    // Keys 0..29 exist, 30..99 do not; a sequential GET over 0..99 hits 30 of every 100.
    for i in 0..30 {
        server.cli(&["SET", &format!("hm:{i:012}"), "v"]);
    }
    for mode in [
        &["--mode", "direct"][..],
        &["--mode", "batched", "--batch", "10"],
    ] {
        let mut args = vec![
            "run",
            "-t",
            "get",
            "-n",
            "1000",
            "-c",
            "1",
            "--keyspace",
            "100",
            "--key-dist",
            "sequential",
            "--key-prefix",
            "hm:",
            "--format",
            "json",
        ];
        args.extend_from_slice(mode);
        let doc = json(&env, &args);
        let r = &doc["results"]["tests"]["GET"];
        assert_eq!(u(&r["hits"]), 300, "{mode:?}: {r}");
        assert_eq!(u(&r["misses"]), 700, "{mode:?}: {r}");
        assert!(f(&r["bytes_per_second"]) > f(&r["requests_per_second"]) * 20.0);
    }
    let out = run(env.cmd("rbench").args([
        "run",
        "-t",
        "get",
        "-n",
        "100",
        "-c",
        "1",
        "--keyspace",
        "100",
        "--key-dist",
        "sequential",
        "--key-prefix",
        "hm:",
    ]));
    let text = check::ok(&out);
    assert!(
        text.contains("GET: GET 30 hits, 70 misses (70.0% missed)"),
        "{text}"
    );
}

#[test]
fn commands_with_placeholders_run_alone_and_in_a_mix() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "--command",
            "HSET __key__ field __data__",
            "-n",
            "40",
            "-c",
            "2",
            "-d",
            "7",
            "--keyspace",
            "40",
            "--key-dist",
            "sequential",
            "--key-prefix",
            "h:",
            "--format",
            "json",
        ],
    );
    assert_eq!(u(&doc["results"]["tests"]["HSET"]["requests"]), 40);
    assert_eq!(doc["config"]["commands"][0], "HSET __key__ field __data__");
    assert_eq!(check::all_keys(&server).len(), 40);
    assert_eq!(
        server.cli(&["HGET", "h:000000000007", "field"]).trim(),
        "xxxxxxx"
    );
    // In a mix, cmd1 is the first --command.
    let doc = json(
        &env,
        &[
            "run",
            "--command",
            "RPUSH list:__key__ __data__",
            "--ratio",
            "get:1,cmd1:1",
            "-n",
            "400",
            "-c",
            "2",
            "--keyspace",
            "1",
            "--key-prefix",
            "m:",
            "--format",
            "json",
        ],
    );
    let ops = doc["results"]["tests"]["MIXED"]["ops"].as_array().unwrap();
    let pushes = ops
        .iter()
        .find(|o| o["op"] == "RPUSH list:__key__ __data__")
        .unwrap_or_else(|| panic!("{ops:?}"));
    let n = u(&pushes["count"]);
    assert!(n > 100 && n < 300, "{n}");
    assert_eq!(
        server.cli(&["LLEN", "list:m:000000000000"]).trim(),
        n.to_string()
    );
    let out = run(env
        .cmd("rbench")
        .args(["run", "--ratio", "cmd2:1", "--command", "PING"]));
    fails(&out, 2, "rbench");
}

#[test]
fn runs_report_the_median_and_every_run_with_per_second_samples() {
    let Some((_server, env)) = crate::util::redis() else {
        return;
    };
    let doc = json(
        &env,
        &[
            "run",
            "-t",
            "set",
            "--runs",
            "3",
            "--rate",
            "500",
            "--duration",
            "2200ms",
            "-c",
            "2",
            "--key-prefix",
            "runs:",
            "--format",
            "json",
        ],
    );
    let r = &doc["results"]["tests"]["SET"];
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let mut rates: Vec<f64> = runs.iter().map(|x| f(&x["requests_per_second"])).collect();
    rates.sort_by(f64::total_cmp);
    assert_eq!(f(&r["requests_per_second_min"]), rates[0]);
    assert_eq!(f(&r["requests_per_second"]), rates[1]);
    assert_eq!(f(&r["requests_per_second_max"]), rates[2]);
    assert_eq!(doc["config"]["runs"], 3);
    for run in runs {
        // 2.2 s: three seconds of samples, and they add up to the run's requests.
        let samples = run["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 3, "{samples:?}");
        let sum: u64 = samples.iter().map(|s| u(&s["requests"])).sum();
        assert_eq!(sum, u(&run["successes"]));
        assert!(
            (450..=550).contains(&u(&samples[1]["requests"])),
            "{samples:?}"
        );
        assert!(f(&samples[0]["p99_latency_ms"]) >= f(&samples[0]["p50_latency_ms"]));
    }
}

#[test]
fn hdr_out_writes_files_hdrhistogram_reads() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let Some((_server, env)) = crate::util::redis() else {
        return;
    };
    let prefix = env.path().join("lat");
    json(
        &env,
        &[
            "run",
            "-t",
            "set",
            "-n",
            "3000",
            "-c",
            "4",
            "--rate",
            "2000",
            "--key-prefix",
            "hdr:",
            "--hdr-out",
            prefix.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let log = std::fs::read(env.path().join("lat_SET.hlog")).unwrap();
    let mut total = 0u64;
    let mut intervals = 0;
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(iv) = entry.unwrap() {
            let bytes = base64_decode(iv.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = de.deserialize(&mut &bytes[..]).unwrap();
            assert!(iv.max() > 0.0 && iv.max() < 10_000.0, "max {} ms", iv.max());
            total += h.len();
            intervals += 1;
        }
    }
    assert_eq!(total, 3000);
    assert!(intervals >= 2, "{intervals}");
    let grm = std::fs::read_to_string(env.path().join("lat_SET.hgrm")).unwrap();
    assert!(grm.contains("Total count    =         3000]"), "{grm}");
    let last = grm
        .lines()
        .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    assert_eq!(last.split_whitespace().nth(1), Some("1.000000000000"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn wrap_finds_valkey_benchmark_or_the_program_given() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Ok(real) = which::which("redis-benchmark") else {
        return util::missing("redis-benchmark");
    };
    let env = TestEnv::new(&server);
    // A Valkey site: only valkey-benchmark (here the same program under Valkey's name).
    let bin = env.path().join("valkey");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&real, bin.join("valkey-benchmark")).unwrap();
    let args = [
        "wrap", "-t", "set", "-n", "2000", "-c", "2", "--format", "json",
    ];
    let out = run(env.cmd("rbench").env("PATH", &bin).args(args));
    let doc: Value = serde_json::from_str(&check::ok(&out)).unwrap();
    assert_eq!(doc["config"]["tool"], "valkey-benchmark");
    assert!(doc["config"]["command"][0]
        .as_str()
        .unwrap()
        .ends_with("valkey/valkey-benchmark"));
    assert!(f(&doc["results"]["tests"]["SET"]["requests_per_second"]) > 0.0);
    // --program, with nothing on PATH.
    let empty = env.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let prog = bin.join("valkey-benchmark");
    let mut a = vec!["wrap", "--program", prog.to_str().unwrap()];
    a.extend_from_slice(&args[1..]);
    let out = run(env.cmd("rbench").env("PATH", &empty).args(&a));
    let doc: Value = serde_json::from_str(&check::ok(&out)).unwrap();
    assert_eq!(doc["config"]["tool"], "valkey-benchmark");
    let out = run(env.cmd("rbench").env("PATH", &empty).args([
        "wrap",
        "--program",
        "/nonexistent/valkey-benchmark",
    ]));
    fails(&out, 69, "rbench");
    // wrap writes one size only.
    let out = run(env.cmd("rbench").args(["wrap", "-d", "10-20"]));
    fails(&out, 2, "rbench");
}

/// `INFO commandstats` calls of `cmd` on a node (0 when it has none).
fn calls(n: &RedisServer, cmd: &str) -> u64 {
    n.cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0)
}

/// Against a three-master Redis Cluster, with --cluster implied by INFO: connections to every
/// master, each key on the master of its slot (no MOVED), the masters' own counts adding up
/// to the run's, and a sequential fill covering each master's keys; then GETs over the same
/// range hit every key, with --cluster given.
#[test]
fn run_against_a_cluster_reaches_every_master_and_the_totals_add_up() {
    use crate::util::redis_cluster::{key_slot, rbench_walk, RedisCluster};
    let Some(c) = RedisCluster::start(3, 0) else {
        return;
    };
    let env = TestEnv::new(&c.nodes[0]);
    let masters = c.masters();
    assert_eq!(masters.len(), 3);
    let set_args = rbench_walk("set", "4", "cl:");
    let doc = json(&env, &set_args);
    let r = &doc["results"]["tests"]["SET"];
    assert_eq!(u(&r["requests"]), 3000, "{r}");
    assert_eq!(u(&r["successes"]), 3000, "{r}");
    assert_eq!(u(&r["errors"]), 0, "{r}");
    assert_eq!(u(&r["moved"]), 0, "{r}");
    let listed = doc["config"]["cluster_masters"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{doc}");
    let mut total_keys = 0;
    let mut total_sets = 0;
    for &port in &masters {
        let n = c.node(port);
        let sets = calls(n, "set");
        total_sets += sets;
        let keys: Vec<String> = n
            .cli(&["KEYS", "cl:*"])
            .lines()
            .map(str::to_string)
            .collect();
        // Every key of the range this master owns was written, and none it does not own.
        let owned = (0..600)
            .map(|k| format!("cl:{k:012}"))
            .filter(|k| c.owner(key_slot(k)) == port)
            .count();
        assert!(
            sets as usize >= owned,
            "{sets} SETs on the master on {port}"
        );
        assert_eq!(keys.len(), owned, "keys on the master on {port}");
        assert!(keys.iter().all(|k| c.owner(key_slot(k)) == port));
        total_keys += keys.len();
    }
    assert_eq!(total_sets, 3000);
    assert_eq!(total_keys, 600);

    let mut get_args = set_args.to_vec();
    get_args[2] = "get";
    get_args.insert(1, "--cluster");
    let doc = json(&env, &get_args);
    let r = &doc["results"]["tests"]["GET"];
    assert_eq!(u(&r["successes"]), 3000, "{r}");
    assert_eq!((u(&r["hits"]), u(&r["misses"])), (3000, 0), "{r}");
    let gets: Vec<u64> = masters.iter().map(|&p| calls(c.node(p), "get")).collect();
    assert!(gets.iter().all(|&g| g > 0), "{gets:?}");
    assert_eq!(gets.iter().sum::<u64>(), 3000);
}

/// A slot moved to another master during a run: the requests the old master answers with
/// MOVED (or ASK while it migrates) are errors, counted and said as such; the run still has
/// its figures.
#[test]
fn a_slot_moved_during_a_cluster_run_counts_moved_replies() {
    use crate::util::redis_cluster::{key_slot, RedisCluster};
    let Some(c) = RedisCluster::start(3, 0) else {
        return;
    };
    let env = TestEnv::new(&c.nodes[0]);
    // Every key in one slot (a hash tag), so that moving it redirects a share of the requests
    // that cannot miss.
    let slot = key_slot("{mv}:000000000000");
    let to = *c.masters().iter().find(|&&p| p != c.owner(slot)).unwrap();
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            env.run(
                "rbench",
                &[
                    "run",
                    "-t",
                    "set",
                    "-c",
                    "2",
                    "--duration",
                    "3s",
                    "-n",
                    "100000000",
                    "--keyspace",
                    "50",
                    "--key-prefix",
                    "{mv}:",
                    "--rate",
                    "2000",
                    "--format",
                    "json",
                ],
            )
        });
        std::thread::sleep(Duration::from_millis(800));
        c.move_slot(slot, to);
        run.join().unwrap()
    });
    let doc = out.json();
    let r = &doc["results"]["tests"]["SET"];
    let moved = u(&r["moved"]);
    assert!(moved > 0, "{r}");
    assert!(u(&r["errors"]) >= moved, "{r}");
    assert!(u(&r["successes"]) > 0, "{r}");
    let first = r["first_error"].as_str().unwrap();
    assert!(
        first.starts_with("MOVED") || first.starts_with("ASK"),
        "{first}"
    );
    assert!(out.stderr().contains("MOVED or ASK"), "{}", out.stderr());
    // Two of the three masters own no key of the range: only the slot's owner was connected.
    assert_eq!(
        doc["config"]["cluster_masters"].as_array().unwrap().len(),
        1
    );
}

/// --cluster against a standalone server: one line saying so, exit 2, nothing run.
#[test]
fn cluster_against_a_standalone_server_is_one_clear_error() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let out = env.run("rbench", &["run", "--cluster", "-t", "set", "-n", "10"]);
    let err = out.fails(2);
    assert!(err.contains("is no Redis Cluster node"), "{err}");
    assert!(err.contains("run without --cluster"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(calls(&server, "set"), 0);
    // Without --cluster, the standalone server is benchmarked as before.
    let doc = json(&env, &["run", "-t", "set", "-n", "10", "--format", "json"]);
    assert!(doc["config"].get("cluster_masters").is_none(), "{doc}");
    assert!(doc["results"]["tests"]["SET"].get("moved").is_none());
}
