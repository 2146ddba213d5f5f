//! A rough cost measure (not a criterion bench): validating a typical post against the vendored
//! lexicons. Run with `cargo test --release -p atp-lexicon --test bench -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::Instant;

use atp_lexicon::{Catalog, Node, RecordValidity};
use atp_syntax::Nsid;

#[test]
#[ignore = "timing only; run by hand in release mode"]
fn post_validation_cost() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../lexicons"));
    let started = Instant::now();
    let catalog = Catalog::from_dir(&dir).expect("the vendored lexicons load");
    println!(
        "catalog: {} documents loaded in {:?}",
        catalog.len(),
        started.elapsed()
    );
    let post: Nsid = "app.bsky.feed.post".parse().expect("nsid");
    let json = serde_json::json!({
        "$type": "app.bsky.feed.post",
        "text": "Hello @alice.test, look at this picture! #cats 🐈‍⬛",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "langs": ["en"],
        "facets": [{"index": {"byteStart": 6, "byteEnd": 17}, "features": [
            {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:ewvi7nxzyoun6zhxrhs64oiz"}]}],
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "a cat", "image": {
            "$type": "blob", "ref": {"$link": "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"},
            "mimeType": "image/jpeg", "size": 123456}, "aspectRatio": {"width": 4, "height": 3}}]}
    });
    let value = atp_data::json::record_from_json(&json).expect("atproto data");
    time("data-model value", &catalog, &post, &value);
    time("JSON value", &catalog, &post, &json);
}

fn time<N: Node>(name: &str, catalog: &Catalog, post: &Nsid, record: &N) {
    const RUNS: u32 = 20_000;
    assert_eq!(
        catalog.validate_record(post, record),
        Ok(RecordValidity::Valid)
    );
    let started = Instant::now();
    for _ in 0..RUNS {
        std::hint::black_box(catalog.validate_record(post, std::hint::black_box(record))).ok();
    }
    println!(
        "{name}: {} ns per post",
        started.elapsed().as_nanos() / u128::from(RUNS)
    );
}

#[test]
#[ignore = "timing only"]
fn format_costs() {
    fn t<T: std::str::FromStr>(name: &str, s: &str) {
        let started = Instant::now();
        for _ in 0..100_000 {
            std::hint::black_box(std::hint::black_box(s).parse::<T>().is_ok());
        }
        println!("{name}: {} ns", started.elapsed().as_nanos() / 100_000);
    }
    t::<atp_syntax::Datetime>("datetime", "2024-01-01T00:00:00.000Z");
    t::<atp_syntax::Language>("language", "en");
    t::<atp_syntax::Did>("did", "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    t::<atp_syntax::Nsid>("nsid", "app.bsky.feed.post");
    t::<atp_syntax::AtUri>(
        "at-uri",
        "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3kznmn7xqxl22",
    );
    t::<atp_syntax::CidString>(
        "cid",
        "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    );
}
