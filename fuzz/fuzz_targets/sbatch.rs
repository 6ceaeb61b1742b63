//! The stdout of `sbatch --parsable`: `slurm::parse_sbatch_output`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::keys::JobId;
use rj::slurm::parse_sbatch_output;
use rj_fuzz::one_line;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_sbatch_output(&text) {
        Ok(out) => {
            let j = out.job;
            j.id.parse::<JobId>().expect("sbatch's job ID parses");
            for line in &out.other {
                assert!(!line.contains('\n'), "{line:?}");
            }
            if let Some(c) = &j.cluster {
                assert!(!c.is_empty());
            }
        }
        Err(e) => one_line("parse_sbatch_output", &e),
    }
});
