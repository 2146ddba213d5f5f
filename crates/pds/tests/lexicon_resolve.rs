//! End to end against the real `pds serve` binary: `com.atproto.lexicon.resolveLexicon` and
//! handle resolution by DNS TXT, with the server's TXT lookups pointed (`PDS_DNS_NAMESERVERS`,
//! `PDS_HANDLE_BACKUP_NAMESERVERS`) at tiny UDP DNS responders on 127.0.0.1 run by the test.
//!
//! Schemas are published as `com.atproto.lexicon.schema` records in accounts on the same server;
//! the server fetches them back over HTTP (`com.atproto.sync.getRecord`) as it would from any
//! other PDS, and verifies the proof against the DID document in the embedded PLC directory.

mod harness;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atp_crypto::{Curve, Keypair};
use atp_identity::plc::{PlcData, PlcOp, UnsignedOp};
use atp_identity::resolve::{Limits, PlcClient};
use atp_syntax::Did;
use harness::{Account, Reply, Server, create_account, get, post};
use serde_json::{Value, json};

// ---- a minimal DNS responder: TXT answers for listed names, NXDOMAIN for the rest ----

/// Answers DNS queries over UDP on 127.0.0.1 from a table of TXT records; stops when dropped.
struct DnsResponder {
    addr: SocketAddr,
    txt: Arc<Mutex<HashMap<String, Vec<String>>>>,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl DnsResponder {
    fn start() -> DnsResponder {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let responder = DnsResponder {
            addr: socket.local_addr().expect("local_addr"),
            txt: Arc::default(),
            queries: Arc::default(),
            stop: Arc::default(),
        };
        let (txt, queries, stop) = (
            Arc::clone(&responder.txt),
            Arc::clone(&responder.queries),
            Arc::clone(&responder.stop),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some((name, answer)) = respond(&buf[..n], &txt.lock().unwrap()) else {
                    continue;
                };
                queries.lock().unwrap().push(name);
                let _ = socket.send_to(&answer, from);
            }
        });
        responder
    }

    /// Adds a TXT record (one character-string per 255 bytes).
    fn add_txt(&self, name: &str, value: &str) {
        self.txt
            .lock()
            .unwrap()
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.to_owned());
    }

    /// The names queried so far (lower-case, no trailing dot).
    fn queried(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }

    fn env_value(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;

/// The reply to one query: TXT records of a listed name (none for other types), NXDOMAIN for
/// a name not listed; `None` for anything that is not a one-question query.
fn respond(query: &[u8], table: &HashMap<String, Vec<String>>) -> Option<(String, Vec<u8>)> {
    let header = query.get(..12)?;
    if header[2] & 0x80 != 0 || u16::from_be_bytes([header[4], header[5]]) != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question = query.get(12..pos + 4)?;
    let name = labels.join(".");
    let records = table.get(&name);
    let answers: Vec<&String> = match records {
        Some(values) if qtype == TYPE_TXT => values.iter().collect(),
        _ => Vec::new(),
    };
    let rcode = if records.is_some() { 0 } else { 3 };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&header[..2]);
    // QR, the query's opcode and RD; RA; the rcode.
    out.push(0x80 | (header[2] & 0x79));
    out.push(0x80 | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(answers.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    for value in answers {
        let mut rdata = Vec::new();
        for chunk in value.as_bytes().chunks(255) {
            rdata.push(u8::try_from(chunk.len()).ok()?);
            rdata.extend_from_slice(chunk);
        }
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_TXT.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some((name, out))
}

// ---- helpers ----

fn assert_error(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.error()),
        (status, error),
        "{what}: {}",
        reply.body
    );
}

/// A small valid Lexicon document for `id`.
fn schema_doc(id: &str) -> Value {
    json!({
        "lexicon": 1,
        "id": id,
        "defs": {
            "main": {
                "type": "record",
                "key": "tid",
                "record": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string", "maxLength": 100}}
                }
            }
        }
    })
}

/// Publishes `doc` as the account's `com.atproto.lexicon.schema` record with key `rkey`;
/// returns the createRecord answer (`uri`, `cid`).
async fn publish(
    client: &reqwest::Client,
    server: &Server,
    who: &Account,
    rkey: &str,
    doc: &Value,
) -> Value {
    let mut record = doc.clone();
    record["$type"] = json!("com.atproto.lexicon.schema");
    post(
        client,
        &server.xrpc("com.atproto.repo.createRecord"),
        Some(&who.access),
        &json!({
            "repo": who.did,
            "collection": "com.atproto.lexicon.schema",
            "rkey": rkey,
            "record": record,
        }),
    )
    .await
    .ok("publish schema")
}

