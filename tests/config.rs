//! The shared configuration (ARCHITECTURE.md §3) and the errors of §5, in every tool.
use std::path::Path;

use crate::util::check::{self, all_keys, fails, run, TOOLS};
use crate::util::{self, RedisOptions, RedisServer, TestEnv};

/// A redis.json pointing at a port where nothing listens.
fn dead_config(dir: &Path, name: &str) -> (std::path::PathBuf, u16) {
    let port = util::free_port();
    let p = dir.join(name);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        &p,
        format!(r#"{{"host": "127.0.0.1", "port": {port}, "__info__": "dead"}}"#),
    )
    .unwrap();
    (p, port)
}

fn live_config(server: &RedisServer, p: &Path) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        p,
        format!(r#"{{"host": "127.0.0.1", "port": {}}}"#, server.port),
    )
    .unwrap();
}

/// The `-v` line that says where the settings came from.
fn source_line(out: &std::process::Output) -> String {
    check::stderr(out)
        .lines()
        .find(|l| l.contains("Redis at "))
        .unwrap_or_else(|| panic!("no `Redis at` line under -v: {}", check::stderr(out)))
        .to_string()
}

#[test]
fn malformed_missing_and_mistyped_config_is_78_naming_the_file() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let broken = env.path().join("broken.json");
    std::fs::write(&broken, "{\"host\": \"127.0.0.1\",\n  \"port\": ").unwrap();
    let mistyped = env.path().join("mistyped.json");
    std::fs::write(
        &mistyped,
        "{\n  \"host\": \"127.0.0.1\",\n  \"port\": \"6379\"\n}",
    )
    .unwrap();
    let doubled = env.path().join("doubled.json");
    std::fs::write(&doubled, "{\"host\": \"127.0.0.1\",\n  \"port\": 6379,,\n}").unwrap();
    let missing = env.path().join("nope/redis.json");
    for (bin, args) in TOOLS {
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &doubled)).fails(78);
        assert!(
            line.contains(doubled.to_str().unwrap()) && line.contains("line 2 column 16"),
            "{line}"
        );
        assert!(
            !line.contains("field"),
            "a syntax error names no field: {line}"
        );

        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &broken)).fails(78);
        assert!(line.contains(broken.to_str().unwrap()), "{line}");

        let line = run(env.cmd(bin).args(*args).arg("--config").arg(&mistyped)).fails(78);
        assert!(line.contains(mistyped.to_str().unwrap()), "{line}");
        assert!(line.contains("\"port\""), "names the field: {line}");
        assert!(line.contains("line 3"), "names the line: {line}");

        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &missing)).fails(78);
        assert!(line.contains(missing.to_str().unwrap()), "{line}");
    }
    check::nothing_written(&server, &env);
}

#[test]
fn bad_or_missing_tag_is_78_in_every_tool() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    for (bin, args) in TOOLS {
        let line = run(env.cmd(bin).args(*args).args(["--tag", "a b"])).fails(78);
        assert!(line.contains("invalid tag \"a b\""), "{line}");
        assert!(
            line.contains("--tag"),
            "says where the tag came from: {line}"
        );

        let line = run(env.cmd(bin).args(*args).env("JOB_TAG", "x*")).fails(78);
        assert!(line.contains("JOB_TAG"), "{line}");

        let line = run(env.cmd(bin).args(*args).env_remove("JOB_TAG")).fails(78);
        assert!(line.contains("no job tag"), "{line}");
        assert!(
            line.contains("--tag") && line.contains("JOB_TAG") && line.contains("job_tag"),
            "says how to set one: {line}"
        );
    }
    assert!(all_keys(&server).is_empty(), "nothing written");
}

#[test]
fn redis_down_is_69_naming_host_and_file() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let (dead, port) = dead_config(env.path(), "dead.json");
    for (bin, args) in TOOLS {
        if *bin == "rj-launch" {
            continue; // rj-launch spools instead (tests/launch.rs)
        }
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &dead)).fails(69);
        assert!(
            line.contains(&format!("cannot connect to Redis at 127.0.0.1:{port}")),
            "{line}"
        );
        assert!(line.contains(dead.to_str().unwrap()), "{line}");
    }
}

