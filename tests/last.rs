//! rj-last (DESIGN §4): the last job by numeric order, --job, SCAN never KEYS, every value type.
use serde_json::json;

use crate::util::check::{self, calls, fails, ok, run, sadd};
use crate::util::{RedisServer, TestEnv};

/// Keys of every Redis type for job `id`, written with plain redis-cli.
fn write_all_types(server: &RedisServer, tag: &str, id: &str) {
    let k = |n: &str| format!("{tag}-{id}:{n}");
    server.cli(&["SET", &k("a_string"), "hello world"]);
    server.cli(&["HSET", &k("b_hash"), "loss", "0.25", "epoch", "3"]);
    server.cli(&["RPUSH", &k("c_list"), "x", "y", "x"]);
    server.cli(&["SADD", &k("d_set"), "beta", "alpha"]);
    server.cli(&["ZADD", &k("e_zset"), "2", "two", "1.5", "one"]);
    server.cli(&["XADD", &k("f_stream"), "1-1", "step", "1", "loss", "0.9"]);
}

#[test]
fn last_is_largest_numeric_id_with_task_tie_break() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    // By string order "99" and "10_2" would win; numerically 100_10 is the last.
    sadd(
        &server,
        &env.key("ALL"),
        &["99", "100", "100_2", "100_10", "9", "junk"],
    );
    for id in ["99", "100", "100_2", "100_10", "9"] {
        server.cli(&["SET", &format!("{}-{id}:name", env.tag), &format!("v{id}")]);
    }
    let out = ok(&run(&mut env.cmd("rj-last")));
    assert_eq!(
        out,
        format!("Key:  {}-100_10:name\nValue: v100_10\n---\n", env.tag)
    );
    // --job picks another; a task ID shows that task only, not its parent nor siblings.
    let out = ok(&run(env.cmd("rj-last").args(["--job", "100_2"])));
    assert_eq!(
        out,
        format!("Key:  {}-100_2:name\nValue: v100_2\n---\n", env.tag)
    );
    let out = ok(&run(env.cmd("rj-last").args(["--job", "99"])));
    assert_eq!(out, format!("Key:  {}-99:name\nValue: v99\n---\n", env.tag));
}

#[test]
fn original_text_format_sorted_by_key_with_every_type() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    sadd(&server, &env.key("ALL"), &["5"]);
    write_all_types(&server, &env.tag, "5");
    let t = &env.tag;
    let out = ok(&run(&mut env.cmd("rj-last")));
    let want = format!(
        "Key:  {t}-5:a_string\nValue: hello world\n---\n\
         Key:  {t}-5:b_hash\nValue: {{\"epoch\":\"3\",\"loss\":\"0.25\"}}\n---\n\
         Key:  {t}-5:c_list\nValue: [\"x\",\"y\",\"x\"]\n---\n\
         Key:  {t}-5:d_set\nValue: [\"alpha\",\"beta\"]\n---\n\
         Key:  {t}-5:e_zset\nValue: [[\"one\",1.5],[\"two\",2.0]]\n---\n\
         Key:  {t}-5:f_stream\nValue: [[\"1-1\",{{\"loss\":\"0.9\",\"step\":\"1\"}}]]\n---\n"
    );
    assert_eq!(out, want);
}