async fn resolve_lexicon(client: &reqwest::Client, server: &Server, nsid: &str) -> Reply {
    get(
        client,
        &server.xrpc("com.atproto.lexicon.resolveLexicon"),
        &[("nsid", nsid)],
    )
    .await
}

/// Replaces the account's `#atproto` signing key in its PLC document with an unrelated key,
/// signed with the server's rotation key, without telling the server.
async fn rotate_signing_key_behind_the_servers_back(server: &Server, did: &str) {
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(server.data_dir.join("secrets.json")).unwrap())
            .unwrap();
    let hex = secrets["plcRotationKeyK256PrivateKeyHex"].as_str().unwrap();
    let rotation = Keypair::from_private_hex(Curve::K256, hex).unwrap();
    let client = PlcClient::new(
        &format!("http://127.0.0.1:{}", server.plc_port),
        &Limits::default(),
    )
    .expect("PLC client");
    let did: Did = did.parse().unwrap();
    let last = client.last_operation(&did).await.unwrap();
    let data = PlcData::from_op(&did, &last.op).unwrap();
    let mut op = PlcOp::update_of(&data, &last.cid());
    let stranger = Keypair::generate(Curve::K256);
    op.verification_methods
        .insert("atproto".to_owned(), stranger.public_key().did_key());
    let signed = UnsignedOp::Operation(op).sign(&rotation).unwrap();
    client.submit(&did, &signed).await.unwrap();
}

// ---- the tests ----

#[tokio::test]
async fn lexicons_resolve_through_dns_and_verified_record_proofs() {
    let dns = DnsResponder::start();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("PDS_DNS_NAMESERVERS", &dns.env_value())]).await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;

    let nsid = "com.example.lexres.fooBar";
    let doc = schema_doc(nsid);
    let published = publish(&client, &server, &alice, nsid, &doc).await;
    // A record whose key is one NSID and whose id is another.
    publish(&client, &server, &alice, "com.example.lexres.wrongId", &doc).await;
    // A record that is not a valid Lexicon document.
    let broken = json!({"lexicon": 1, "id": "com.example.lexres.broken", "defs": {"main": {"type": "nonsense"}}});
    publish(
        &client,
        &server,
        &alice,
        "com.example.lexres.broken",
        &broken,
    )
    .await;
    dns.add_txt("_lexicon.lexres.example.com", "v=spf1 -all");
    dns.add_txt("_lexicon.lexres.example.com", &format!("did={}", alice.did));

    // Resolved: the record's CID, AT-URI and value.
    let r = resolve_lexicon(&client, &server, nsid).await;
    let body = r.ok("resolveLexicon");
    assert_eq!(body["cid"], published["cid"], "{body}");
    assert_eq!(body["uri"], published["uri"], "{body}");
    assert_eq!(
        body["uri"],
        format!("at://{}/com.atproto.lexicon.schema/{nsid}", alice.did)
    );
    let mut expected = doc.clone();
    expected["$type"] = json!("com.atproto.lexicon.schema");
    assert_eq!(body["schema"], expected);
    assert!(
        dns.queried()
            .contains(&"_lexicon.lexres.example.com".to_owned()),
        "the server asked our responder: {:?}",
        dns.queried()
    );

    // No TXT record for the authority.
    let r = resolve_lexicon(&client, &server, "com.example.nodns.thing").await;
    assert_error(&r, 400, "LexiconNotFound", "no _lexicon record");
    assert!(
        dns.queried()
            .contains(&"_lexicon.nodns.example.com".to_owned())
    );
    // The resolution does not walk up the hierarchy: `_lexicon.sub.lexres.example.com` is absent.
    let r = resolve_lexicon(&client, &server, "com.example.lexres.sub.thing").await;
    assert_error(
        &r,
        400,
        "LexiconNotFound",
        "no record for the sub-authority",
    );
    // The authority's repository has no such record.
    let r = resolve_lexicon(&client, &server, "com.example.lexres.missing").await;
    assert_error(&r, 400, "LexiconNotFound", "no schema record");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("not found in proof"),
        "{}",
        r.body
    );
    // The record's id is not the NSID.
    let r = resolve_lexicon(&client, &server, "com.example.lexres.wrongId").await;
    assert_error(&r, 400, "LexiconNotFound", "id mismatch");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{}",
        r.body
    );
    // Not a Lexicon document.
    let r = resolve_lexicon(&client, &server, "com.example.lexres.broken").await;
    assert_error(&r, 400, "LexiconNotFound", "invalid document");
    // Two `did=` records: no authority.
    dns.add_txt("_lexicon.twice.example.com", &format!("did={}", alice.did));
    dns.add_txt("_lexicon.twice.example.com", &format!("did={}", bob.did));
    publish(
        &client,
        &server,
        &alice,
        "com.example.twice.thing",
        &schema_doc("com.example.twice.thing"),
    )
    .await;
    let r = resolve_lexicon(&client, &server, "com.example.twice.thing").await;
    assert_error(&r, 400, "LexiconNotFound", "ambiguous authority");
    // Not an NSID.
    let r = resolve_lexicon(&client, &server, "not-an-nsid").await;
    assert_error(&r, 400, "InvalidRequest", "bad nsid");
    let r = get(
        &client,
        &server.xrpc("com.atproto.lexicon.resolveLexicon"),
        &[],
    )
    .await;
    assert_error(&r, 400, "InvalidRequest", "no nsid");

    // Tampered: bob's DID document now names a signing key that did not sign his commits.
    let bob_nsid = "com.example.bobres.thing";
    publish(&client, &server, &bob, bob_nsid, &schema_doc(bob_nsid)).await;
    dns.add_txt("_lexicon.bobres.example.com", &format!("did={}", bob.did));
    rotate_signing_key_behind_the_servers_back(&server, &bob.did).await;
    let r = resolve_lexicon(&client, &server, bob_nsid).await;
    assert_error(&r, 400, "LexiconNotFound", "commit signed by another key");
    assert!(
        r.body["message"].as_str().unwrap().contains("signature"),
        "{}",
        r.body
    );

    // Answers are cached: the first NSID resolves again without a new DNS query.
    let before = dns.queried().len();
    let again = resolve_lexicon(&client, &server, nsid)
        .await
        .ok("cached resolveLexicon");
    assert_eq!(again, body);
    assert_eq!(dns.queried().len(), before);
}