#[test]
fn a_database_the_server_lacks_is_78_naming_the_file() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let cfg = env.path().join("db99.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"host": "127.0.0.1", "port": {}, "db": 99}}"#,
            server.port
        ),
    )
    .unwrap();
    for (bin, args) in TOOLS {
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &cfg)).fails(78);
        assert!(
            line.contains("cannot select database 99")
                && line.contains(cfg.to_str().unwrap())
                && line.contains("out of range"),
            "{line}"
        );
        assert!(!line.contains("ResponseError"), "client internals: {line}");
    }
    assert!(all_keys(&server).is_empty(), "nothing written");
    assert_only_the_recorded_job_is_spooled(&env);
}

/// `rj-launch --record 4242` names a job that exists in Slurm: whatever refused the connection,
/// it is spooled rather than dropped. Nothing else is.
fn assert_only_the_recorded_job_is_spooled(env: &TestEnv) {
    let spool = std::fs::read_to_string(env.spool()).unwrap_or_default();
    assert!(
        spool.lines().all(|l| l.contains(r#""id":"4242""#)),
        "{spool}"
    );
    assert!(!spool.is_empty(), "rj-launch --record spooled its job");
    let files: Vec<_> = std::fs::read_dir(env.path().join("state/rj"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, [env.spool()]);
}

#[test]
fn wrong_or_missing_password_is_77_and_never_shown() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some("right-pw-1".into()),
        ..Default::default()
    }) else {
        return;
    };
    let wrong = env.path().join("wrong.json");
    std::fs::write(
        &wrong,
        format!(
            r#"{{"host": "127.0.0.1", "port": {}, "password": "wrong-secret-9"}}"#,
            server.port
        ),
    )
    .unwrap();
    util::set_mode(&wrong, 0o600);
    let nopw = env.path().join("nopw.json");
    live_config(&server, &nopw);
    for (bin, args) in TOOLS {
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &wrong)).fails(77);
        assert!(!line.contains("wrong-secret-9"), "{line}");
        assert!(
            line.contains(&format!("127.0.0.1:{}", server.port)),
            "{line}"
        );

        let url = format!("redis://:wrong-secret-9@127.0.0.1:{}", server.port);
        let out = run(env.cmd(bin).args(*args).env("REDIS_URL", &url).arg("-v"));
        out.code(77);
        assert!(!out.stderr().contains("wrong-secret-9"));

        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &nopw)).fails(77);
        assert!(!line.contains("right-pw-1"), "{line}");
    }
    // The right password works, and even -v never prints it.
    let out = env.run("rj-status", &["-vv"]);
    out.ok();
    assert!(!out.stderr().contains("right-pw-1"));
    assert!(check::all_keys(&server).is_empty(), "nothing written");
    assert_only_the_recorded_job_is_spooled(&env);
}

#[test]
fn bad_url_is_78_without_the_password() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    for (bin, args) in TOOLS {
        let out = run(env
            .cmd(bin)
            .args(*args)
            .env("REDIS_URL", "http://u:url-secret-3@host:1"));
        let line = out.fails(78);
        assert!(line.contains("REDIS_URL"), "{line}");
        assert!(!line.contains("url-secret-3"), "{line}");
        let line = run(env
            .cmd(bin)
            .args(*args)
            .args(["--url", "redis://:url-secret-3@[::1"]))
        .fails(78);
        assert!(!line.contains("url-secret-3"), "{line}");
    }
    // A dead host in a URL with a password: the message names host:port, not the password.
    let port = util::free_port();
    let line = fails(
        &run(env
            .cmd("rj-status")
            .arg("--url")
            .arg(format!("redis://:url-secret-3@127.0.0.1:{port}"))),
        69,
        "rj-status",
    );
    assert!(
        line.contains(&format!("127.0.0.1:{port} (from --url)")),
        "{line}"
    );
    assert!(!line.contains("url-secret-3"), "{line}");
}

