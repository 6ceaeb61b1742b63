//! Man pages and shell completions rendered from the clap definitions of `rj::cmd::all()`.
//!
//! Shared by `cargo run --example gen-docs` (writes them) and the ecosystem test (checks that the
//! committed files are what this renders); never compiled into the binaries.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

/// The command that rewrites every generated file.
pub const REGENERATE: &str = "cargo run --example gen-docs";

/// The date in the pages' title line. A constant, not today: regenerating must be reproducible.
/// Bump it with the version.
const MAN_DATE: &str = "2026-11-22";

/// Directories whose files are all generated here; anything else in them is stale.
pub const GENERATED_DIRS: &[&str] = &[
    "man",
    "completions/bash",
    "completions/zsh",
    "completions/fish",
];

/// The heading of the README's exit-status table; the table follows it, up to a blank line.
pub const README_EXIT_HEADING: &str = "## Exit status (every tool)\n\n";

/// The README's exit-status table, row for row from `rj::exit::TABLE` (as the man pages').
pub fn exit_status_markdown() -> String {
    let mut s = String::from("| status | meaning |\n|---|---|\n");
    for (code, what) in rj::exit::TABLE {
        s.push_str(&format!("| {code} | {} |\n", what.replace('|', "\\|")));
    }
    s
}

/// Every generated file: its path relative to the repository root, and its content.
pub fn generate() -> BTreeMap<PathBuf, Vec<u8>> {
    let tools = rj::cmd::all();
    let names: Vec<String> = tools.iter().map(|t| t.name.clone()).collect();
    let mut files = BTreeMap::new();
    for tool in tools {
        let cmd = stable(tool.command);
        for (name, page) in man_pages(cmd.clone(), tool.examples, &names) {
            files.insert(PathBuf::from(format!("man/{name}.1")), page);
        }
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &tool.name, &mut buf);
            files.insert(completion_path(shell, &tool.name), buf);
        }
    }
    files.insert(PathBuf::from("README.md"), readme());
    files
}

/// README.md as committed, with its exit-status table printed again from `rj::exit::TABLE`;
/// the rest of the README is written by hand.
fn readme() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let start = text
        .find(README_EXIT_HEADING)
        .unwrap_or_else(|| panic!("README.md lacks the heading {README_EXIT_HEADING:?}"))
        + README_EXIT_HEADING.len();
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |i| start + i + 1);
    format!(
        "{}{}{}",
        &text[..start],
        exit_status_markdown(),
        &text[end..]
    )
    .into_bytes()
}

/// Where a completion script goes: the file name each shell looks up by command name.
fn completion_path(shell: Shell, name: &str) -> PathBuf {
    match shell {
        Shell::Bash => format!("completions/bash/{name}"),
        Shell::Zsh => format!("completions/zsh/_{name}"),
        Shell::Fish => format!("completions/fish/{name}.fish"),
        other => unreachable!("no completions for {other}"),
    }
    .into()
}

/// The version without the git commit: committed pages must not go stale on every commit.
fn stable(cmd: clap::Command) -> clap::Command {
    cmd.version(env!("CARGO_PKG_VERSION"))
        .long_version(env!("CARGO_PKG_VERSION"))
}

/// The page of a command and, for a command with subcommands (`rbench wrap`), one page per
/// subcommand (`rbench-wrap.1`), as `clap_mangen::generate_to` names them.
fn man_pages(cmd: clap::Command, examples: &str, tools: &[String]) -> Vec<(String, Vec<u8>)> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect_pages(&cmd, examples, tools, &mut pages);
    pages
}

fn collect_pages(
    cmd: &clap::Command,
    examples: &str,
    tools: &[String],
    pages: &mut Vec<(String, Vec<u8>)>,
) {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    pages.push((name, man_page(cmd, examples, tools)));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, examples, tools, pages);
    }
}