#[tokio::test]
async fn handles_resolve_through_the_configured_name_servers() {
    let primary = DnsResponder::start();
    let backup = DnsResponder::start();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            ("PDS_DNS_NAMESERVERS", &primary.env_value()),
            ("PDS_HANDLE_BACKUP_NAMESERVERS", &backup.env_value()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let alice = create_account(&client, &server, "alice").await;
    let bob = create_account(&client, &server, "bob").await;
    primary.add_txt("_atproto.dave.example.org", &format!("did={}", alice.did));
    backup.add_txt("_atproto.dave.example.org", &format!("did={}", bob.did));
    backup.add_txt("_atproto.erin.example.org", &format!("did={}", bob.did));

    let resolve = |handle: &'static str| {
        let client = client.clone();
        let url = server.xrpc("com.atproto.identity.resolveHandle");
        async move { get(&client, &url, &[("handle", handle)]).await }
    };
    // A handle outside our domains, answered by the primary name server.
    let r = resolve("Dave.Example.org").await.ok("resolveHandle by DNS");
    assert_eq!(r["did"], alice.did.as_str());
    assert!(
        primary
            .queried()
            .contains(&"_atproto.dave.example.org".to_owned()),
        "{:?}",
        primary.queried()
    );
    assert!(
        !backup
            .queried()
            .contains(&"_atproto.dave.example.org".to_owned()),
        "the backup is not asked when the primary answered"
    );
    // Only the backup knows erin (the primary and the HTTPS well-known file found nothing).
    let r = resolve("erin.example.org")
        .await
        .ok("resolveHandle by backup DNS");
    assert_eq!(r["did"], bob.did.as_str());
    assert!(
        primary
            .queried()
            .contains(&"_atproto.erin.example.org".to_owned())
    );
    // Nobody knows frank.
    let r = resolve("frank.example.org").await;
    assert_error(&r, 400, "HandleNotFound", "unknown handle");
}