#[test]
fn config_lookup_order() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let here = env.path();
    let opt = here.join("opt.json");
    let rj_config = here.join("rjconfig.json");
    let local = here.join("redis.json"); // TestEnv's own file, in the working directory
    let xdg = here.join("config/rj/redis.json");
    let home = here.join("home");
    let home_cfg = home.join(".config/rj/redis.json");
    for p in [&opt, &rj_config, &local, &xdg, &home_cfg] {
        dead_config(here, p.strip_prefix(here).unwrap().to_str().unwrap());
    }
    let status = || {
        let mut c = env.cmd("rj-status");
        c.arg("-v").arg("--count").env("HOME", &home);
        c
    };
    // Each level wins over every later one: only the winner points at the live server.
    live_config(&server, &opt);
    let out = run(status()
        .arg("--config")
        .arg(&opt)
        .env("RJ_CONFIG", &rj_config));
    out.ok();
    assert!(source_line(&out).contains(opt.to_str().unwrap()));

    dead_config(here, "opt.json");
    live_config(&server, &rj_config);
    let out = run(status().env("RJ_CONFIG", &rj_config));
    out.ok();
    assert!(source_line(&out).contains(rj_config.to_str().unwrap()));

    dead_config(here, "rjconfig.json");
    live_config(&server, &local);
    let out = run(status().env_remove("RJ_CONFIG"));
    out.ok();
    assert!(source_line(&out).contains("redis.json"));

    std::fs::remove_file(&local).unwrap();
    live_config(&server, &xdg);
    let out = run(status().env_remove("RJ_CONFIG"));
    out.ok();
    assert!(source_line(&out).contains(xdg.to_str().unwrap()));

    // Without XDG_CONFIG_HOME: ~/.config/rj/redis.json.
    live_config(&server, &home_cfg);
    let out = run(status()
        .env_remove("RJ_CONFIG")
        .env_remove("XDG_CONFIG_HOME"));
    out.ok();
    assert!(source_line(&out).contains(home_cfg.to_str().unwrap()));

    // None at all: the Redis default, said under -v (whether or not a server runs there).
    std::fs::remove_file(&xdg).unwrap();
    std::fs::remove_file(&home_cfg).unwrap();
    let out = run(status().env_remove("RJ_CONFIG"));
    assert!(
        source_line(&out).contains("127.0.0.1:6379 (the default; no redis.json found)"),
        "{}",
        out.stderr()
    );
}

#[test]
fn url_overrides_file_incl_db_and_unix_socket() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        unix_socket: true,
        ..Default::default()
    }) else {
        return;
    };
    let (dead, _) = dead_config(env.path(), "dead.json");
    // REDIS_URL beats the file; --url beats REDIS_URL; the db of the URL is used.
    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "11"])
        .env("RJ_CONFIG", &dead)
        .env("REDIS_URL", format!("redis://127.0.0.1:{}/3", server.port)));
    assert_eq!(out.ok(), "11\n");
    assert_eq!(
        server.cli(&["-n", "3", "SMEMBERS", &env.key("ALL")]).trim(),
        "11"
    );
    assert!(server.smembers(&env.key("ALL")).is_empty(), "not in db 0");

    let dead_url = format!("redis://127.0.0.1:{}", util::free_port());
    let sock = format!("unix://{}?db=2", server.socket_path().display());
    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "12", "--url", &sock, "-v"])
        .env("REDIS_URL", &dead_url));
    assert_eq!(out.ok(), "12\n");
    assert!(source_line(&out).contains("from --url"));
    assert_eq!(
        server.cli(&["-n", "2", "SMEMBERS", &env.key("ALL")]).trim(),
        "12"
    );
    let out = run(env
        .cmd("rj-status")
        .args(["--format", "plain"])
        .env("REDIS_URL", &sock));
    assert_eq!(out.ok(), "12\n");
}

#[test]
fn username_password_and_db_from_redis_json() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    server.cli(&[
        "ACL",
        "SETUSER",
        "alice",
        "on",
        ">alice-pw-7",
        "~*",
        "+@all",
    ]);
    let cfg = env.path().join("alice.json");
    let write = |pw: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"{{"host": "127.0.0.1", "port": {}, "username": "alice", "password": "{pw}", "db": 4}}"#,
                server.port
            ),
        )
        .unwrap();
        util::set_mode(&cfg, 0o600);
    };
    write("alice-pw-7");
    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "21"])
        .env("RJ_CONFIG", &cfg));
    assert_eq!(out.ok(), "21\n");
    assert!(out.stderr().is_empty(), "{}", out.stderr());
    assert_eq!(
        server.cli(&["-n", "4", "SMEMBERS", &env.key("ALL")]).trim(),
        "21"
    );
    write("not-alices-pw");
    let line = fails(
        &run(env.cmd("rj-status").env("RJ_CONFIG", &cfg)),
        77,
        "rj-status",
    );
    assert!(!line.contains("not-alices-pw"), "{line}");
}

