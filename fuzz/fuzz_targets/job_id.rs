//! Job IDs: `keys::JobId` FromStr and `slurm::parse_job_ref` (`123`, `123_4`, `123;cluster`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::keys::{split_cluster, IdKey, JobId};
use rj::slurm::parse_job_ref;
use rj_fuzz::{is_canonical_id, is_job_id_syntax, one_line, strict};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match s.parse::<JobId>() {
        Ok(id) => {
            assert!(is_job_id_syntax(s), "accepted {s:?} as a job ID");
            let shown = id.to_string();
            let back: JobId = shown.parse().expect("a displayed JobId parses");
            assert_eq!(back, id, "{s:?} → {shown:?} is another ID");
            assert_eq!(IdKey::of(s), IdKey::Id(id.clone()));
            if strict() {
                assert!(
                    is_canonical_id(s),
                    "accepted the non-canonical ID {s:?} (as {shown})"
                );
            }
        }
        Err(e) => {
            one_line("JobId", &e);
            assert!(matches!(IdKey::of(s), IdKey::Other(_)));
        }
    }
    let (id, cluster) = split_cluster(s);
    assert!(!id.contains(';'));
    if let Some(c) = cluster {
        assert!(!c.is_empty());
    }
    match parse_job_ref(s) {
        Ok(j) => {
            let id: JobId = j.id.parse().expect("parse_job_ref returns a job ID");
            assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
            if let Some(c) = &j.cluster {
                assert!(!c.is_empty(), "empty cluster from {s:?}");
                if strict() {
                    assert!(
                        !c.contains(|ch: char| ch.is_whitespace() || ch == ';'),
                        "accepted cluster name {c:?} from {s:?}"
                    );
                }
            }
        }
        Err(e) => one_line("parse_job_ref", &e),
    }
});