/// One page: clap_mangen's sections, then ours from the same constants `--help` prints
/// (`rj::cli::footer`), instead of clap_mangen's unlabelled EXTRA section.
fn man_page(cmd: &clap::Command, examples: &str, tools: &[String]) -> Vec<u8> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .date(MAN_DATE)
        .source(format!("rj {}", env!("CARGO_PKG_VERSION")))
        .manual("rj manual");
    let mut out = Vec::new();
    let w: &mut dyn std::io::Write = &mut out;
    man.render_title(w).unwrap();
    // No hyphenation: paths, key names and option values must be read (and copied) whole.
    w.write_all(b".nh\n").unwrap();
    man.render_name_section(w).unwrap();
    man.render_synopsis_section(w).unwrap();
    man.render_description_section(w).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w).unwrap();
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w).unwrap();
    }

    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in rj::exit::TABLE {
        tagged(&mut roff, &code.to_string(), what);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in rj::cli::ENVIRONMENT {
        tagged(&mut roff, var, what);
    }
    roff.control("SH", ["FILES"]);
    for (file, what) in rj::cli::FILES {
        tagged(&mut roff, file, what);
    }
    roff.control("SH", ["REDIS PERMISSIONS"]);
    roff.text([roman("The least-privilege Redis ACL user of each tool:")]);
    for row in rj::cli::ACL {
        roff.control("TP", []);
        roff.text([bold(row.label())]);
        // Unfilled: a line pasted into redis-cli must stay one line.
        roff.control("nf", []);
        for line in row.setuser() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    for note in rj::cli::ACL_NOTES {
        roff.control("PP", []);
        roff.text([roman(*note)]);
    }
    roff.control("SH", ["EXAMPLES"]);
    for (i, example) in examples
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([roman(example)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    let see_also: Vec<String> = tools
        .iter()
        .filter(|t| t.as_str() != name)
        .map(|t| format!("{t}(1)"))
        .chain(["sbatch(1)", "squeue(1)", "sacct(1)", "redis-cli(1)"].map(String::from))
        .collect();
    roff.text([roman(see_also.join(", "))]);
    roff.control("SH", ["VERSION"]);
    roff.text([roman(format!("rj {}", env!("CARGO_PKG_VERSION")))]);
    roff.to_writer(w).unwrap();
    lint_clean(&String::from_utf8(out).unwrap()).into_bytes()
}

/// What `mandoc -Tlint` and `groff -ww` would warn about in clap_mangen's output: non-ASCII
/// text (groff without preconv), `.br` next to a blank line (before the possible values of an
/// option, with or without help text), trailing blanks.
fn lint_clean(page: &str) -> String {
    let mut s = String::with_capacity(page.len());
    let page = page
        .replace(".br\n\n.br\n", ".sp\n")
        .replace("\n\n.br\n", "\n.sp\n");
    for c in page.chars() {
        if c.is_ascii() {
            s.push(c);
        } else {
            s.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    lines.push("");
    lines.join("\n")
}

/// A `.TP` paragraph: the tag in bold, then its text.
fn tagged(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(tag)]);
    roff.text([roman(text)]);
}

/// What differs between the committed files under `root` and what `generate` renders: the first
/// problem as one line that says how to fix it, or Ok.
pub fn check(root: &Path) -> Result<(), String> {
    let files = generate();
    let mut problems = Vec::new();
    for (path, content) in &files {
        match std::fs::read(root.join(path)) {
            Ok(old) if old == *content => {}
            Ok(_) => problems.push(format!("{} is stale", path.display())),
            Err(_) => problems.push(format!("{} is missing", path.display())),
        }
    }
    for extra in leftovers(root, &files) {
        problems.push(format!("{} is not generated by any tool", extra.display()));
    }
    match problems.split_first() {
        None => Ok(()),
        Some((first, [])) => Err(format!("{first}; run: {REGENERATE}")),
        Some((first, rest)) => Err(format!(
            "{first} (and {} more); run: {REGENERATE}",
            rest.len()
        )),
    }
}

/// Files in the generated directories that `generate` no longer renders (a renamed tool).
pub fn leftovers(root: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<PathBuf> {
    let mut extra = Vec::new();
    for dir in GENERATED_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let rel = Path::new(dir).join(entry.file_name());
            if entry.path().is_file() && !files.contains_key(&rel) {
                extra.push(rel);
            }
        }
    }
    extra.sort();
    extra
}