#[test]
fn json_has_structures_and_csv_tsv_parse() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    sadd(&server, &env.key("ALL"), &["5"]);
    write_all_types(&server, &env.tag, "5");
    server.cli(&["SET", &format!("{}-5:g_multi", env.tag), "a\tb\nc"]);
    let t = &env.tag;
    let v: serde_json::Value =
        serde_json::from_str(&ok(&run(env.cmd("rj-last").args(["--format", "json"])))).unwrap();
    assert_eq!(v["tag"], t.as_str());
    assert_eq!(v["job_id"], "5");
    let keys = v["keys"].as_array().unwrap();
    let by = |n: &str| {
        keys.iter()
            .find(|k| k["key"] == format!("{t}-5:{n}"))
            .unwrap_or_else(|| panic!("{n} missing in {v}"))
            .clone()
    };
    assert_eq!(by("a_string")["type"], "string");
    assert_eq!(by("a_string")["value"], "hello world");
    assert_eq!(by("b_hash")["type"], "hash");
    assert_eq!(by("b_hash")["value"], json!({"loss": "0.25", "epoch": "3"}));
    assert_eq!(by("c_list")["value"], json!(["x", "y", "x"]));
    assert_eq!(by("d_set")["type"], "set");
    assert_eq!(by("d_set")["value"], json!(["alpha", "beta"]));
    assert_eq!(by("e_zset")["type"], "zset");
    assert_eq!(by("e_zset")["value"], json!([["one", 1.5], ["two", 2.0]]));
    assert_eq!(by("f_stream")["type"], "stream");
    assert_eq!(
        by("f_stream")["value"],
        json!([["1-1", {"step": "1", "loss": "0.9"}]])
    );
    assert_eq!(by("g_multi")["value"], "a\tb\nc");
    let names: Vec<&str> = keys.iter().map(|k| k["key"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let out = ok(&run(env.cmd("rj-last").args(["--format", "csv"])));
    let mut r = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(r.headers().unwrap(), vec!["key", "type", "value"]);
    let rows: Vec<(String, String, String)> = r.deserialize().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows[1],
        (
            format!("{t}-5:b_hash"),
            "hash".into(),
            r#"{"epoch":"3","loss":"0.25"}"#.into()
        )
    );
    assert_eq!(rows[6].2, "a\tb\nc", "CSV quotes what it must");

    let out = ok(&run(env.cmd("rj-last").args(["--format", "tsv"])));
    assert_eq!(
        out.lines().count(),
        8,
        "one line per key, header first:\n{out}"
    );
    let mut r = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(false)
        .from_reader(out.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert!(rows.iter().all(|r| r.len() == 3));
    assert_eq!(&rows[0][2], "hello world");
    assert_eq!(&rows[6][2], "a b c");
}

#[test]
fn uses_scan_never_keys_and_only_this_jobs_keys() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["1", "2"]);
    server.cli(&["SET", &format!("{t}-2:mine"), "yes"]);
    server.cli(&["SET", &format!("{t}-2_1:task"), "yes too"]);
    // Neighbours that a sloppy pattern would catch.
    for other in [
        format!("{t}-20:x"),
        format!("{t}-20_1:x"),
        format!("{t}-2-7:x"),
        format!("{t}-2_1-7:x"),
        format!("{t}x-2:x"),
        format!("{t}_JOB:2"),
    ] {
        server.cli(&["SET", &other, "no"]);
    }
    // Enough keys that one SCAN step is not the whole keyspace.
    let mut c = server.client();
    let mut p = redis::pipe();
    for i in 0..3000 {
        p.cmd("SET").arg(format!("noise:{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = ok(&run(&mut env.cmd("rj-last")));
    assert_eq!(
        out,
        format!("Key:  {t}-2:mine\nValue: yes\n---\nKey:  {t}-2_1:task\nValue: yes too\n---\n")
    );
    assert_eq!(calls(&server, "keys"), 0, "KEYS blocks the server");
    assert!(calls(&server, "scan") > 1, "walks the keyspace with SCAN");
}

#[test]
fn no_jobs_or_no_keys_is_exit_1_with_one_line() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let out = run(&mut env.cmd("rj-last"));
    let line = fails(&out, 1, "rj-last");
    assert!(line.contains(&env.key("ALL")), "{line}");
    assert!(out.stdout.is_empty());

    sadd(&server, &env.key("ALL"), &["3"]);
    let out = run(&mut env.cmd("rj-last"));
    let line = fails(&out, 1, "rj-last");
    assert!(line.contains("job 3"), "{line}");
    assert!(out.stdout.is_empty());

    let line = fails(&run(env.cmd("rj-last").args(["--job", "3*"])), 2, "rj-last");
    assert!(line.contains("\"3*\""), "{line}");
    assert!(check::all_keys(&server).len() == 1, "read-only");
}

/// Jobs store bytes that are not UTF-8 (pickles, packed floats): shown, never a failure.
#[test]
fn binary_values_of_every_type_are_shown_lossily() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    sadd(&server, &env.key("ALL"), &["8"]);
    let bin: &[u8] = b"ab\xff\xfecd";
    let k = |n: &str| format!("{}-8:{n}", env.tag);
    let mut c = server.client();
    redis::pipe()
        .cmd("SET")
        .arg(k("s"))
        .arg(bin)
        .ignore()
        .cmd("HSET")
        .arg(k("h"))
        .arg("f")
        .arg(bin)
        .ignore()
        .cmd("RPUSH")
        .arg(k("l"))
        .arg(bin)
        .ignore()
        .cmd("SADD")
        .arg(k("t"))
        .arg(bin)
        .ignore()
        .cmd("ZADD")
        .arg(k("z"))
        .arg(1)
        .arg(bin)
        .ignore()
        .query::<()>(&mut c)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&run(env.cmd("rj-last").args(["--format", "json"])))).unwrap();
    let shown = "ab\u{fffd}\u{fffd}cd";
    let values: Vec<&serde_json::Value> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["value"])
        .collect();
    assert_eq!(
        values,
        [
            &json!({"f": shown}),
            &json!([shown]),
            &json!(shown),
            &json!([shown]),
            &json!([[shown, 1.0]]),
        ]
    );
    let text = ok(&run(&mut env.cmd("rj-last")));
    assert_eq!(text.matches(shown).count(), 5, "{text}");
}

