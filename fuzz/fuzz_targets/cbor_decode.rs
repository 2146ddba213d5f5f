//! Strict DAG-CBOR decoding never panics, and whatever it accepts re-encodes to the same bytes.
#![no_main]

use atp_data::cbor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = cbor::from_slice(data) {
        assert_eq!(
            cbor::to_vec(&value),
            data,
            "accepted a non-canonical encoding"
        );
    }
    if let Ok((value, used)) = cbor::from_slice_prefix(data) {
        assert_eq!(
            cbor::to_vec(&value),
            &data[..used],
            "prefix is not canonical"
        );
    }
});
