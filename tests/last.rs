//! rj-last (ARCHITECTURE.md §4): the last job by numeric order, --job, SCAN never KEYS, every value type.
use serde_json::json;

use crate::util::check::{self, calls, fails, run, sadd};
use crate::util::{self, RedisServer, TestEnv};

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
    let Some((server, env)) = util::redis() else {
        return;
    };
    // By string order "99" and "10_2" would win; numerically 100_10 is the last.
    sadd(
        &server,
        &env.key("ALL"),
        &["99", "100", "100_2", "100_10", "9", "junk"],
    );
    for id in ["99", "100", "100_2", "100_10", "9"] {
        server.cli(&["SET", &format!("{}-{id}:name", env.tag), &format!("v{id}")]);
    }
    let out = env.run("rj-last", &[]).ok();
    assert_eq!(
        out,
        format!("Key:  {}-100_10:name\nValue: v100_10\n---\n", env.tag)
    );
    // --job picks another; a task ID shows that task only, not its parent nor siblings.
    let out = env.run("rj-last", &["--job", "100_2"]).ok();
    assert_eq!(
        out,
        format!("Key:  {}-100_2:name\nValue: v100_2\n---\n", env.tag)
    );
    let out = env.run("rj-last", &["--job", "99"]).ok();
    assert_eq!(out, format!("Key:  {}-99:name\nValue: v99\n---\n", env.tag));
}

#[test]
fn original_text_format_sorted_by_key_with_every_type() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("ALL"), &["5"]);
    write_all_types(&server, &env.tag, "5");
    let t = &env.tag;
    let out = env.run("rj-last", &[]).ok();
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
    let Some((server, env)) = util::redis() else {
        return;
    };
    sadd(&server, &env.key("ALL"), &["5"]);
    write_all_types(&server, &env.tag, "5");
    server.cli(&["SET", &format!("{}-5:g_multi", env.tag), "a\tb\nc"]);
    let t = &env.tag;
    let v = env.run("rj-last", &["--format", "json"]).json();
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

    let out = env.run("rj-last", &["--format", "csv"]).ok();
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

    let out = env.run("rj-last", &["--format", "tsv"]).ok();
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
    let Some((server, env)) = util::redis() else {
        return;
    };
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
    let out = env.run("rj-last", &[]).ok();
    assert_eq!(
        out,
        format!("Key:  {t}-2:mine\nValue: yes\n---\nKey:  {t}-2_1:task\nValue: yes too\n---\n")
    );
    assert_eq!(calls(&server, "keys"), 0, "KEYS blocks the server");
    assert!(calls(&server, "scan") > 1, "walks the keyspace with SCAN");
}

#[test]
fn no_jobs_or_no_keys_is_exit_1_with_one_line() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let out = env.run("rj-last", &[]);
    let line = out.fails(1);
    assert!(line.contains(&env.key("ALL")), "{line}");
    assert!(out.stdout.is_empty());

    sadd(&server, &env.key("ALL"), &["3"]);
    let out = env.run("rj-last", &[]);
    let line = out.fails(1);
    assert!(line.contains("job 3"), "{line}");
    assert!(out.stdout.is_empty());

    let line = env.run("rj-last", &["--job", "3*"]).fails(2);
    assert!(line.contains("\"3*\""), "{line}");
    assert!(check::all_keys(&server).len() == 1, "read-only");
}

/// Jobs store bytes that are not UTF-8 (pickles, packed floats): shown, never a failure.
#[test]
fn binary_values_of_every_type_are_shown_lossily() {
    let Some((server, env)) = util::redis() else {
        return;
    };
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
    let v = env.run("rj-last", &["--format", "json"]).json();
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
    let text = env.run("rj-last", &[]).ok();
    assert_eq!(text.matches(shown).count(), 5, "{text}");
}

/// `rj-last … | head -1` with more output than a pipe holds: exit 0, nothing on stderr, in the
/// text, JSON and CSV writers alike.
#[test]
fn closed_stdout_is_success_in_every_format() {
    let Some((server, env)) = util::redis() else {
        return;
    };
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
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["4238610"]);
    write_tasks(&server, t, "4238610", &["10", "2", "3"]);
    let out = env.run("rj-last", &[]).ok();
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

    let doc = env.run("rj-last", &["--format", "json"]).ok();
    let names = json_keys(&doc, t, "4238610");
    let want: Vec<String> = want
        .lines()
        .filter_map(|l| l.strip_prefix("Key:  "))
        .map(String::from)
        .collect();
    assert_eq!(names, want);

    let out = env.run("rj-last", &["--format", "csv"]).ok();
    assert_eq!(out.lines().count(), 7, "header and six keys:\n{out}");
}

#[test]
fn array_parent_shows_its_own_keys_then_its_tasks() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["7", "12"]);
    server.cli(&["SET", &format!("{t}-12:z_config"), "lr=0.1"]);
    server.cli(&["SET", &format!("{t}-12:a_started"), "now"]);
    write_tasks(&server, t, "12", &["1", "10", "9"]);
    server.cli(&["SET", &format!("{t}-7:other"), "no"]);
    let doc = env.run("rj-last", &["--format", "json"]).ok();
    let mut want = vec![format!("{t}-12:a_started"), format!("{t}-12:z_config")];
    for n in ["1", "9", "10"] {
        want.push(format!("{t}-12_{n}:host"));
        want.push(format!("{t}-12_{n}:result"));
    }
    assert_eq!(json_keys(&doc, t, "12"), want);
    let out = env.run("rj-last", &["--job", "7"]).ok();
    assert_eq!(out, format!("Key:  {t}-7:other\nValue: no\n---\n"));
}

