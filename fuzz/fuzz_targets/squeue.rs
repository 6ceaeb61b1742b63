//! The output of `squeue` as rj-track asks for it: `slurm::parse_squeue`, and the rows' helpers
//! (`covers`, `task_count`) that read the task ranges Slurm printed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rj_fuzz::check_job_rows("parse_squeue", data, rj::slurm::parse_squeue);
});