#[test]
fn world_readable_config_with_password_warns() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some("ww-pw-5".into()),
        ..Default::default()
    }) else {
        return;
    };
    // A tag with a job (in T_ALL and a state set, as recorded): an empty tag, or one whose sets
    // break the one-set-per-job rule, would add its own line to stderr.
    server.cli(&["SADD", &env.key("ALL"), "1"]);
    server.cli(&["SADD", &env.key("PENDING_AND_RUNNING"), "1"]);
    util::set_mode(&env.config, 0o644);
    let out = env.run("rj-status", &[]);
    out.ok();
    let err = out.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("rj-status: warning: "), "{err}");
    assert!(err.contains(env.config.to_str().unwrap()), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("ww-pw-5"), "{err}");
    // -q silences warnings; 0600 has nothing to warn about.
    assert!(env.run("rj-status", &["-q"]).stderr().is_empty());
    util::set_mode(&env.config, 0o600);
    assert!(env.run("rj-status", &[]).stderr().is_empty());
    // Without a password a readable file is fine.
    let plain = env.path().join("plain.json");
    live_config(&server, &plain);
    util::set_mode(&plain, 0o644);
    let out = run(env
        .cmd("rj-status")
        .env("RJ_CONFIG", &plain)
        .env("REDISCLI_AUTH", "ww-pw-5"));
    out.ok();
    assert!(out.stderr().is_empty(), "{}", out.stderr());
}

#[test]
fn tag_resolution_order() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let with_tag = env.path().join("tagged.json");
    std::fs::write(
        &with_tag,
        format!(
            r#"{{"host": "127.0.0.1", "port": {}, "job_tag": "from_file"}}"#,
            server.port
        ),
    )
    .unwrap();
    let tag_of = |cmd: &mut assert_cmd::Command| -> String {
        let out = run(cmd.args(["--format", "json", "--count"]));
        let v = out.json();
        v["tag"].as_str().unwrap().to_string()
    };
    let base = || {
        let mut c = env.cmd("rj-status");
        c.env("RJ_CONFIG", &with_tag)
            .env("JOB_TAG", "from_upper")
            .env("job_tag", "from_lower");
        c
    };
    assert_eq!(tag_of(base().args(["--tag", "from_opt"])), "from_opt");
    assert_eq!(tag_of(&mut base()), "from_upper");
    assert_eq!(tag_of(base().env_remove("JOB_TAG")), "from_lower");
    assert_eq!(tag_of(base().env("JOB_TAG", "")), "from_lower");
    assert_eq!(
        tag_of(base().env_remove("JOB_TAG").env_remove("job_tag")),
        "from_file"
    );
    // And rj-launch writes to the resolved tag's sets.
    run(base()
        .env_remove("JOB_TAG")
        .env_remove("job_tag")
        .args(["--format", "plain"]))
    .ok();
    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "31"])
        .env("RJ_CONFIG", &with_tag)
        .env_remove("JOB_TAG"));
    out.ok();
    assert_eq!(server.smembers("from_file_ALL"), ["31"]);
}

#[test]
fn help_and_version_never_read_config_redis_or_slurm() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("redis.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let nothing = dir.path().join("empty-bin");
    std::fs::create_dir(&nothing).unwrap();
    for (bin, _) in TOOLS {
        for flag in ["--help", "-h", "--version", "-V"] {
            let mut cmd = assert_cmd::Command::new(util::bin_path(bin));
            cmd.env_clear()
                .env("PATH", &nothing) // no sbatch, no redis-cli
                .env("RJ_CONFIG", &broken)
                .env("REDIS_URL", "http://broken")
                .env("JOB_TAG", "bad tag")
                .current_dir(dir.path());
            let out = run(cmd.arg(flag)).ok();
            assert!(out.contains(bin), "{bin} {flag}: {out}");
        }
    }
}