#[test]
fn job_with_task_id_shows_only_that_task() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["12"]);
    server.cli(&["SET", &format!("{t}-12:own"), "parent"]);
    write_tasks(&server, t, "12", &["1", "3", "30"]);
    let doc = env
        .run("rj-last", &["--job", "12_3", "--format", "json"])
        .ok();
    assert_eq!(
        json_keys(&doc, t, "12_3"),
        [format!("{t}-12_3:host"), format!("{t}-12_3:result")]
    );
    // The parent still shows every task (and a task ID never catches its parent's keys).
    let doc = env.run("rj-last", &["--format", "json"]).ok();
    assert_eq!(json_keys(&doc, t, "12").len(), 7);

    // A task with no keys is "no keys", naming only its own pattern.
    let line = env.run("rj-last", &["--job", "12_2"]).fails(1);
    assert!(
        line.contains(&format!("({t}-12_2:* matched nothing)")),
        "{line}"
    );
}

/// Tag `arr` job 12 must not catch job 123 of `arr`, job 12 of tag `arr-2`, nor keys of a tag
/// that starts like its task pattern (`arr-12_9`).
#[test]
fn array_task_keys_of_other_jobs_and_tags_are_not_shown() {
    let Some((server, mut env)) = crate::util::redis() else {
        return;
    };
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
    let out = env.run("rj-last", &[]).ok();
    assert_eq!(out, "Key:  arr-12_2:mine\nValue: yes\n---\n");
    // The neighbours are where they belong.
    let out = env.run("rj-last", &["--job", "123"]).ok();
    assert_eq!(
        out,
        "Key:  arr-123:x\nValue: no\n---\nKey:  arr-123_1:x\nValue: no\n---\n"
    );
    let out = env.run("rj-last", &["--tag", "arr-2"]).ok();
    assert_eq!(
        out,
        "Key:  arr-2-12:x\nValue: no\n---\nKey:  arr-2-12_1:x\nValue: no\n---\n"
    );
}

#[test]
fn no_keys_for_an_array_parent_names_both_patterns() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["4238610"]);
    server.cli(&["SET", &format!("{t}-42386100_1:x"), "another job"]);
    let out = env.run("rj-last", &[]);
    let line = out.fails(1);
    assert!(
        line.contains(&format!(
            "({t}-4238610:* and {t}-4238610_*:* matched nothing)"
        )),
        "{line}"
    );
    assert!(out.stdout.is_empty());
}

/// Keys of jobs 7 and 12 whose names end in bytes that are not UTF-8 (as redis-cli or the
/// redis crate may write them), beside one that is: `7:bad\xffname` = v1, the hash `7:h\xfe`
/// = {f: v2}, `7:good` = v3, and task 12_2's `12_2:task\xff` = t2.
fn write_non_utf8_keys(server: &RedisServer, t: &str) {
    let raw = |s: &str, tail: &[u8]| [format!("{t}-{s}").as_bytes(), tail].concat();
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
        .query::<()>(&mut server.client())
        .unwrap();
}

/// A job may name a key in bytes that are not UTF-8 (redis-cli, the redis crate): that key is
/// shown with U+FFFD in every format, and neither it nor the job's other keys are lost. For the
/// job (--job), for the last job when it is an array parent (its tasks' keys), and for one task.
#[test]
fn key_names_that_are_not_utf8_are_shown_lossily_in_every_format() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["7", "12"]);
    write_non_utf8_keys(&server, t);
    server.cli(&["SET", &format!("{t}-12_10:task"), "t10"]);
    let bad = format!("{t}-7:bad\u{fffd}name");
    let h = format!("{t}-7:h\u{fffd}");
    let good = format!("{t}-7:good");

    let out = env.run("rj-last", &["--job", "7"]).ok();
    assert_eq!(
        out,
        format!(
            "Key:  {bad}\nValue: v1\n---\nKey:  {good}\nValue: v3\n---\n\
             Key:  {h}\nValue: {{\"f\":\"v2\"}}\n---\n"
        )
    );
    let doc = env.run("rj-last", &["--job", "7", "--format", "json"]).ok();
    assert_eq!(json_keys(&doc, t, "7"), [bad.as_str(), &good, &h]);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["keys"][2]["value"], json!({"f": "v2"}));
    for (format, delim) in [("csv", b','), ("tsv", b'\t')] {
        let out = env.run("rj-last", &["--job", "7", "--format", format]).ok();
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
    let out = env.run("rj-last", &[]).ok();
    assert_eq!(
        out,
        format!(
            "Key:  {t}-12_2:task\u{fffd}\nValue: t2\n---\nKey:  {t}-12_10:task\nValue: t10\n---\n"
        )
    );
    let out = env.run("rj-last", &["--job", "12_2"]).ok();
    assert_eq!(
        out,
        format!("Key:  {t}-12_2:task\u{fffd}\nValue: t2\n---\n")
    );
}

/// TSV cannot quote: a tab or a newline in a key name would split the row, so it is cleaned as
/// in values; CSV quotes it and keeps it.
#[test]
fn tsv_cleans_tabs_and_newlines_in_key_names() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["3"]);
    server.cli(&["SET", &format!("{t}-3:a\tb"), "tab"]);
    server.cli(&["SET", &format!("{t}-3:c\nd"), "newline"]);
    server.cli(&["SET", &format!("{t}-3:e\r\nf"), "crlf"]);
    let out = env.run("rj-last", &["--format", "tsv"]).ok();
    assert_eq!(
        out,
        format!(
            "key\ttype\tvalue\n{t}-3:a b\tstring\ttab\n{t}-3:c d\tstring\tnewline\n\
             {t}-3:e  f\tstring\tcrlf\n"
        )
    );
    let out = env.run("rj-last", &["--format", "csv"]).ok();
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

