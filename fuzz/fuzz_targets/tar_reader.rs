//! Layer bytes → the tar reader. Must never panic; every entry keeps the reader's limits,
//! header-only entries carry no data, and a file's data is exactly its size whether it is
//! read or skipped (every other entry is left for `next_entry` to skip).
#![no_main]

use husk_image::tar::{Kind, Reader, MAX_PATH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut buf = [0u8; 700]; // not a multiple of the block size, on purpose
    let mut read_this_one = true;
    loop {
        let e = match r.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(_) => return,
        };
        assert!(e.path.len() <= MAX_PATH && e.link.len() <= MAX_PATH);
        if e.kind != Kind::File {
            assert_eq!(e.size, 0, "a header-only entry has data");
        }
        if read_this_one {
            let mut got = 0u64;
            loop {
                match r.read_data(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n as u64,
                    Err(_) => return, // truncated
                }
            }
            assert_eq!(got, e.size, "data read differs from the entry's size");
            assert!(got <= data.len() as u64);
        }
        read_this_one = !read_this_one;
    }
    let _ = r.drain();
});