/// redis.json may hold a "url": it beats the file's host/port, REDIS_URL beats it, and a
/// password in it counts for the world-readable warning.
#[test]
fn url_field_of_redis_json() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some("in-url-pw-8".into()),
        ..Default::default()
    }) else {
        return;
    };
    let cfg = env.path().join("url.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"host": "127.0.0.1", "port": {}, "url": "redis://:in-url-pw-8@127.0.0.1:{}/1"}}"#,
            util::free_port(),
            server.port
        ),
    )
    .unwrap();
    util::set_mode(&cfg, 0o644);
    let out = run(env
        .cmd("rj-launch")
        .env("RJ_CONFIG", &cfg)
        .args(["--record", "71"]));
    assert_eq!(out.ok(), "71\n");
    let err = out.stderr();
    assert!(err.starts_with("rj-launch: warning: "), "{err}");
    assert!(err.contains(cfg.to_str().unwrap()), "{err}");
    assert!(!err.contains("in-url-pw-8"), "{err}");
    assert_eq!(
        server.cli(&["-n", "1", "SMEMBERS", &env.key("ALL")]).trim(),
        "71"
    );
    // REDIS_URL wins over the file's url.
    let dead = format!("redis://127.0.0.1:{}", util::free_port());
    let line = fails(
        &run(env
            .cmd("rj-status")
            .env("RJ_CONFIG", &cfg)
            .env("REDIS_URL", &dead)
            .arg("-q")),
        69,
        "rj-status",
    );
    assert!(line.contains("(from REDIS_URL)"), "{line}");
}

/// A file in the test's directory holding these bytes, private (it may name a password).
fn config_file(env: &TestEnv, name: &str, bytes: impl AsRef<[u8]>) -> std::path::PathBuf {
    let p = env.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    util::set_mode(&p, 0o600);
    p
}

#[test]
fn trailing_data_after_the_object_is_78_naming_file_and_position() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let object = format!(r#"{{"host": "127.0.0.1", "port": {}}}"#, server.port);
    let two = config_file(&env, "two.json", format!("{object}\n{{\"port\": 1}}\n"));
    let garbage = config_file(&env, "garbage.json", format!("{object} garbage"));
    let garbage_at = format!("line 1 column {}", object.len() + 2);
    for (bin, args) in TOOLS {
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &two)).fails(78);
        assert!(line.contains(two.to_str().unwrap()), "{line}");
        assert!(
            line.contains("trailing") && line.contains("line 2 column 1"),
            "{line}"
        );
        let line = run(env.cmd(bin).args(*args).arg("--config").arg(&garbage)).fails(78);
        assert!(line.contains(garbage.to_str().unwrap()), "{line}");
        assert!(line.contains(&garbage_at), "{garbage_at}: {line}");
    }
    check::nothing_written(&server, &env);
}

/// Windows editors (Notepad) save UTF-8 with a byte-order mark: such a redis.json works.
#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let json = format!(
        "{{\r\n  \"host\": \"127.0.0.1\",\r\n  \"port\": {}\r\n}}\r\n",
        server.port
    );
    let bom = config_file(
        &env,
        "bom.json",
        [&b"\xef\xbb\xbf"[..], json.as_bytes()].concat(),
    );
    let out = run(env
        .cmd("rj-launch")
        .env("RJ_CONFIG", &bom)
        .args(["--record", "4243"]));
    assert_eq!(out.ok(), "4243\n");
    assert_eq!(server.smembers(&env.key("ALL")), ["4243"]);
    let out = run(env
        .cmd("rj-status")
        .env("RJ_CONFIG", &bom)
        .args(["--state", "ALL", "--format", "plain"]));
    assert_eq!(out.ok(), "4243\n");
}

