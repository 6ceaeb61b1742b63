use std::process::ExitCode;

fn main() -> ExitCode {
    rj::cli::main_with(rj::cmd::wait::run)
}