/// `rj-last … | head -1` with more output than a pipe holds: exit 0, nothing on stderr, in the
/// text, JSON and CSV writers alike.
#[test]
fn closed_stdout_is_success_in_every_format() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    sadd(&server, &env.key("ALL"), &["1"]);
    let mut c = server.client();
    let mut p = redis::pipe();
    let big = "x".repeat(1000);
    for i in 0..300 {
        p.cmd("SET")
            .arg(format!("{}-1:k{i:03}", env.tag))
            .arg(&big)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    for format in ["human", "json", "csv"] {
        let (first, out) = check::head_1(&env, "rj-last", &["--format", format]);
        assert!(!first.is_empty(), "{format}");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            check::stderr(&out)
        );
        assert!(out.stderr.is_empty(), "{format}: {}", check::stderr(&out));
    }
}

/// Keys of an array job as array-job.sbatch writes them, by task: `T-<parent>_<task>:<name>`.
fn write_tasks(server: &RedisServer, tag: &str, parent: &str, tasks: &[&str]) {
    for task in tasks {
        let k = |n: &str| format!("{tag}-{parent}_{task}:{n}");
        server.cli(&["SET", &k("host"), &format!("n{task}")]);
        server.cli(&["HSET", &k("result"), "task", task]);
    }
}

/// The `key` fields of an `rj-last --format json` document, checking its shape on the way.
fn json_keys(doc: &str, tag: &str, job: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    let obj = v.as_object().unwrap();
    let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["job_id", "keys", "tag"], "{v}");
    assert_eq!(v["tag"], tag);
    assert_eq!(v["job_id"], job);
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let mut f: Vec<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
            f.sort();
            assert_eq!(f, ["key", "type", "value"], "{k}");
            k["key"].as_str().unwrap().to_string()
        })
        .collect()
}

/// An array job is recorded under its parent ID, and only its tasks write keys: rj-last shows
/// them, task 2 before task 10.
#[test]
fn array_parent_with_only_task_keys_shows_them_in_task_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["4238610"]);
    write_tasks(&server, t, "4238610", &["10", "2", "3"]);
    let out = ok(&run(&mut env.cmd("rj-last")));
    let want: String = ["2", "3", "10"]
        .iter()
        .map(|n| {
            format!(
                "Key:  {t}-4238610_{n}:host\nValue: n{n}\n---\n\
                 Key:  {t}-4238610_{n}:result\nValue: {{\"task\":\"{n}\"}}\n---\n"
            )
        })
        .collect();
    assert_eq!(out, want);

    let doc = ok(&run(env.cmd("rj-last").args(["--format", "json"])));
    let names = json_keys(&doc, t, "4238610");
    let want: Vec<String> = want
        .lines()
        .filter_map(|l| l.strip_prefix("Key:  "))
        .map(String::from)
        .collect();
    assert_eq!(names, want);

    let out = ok(&run(env.cmd("rj-last").args(["--format", "csv"])));
    assert_eq!(out.lines().count(), 7, "header and six keys:\n{out}");
}

