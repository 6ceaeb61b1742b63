//! The toolbox around the binaries: generated man pages and completions, the files in share/,
//! and terminal manners (`--version`, `--help`, NO_COLOR, `| head`).
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{self, TestEnv};

#[path = "../examples/gen-docs/docs.rs"]
mod docs;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn tool_names() -> Vec<String> {
    rj::cmd::all().into_iter().map(|t| t.name).collect()
}

/// A binary with nothing from the developer's environment but PATH.
fn bare(name: &str) -> Command {
    let mut c = Command::new(util::bin_path(name));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

// ---- generated files ------------------------------------------------------------------------

#[test]
fn man_pages_and_completions_are_up_to_date() {
    if let Err(line) = docs::check(root()) {
        panic!("{line}");
    }
}

#[test]
fn every_binary_is_in_the_registry() {
    let mut bins: Vec<String> = std::fs::read_dir(root().join("src/bin"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    bins.sort();
    let mut tools = tool_names();
    tools.sort();
    for b in &bins {
        assert!(
            tools.contains(b),
            "src/bin/{b}.rs has no line in rj::cmd::all() (src/cmd/mod.rs), so it gets no man page \
             or completions"
        );
    }
    for t in &tools {
        assert!(
            bins.contains(t),
            "rj::cmd::all() lists {t}, but there is no src/bin/{t}.rs"
        );
    }
}

/// The README's exit-status table is the one the man pages show: rj::exit::TABLE.
#[test]
fn readme_shows_the_exit_status_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = docs::exit_status_markdown();
    assert!(
        readme.contains(&format!("{}{table}\n", docs::README_EXIT_HEADING)),
        "README.md's \"Exit status\" section should hold the rows of rj::exit::TABLE:\n{table}"
    );
}

/// `--help` and the man page say the same: both come from cli::ENVIRONMENT, cli::FILES,
/// exit::TABLE and the tool's EXAMPLES.
#[test]
fn help_and_man_page_carry_the_same_sections() {
    let files = docs::generate();
    for tool in rj::cmd::all() {
        let help = tool.command.clone().render_long_help().to_string();
        let page = String::from_utf8(files[&PathBuf::from(format!("man/{}.1", tool.name))].clone())
            .unwrap();
        let roff = |s: &str| s.replace('-', "\\-").replace('\'', "\\*(Aq");
        for heading in ["Environment:", "Files:", "Exit status:", "Examples:"] {
            assert!(
                help.contains(heading),
                "{} --help lacks {heading}",
                tool.name
            );
        }
        for heading in [
            ".SH OPTIONS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXAMPLES",
            ".SH VERSION",
        ] {
            assert!(
                page.contains(heading),
                "man/{}.1 lacks {heading}",
                tool.name
            );
        }
        assert!(
            !page.contains(".SH EXTRA"),
            "man/{}.1 repeats the help footer",
            tool.name
        );
        let env: Vec<&str> = rj::cli::ENVIRONMENT.iter().map(|(k, _)| *k).collect();
        for var in [
            "JOB_TAG",
            "job_tag",
            "RJ_CONFIG",
            "REDIS_URL",
            "NO_COLOR",
            "SLURM_CONF",
        ] {
            assert!(env.contains(&var), "cli::ENVIRONMENT lacks {var}");
        }
        for (var, _) in rj::cli::ENVIRONMENT {
            assert!(help.contains(var), "{} --help lacks {var}", tool.name);
            assert!(
                page.contains(&format!("\\fB{}\\fR", roff(var))),
                "man/{}.1 lacks {var}",
                tool.name
            );
        }
        for (file, _) in rj::cli::FILES {
            assert!(help.contains(file), "{} --help lacks {file}", tool.name);
            assert!(
                page.contains(&roff(file)),
                "man/{}.1 lacks {file}",
                tool.name
            );
        }
        for (code, _) in rj::exit::TABLE {
            assert!(
                page.contains(&format!("\\fB{code}\\fR")),
                "man/{}.1 lacks exit {code}",
                tool.name
            );
        }
        for line in tool
            .examples
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            assert!(
                help.contains(line),
                "{} --help lacks example {line}",
                tool.name
            );
            assert!(
                page.contains(&roff(line)),
                "man/{}.1 lacks example {line}",
                tool.name
            );
        }
    }
}

/// `man -l man/<tool>.1` shows no warnings: neither mandoc's linter nor groff's.
#[test]
fn man_pages_render_without_warnings() {
    let have = |tool: &str, package: &str| {
        let ok = which::which(tool).is_ok();
        if !ok {
            util::missing(&format!("{tool} (apt-get install {package})"));
        }
        ok
    };
    let (mandoc, groff) = (have("mandoc", "mandoc"), have("groff", "groff-base"));
    for (path, page) in docs::generate() {
        if path.extension().is_none_or(|e| e != "1") {
            continue;
        }
        let mut checks: Vec<(&str, Vec<&str>)> = Vec::new();
        if mandoc {
            checks.push(("mandoc", vec!["-Tlint", "-W", "warning"]));
        }
        if groff {
            checks.push(("groff", vec!["-ww", "-man", "-Tutf8", "-z"]));
        }
        for (prog, args) in checks {
            let out = pipe_through(prog, &args, &page);
            assert!(
                out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                "{prog} {} on {}: {}{}",
                args.join(" "),
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn pipe_through(prog: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// TAB after `rj-status --` offers the options: the bash script loads and completes.
#[test]
fn bash_completion_offers_the_options() {
    for tool in rj::cmd::all() {
        let name = &tool.name;
        let script = root().join(format!("completions/bash/{name}"));
        let probe = format!(
            r#"source "$1" || exit 1
fn=$(complete -p {name} | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=({name} --); COMP_CWORD=1; COMP_LINE="{name} --"; COMP_POINT=${{#COMP_LINE}}
"$fn" {name} -- {name}
printf '%s\n' "${{COMPREPLY[@]}}""#
        );
        let out = Command::new("bash")
            .args(["-c", &probe, "bash"])
            .arg(&script)
            .output()
            .unwrap();
        let offered = String::from_utf8_lossy(&out.stdout);
        for opt in tool.command.get_opts().filter_map(|a| a.get_long()) {
            assert!(
                offered.lines().any(|l| l == format!("--{opt}")),
                "TAB after `{name} --` does not offer --{opt}; offered: {offered:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// zsh and fish are not on every build machine; when they are, their scripts must parse.
#[test]
fn zsh_and_fish_completions_parse() {
    for (shell, args, dir) in [
        ("zsh", ["-n"], "completions/zsh"),
        ("fish", ["-n"], "completions/fish"),
    ] {
        if which::which(shell).is_err() {
            eprintln!("note: {shell} is not installed; its completions are not syntax-checked");
            continue;
        }
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            let out = Command::new(shell).args(args).arg(&p).output().unwrap();
            assert!(out.status.success(), "{shell} -n {}: {out:?}", p.display());
        }
    }
}

// ---- share/ ---------------------------------------------------------------------------------

#[test]
fn redis_example_json_is_a_valid_config() {
    let path = root().join("share/redis.example.json");
    let text = read("share/redis.example.json");
    let raw = rj::config::parse(&text, &path).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(raw.host.is_some() && raw.port.is_some(), "{raw:?}");
    let tag = raw.job_tag.expect("the example sets job_tag");
    rj::keys::Tag::new(&tag).unwrap_or_else(|e| panic!("job_tag {tag:?}: {e:#}"));
}

/// The job scripts parse and write the documented keys: the two around rj-put call no
/// redis-cli and point to the one that does, which keeps the password off command lines.
/// (They run for real in the Slurm end-to-end tests.)
#[test]
fn example_job_scripts_are_sound() {
    for rel in [
        "share/examples/job.sbatch",
        "share/examples/array-job.sbatch",
        "share/examples/job-redis-cli.sbatch",
    ] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(root().join(rel))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bash -n {rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = read(rel);
        assert!(text.starts_with("#!/bin/bash\n"), "{rel}: no #!/bin/bash");
        assert!(text.contains("#SBATCH "), "{rel}: no #SBATCH lines");
    }
    for rel in [
        "share/examples/job.sbatch",
        "share/examples/array-job.sbatch",
    ] {
        let text = read(rel);
        assert!(
            text.contains("rj-put \"$@\""),
            "{rel}: does not write with rj-put"
        );
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.contains("redis-cli")),
            "{rel}: calls redis-cli"
        );
        assert!(
            text.contains("job-redis-cli.sbatch"),
            "{rel}: no pointer to the redis-cli example"
        );
    }
    {
        let rel = "share/examples/job-redis-cli.sbatch";
        let prefix = "\"$JOB_TAG-$SLURM_JOB_ID\"";
        let text = read(rel);
        assert!(
            text.contains(&format!("key={prefix}")),
            "{rel}: keys are not {prefix}:<name>"
        );
        assert!(
            text.contains("REDISCLI_AUTH"),
            "{rel}: password not passed in REDISCLI_AUTH"
        );
        for line in text.lines().filter(|l| l.contains("redis-cli")) {
            for word in line.split_whitespace() {
                assert!(
                    !matches!(word, "-a" | "--pass" | "-u" | "--askpass"),
                    "{rel}: `{word}` would put the password on redis-cli's command line: {line}"
                );
            }
        }
    }
}

/// The arguments after `rj-track` in a unit or crontab must parse, once rj-track exists.
fn assert_rj_track_accepts(args: &[&str], origin: &str) {
    let Some(tool) = rj::cmd::all().into_iter().find(|t| t.name == "rj-track") else {
        eprintln!("note: rj-track is not in rj::cmd::all() yet; {origin} arguments not checked");
        return;
    };
    let argv = std::iter::once("rj-track").chain(args.iter().copied());
    if let Err(e) = tool.command.try_get_matches_from(argv) {
        panic!("{origin}: rj-track {}: {e}", args.join(" "));
    }
}

#[test]
fn systemd_unit_is_valid() {
    let rel = "share/systemd/rj-track.service";
    let text = read(rel);
    let mut section = String::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{rel}: not key=value: {line}"));
        keys.push((format!("{section}.{}", k.trim()), v.trim().to_string()));
    }
    let get = |k: &str| {
        keys.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{rel}: no {k}"))
    };
    assert_eq!(get("Service.Restart"), "on-failure");
    assert_eq!(get("Service.KillSignal"), "SIGTERM");
    assert!(get("Service.ExecReload").ends_with("kill -HUP $MAINPID"));
    assert_eq!(get("Install.WantedBy"), "default.target", "a user unit");
    let exec: Vec<&str> = get("Service.ExecStart").split_whitespace().collect();
    assert!(
        exec[0].ends_with("/rj-track"),
        "{rel}: ExecStart runs {}",
        exec[0]
    );
    assert_rj_track_accepts(&exec[1..], rel);

    if which::which("systemd-analyze").is_err() {
        eprintln!("note: systemd-analyze is not installed; {rel} checked by parsing only");
        return;
    }
    // verify wants an executable ExecStart and a runtime dir for the user manager.
    let dir = tempfile::tempdir().unwrap();
    let stub = util::write_script(dir.path(), "rj-track", "exit 0");
    let unit = dir.path().join("rj-track.service");
    std::fs::write(&unit, text.replace(exec[0], stub.to_str().unwrap())).unwrap();
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    util::set_mode(&runtime, 0o700);
    let out = Command::new("systemd-analyze")
        .args(["--user", "--man=no", "verify"])
        .arg(&unit)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    // verify exits 0 on settings it ignores; its complaints are on stderr.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze --user verify {rel}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cron_line_is_valid() {
    let rel = "share/cron/rj-track.cron";
    let text = read(rel);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{rel}: one crontab line expected: {lines:?}"
    );
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (i, (lo, hi)) in ranges.iter().enumerate() {
        let f = fields
            .get(i)
            .unwrap_or_else(|| panic!("{rel}: fewer than 5 time fields"));
        for part in f.split(',') {
            let (range, step) = part.split_once('/').unwrap_or((part, "1"));
            assert!(step.parse::<u32>().is_ok_and(|s| s > 0), "{rel}: field {f}");
            if range != "*" {
                for n in range.split('-') {
                    let n: u32 = n.parse().unwrap_or_else(|_| panic!("{rel}: field {f}"));
                    assert!(
                        (*lo..=*hi).contains(&n),
                        "{rel}: field {f} out of {lo}-{hi}"
                    );
                }
            }
        }
    }
    assert!(
        !lines[0].contains('%'),
        "{rel}: cron turns % into a newline"
    );
    let command = &fields[5..];
    assert!(
        command
            .first()
            .is_some_and(|c| c.trim_matches('"').ends_with("/rj-track")),
        "{rel}: the command is not rj-track: {command:?}"
    );
    let args: Vec<&str> = command[1..]
        .iter()
        .copied()
        .take_while(|a| !a.starts_with('>') && !a.starts_with('2') && !a.starts_with('|'))
        .collect();
    assert!(args.contains(&"--once"), "{rel}: rj-track without --once");
    let out = Command::new("sh")
        .args(["-n", "-c", &command.join(" ")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{rel}: sh -n: {out:?}");
    assert_rj_track_accepts(&args, rel);
}

// ---- terminal manners -----------------------------------------------------------------------

/// `--version`: `rj-status 0.1.0 (1a2b3c4d5e)`, the crate version and the git commit.
#[test]
fn version_names_crate_version_and_commit() {
    for name in tool_names() {
        let out = bare(&name).arg("--version").output().unwrap();
        assert!(out.status.success(), "{name} --version: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        let commit = words
            .get(2)
            .and_then(|w| w.strip_prefix('('))
            .and_then(|w| w.strip_suffix(')'))
            .unwrap_or_default();
        assert!(
            words.len() == 3
                && words[0] == name
                && words[1] == env!("CARGO_PKG_VERSION")
                && (commit == "unknown"
                    || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()))),
            "{name} --version: {text:?}"
        );
    }
}

/// `--help` and `--version` read no config: a broken one does not matter.
#[test]
fn help_and_version_read_no_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("redis.json");
    std::fs::write(&bad, "{ not json").unwrap();
    for name in tool_names() {
        for flag in ["--help", "-h", "--version"] {
            let out = bare(&name)
                .arg(flag)
                .env("RJ_CONFIG", &bad)
                .env("REDIS_URL", "nonsense://")
                .env("JOB_TAG", "bad tag!")
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty() && !out.stdout.is_empty(),
                "{name} {flag}: {out:?}"
            );
        }
    }
}

/// A usage error is one line in the house form, `NAME: error: …`, exit 2, with clap's hints
/// (possible values) kept and its usage and "For more information" lines folded away.
#[test]
fn usage_errors_are_one_line() {
    for name in tool_names() {
        for args in [&["--no-such-option"][..], &["--config"]] {
            if name == "rj-launch" && args[0] == "--no-such-option" {
                continue; // an unknown option is sbatch's, passed on
            }
            let out = bare(&name).args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {out:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{name} {args:?}: {err}");
            assert!(
                err.starts_with(&format!("{name}: error: ")) && err.contains(args[0]),
                "{name} {args:?}: {err}"
            );
            assert!(out.stdout.is_empty(), "{name} {args:?}");
        }
    }
    let out = bare("rj-status")
        .args(["--state", "bogus"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "rj-status: error: invalid value 'bogus' for '--state <STATE>': unknown state \"bogus\"; \
         one of ALL, PENDING_AND_RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED (see --help)"
    );
}

/// clap colours its messages only when asked, and NO_COLOR beats even CLICOLOR_FORCE.
#[test]
fn no_color_silences_clap() {
    let esc = |o: &std::process::Output| o.stdout.contains(&0x1b) || o.stderr.contains(&0x1b);
    for name in tool_names() {
        let forced = bare(&name)
            .arg("--help")
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap();
        assert_eq!(forced.status.code(), Some(0), "{name}: {forced:?}");
        assert!(
            esc(&forced),
            "{name}: CLICOLOR_FORCE=1 gave no colour; is this test still valid?"
        );
        // `--config` without its value: a usage error in every tool, found by clap itself.
        for args in [&["--config"][..], &["--help"]] {
            let piped = bare(&name).args(args).output().unwrap();
            assert!(!esc(&piped), "{name} {args:?}: colour on a pipe");
            let no_color = bare(&name)
                .args(args)
                .env("CLICOLOR_FORCE", "1")
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            assert!(!esc(&no_color), "{name} {args:?}: colour despite NO_COLOR");
        }
    }
}

/// Run a tool with stdout into a reader that takes a few bytes and closes, as `| head -c 10`.
fn closed_early(env: &TestEnv, name: &str, args: &[&str]) {
    let mut child = Command::new(util::bin_path(name))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.path())
        .env("RJ_CONFIG", &env.config)
        .env("JOB_TAG", &env.tag)
        .current_dir(env.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // the read end is dropped here: the tool's next writes fail with EPIPE
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{name} {args:?} | head: {:?} stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `| head` is not an error: exit 0 and nothing on stderr, whatever the output form.
#[test]
fn closed_stdout_is_success() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // Far more output than a pipe buffer (64 KiB) holds, so the tool is still writing.
    let mut con = server.client();
    let ids: Vec<u64> = (4_000_000..4_030_000).collect();
    for chunk in ids.chunks(10_000) {
        for set in ["ALL", "COMPLETED"] {
            redis::cmd("SADD")
                .arg(env.key(set))
                .arg(chunk)
                .query::<()>(&mut con)
                .unwrap();
        }
    }
    redis::cmd("SET")
        .arg(format!("{}-4029999:big", env.tag))
        .arg("x".repeat(1 << 20))
        .query::<()>(&mut con)
        .unwrap();
    for format in ["human", "plain", "json", "csv", "tsv"] {
        closed_early(&env, "rj-status", &["--format", format]);
        closed_early(&env, "rj-last", &["--format", format]);
    }
    closed_early(&env, "rj-status", &["--long", "--format", "plain"]);
}

/// Output that cannot be written (stdout on a full disk) is 74 and says stdout, never 1
/// ("nothing found") or a bare OS message.
#[test]
fn a_full_stdout_is_74_naming_stdout() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let ids: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    crate::util::check::sadd(&server, &env.key("ALL"), &ids);
    crate::util::check::sadd(&server, &env.key("COMPLETED"), &ids);
    for (bin, args) in [
        ("rj-status", &["--format", "human"][..]),
        ("rj-status", &["--format", "json"][..]),
        ("rj-status", &["--long", "--format", "csv"][..]),
        ("rj-cleanup", &["--dry-run", "--keys"][..]),
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = env
            .std_command(util::bin_path(bin))
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(74), "{bin} {args:?}: {err}");
        assert!(
            err.starts_with(&format!("{bin}: error: cannot write to stdout: "))
                && err.lines().count() == 1,
            "{bin} {args:?}: {err}"
        );
    }
}
