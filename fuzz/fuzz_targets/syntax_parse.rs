//! Feeds arbitrary strings to every `atp-syntax` parser: none may panic, and whatever a parser
//! accepts must display as the exact input and parse again to the same value.

#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use atp_syntax::{
    AtIdentifier, AtUri, CidString, Datetime, Did, Handle, Language, Nsid, RecordKey, Tid, Uri,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(s: &str) -> Option<T>
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
{
    let value = s.parse::<T>().ok()?;
    assert_eq!(value.to_string(), s);
    assert_eq!(s.parse::<T>().ok().as_ref(), Some(&value));
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let did = round_trip::<Did>(s);
    if let Some(did) = &did {
        let _ = (did.method(), did.identifier());
    }
    let handle = round_trip::<Handle>(s);
    if let Some(handle) = &handle {
        assert!(handle.normalized().as_str().parse::<Handle>().is_ok());
    }
    let id = round_trip::<AtIdentifier>(s);
    assert_eq!(id.is_some(), did.is_some() || handle.is_some());
    if let Some(nsid) = round_trip::<Nsid>(s) {
        let _ = (nsid.authority(), nsid.name());
    }
    let rkey = round_trip::<RecordKey>(s);
    if let Some(tid) = round_trip::<Tid>(s) {
        assert_eq!(Tid::from_u64(tid.to_u64()), tid);
        assert_eq!(Tid::from_parts(tid.micros(), tid.clock_id()), tid);
        assert!(rkey.is_some(), "every TID is a record key");
    }
    if let Some(uri) = round_trip::<AtUri>(s) {
        let rebuilt = AtUri::new(
            uri.authority().clone(),
            uri.collection().cloned(),
            uri.rkey().cloned(),
        );
        assert_eq!(rebuilt.ok().as_ref(), Some(&uri));
    }
    let datetime_syntax = Datetime::check_syntax(s).is_ok();
    if let Some(datetime) = round_trip::<Datetime>(s) {
        assert!(datetime_syntax);
        let _ = datetime.to_chrono();
    }
    let language_syntax = Language::check_syntax(s).is_ok();
    if round_trip::<Language>(s).is_some() {
        assert!(language_syntax);
    }
    let _ = round_trip::<CidString>(s);
    let _ = round_trip::<Uri>(s);
});
