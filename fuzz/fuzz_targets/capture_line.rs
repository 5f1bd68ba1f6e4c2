//! The capture reader (our format and Tardis raw lines, plain or gzip) on
//! arbitrary bytes: every record or error, never a panic.
#![no_main]

use feeds::capture::CaptureReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = CaptureReader::from_reader(std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    while let Some(rec) = r.next_record() {
        if let Ok(rec) = rec {
            let _ = rec.frame.len();
        }
    }
    let _ = feeds::time::parse_rfc3339_ns(data);
});