#[test]
fn array_parent_shows_its_own_keys_then_its_tasks() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["7", "12"]);
    server.cli(&["SET", &format!("{t}-12:z_config"), "lr=0.1"]);
    server.cli(&["SET", &format!("{t}-12:a_started"), "now"]);
    write_tasks(&server, t, "12", &["1", "10", "9"]);
    server.cli(&["SET", &format!("{t}-7:other"), "no"]);
    let doc = ok(&run(env.cmd("rj-last").args(["--format", "json"])));
    let mut want = vec![format!("{t}-12:a_started"), format!("{t}-12:z_config")];
    for n in ["1", "9", "10"] {
        want.push(format!("{t}-12_{n}:host"));
        want.push(format!("{t}-12_{n}:result"));
    }
    assert_eq!(json_keys(&doc, t, "12"), want);
    let out = ok(&run(env.cmd("rj-last").args(["--job", "7"])));
    assert_eq!(out, format!("Key:  {t}-7:other\nValue: no\n---\n"));
}

#[test]
fn job_with_task_id_shows_only_that_task() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["12"]);
    server.cli(&["SET", &format!("{t}-12:own"), "parent"]);
    write_tasks(&server, t, "12", &["1", "3", "30"]);
    let doc = ok(&run(env
        .cmd("rj-last")
        .args(["--job", "12_3", "--format", "json"])));
    assert_eq!(
        json_keys(&doc, t, "12_3"),
        [format!("{t}-12_3:host"), format!("{t}-12_3:result")]
    );
    // The parent still shows every task (and a task ID never catches its parent's keys).
    let doc = ok(&run(env.cmd("rj-last").args(["--format", "json"])));
    assert_eq!(json_keys(&doc, t, "12").len(), 7);

    // A task with no keys is "no keys", naming only its own pattern.
    let line = fails(
        &run(env.cmd("rj-last").args(["--job", "12_2"])),
        1,
        "rj-last",
    );
    assert!(
        line.contains(&format!("({t}-12_2:* matched nothing)")),
        "{line}"
    );
}

/// Tag `arr` job 12 must not catch job 123 of `arr`, job 12 of tag `arr-2`, nor keys of a tag
/// that starts like its task pattern (`arr-12_9`).
#[test]
fn array_task_keys_of_other_jobs_and_tags_are_not_shown() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut env = TestEnv::new(&server);
    env.tag = "arr".into();
    sadd(&server, "arr_ALL", &["12"]);
    sadd(&server, "arr-2_ALL", &["12"]);
    server.cli(&["SET", "arr-12_2:mine", "yes"]);
    for other in [
        "arr-123:x",
        "arr-123_1:x",
        "arr-2-12:x",
        "arr-2-12_1:x",
        "arr-12_9-5:x",
        "arr-12_3_4:x",
        "arrx-12_1:x",
        "arr_JOB:12",
    ] {
        server.cli(&["SET", other, "no"]);
    }
    let out = ok(&run(&mut env.cmd("rj-last")));
    assert_eq!(out, "Key:  arr-12_2:mine\nValue: yes\n---\n");
    // The neighbours are where they belong.
    let out = ok(&run(env.cmd("rj-last").args(["--job", "123"])));
    assert_eq!(
        out,
        "Key:  arr-123:x\nValue: no\n---\nKey:  arr-123_1:x\nValue: no\n---\n"
    );
    let out = ok(&run(env.cmd("rj-last").args(["--tag", "arr-2"])));
    assert_eq!(
        out,
        "Key:  arr-2-12:x\nValue: no\n---\nKey:  arr-2-12_1:x\nValue: no\n---\n"
    );
}

#[test]
fn no_keys_for_an_array_parent_names_both_patterns() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["4238610"]);
    server.cli(&["SET", &format!("{t}-42386100_1:x"), "another job"]);
    let out = run(&mut env.cmd("rj-last"));
    let line = fails(&out, 1, "rj-last");
    assert!(
        line.contains(&format!(
            "({t}-4238610:* and {t}-4238610_*:* matched nothing)"
        )),
        "{line}"
    );
    assert!(out.stdout.is_empty());
}

