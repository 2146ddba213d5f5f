//! atproto JSON parsing never panics, and whatever it accepts survives JSON → value and
//! value → DAG-CBOR → value unchanged (with canonical bytes).
#![no_main]

use atp_data::{cbor, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::from_json_slice(data) else {
        return;
    };
    let back = json::to_json(&value);
    assert_eq!(
        json::from_json(&back).as_ref(),
        Ok(&value),
        "JSON round trip"
    );
    assert_eq!(
        json::from_json_slice(back.to_string().as_bytes()).as_ref(),
        Ok(&value),
        "JSON text round trip"
    );
    let bytes = cbor::to_vec(&value);
    let decoded = cbor::from_slice(&bytes).expect("our own encoding decodes");
    assert_eq!(decoded, value);
    assert_eq!(cbor::to_vec(&decoded), bytes);
});
