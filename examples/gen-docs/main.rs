//! Write man/ and completions/ from the clap definitions: `cargo run --example gen-docs`;
//! `-- --check` only says whether the committed files are up to date (exit 1 when not).
use std::path::Path;
use std::process::ExitCode;

mod docs;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::args().nth(1).as_deref() == Some("--check") {
        return match docs::check(root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(line) => {
                eprintln!("gen-docs: {line}");
                ExitCode::FAILURE
            }
        };
    }
    let files = docs::generate();
    for stale in docs::leftovers(root, &files) {
        eprintln!("gen-docs: removing {}", stale.display());
        if let Err(e) = std::fs::remove_file(root.join(&stale)) {
            eprintln!("gen-docs: error: cannot remove {}: {e}", stale.display());
            return ExitCode::FAILURE;
        }
    }
    for (path, content) in &files {
        let full = root.join(path);
        if std::fs::read(&full).is_ok_and(|old| old == *content) {
            continue;
        }
        let written = std::fs::create_dir_all(full.parent().unwrap())
            .and_then(|()| std::fs::write(&full, content));
        if let Err(e) = written {
            eprintln!("gen-docs: error: cannot write {}: {e}", full.display());
            return ExitCode::FAILURE;
        }
        eprintln!("gen-docs: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