#[test]
fn port_zero_is_78_naming_the_field_or_the_url() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let zero = config_file(
        &env,
        "zero.json",
        "{\n  \"host\": \"127.0.0.1\",\n  \"port\": 0\n}\n",
    );
    let url_zero = config_file(
        &env,
        "urlzero.json",
        r#"{"url": "redis://:pw-zero-1@127.0.0.1:0"}"#,
    );
    for (bin, args) in TOOLS {
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &zero)).fails(78);
        assert!(line.contains(zero.to_str().unwrap()), "{line}");
        assert!(
            line.contains("field \"port\"") && line.contains("line 3"),
            "{line}"
        );

        let line = run(env
            .cmd(bin)
            .args(*args)
            .args(["--url", "redis://127.0.0.1:0"]))
        .fails(78);
        assert!(line.contains("--url") && line.contains("port 0"), "{line}");

        let line = run(env
            .cmd(bin)
            .args(*args)
            .env("REDIS_URL", "redis://:pw-zero-1@127.0.0.1:0/2"))
        .fails(78);
        assert!(
            line.contains("REDIS_URL") && line.contains("port 0"),
            "{line}"
        );
        assert!(!line.contains("pw-zero-1"), "{line}");

        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &url_zero)).fails(78);
        assert!(
            line.contains(url_zero.to_str().unwrap()) && line.contains("\"url\""),
            "{line}"
        );
        assert!(!line.contains("pw-zero-1"), "{line}");
    }
    check::nothing_written(&server, &env);
}

/// A "tls_ca" that holds no certificate is the configuration's fault (78), found before any
/// connection: a text file, an empty file, a private key, a CERTIFICATE block of junk.
#[test]
fn tls_ca_that_is_not_a_certificate_is_78_naming_file_and_field() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    std::fs::write(env.path().join("notes.txt"), "ask the admins for the CA\n").unwrap();
    std::fs::write(env.path().join("empty.pem"), "").unwrap();
    std::fs::write(
        env.path().join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut cas = vec!["notes.txt", "empty.pem", "junk.pem"];
    if which::which("openssl").is_ok() {
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out", "key.pem"])
            .current_dir(env.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl genpkey: {out:?}");
        cas.push("key.pem");
    } else {
        util::missing("openssl (a private key as tls_ca is not tried)");
    }
    for ca in cas {
        let cfg = config_file(
            &env,
            &format!("tls-{ca}.json"),
            format!(
                r#"{{"host": "127.0.0.1", "port": {}, "tls": true, "tls_ca": "{ca}"}}"#,
                server.port
            ),
        );
        for (bin, args) in TOOLS {
            let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &cfg)).fails(78);
            assert!(
                line.contains(cfg.to_str().unwrap()),
                "names the file: {line}"
            );
            assert!(line.contains("field \"tls_ca\""), "names the field: {line}");
            assert!(line.contains(ca), "names the CA file: {line}");
            assert!(line.contains("certificate"), "says what is wrong: {line}");
        }
        // The file's CA is kept under a rediss:// URL: still its fault.
        let line = fails(
            &run(env
                .cmd("rj-status")
                .env("RJ_CONFIG", &cfg)
                .env("REDIS_URL", format!("rediss://127.0.0.1:{}", server.port))),
            78,
            "rj-status",
        );
        assert!(line.contains("field \"tls_ca\""), "{line}");
    }
    check::nothing_written(&server, &env);
}

/// A redis-server listening on 127.0.0.1 and ::1, or None (with a printed note) when this
/// machine has no IPv6 loopback. Drop kills and waits.
struct DualStackRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for DualStackRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DualStackRedis {
    fn start() -> Option<DualStackRedis> {
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("NOTE: no IPv6 loopback (::1) on this machine: connecting to ::1 not tried");
            return None;
        }
        for _ in 0..5 {
            let port = util::free_port();
            let dir = tempfile::tempdir().unwrap();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "::1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut s = DualStackRedis {
                child,
                port,
                _dir: dir,
            };
            for _ in 0..200 {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break; // port taken on one of the addresses
                }
                let pong = std::process::Command::new("redis-cli")
                    .args(["-h", "::1", "-p", &port.to_string(), "PING"])
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"PONG"));
                if pong {
                    return Some(s);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        panic!("could not start redis-server on 127.0.0.1 and ::1");
    }
}

