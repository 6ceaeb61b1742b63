//! rj-status --format openmetrics (ARCHITECTURE.md §8): promtool accepts it, and its numbers are
//! rj-status's counts and the tracker keys' contents.
use crate::util::check::{self, ok, run, sadd};
use crate::util::{seed, RedisServer, TestEnv};

/// The six sets of a small tag, a lease and the tick hash rj-track writes once per tick.
fn seed_tracked(server: &RedisServer, env: &TestEnv) {
    seed::small_tag(server, env);
    server.cli(&["SET", &env.key("TRACKER"), "login1:42:a\"b", "PX", "60000"]);
    server.cli(&[
        "HSET",
        &env.key("TRACKER:tick"),
        "at",
        "1700000000",
        "duration_ms",
        "1250",
        "slurm_commands",
        "2",
        "tracked",
        "2",
        "moved",
        "1",
        "unknown",
        "1",
        "owner",
        "login1:42:a\"b",
    ]);
}

/// The samples of the text: (name, labels as written, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name{labels} value");
            let (name, labels) = series.split_once('{').expect("labels");
            (
                name.to_string(),
                labels.trim_end_matches('}').to_string(),
                value.parse().expect("a number"),
            )
        })
        .collect()
}

#[test]
fn promtool_accepts_the_text() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let Ok(promtool) = which::which("promtool") else {
        crate::util::missing("promtool (Debian package prometheus)");
        return;
    };
    let env = TestEnv::new(&server);
    seed_tracked(&server, &env);
    let text = ok(&run(env.cmd("rj-status").args(["--format", "openmetrics"])));
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_numbers_are_rj_status_counts_and_the_tick() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    seed_tracked(&server, &env);
    let text = ok(&run(env.cmd("rj-status").args(["--format", "openmetrics"])));
    let got = samples(&text);
    let counts: serde_json::Value = serde_json::from_str(&ok(&run(env
        .cmd("rj-status")
        .args(["--count", "--format", "json"]))))
    .unwrap();
    for s in counts["sets"].as_array().unwrap() {
        let labels = format!("tag=\"{}\",set=\"{}\"", env.tag, s["set"].as_str().unwrap());
        let v = got
            .iter()
            .find(|(n, l, _)| n == "rj_jobs" && *l == labels)
            .unwrap_or_else(|| panic!("no rj_jobs{{{labels}}} in\n{text}"));
        assert_eq!(v.2, s["count"].as_f64().unwrap(), "{labels}");
    }
    let one = |name: &str| -> f64 {
        let t = format!("tag=\"{}\"", env.tag);
        got.iter()
            .find(|(n, l, _)| n == name && *l == t)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .2
    };
    assert_eq!(one("rj_tracker_last_tick_timestamp_seconds"), 1.7e9);
    assert_eq!(one("rj_tracker_last_tick_duration_seconds"), 1.25);
    assert_eq!(one("rj_tracker_last_tick_slurm_commands"), 2.0);
    assert_eq!(one("rj_tracker_last_tick_unknown_jobs"), 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let age = one("rj_tracker_last_tick_age_seconds");
    assert!((now - 1.7e9 - age).abs() < 60.0, "age {age}");
    let left = one("rj_tracker_lease_remaining_seconds");
    assert!(left > 0.0 && left <= 60.0, "{left}");
    let holder = format!("tag=\"{}\",owner=\"login1:42:a\\\"b\"", env.tag);
    assert!(
        got.iter()
            .any(|(n, l, v)| n == "rj_tracker_lease_holder" && *l == holder && *v == 1.0),
        "{text}"
    );
}

#[test]
fn several_tags_or_all_of_them() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    seed_tracked(&server, &env);
    let other = format!("{}-b", env.tag);
    sadd(&server, &format!("{other}_ALL"), &["1"]);
    sadd(&server, &format!("{other}_COMPLETED"), &["1"]);
    let tags_of = |text: &str| -> Vec<String> {
        let mut t: Vec<String> = samples(text)
            .into_iter()
            .filter(|(n, l, _)| n == "rj_jobs" && l.ends_with("set=\"ALL\""))
            .map(|(_, l, v)| format!("{l} {v}"))
            .collect();
        t.sort();
        t
    };
    let want = vec![
        format!("tag=\"{}\",set=\"ALL\" 6", env.tag),
        format!("tag=\"{other}\",set=\"ALL\" 1"),
    ];
    let text = ok(&run(env.cmd("rj-status").args([
        "--format",
        "openmetrics",
        "--tag",
        &env.tag,
        "--tag",
        &other,
    ])));
    assert_eq!(tags_of(&text), want, "{text}");
    // --all-tags finds both (and whatever else the server holds, which here is nothing).
    let text = ok(&run(env.cmd("rj-status").args([
        "--format",
        "openmetrics",
        "--all-tags",
    ])));
    assert_eq!(tags_of(&text), want, "{text}");
    // Several tags only make sense for the metrics.
    let out = run(env.cmd("rj-status").args(["--tag", "a", "--tag", "b"]));
    check::code(&out, 2);
    let out = run(env
        .cmd("rj-status")
        .args(["--format", "openmetrics", "--long"]));
    check::code(&out, 2);
}

/// `rj-track --metrics-file`: after a tick the file holds the same text rj-status prints for the
/// tag, with this tracker's own tick figures, and no temporary file is left beside it.
#[test]
fn rj_track_writes_the_metrics_file_each_tick() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    // Jobs already final: a tick has nothing to ask Slurm, so none is needed on PATH.
    sadd(&server, &env.key("ALL"), &["9", "10", "77"]);
    sadd(&server, &env.key("COMPLETED"), &["10", "9"]);
    sadd(&server, &env.key("CANCELLED"), &["77"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rj.prom");
    ok(&run(env
        .cmd("rj-track")
        .args(["--once", "--metrics-file"])
        .arg(&file)));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let got = samples(&text);
    let value = |name: &str, set: Option<&str>| {
        got.iter()
            .find(|(n, l, _)| n == name && set.is_none_or(|s| l.contains(&format!("set=\"{s}\""))))
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value("rj_jobs", Some("ALL")), Some(3.0), "{text}");
    assert_eq!(value("rj_jobs", Some("COMPLETED")), Some(2.0), "{text}");
    assert_eq!(value("rj_jobs", Some("CANCELLED")), Some(1.0), "{text}");
    assert_eq!(
        value("rj_jobs", Some("PENDING_AND_RUNNING")),
        Some(0.0),
        "{text}"
    );
    // The tick this rj-track just made: its own figures, written before the file.
    assert_eq!(
        value("rj_tracker_last_tick_tracked_jobs", None),
        Some(0.0),
        "{text}"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["rj.prom"], "nothing but the file is left");
}