// ---- Many jobs: --all, --state, several --job, --wide ----

/// The small experiment of the table tests, as jobs and rj-track leave it: job 5 (COMPLETED)
/// with a key of every type, job 7 (FAILED) with one, job 9 (pending) with none, and array 12
/// (COMPLETED) whose tasks 1 and 2 wrote keys. Tag `<t>-2` holds a job 5 and a task 12_1 too,
/// whose keys `<t>-2-5:…` a sloppy pattern for tag `<t>` would catch.
fn experiment(server: &RedisServer, t: &str) {
    sadd(server, &format!("{t}_ALL"), &["5", "7", "9", "12", "junk"]);
    sadd(server, &format!("{t}_COMPLETED"), &["5", "12"]);
    sadd(server, &format!("{t}_FAILED"), &["7"]);
    sadd(server, &format!("{t}_PENDING_AND_RUNNING"), &["9", "junk"]);
    let record = |id: &str, f: &[&str]| {
        let mut args = vec!["HSET".to_string(), format!("{t}_JOB:{id}")];
        args.extend(f.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        server.cli(&args);
    };
    let done = ["state", "COMPLETED", "exit_code", "0:0", "elapsed"];
    record("5", &[&done[..], &["00:00:05"]].concat());
    record(
        "7",
        &["state", "FAILED", "exit_code", "1:0", "elapsed", "00:00:02"],
    );
    record("9", &["submitted", "2026-11-22T01:00:00Z"]);
    record("12", &[&done[..], &["00:01:00", "tasks", "2"]].concat());
    write_all_types(server, t, "5");
    server.cli(&["SET", &format!("{t}-7:a_string"), "bye"]);
    for (task, s, hash) in [
        ("1", "task one", &["loss", "0.5"][..]),
        ("2", "task two", &["loss", "0.4", "epoch", "9"][..]),
    ] {
        server.cli(&["SET", &format!("{t}-12_{task}:a_string"), s]);
        let key = format!("{t}-12_{task}:b_hash");
        let mut args = vec!["HSET", &key];
        args.extend_from_slice(hash);
        server.cli(&args);
    }
    sadd(server, &format!("{t}-2_ALL"), &["5", "12"]);
    server.cli(&["SET", &format!("{t}-2-5:a_string"), "other tag"]);
    server.cli(&["SET", &format!("{t}-2-12_1:a_string"), "other tag's task"]);
}

/// The Key:/Value:/--- lines of the experiment's jobs 5, 7 and 12 (in that order).
fn experiment_text(t: &str) -> String {
    format!(
        "Key:  {t}-5:a_string\nValue: hello world\n---\n\
         Key:  {t}-5:b_hash\nValue: {{\"epoch\":\"3\",\"loss\":\"0.25\"}}\n---\n\
         Key:  {t}-5:c_list\nValue: [\"x\",\"y\",\"x\"]\n---\n\
         Key:  {t}-5:d_set\nValue: [\"alpha\",\"beta\"]\n---\n\
         Key:  {t}-5:e_zset\nValue: [[\"one\",1.5],[\"two\",2.0]]\n---\n\
         Key:  {t}-5:f_stream\nValue: [[\"1-1\",{{\"loss\":\"0.9\",\"step\":\"1\"}}]]\n---\n\
         Key:  {t}-7:a_string\nValue: bye\n---\n\
         Key:  {t}-12_1:a_string\nValue: task one\n---\n\
         Key:  {t}-12_1:b_hash\nValue: {{\"loss\":\"0.5\"}}\n---\n\
         Key:  {t}-12_2:a_string\nValue: task two\n---\n\
         Key:  {t}-12_2:b_hash\nValue: {{\"epoch\":\"9\",\"loss\":\"0.4\"}}\n---\n"
    )
}

/// `(job, task)` of each line of a long JSON Lines output, checking every line's fields.
fn long_json_jobs(out: &str) -> Vec<(String, Option<String>)> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut f: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            f.sort();
            assert_eq!(
                f,
                [
                    "exit_code",
                    "job",
                    "name",
                    "set",
                    "state",
                    "task",
                    "type",
                    "value"
                ],
                "{l}"
            );
            (
                v["job"].as_str().unwrap().to_string(),
                v["task"].as_str().map(String::from),
            )
        })
        .collect()
}

#[test]
fn all_state_and_several_jobs_choose_the_jobs() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    experiment(&server, t);
    let jobs = |args: &[&str]| -> Vec<String> {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let mut v: Vec<String> = long_json_jobs(&run(env.cmd("rj-last").args(&a)).ok())
            .into_iter()
            .map(|(j, task)| task.map_or(j.clone(), |task| format!("{j}_{task}")))
            .collect();
        v.dedup();
        v
    };
    assert_eq!(jobs(&["--all"]), ["5", "7", "12_1", "12_2"]);
    assert_eq!(jobs(&["--state", "ALL"]), ["5", "7", "12_1", "12_2"]);
    assert_eq!(jobs(&["--state", "completed"]), ["5", "12_1", "12_2"]);
    assert_eq!(
        jobs(&["--state", "FAILED", "--state", "COMPLETED"]),
        ["5", "7", "12_1", "12_2"]
    );
    // --job adds to --state; a task ID is that task only; the order is always job-ID order.
    assert_eq!(jobs(&["--job", "12_2", "--state", "FAILED"]), ["7", "12_2"]);
    assert_eq!(jobs(&["--job", "12", "--job", "5"]), ["5", "12_1", "12_2"]);
    assert_eq!(jobs(&["--job", "7", "--job", "7"]), ["7"]);
    // The other tag is a table of its own.
    let out = env
        .run(
            "rj-last",
            &["--tag", &format!("{t}-2"), "--all", "--format", "csv"],
        )
        .ok();
    assert_eq!(
        out,
        "job,task,set,state,exit_code,name,type,value\n\
         5,,ALL,,,a_string,string,other tag\n\
         12,1,ALL,,,a_string,string,other tag's task\n"
    );

    // Without these options rj-last is what it was: the last job, in its own forms.
    let out = env.run("rj-last", &["--format", "csv"]).ok();
    assert_eq!(
        out,
        format!(
            "key,type,value\n{t}-12_1:a_string,string,task one\n\
             {t}-12_1:b_hash,hash,\"{{\"\"loss\"\":\"\"0.5\"\"}}\"\n\
             {t}-12_2:a_string,string,task two\n\
             {t}-12_2:b_hash,hash,\"{{\"\"epoch\"\":\"\"9\"\",\"\"loss\"\":\"\"0.4\"\"}}\"\n"
        )
    );
}

