//! Reading a CAR never panics; every block it yields matches its CID; and the roots and blocks
//! it read, written back and read again, come out the same.
#![no_main]

use atp_data::car::{CarLimits, CarReader, CarWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = CarLimits {
        max_block_size: 1 << 16,
        max_header_size: 1 << 12,
    };
    let Ok(mut reader) = CarReader::with_limits(data, limits) else {
        return;
    };
    let roots = reader.roots().to_vec();
    let mut blocks = Vec::new();
    while let Ok(Some((cid, bytes))) = reader.next_block() {
        assert!(atp_data::cid::matches(&cid, &bytes));
        blocks.push((cid, bytes));
    }
    let mut writer = CarWriter::new(Vec::new(), &roots).expect("writing to a Vec");
    for (cid, bytes) in &blocks {
        writer.write_block(cid, bytes).expect("writing to a Vec");
    }
    let written = writer.finish().expect("writing to a Vec");
    let reread = CarReader::new(written.as_slice()).expect("our own header");
    assert_eq!(reread.roots(), roots.as_slice());
    let again: Vec<_> = reread.collect::<Result<_, _>>().expect("our own blocks");
    assert_eq!(again, blocks);
});