/// A job may name a key in bytes that are not UTF-8 (redis-cli, the redis crate): that key is
/// shown with U+FFFD in every format, and neither it nor the job's other keys are lost. For the
/// job (--job), for the last job when it is an array parent (its tasks' keys), and for one task.
#[test]
fn key_names_that_are_not_utf8_are_shown_lossily_in_every_format() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["7", "12"]);
    let raw = |s: &str, tail: &[u8]| [format!("{t}-{s}").as_bytes(), tail].concat();
    let mut c = server.client();
    redis::pipe()
        .cmd("SET")
        .arg(raw("7:bad", b"\xffname"))
        .arg("v1")
        .ignore()
        .cmd("HSET")
        .arg(raw("7:h", b"\xfe"))
        .arg("f")
        .arg("v2")
        .ignore()
        .cmd("SET")
        .arg(raw("7:good", b""))
        .arg("v3")
        .ignore()
        .cmd("SET")
        .arg(raw("12_2:task", b"\xff"))
        .arg("t2")
        .ignore()
        .cmd("SET")
        .arg(raw("12_10:task", b""))
        .arg("t10")
        .ignore()
        .query::<()>(&mut c)
        .unwrap();
    let bad = format!("{t}-7:bad\u{fffd}name");
    let h = format!("{t}-7:h\u{fffd}");
    let good = format!("{t}-7:good");

    let out = ok(&run(env.cmd("rj-last").args(["--job", "7"])));
    assert_eq!(
        out,
        format!(
            "Key:  {bad}\nValue: v1\n---\nKey:  {good}\nValue: v3\n---\n\
             Key:  {h}\nValue: {{\"f\":\"v2\"}}\n---\n"
        )
    );
    let doc = ok(&run(env
        .cmd("rj-last")
        .args(["--job", "7", "--format", "json"])));
    assert_eq!(json_keys(&doc, t, "7"), [bad.as_str(), &good, &h]);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["keys"][2]["value"], json!({"f": "v2"}));
    for (format, delim) in [("csv", b','), ("tsv", b'\t')] {
        let out = ok(&run(env
            .cmd("rj-last")
            .args(["--job", "7", "--format", format])));
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delim)
            .from_reader(out.as_bytes());
        let rows: Vec<(String, String, String)> = r.deserialize().map(Result::unwrap).collect();
        assert_eq!(
            rows,
            [
                (bad.clone(), "string".into(), "v1".into()),
                (good.clone(), "string".into(), "v3".into()),
                (h.clone(), "hash".into(), r#"{"f":"v2"}"#.into()),
            ],
            "{format}"
        );
    }

    // The last job, 12, is an array parent: its tasks' keys, task 2 before task 10.
    let out = ok(&run(&mut env.cmd("rj-last")));
    assert_eq!(
        out,
        format!(
            "Key:  {t}-12_2:task\u{fffd}\nValue: t2\n---\nKey:  {t}-12_10:task\nValue: t10\n---\n"
        )
    );
    let out = ok(&run(env.cmd("rj-last").args(["--job", "12_2"])));
    assert_eq!(
        out,
        format!("Key:  {t}-12_2:task\u{fffd}\nValue: t2\n---\n")
    );
}

/// TSV cannot quote: a tab or a newline in a key name would split the row, so it is cleaned as
/// in values; CSV quotes it and keeps it.
#[test]
fn tsv_cleans_tabs_and_newlines_in_key_names() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["3"]);
    server.cli(&["SET", &format!("{t}-3:a\tb"), "tab"]);
    server.cli(&["SET", &format!("{t}-3:c\nd"), "newline"]);
    server.cli(&["SET", &format!("{t}-3:e\r\nf"), "crlf"]);
    let out = ok(&run(env.cmd("rj-last").args(["--format", "tsv"])));
    assert_eq!(
        out,
        format!(
            "key\ttype\tvalue\n{t}-3:a b\tstring\ttab\n{t}-3:c d\tstring\tnewline\n\
             {t}-3:e  f\tstring\tcrlf\n"
        )
    );
    let out = ok(&run(env.cmd("rj-last").args(["--format", "csv"])));
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let keys: Vec<String> = r.records().map(|r| r.unwrap()[0].to_string()).collect();
    assert_eq!(
        keys,
        [
            format!("{t}-3:a\tb"),
            format!("{t}-3:c\nd"),
            format!("{t}-3:e\r\nf")
        ]
    );
}