#[test]
fn long_form_in_every_format() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    experiment(&server, t);
    let text = experiment_text(t);
    for format in ["human", "plain"] {
        let out = env.run("rj-last", &["--all", "--format", format]).ok();
        assert_eq!(out, text, "{format}");
    }

    let out = env.run("rj-last", &["--all", "--format", "json"]).ok();
    let c = r#""set":"COMPLETED","state":"COMPLETED","exit_code":"0:0""#;
    let f = r#""set":"FAILED","state":"FAILED","exit_code":"1:0""#;
    let want = [
        format!(
            r#"{{"job":"5","task":null,{c},"name":"a_string","type":"string","value":"hello world"}}"#
        ),
        format!(
            r#"{{"job":"5","task":null,{c},"name":"b_hash","type":"hash","value":{{"epoch":"3","loss":"0.25"}}}}"#
        ),
        format!(
            r#"{{"job":"5","task":null,{c},"name":"c_list","type":"list","value":["x","y","x"]}}"#
        ),
        format!(
            r#"{{"job":"5","task":null,{c},"name":"d_set","type":"set","value":["alpha","beta"]}}"#
        ),
        format!(
            r#"{{"job":"5","task":null,{c},"name":"e_zset","type":"zset","value":[["one",1.5],["two",2.0]]}}"#
        ),
        format!(
            r#"{{"job":"5","task":null,{c},"name":"f_stream","type":"stream","value":[["1-1",{{"loss":"0.9","step":"1"}}]]}}"#
        ),
        format!(r#"{{"job":"7","task":null,{f},"name":"a_string","type":"string","value":"bye"}}"#),
        format!(
            r#"{{"job":"12","task":"1",{c},"name":"a_string","type":"string","value":"task one"}}"#
        ),
        format!(
            r#"{{"job":"12","task":"1",{c},"name":"b_hash","type":"hash","value":{{"loss":"0.5"}}}}"#
        ),
        format!(
            r#"{{"job":"12","task":"2",{c},"name":"a_string","type":"string","value":"task two"}}"#
        ),
        format!(
            r#"{{"job":"12","task":"2",{c},"name":"b_hash","type":"hash","value":{{"epoch":"9","loss":"0.4"}}}}"#
        ),
    ];
    assert_eq!(out, want.map(|l| l + "\n").concat());

    let rows = "\
5,,COMPLETED,COMPLETED,0:0,a_string,string,hello world
5,,COMPLETED,COMPLETED,0:0,b_hash,hash,\"{\"\"epoch\"\":\"\"3\"\",\"\"loss\"\":\"\"0.25\"\"}\"
5,,COMPLETED,COMPLETED,0:0,c_list,list,\"[\"\"x\"\",\"\"y\"\",\"\"x\"\"]\"
5,,COMPLETED,COMPLETED,0:0,d_set,set,\"[\"\"alpha\"\",\"\"beta\"\"]\"
5,,COMPLETED,COMPLETED,0:0,e_zset,zset,\"[[\"\"one\"\",1.5],[\"\"two\"\",2.0]]\"
5,,COMPLETED,COMPLETED,0:0,f_stream,stream,\"[[\"\"1-1\"\",{\"\"loss\"\":\"\"0.9\"\",\"\"step\"\":\"\"1\"\"}]]\"
7,,FAILED,FAILED,1:0,a_string,string,bye
12,1,COMPLETED,COMPLETED,0:0,a_string,string,task one
12,1,COMPLETED,COMPLETED,0:0,b_hash,hash,\"{\"\"loss\"\":\"\"0.5\"\"}\"
12,2,COMPLETED,COMPLETED,0:0,a_string,string,task two
12,2,COMPLETED,COMPLETED,0:0,b_hash,hash,\"{\"\"epoch\"\":\"\"9\"\",\"\"loss\"\":\"\"0.4\"\"}\"
";
    let out = env.run("rj-last", &["--all", "--format", "csv"]).ok();
    assert_eq!(
        out,
        format!("job,task,set,state,exit_code,name,type,value\n{rows}")
    );

    let out = env.run("rj-last", &["--all", "--format", "tsv"]).ok();
    let tsv = "\
job\ttask\tset\tstate\texit_code\tname\ttype\tvalue
5\t\tCOMPLETED\tCOMPLETED\t0:0\ta_string\tstring\thello world
5\t\tCOMPLETED\tCOMPLETED\t0:0\tb_hash\thash\t{\"epoch\":\"3\",\"loss\":\"0.25\"}
5\t\tCOMPLETED\tCOMPLETED\t0:0\tc_list\tlist\t[\"x\",\"y\",\"x\"]
5\t\tCOMPLETED\tCOMPLETED\t0:0\td_set\tset\t[\"alpha\",\"beta\"]
5\t\tCOMPLETED\tCOMPLETED\t0:0\te_zset\tzset\t[[\"one\",1.5],[\"two\",2.0]]
5\t\tCOMPLETED\tCOMPLETED\t0:0\tf_stream\tstream\t[[\"1-1\",{\"loss\":\"0.9\",\"step\":\"1\"}]]
7\t\tFAILED\tFAILED\t1:0\ta_string\tstring\tbye
12\t1\tCOMPLETED\tCOMPLETED\t0:0\ta_string\tstring\ttask one
12\t1\tCOMPLETED\tCOMPLETED\t0:0\tb_hash\thash\t{\"loss\":\"0.5\"}
12\t2\tCOMPLETED\tCOMPLETED\t0:0\ta_string\tstring\ttask two
12\t2\tCOMPLETED\tCOMPLETED\t0:0\tb_hash\thash\t{\"epoch\":\"9\",\"loss\":\"0.4\"}
";
    assert_eq!(out, tsv);
}

#[test]
fn wide_form_has_hash_field_columns_and_empty_cells() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    experiment(&server, t);
    let out = env
        .run("rj-last", &["--all", "--wide", "--format", "csv"])
        .ok();
    let want = "\
job,task,set,state,exit_code,elapsed,a_string,b_hash.epoch,b_hash.loss,c_list,d_set,e_zset,f_stream
5,,COMPLETED,COMPLETED,0:0,00:00:05,hello world,3,0.25,\"[\"\"x\"\",\"\"y\"\",\"\"x\"\"]\",\"[\"\"alpha\"\",\"\"beta\"\"]\",\"[[\"\"one\"\",1.5],[\"\"two\"\",2.0]]\",\"[[\"\"1-1\"\",{\"\"loss\"\":\"\"0.9\"\",\"\"step\"\":\"\"1\"\"}]]\"
7,,FAILED,FAILED,1:0,00:00:02,bye,,,,,,
9,,PENDING_AND_RUNNING,,,,,,,,,,
12,1,COMPLETED,COMPLETED,0:0,00:01:00,task one,,0.5,,,,
12,2,COMPLETED,COMPLETED,0:0,00:01:00,task two,9,0.4,,,,
";
    assert_eq!(out, want);
    let tsv = env
        .run("rj-last", &["--all", "--wide", "--format", "tsv"])
        .ok();
    let want_tsv = "\
job\ttask\tset\tstate\texit_code\telapsed\ta_string\tb_hash.epoch\tb_hash.loss\tc_list\td_set\te_zset\tf_stream
5\t\tCOMPLETED\tCOMPLETED\t0:0\t00:00:05\thello world\t3\t0.25\t[\"x\",\"y\",\"x\"]\t[\"alpha\",\"beta\"]\t[[\"one\",1.5],[\"two\",2.0]]\t[[\"1-1\",{\"loss\":\"0.9\",\"step\":\"1\"}]]
7\t\tFAILED\tFAILED\t1:0\t00:00:02\tbye\t\t\t\t\t\t
9\t\tPENDING_AND_RUNNING\t\t\t\t\t\t\t\t\t\t
12\t1\tCOMPLETED\tCOMPLETED\t0:0\t00:01:00\ttask one\t\t0.5\t\t\t\t
12\t2\tCOMPLETED\tCOMPLETED\t0:0\t00:01:00\ttask two\t9\t0.4\t\t\t\t
";
    assert_eq!(tsv, want_tsv);

    let out = env
        .run(
            "rj-last",
            &["--state", "COMPLETED", "--wide", "--format", "json"],
        )
        .ok();
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2],
        json!({"job": "12", "task": "2", "set": "COMPLETED", "state": "COMPLETED",
               "exit_code": "0:0", "elapsed": "00:01:00", "a_string": "task two",
               "b_hash.epoch": "9", "b_hash.loss": "0.4", "c_list": null, "d_set": null,
               "e_zset": null, "f_stream": null})
    );
    assert_eq!(rows[0]["c_list"], json!(["x", "y", "x"]), "lists stay JSON");
    assert_eq!(rows[0]["e_zset"], json!([["one", 1.5], ["two", 2.0]]));

    // A bare --wide is the last job's table; human is an aligned table with `-` for nothing.
    let out = env.run("rj-last", &["--wide"]).ok();
    assert_eq!(
        out,
        "job  task  set        state      exit_code  elapsed   a_string  b_hash.epoch  b_hash.loss\n\
         12   1     COMPLETED  COMPLETED  0:0        00:01:00  task one  -             0.5\n\
         12   2     COMPLETED  COMPLETED  0:0        00:01:00  task two  9             0.4\n"
    );
}

/// `rj-last --all --wide --format csv` read back by Python's csv module, as pandas would read it:
/// every value written, with commas, quotes, newlines, CRLF, tabs, padding and non-ASCII text,
/// comes back exactly, in its row and column; a key a job did not write is an empty cell.
#[test]
fn wide_csv_round_trips_through_python_csv() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    if which::which("python3").is_err() {
        crate::util::missing("python3");
        return;
    }
    let env = TestEnv::new(&server);
    let t = &env.tag;
    // What was written: (job, task) → column → the value as the cell must read.
    let mut written: std::collections::BTreeMap<
        (String, String),
        std::collections::BTreeMap<String, String>,
    > = Default::default();
    let mut c = server.client();
    let mut p = redis::pipe();
    let tricky = [
        "plain",
        "comma, inside",
        "\"quoted\" and \"\"doubled\"\"",
        "two\nlines",
        "crlf\r\nline",
        "tab\there",
        "  padded  ",
        "λ ünïcødé 😀",
        "",
        "=1+2",
    ];
    for i in 0..30u32 {
        // Every third job is an array of two tasks.
        let id = (1000 + i).to_string();
        let (set, exit) = if i % 5 == 0 {
            ("FAILED", "1:0".to_string())
        } else {
            ("COMPLETED", "0:0".to_string())
        };
        let elapsed = format!("00:00:{i:02}");
        let rows: Vec<(String, String)> = if i % 3 == 0 {
            vec![
                (format!("{id}_1"), "1".into()),
                (format!("{id}_2"), "2".into()),
            ]
        } else {
            vec![(id.clone(), String::new())]
        };
        for (n, (kid, task)) in rows.into_iter().enumerate() {
            let k = |name: &str| format!("{t}-{kid}:{name}");
            let mut row = std::collections::BTreeMap::new();
            let note = tricky[(i as usize + n) % tricky.len()];
            let loss = format!("{}", f64::from(i) / 7.0 + n as f64);
            p.cmd("SET").arg(k("loss")).arg(&loss).ignore();
            row.insert("loss".to_string(), loss);
            if i % 4 != 1 {
                // Sometimes missing: an empty cell.
                p.cmd("SET").arg(k("note")).arg(note).ignore();
                row.insert("note".to_string(), note.to_string());
            }
            let lr = format!("0.{i}");
            let opt = tricky[(i as usize + 3) % tricky.len()];
            p.cmd("HSET")
                .arg(k("params"))
                .arg("lr")
                .arg(&lr)
                .arg("opt")
                .arg(opt)
                .ignore();
            row.insert("params.lr".into(), lr);
            row.insert("params.opt".into(), opt.into());
            let log = vec![format!("step {i}"), note.to_string(), "a,b".to_string()];
            for l in &log {
                p.cmd("RPUSH").arg(k("log")).arg(l).ignore();
            }
            row.insert("log".into(), serde_json::to_string(&log).unwrap());
            // The record's, on each of an array's tasks.
            row.insert("set".into(), set.into());
            row.insert("state".into(), set.into());
            row.insert("exit_code".into(), exit.clone());
            row.insert("elapsed".into(), elapsed.clone());
            written.insert((id.clone(), task), row);
        }
        p.cmd("SADD").arg(env.key("ALL")).arg(&id).ignore();
        p.cmd("SADD").arg(env.key(set)).arg(&id).ignore();
        p.cmd("HSET")
            .arg(env.job(&id))
            .arg("state")
            .arg(set)
            .arg("exit_code")
            .arg(&exit)
            .arg("elapsed")
            .arg(&elapsed)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();

    let csv_text = env
        .run("rj-last", &["--all", "--wide", "--format", "csv"])
        .ok();
    let script = "import csv, io, json, sys\n\
                  r = csv.DictReader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8', newline=''))\n\
                  print(json.dumps({'header': r.fieldnames, 'rows': list(r)}))\n";
    let mut py = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    py.stdin
        .take()
        .unwrap()
        .write_all(csv_text.as_bytes())
        .unwrap();
    let got = py.wait_with_output().unwrap();
    assert!(got.status.success(), "python3: {got:?}");
    let doc: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(
        doc["header"],
        json!([
            "job",
            "task",
            "set",
            "state",
            "exit_code",
            "elapsed",
            "log",
            "loss",
            "note",
            "params.lr",
            "params.opt"
        ])
    );
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), written.len(), "one row per job or task");
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        let cell = |c: &str| {
            r[c].as_str()
                .unwrap_or_else(|| panic!("{c} in {r}"))
                .to_string()
        };
        let key = (cell("job"), cell("task"));
        let want = &written[&key];
        for col in doc["header"].as_array().unwrap() {
            let col = col.as_str().unwrap();
            if col == "job" || col == "task" {
                continue;
            }
            let expect = want.get(col).cloned().unwrap_or_default();
            assert_eq!(cell(col), expect, "job {key:?}, column {col}");
        }
        assert!(seen.insert(key));
    }
    // The rows come in job-ID order, tasks in task order.
    let order: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap().to_string(),
                r["task"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(order, written.keys().cloned().collect::<Vec<_>>());
}

/// The table reads a keyspace of many other keys in one SCAN pass (never KEYS), and its reads
/// are pipelined: far fewer socket reads on the server than keys.
#[test]
fn table_is_one_scan_pass_and_pipelined_reads() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    let mut c = server.client();
    let mut p = redis::pipe();
    for i in 0..30_000 {
        p.cmd("SET").arg(format!("noise:{i}")).arg(i).ignore();
    }
    let ids: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    for id in &ids {
        p.cmd("SADD").arg(env.key("ALL")).arg(id).ignore();
        for k in 0..10 {
            p.cmd("SET").arg(format!("{t}-{id}:k{k}")).arg(k).ignore();
        }
        // Another tag's keys, named like ours.
        p.cmd("SET")
            .arg(format!("{t}-2-{id}:k0"))
            .arg("no")
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    for (args, lines) in [
        (&["--all", "--format", "csv"][..], 401),
        (&["--all", "--wide", "--format", "csv"][..], 41),
    ] {
        server.cli(&["CONFIG", "RESETSTAT"]);
        let out = run(env.cmd("rj-last").args(args)).ok();
        assert_eq!(out.lines().count(), lines, "{args:?}");
        assert!(!out.contains("no"), "another tag's key: {out}");
        assert_eq!(calls(&server, "keys"), 0, "KEYS blocks the server");
        // One pass over some 30,000 keys is a dozen or two SCAN steps; one pass per job
        // would be 40 times that.
        let scans = calls(&server, "scan");
        assert!(
            (1..=40).contains(&scans),
            "one SCAN pass, not one per job: {scans}"
        );
        assert_eq!(calls(&server, "type"), 400, "each key's type once");
        assert_eq!(calls(&server, "get"), 400, "each key read once");
        let info = server.cli(&["INFO", "stats"]);
        let reads: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("total_reads_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // One round trip per key would be 800 reads besides the SCAN steps; pipelines make
        // it a few dozen.
        assert!(
            reads < scans + 40,
            "{reads} socket reads on the server for 400 keys and {scans} SCAN steps"
        );
    }
}

/// A key name that is not UTF-8 in a table of several jobs: shown with U+FFFD in every form,
/// and the other keys of its job and of the other jobs are all there.
#[test]
fn key_names_that_are_not_utf8_in_a_table() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["7", "12"]);
    sadd(&server, &env.key("COMPLETED"), &["7", "12"]);
    write_non_utf8_keys(&server, t);
    let out = env.run("rj-last", &["--all"]).ok();
    assert_eq!(
        out,
        format!(
            "Key:  {t}-7:bad\u{fffd}name\nValue: v1\n---\nKey:  {t}-7:good\nValue: v3\n---\n\
             Key:  {t}-7:h\u{fffd}\nValue: {{\"f\":\"v2\"}}\n---\n\
             Key:  {t}-12_2:task\u{fffd}\nValue: t2\n---\n"
        )
    );
    let out = env.run("rj-last", &["--all", "--format", "csv"]).ok();
    assert_eq!(
        out,
        "job,task,set,state,exit_code,name,type,value\n\
         7,,COMPLETED,,,bad\u{fffd}name,string,v1\n\
         7,,COMPLETED,,,good,string,v3\n\
         7,,COMPLETED,,,h\u{fffd},hash,\"{\"\"f\"\":\"\"v2\"\"}\"\n\
         12,2,COMPLETED,,,task\u{fffd},string,t2\n"
    );
    let out = env.run("rj-last", &["--all", "--format", "json"]).ok();
    let names: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        names,
        ["bad\u{fffd}name", "good", "h\u{fffd}", "task\u{fffd}"]
    );
    let out = env
        .run("rj-last", &["--all", "--wide", "--format", "csv"])
        .ok();
    assert_eq!(
        out,
        "job,task,set,state,exit_code,elapsed,bad\u{fffd}name,good,h\u{fffd}.f,task\u{fffd}\n\
         7,,COMPLETED,,,,v1,v3,v2,\n\
         12,2,COMPLETED,,,,,,,t2\n"
    );
}

#[test]
fn table_exit_statuses_and_usage_errors() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    let out = env.run("rj-last", &["--all"]);
    let line = out.fails(1);
    assert!(line.contains(&format!("({t}_ALL is empty)")), "{line}");
    assert!(out.stdout.is_empty());
    let line = fails(
        &env.run("rj-last", &["--state", "FAILED", "--state", "TIMEOUT"]),
        1,
        "rj-last",
    );
    assert!(
        line.contains(&format!("({t}_FAILED and {t}_TIMEOUT are empty)")),
        "{line}"
    );

    // Jobs, but no keys: the CSV header (or the wide table of the jobs), then exit 1.
    sadd(&server, &env.key("ALL"), &["3", "4"]);
    sadd(&server, &env.key("COMPLETED"), &["3", "4"]);
    server.cli(&["SET", &format!("{t}-2-3:x"), "another tag's"]);
    let out = env.run("rj-last", &["--all", "--format", "csv"]);
    let line = out.fails(1);
    assert!(line.contains("none of the 2 jobs"), "{line}");
    assert_eq!(
        out.stdout(),
        "job,task,set,state,exit_code,name,type,value\n"
    );
    let out = env.run("rj-last", &["--wide", "--job", "3", "--format", "csv"]);
    let line = out.fails(1);
    assert!(line.contains("job 3 of tag"), "{line}");
    assert_eq!(
        out.stdout(),
        "job,task,set,state,exit_code,elapsed\n3,,COMPLETED,,,\n"
    );

    for (args, what) in [
        (&["--all", "--job", "3"][..], "--job"),
        (&["--all", "--state", "FAILED"][..], "--state"),
        (&["--state", "DONE"][..], "DONE"),
        (&["--wide", "--format", "plain"][..], "plain"),
        (&["--job", "3", "--job", "x"][..], "\"x\""),
    ] {
        let out = run(env.cmd("rj-last").args(args));
        let line = out.fails(2);
        assert!(line.contains(what), "{args:?}: {line}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(
        check::all_keys(&server).len(),
        3,
        "read-only: the two sets and the other tag's key"
    );
}

/// `rj-last --all … | head -1`: exit 0 and nothing on stderr in the long and wide forms.
#[test]
fn table_closed_stdout_is_success() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let mut c = server.client();
    let mut p = redis::pipe();
    let big = "x".repeat(1000);
    for j in 0..30 {
        p.cmd("SADD").arg(env.key("ALL")).arg(j).ignore();
        for i in 0..30 {
            p.cmd("SET")
                .arg(format!("{}-{j}:k{i:03}", env.tag))
                .arg(&big)
                .ignore();
        }
    }
    p.query::<()>(&mut c).unwrap();
    for args in [
        &["--all"][..],
        &["--all", "--format", "json"],
        &["--all", "--format", "csv"],
        &["--all", "--wide", "--format", "csv"],
        &["--all", "--wide", "--format", "json"],
    ] {
        let (first, out) = check::head_1(&env, "rj-last", args);
        assert!(!first.is_empty(), "{args:?}");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            check::stderr(&out)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", check::stderr(&out));
    }
}

/// A job script that writes its results with plain redis-cli, as jobs do without rj-put: to
/// `T-<array>_<task>:*` in an array task, else `T-<job>:*`.
const RESULT_SCRIPT: &str = r#"#!/bin/sh
#SBATCH --job-name=rj-table
set -e
rj-put loss "0.${SLURM_ARRAY_TASK_ID:-0}5"
rj-put --hash result job="$SLURM_JOB_ID" task="${SLURM_ARRAY_TASK_ID:-none}"
rj-put --push log "started" "done, ok"
"#;

/// The Slurm testbed runs a job and an array of three tasks that write their results with
/// rj-put (which names an array task's keys `<array>_<task>` by itself); rj-track
/// records how they ended; one `rj-last --all --wide --format csv` is the experiment's table,
/// with every task.
#[test]
fn real_jobs_and_array_tasks_make_one_table() {
    let Some((_server, env, _node)) = crate::util::slurm::setup() else {
        return;
    };
    std::fs::write(env.path().join("job.sbatch"), RESULT_SCRIPT).unwrap();
    let launch = |extra: &[&str]| -> String {
        let mut args = vec!["--", "--output=/dev/null", "--time=5"];
        args.extend_from_slice(extra);
        args.push("job.sbatch");
        run(env
            .cmd("rj-launch")
            .env("PATH", crate::util::path_with_rj())
            .args(&args))
        .ok()
        .trim()
        .to_string()
    };
    let job = launch(&[]);
    let array = launch(&["--array=1-3"]);
    let done = std::time::Duration::from_secs(120);
    crate::util::slurm::wait_finished(&job, done);
    for task in 1..=3 {
        crate::util::slurm::wait_finished(&format!("{array}_{task}"), done);
    }
    let moved = env.run("rj-track", &["--once"]).ok();
    assert_eq!(moved.lines().count(), 2, "both jobs moved: {moved}");

    let out = env
        .run("rj-last", &["--all", "--wide", "--format", "csv"])
        .ok();
    let mut r = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec![
            "job",
            "task",
            "set",
            "state",
            "exit_code",
            "elapsed",
            "log",
            "loss",
            "result.job",
            "result.task"
        ]
    );
    let rows: Vec<Vec<String>> = r
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let want_ids: Vec<(String, String)> = std::iter::once((job.clone(), String::new()))
        .chain((1..=3).map(|t| (array.clone(), t.to_string())))
        .collect();
    let got_ids: Vec<(String, String)> =
        rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(got_ids, want_ids, "the job, then every task:\n{out}");
    for row in &rows {
        let task = if row[1].is_empty() { "none" } else { &row[1] };
        assert_eq!(&row[2..5], ["COMPLETED", "COMPLETED", "0:0"], "{row:?}");
        assert!(!row[5].is_empty(), "elapsed from the record: {row:?}");
        assert_eq!(row[6], r#"["started","done, ok"]"#, "{row:?}");
        let digit = if row[1].is_empty() { "0" } else { &row[1] };
        assert_eq!(row[7], format!("0.{digit}5"), "{row:?}");
        assert!(!row[8].is_empty(), "{row:?}");
        assert_eq!(row[9], task, "{row:?}");
    }
}

/// `--plot NAME FILE`: the chosen jobs' numeric values of one key, against job ID, one colour
/// per set, in an SVG whose points and labels can be counted; nothing on stdout.
#[test]
fn plot_a_numeric_key_by_job() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let t = &env.tag;
    sadd(&server, &env.key("ALL"), &["5", "7", "9", "12"]);
    sadd(&server, &env.key("COMPLETED"), &["5", "9", "12"]);
    sadd(&server, &env.key("FAILED"), &["7"]);
    for (id, v) in [
        ("5", "0.25"),
        ("7", "0.9"),
        ("9", "n/a"),
        ("12_1", "0.5"),
        ("12_2", "0.4"),
    ] {
        server.cli(&["SET", &format!("{t}-{id}:loss"), v]);
        server.cli(&["SET", &format!("{t}-{id}:other"), "7"]);
    }
    let out = env.run("rj-last", &["--all", "--plot", "loss", "loss.svg"]);
    assert_eq!(out.ok(), "", "the plot is the output");
    assert_eq!(
        out.stderr(),
        "rj-last: plotted 4 values of loss into loss.svg (1 that are not numbers left out)\n"
    );
    let svg = std::fs::read_to_string(env.path().join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    // Four points and one legend marker per set.
    assert_eq!(svg.matches("<circle").count(), 4 + 2, "{svg}");
    for label in ["COMPLETED", "FAILED", "5", "7", "12_1", "12_2"] {
        let text = format!(">\n{label}\n</text>");
        assert!(svg.contains(&text), "{label} in {svg}");
    }
    assert!(svg.contains(&format!("loss by job, tag {t}")), "{svg}");
    // Only the keys named loss were read.
    server.cli(&["CONFIG", "RESETSTAT"]);
    env.run(
        "rj-last",
        &["--state", "FAILED", "--plot", "loss", "failed.png"],
    )
    .ok();
    assert_eq!(calls(&server, "get"), 1);
    let png = std::fs::read(env.path().join("failed.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");

    let line = fails(
        &env.run("rj-last", &["--all", "--plot", "other2", "x.svg"]),
        1,
        "rj-last",
    );
    assert!(line.contains("nothing to plot"), "{line}");
    for args in [
        &["--all", "--plot", "loss", "x.pdf"][..],
        &["--all", "--plot", "loss"],
        &["--all", "--wide", "--plot", "loss", "x.svg"],
    ] {
        run(env.cmd("rj-last").args(args)).fails(2);
    }
    assert!(!env.path().join("x.svg").exists() && !env.path().join("x.pdf").exists());
}