/// An IPv6 host, bracketed or not in redis.json or in a URL, is shown `[::1]:PORT` once and
/// connects.
#[test]
fn ipv6_host_is_shown_in_brackets_once_and_connects() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    // Where nothing listens the message alone shows the address.
    let dead = util::free_port();
    for host in ["[::1]", "::1"] {
        let cfg = config_file(
            &env,
            "dead6.json",
            format!(r#"{{"host": "{host}", "port": {dead}}}"#),
        );
        let line = fails(
            &run(env.cmd("rj-status").env("RJ_CONFIG", &cfg)),
            69,
            "rj-status",
        );
        assert!(
            line.contains(&format!("Redis at [::1]:{dead} (from {})", cfg.display())),
            "host {host}: {line}"
        );
        assert!(!line.contains("[["), "{line}");
    }
    let line = fails(
        &env.run("rj-status", &["--url", &format!("redis://[::1]:{dead}")]),
        69,
        "rj-status",
    );
    assert!(
        line.contains(&format!("Redis at [::1]:{dead} (from --url)")),
        "{line}"
    );

    let Some(v6) = DualStackRedis::start() else {
        return;
    };
    let port = v6.port;
    let bracketed = config_file(
        &env,
        "v6b.json",
        format!(r#"{{"host": "[::1]", "port": {port}}}"#),
    );
    let bare = config_file(
        &env,
        "v6.json",
        format!(r#"{{"host": "::1", "port": {port}}}"#),
    );
    let mut want = Vec::new();
    for (i, cfg) in [&bracketed, &bare].into_iter().enumerate() {
        let id = format!("{}", 61 + i);
        let out = run(env
            .cmd("rj-launch")
            .env("RJ_CONFIG", cfg)
            .args(["-v", "--record", &id]));
        assert_eq!(out.ok(), format!("{id}\n"));
        assert!(
            source_line(&out).contains(&format!("Redis at [::1]:{port} (from {})", cfg.display())),
            "{}",
            source_line(&out)
        );
        want.push(id);
    }
    let out = run(env
        .cmd("rj-status")
        .env("REDIS_URL", format!("redis://[::1]:{port}"))
        .args(["-v", "--state", "ALL", "--format", "plain"]));
    assert_eq!(out.ok(), format!("{}\n", want.join("\n")));
    assert!(
        source_line(&out).contains(&format!("Redis at [::1]:{port} (from REDIS_URL)")),
        "{}",
        source_line(&out)
    );
}

/// Other clients' lists of Cluster nodes get one clear line saying that rj needs one node only
/// (it finds the cluster from the server, tests/cluster.rs), instead of a generic error or a
/// silent fallback to 127.0.0.1; so do other clients' spellings of a Sentinel setup, with the
/// one rj reads (tests/sentinel.rs follows that one).
#[test]
fn cluster_and_foreign_sentinel_settings_are_78_saying_what_rj_reads() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let sentinels = config_file(
        &env,
        "sentinel.json",
        r#"{
  "sentinel": {"hosts": ["s1:26379", "s2:26379"]},
  "master_name": "mymaster",
  "password": "sentinel-pw-2"
}"#,
    );
    let cluster = config_file(
        &env,
        "cluster.json",
        r#"{"cluster_nodes": ["n1:7000", "n2:7000"], "host": "n1", "port": 7000}"#,
    );
    for (bin, args) in TOOLS {
        for (how, value) in [
            ("--url", "redis-sentinel://:sentinel-pw-2@s1:26379/mymaster"),
            ("REDIS_URL", "sentinel://s1:26379,s2:26379/mymaster"),
        ] {
            let mut cmd = env.cmd(bin);
            cmd.args(*args);
            if how == "--url" {
                cmd.args([how, value]);
            } else {
                cmd.env(how, value);
            }
            let line = run(&mut cmd).fails(78);
            assert!(line.contains(how), "{line}");
            assert!(line.contains("redis+sentinel://"), "{line}");
            assert!(!line.contains("sentinel-pw-2"), "{line}");
        }
        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &sentinels)).fails(78);
        assert!(line.contains(sentinels.to_str().unwrap()), "{line}");
        assert!(line.contains("field \"sentinel\""), "{line}");
        assert!(
            line.contains("\"sentinels\"") && line.contains("\"master\""),
            "{line}"
        );
        assert!(!line.contains("sentinel-pw-2"), "{line}");

        let line = run(env.cmd(bin).args(*args).env("RJ_CONFIG", &cluster)).fails(78);
        assert!(line.contains(cluster.to_str().unwrap()), "{line}");
        assert!(line.contains("field \"cluster_nodes\""), "{line}");
        assert!(
            line.contains("finds the nodes of a Redis Cluster itself"),
            "{line}"
        );
    }
    check::nothing_written(&server, &env);
}
