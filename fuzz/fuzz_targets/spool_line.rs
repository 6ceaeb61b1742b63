//! One line of the spool (`spool::parse_line`): JSON written by rj-launch, or a torn write, or a
//! hand edit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::keys::JobId;
use rj::spool::parse_line;
use rj_fuzz::{is_canonical_id, one_line, strict};

fuzz_target!(|data: &[u8]| {
    match parse_line(data) {
        Ok((id, e)) => {
            assert_eq!(e.id.parse::<JobId>().expect("a spooled ID parses"), id);
            let again = serde_json::to_vec(&e).unwrap();
            assert_eq!(
                parse_line(&again).map(|(_, e)| e).as_ref(),
                Ok(&e),
                "spool entry does not round-trip"
            );
            if strict() {
                assert!(
                    is_canonical_id(&e.id),
                    "spooled non-canonical ID {:?}",
                    e.id
                );
            }
        }
        Err(e) => one_line("parse_line", &e),
    }
});
