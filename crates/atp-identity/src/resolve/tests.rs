//! Network tests against tiny local HTTP servers on 127.0.0.1, with stubbed DNS: no test touches
//! a real host or real DNS.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atp_crypto::{Curve, Keypair};
use atp_syntax::{Did, Handle, Nsid};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use reqwest::Url;

use super::fetch::Fetcher;
use super::*;
use crate::handle::{HandleError, ResolveError, Resolver, resolve_verified};
use crate::plc::{LogEntry, PlcData, PlcOp, SignedOp, UnsignedOp};

// ---- a canned-response HTTP/1.1 server ----

#[derive(Clone)]
enum Reply {
    /// Status, content type, body.
    Body(u16, &'static str, Vec<u8>),
    /// `n` bytes, no Content-Length (the body ends when the connection closes).
    Unsized(usize),
    /// Waits before answering `{}`.
    Slow(Duration),
    /// 302 to this location.
    Redirect(String),
}

fn json(status: u16, value: &serde_json::Value) -> Reply {
    Reply::Body(status, "application/json", value.to_string().into_bytes())
}

/// (path, body) of each POST received.
type Posts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

#[derive(Clone)]
struct Stub {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    posts: Posts,
}

impl Stub {
    async fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = Stub {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            routes: Arc::default(),
            posts: Arc::default(),
        };
        let server = stub.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                server.connections.fetch_add(1, Ordering::SeqCst);
                let server = server.clone();
                tokio::spawn(async move { server.serve(conn).await });
            }
        });
        stub
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn hits(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn set(&self, route: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(route.to_owned(), reply);
    }

    async fn serve(&self, mut conn: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let route = format!("{method} {path}");
        if method == "POST" {
            let body = buf[head_end..head_end + length].to_vec();
            self.posts.lock().unwrap().push((path.to_owned(), body));
        }
        let reply = self.routes.lock().unwrap().get(&route).cloned();
        let reply = reply.unwrap_or_else(|| json(404, &serde_json::json!({"message": "no route"})));
        let _ = respond(&mut conn, reply).await;
    }
}

async fn respond(conn: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    let (status, ctype, body) = match reply {
        Reply::Body(status, ctype, body) => (status, ctype, body),
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            (200, "application/json", b"{}".to_vec())
        }
        Reply::Redirect(location) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return conn.write_all(head.as_bytes()).await;
        }
        Reply::Unsized(n) => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            conn.write_all(head.as_bytes()).await?;
            let piece = vec![b' '; 8192];
            let mut left = n;
            while left > 0 {
                let take = left.min(piece.len());
                conn.write_all(&piece[..take]).await?;
                left -= take;
            }
            return conn.shutdown().await;
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&body).await?;
    conn.shutdown().await
}

// ---- identities ----

fn key(seed: u8) -> Keypair {
    Keypair::from_private_bytes(Curve::K256, &[seed; 32]).unwrap()
}

struct Identity {
    did: Did,
    log: Vec<LogEntry>,
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::seconds(secs)
}

/// A genesis operation (rotation key seed 1, signing key seed 2) and one update of the handle.
fn identity(handle: &str, updated_handle: &str) -> Identity {
    let rotation = key(1);
    let op = PlcOp::atproto(
        &key(2).public_key(),
        &handle.parse().unwrap(),
        "https://pds.example.com",
        vec![rotation.did_key()],
        None,
    );
    let genesis = UnsignedOp::Operation(op).sign(&rotation).unwrap();
    let did = genesis.did().unwrap();
    let mut update = PlcOp::update_of(
        &PlcData::from_op(&did, &genesis.op).unwrap(),
        &genesis.cid(),
    );
    update.set_handle(&updated_handle.parse().unwrap());
    let update = UnsignedOp::Operation(update).sign(&rotation).unwrap();
    let entry = |op: SignedOp, at| LogEntry {
        did: did.clone(),
        cid: op.cid(),
        operation: op,
        nullified: false,
        created_at: at,
    };
    let log = vec![entry(genesis, t(0)), entry(update, t(60))];
    Identity { did, log }
}

impl Identity {
    fn data(&self) -> PlcData {
        let last = &self.log.last().unwrap().operation.op;
        PlcData::from_op(&self.did, last).unwrap()
    }

    fn doc_json(&self) -> serde_json::Value {
        self.data().to_did_document().to_json()
    }

    /// Serves this identity from `stub` as a PLC directory would.
    fn serve_plc(&self, stub: &Stub) {
        let did = &self.did;
        stub.set(&format!("GET /{did}"), json(200, &self.doc_json()));
        stub.set(
            &format!("GET /{did}/data"),
            json(200, &serde_json::to_value(self.data()).unwrap()),
        );
        stub.set(
            &format!("GET /{did}/log/audit"),
            json(200, &serde_json::to_value(&self.log).unwrap()),
        );
        let last = &self.log.last().unwrap().operation;
        stub.set(&format!("GET /{did}/log/last"), json(200, &last.to_json()));
    }
}

fn dev_config(stub: &Stub) -> ResolverConfig {
    ResolverConfig {
        plc_url: stub.url(),
        allow_private_addresses: true,
        dev_http_port: Some(stub.port()),
        cache: CachePolicy::disabled(),
        ..ResolverConfig::default()
    }
}

fn resolver(config: ResolverConfig, dns: StaticDns) -> IdentityResolver {
    let dns = Arc::new(dns);
    IdentityResolver::builder(config)
        .txt_lookup(Arc::clone(&dns) as Arc<dyn TxtLookup>)
        .addr_lookup(dns)
        .build()
        .unwrap()
}

fn localhost() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

// ---- PLC client ----

#[tokio::test]
async fn plc_client_reads_a_directory() {
    let stub = Stub::start().await;
    let id = identity("alice.test", "alice2.test");
    id.serve_plc(&stub);
    let plc = PlcClient::new(&format!("{}/", stub.url()), &Limits::default()).unwrap();

    let doc = plc.did_document(&id.did).await.unwrap();
    assert_eq!(doc.handle().unwrap().as_str(), "alice2.test");
    assert_eq!(plc.data(&id.did).await.unwrap(), id.data());
    assert_eq!(
        plc.last_operation(&id.did).await.unwrap(),
        id.log[1].operation
    );
    let (entries, audited) = plc.audited_log(&id.did).await.unwrap();
    assert_eq!(entries, id.log);
    assert_eq!(audited.head, id.log[1].cid);

    let unknown: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    assert!(matches!(
        plc.did_document(&unknown).await,
        Err(PlcError::NotFound { .. })
    ));
    stub.set(
        &format!("GET /{unknown}"),
        json(
            404,
            &serde_json::json!({"message": format!("DID not available: {unknown}")}),
        ),
    );
    assert!(matches!(
        plc.did_document(&unknown).await,
        Err(PlcError::Tombstoned { .. })
    ));
    stub.set(
        &format!("GET /{unknown}/data"),
        json(410, &serde_json::json!({})),
    );
    assert!(matches!(
        plc.data(&unknown).await,
        Err(PlcError::Tombstoned { .. })
    ));
    // A document for another DID is refused.
    stub.set(&format!("GET /{unknown}"), json(200, &id.doc_json()));
    assert!(matches!(
        plc.did_document(&unknown).await,
        Err(PlcError::InvalidDocument(_))
    ));
}

#[tokio::test]
async fn plc_client_audit_failures_name_the_entry() {
    let stub = Stub::start().await;
    let id = identity("alice.test", "alice2.test");
    let plc = PlcClient::new(&stub.url(), &Limits::default()).unwrap();
    let route = format!("GET /{}/log/audit", id.did);

    let mut tampered = serde_json::to_value(&id.log).unwrap();
    tampered[1]["createdAt"] = serde_json::json!("2000-01-01T00:00:00.000Z");
    stub.set(&route, json(200, &tampered));
    match plc.audited_log(&id.did).await {
        Err(PlcError::Audit(e)) => assert_eq!(e.index, 1, "{e}"),
        other => panic!("expected an audit failure, got {other:?}"),
    }

    let mut malformed = serde_json::to_value(&id.log).unwrap();
    malformed[1]["operation"]["type"] = serde_json::json!("plc_bogus");
    stub.set(&route, json(200, &malformed));
    assert!(matches!(
        plc.audit_log(&id.did).await,
        Err(PlcError::InvalidEntry { index: 1, .. })
    ));
}

#[tokio::test]
async fn plc_client_submits_and_surfaces_refusals() {
    let stub = Stub::start().await;
    let id = identity("alice.test", "alice2.test");
    let plc = PlcClient::new(&stub.url(), &Limits::default()).unwrap();
    let route = format!("POST /{}", id.did);
    let op = &id.log[0].operation;

    stub.set(&route, Reply::Body(200, "text/plain", b"OK".to_vec()));
    plc.submit(&id.did, op).await.unwrap();
    let (path, body) = stub.posts.lock().unwrap().pop().unwrap();
    assert_eq!(path, format!("/{}", id.did));
    let sent: SignedOp = serde_json::from_slice(&body).unwrap();
    assert_eq!(&sent, op);

    stub.set(
        &route,
        json(
            400,
            &serde_json::json!({"message": "Invalid signature on op"}),
        ),
    );
    assert_eq!(
        plc.submit(&id.did, op).await,
        Err(PlcError::Rejected {
            status: 400,
            message: "Invalid signature on op".to_owned()
        })
    );
    stub.set(&route, json(500, &serde_json::json!({"message": "boom"})));
    assert!(matches!(
        plc.submit(&id.did, op).await,
        Err(PlcError::Fetch(FetchError::Status { status: 500, .. }))
    ));
}

// ---- resolution ----

#[tokio::test]
async fn resolves_did_plc_through_the_directory() {
    let stub = Stub::start().await;
    let id = identity("alice.test", "alice.test");
    id.serve_plc(&stub);
    let r = resolver(dev_config(&stub), StaticDns::new());
    let doc = r.resolve_did(&id.did).await.unwrap();
    assert_eq!(doc.id, id.did);
    assert_eq!(doc.pds_endpoint().unwrap(), "https://pds.example.com");
    assert_eq!(doc.signing_key().unwrap(), key(2).public_key());
    let unknown: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
    assert!(matches!(
        r.resolve_did(&unknown).await,
        Err(ResolveError::DidNotFound { .. })
    ));
    let other: Did = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
        .parse()
        .unwrap();
    assert!(matches!(
        r.resolve_did(&other).await,
        Err(ResolveError::UnsupportedMethod { .. })
    ));
}

#[tokio::test]
async fn resolves_did_web_in_dev_mode() {
    let stub = Stub::start().await;
    let did: Did = format!("did:web:localhost%3A{}", stub.port())
        .parse()
        .unwrap();
    let doc = serde_json::json!({"id": did, "alsoKnownAs": ["at://web.test"]});
    stub.set("GET /.well-known/did.json", json(200, &doc));
    let dns = StaticDns::new().with_addr("localhost", localhost());
    let r = resolver(dev_config(&stub), dns.clone());
    assert_eq!(r.resolve_did(&did).await.unwrap().id, did);

    // Outside dev mode the port is refused before anything is fetched.
    let hits = stub.hits();
    let prod = resolver(ResolverConfig::with_plc_url(stub.url()), dns);
    assert!(matches!(
        prod.resolve_did(&did).await,
        Err(ResolveError::UnsupportedDid { .. })
    ));
    assert_eq!(stub.hits(), hits);

    // A document for another DID is refused.
    let wrong = serde_json::json!({"id": "did:web:example.com"});
    stub.set("GET /.well-known/did.json", json(200, &wrong));
    assert!(matches!(
        r.resolve_did(&did).await,
        Err(ResolveError::Document(
            crate::DidDocError::DidMismatch { .. }
        ))
    ));
}

#[tokio::test]
async fn resolves_handles_by_dns_txt_and_checks_both_ways() {
    let stub = Stub::start().await;
    let id = identity("alice.test", "alice.test");
    id.serve_plc(&stub);
    let dns = StaticDns::new()
        .with_txt("_atproto.alice.test", "v=spf1 -all")
        .with_txt("_atproto.alice.test", &format!("did={}", id.did))
        .with_txt("_atproto.mallory.test", &format!("did={}", id.did));
    let r = resolver(dev_config(&stub), dns);
    let alice: Handle = "Alice.Test".parse().unwrap();
    let (did, doc) = resolve_verified(&r, &alice).await.unwrap();
    assert_eq!(did, id.did);
    assert_eq!(doc.id, id.did);
    // No HTTP request for the handle: DNS answered (only the PLC document was fetched).
    assert_eq!(stub.hits(), 1);

    // mallory.test points at alice's DID, whose document does not claim it back.
    let mallory: Handle = "mallory.test".parse().unwrap();
    assert!(matches!(
        resolve_verified(&r, &mallory).await,
        Err(ResolveError::Handle(HandleError::NotClaimed { .. }))
    ));
}

#[tokio::test]
async fn resolves_handles_by_well_known() {
    let stub = Stub::start().await;
    let id = identity("bob.test", "bob.test");
    id.serve_plc(&stub);
    stub.set(
        "GET /.well-known/atproto-did",
        Reply::Body(200, "text/plain", format!("{}\n", id.did).into_bytes()),
    );
    let dns = StaticDns::new()
        .with_addr("bob.test", localhost())
        .with_addr("carol.test", localhost());
    let r = resolver(dev_config(&stub), dns);
    let bob: Handle = "bob.test".parse().unwrap();
    assert_eq!(resolve_verified(&r, &bob).await.unwrap().0, id.did);
    // carol.test serves bob's DID too (same stub), but bob's document does not claim carol.
    let carol: Handle = "carol.test".parse().unwrap();
    assert!(matches!(
        resolve_verified(&r, &carol).await,
        Err(ResolveError::Handle(HandleError::NotClaimed { .. }))
    ));
    // No TXT record, no host: not found.
    let nobody: Handle = "nobody.test".parse().unwrap();
    assert!(matches!(
        r.resolve_handle(&nobody).await,
        Err(ResolveError::HandleNotFound { .. })
    ));
    // A well-known body that is not a DID.
    stub.set(
        "GET /.well-known/atproto-did",
        Reply::Body(200, "text/html", b"<html>hello</html>".to_vec()),
    );
    assert!(matches!(
        r.resolve_handle(&bob).await,
        Err(ResolveError::Handle(HandleError::InvalidDid { .. }))
    ));
    // 404 means not found.
    stub.set(
        "GET /.well-known/atproto-did",
        json(404, &serde_json::json!({})),
    );
    assert!(matches!(
        r.resolve_handle(&bob).await,
        Err(ResolveError::HandleNotFound { .. })
    ));
}

#[tokio::test]
async fn reserved_tlds_are_never_resolved() {
    let stub = Stub::start().await;
    let dns = StaticDns::new()
        .with_txt(
            "_atproto.laptop.local",
            "did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .with_txt("_atproto.x.invalid", "did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
    let prod = resolver(ResolverConfig::with_plc_url(stub.url()), dns.clone());
    for h in ["laptop.local", "x.invalid"] {
        assert!(matches!(
            prod.resolve_handle(&h.parse().unwrap()).await,
            Err(ResolveError::HandleNotFound { .. })
        ));
    }
    let dev = resolver(dev_config(&stub), dns);
    assert!(
        dev.resolve_handle(&"laptop.local".parse().unwrap())
            .await
            .is_ok()
    );
    assert!(
        dev.resolve_handle(&"x.invalid".parse().unwrap())
            .await
            .is_err()
    );
    assert_eq!(stub.hits(), 0);
}

// ---- limits ----

#[tokio::test]
async fn oversized_responses_are_refused() {
    let stub = Stub::start().await;
    let limits = Limits::default();
    let fetcher = Fetcher::trusted(&limits, USER_AGENT).unwrap();
    let big = vec![b' '; limits.max_document_bytes + 1];
    stub.set("GET /declared", Reply::Body(200, "application/json", big));
    stub.set(
        "GET /streamed",
        Reply::Unsized(10 * limits.max_document_bytes),
    );
    stub.set("GET /fits", Reply::Unsized(limits.max_document_bytes));
    for path in ["declared", "streamed"] {
        let url = Url::parse(&format!("{}/{path}", stub.url())).unwrap();
        assert!(
            matches!(
                fetcher.get(&url, limits.max_document_bytes).await,
                Err(FetchError::TooLarge { .. })
            ),
            "{path}"
        );
    }
    let url = Url::parse(&format!("{}/fits", stub.url())).unwrap();
    assert_eq!(
        fetcher
            .get(&url, limits.max_document_bytes)
            .await
            .unwrap()
            .len(),
        limits.max_document_bytes
    );

    // Through the resolver: a huge DID document is unavailable, not parsed.
    let id = identity("alice.test", "alice.test");
    stub.set(&format!("GET /{}", id.did), Reply::Unsized(1 << 20));
    let r = resolver(dev_config(&stub), StaticDns::new());
    match r.resolve_did(&id.did).await {
        Err(ResolveError::Unavailable { reason }) => {
            assert!(reason.contains("exceeds"), "{reason}")
        }
        other => panic!("expected a size refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_servers_time_out() {
    let stub = Stub::start().await;
    stub.set("GET /slow", Reply::Slow(Duration::from_secs(5)));
    let limits = Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let fetcher = Fetcher::trusted(&limits, USER_AGENT).unwrap();
    let url = Url::parse(&format!("{}/slow", stub.url())).unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        fetcher.get(&url, 1024).await,
        Err(FetchError::Timeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---- SSRF ----

fn guarded(dns: StaticDns) -> Fetcher {
    Fetcher::guarded(&Limits::default(), USER_AGENT, Arc::new(dns), false).unwrap()
}

#[tokio::test]
async fn literal_private_addresses_are_refused_without_connecting() {
    let stub = Stub::start().await;
    let fetcher = guarded(StaticDns::new());
    let port = stub.port();
    for host in [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ] {
        let url = Url::parse(&format!("https://{host}:{port}/x")).unwrap();
        assert!(
            matches!(
                fetcher.get(&url, 1024).await,
                Err(FetchError::ForbiddenAddress { .. })
            ),
            "{host}"
        );
    }
    // Plain http is refused outside dev mode, even to a public address.
    let url = Url::parse("http://8.8.8.8/x").unwrap();
    assert!(matches!(
        fetcher.get(&url, 1024).await,
        Err(FetchError::InsecureScheme { .. })
    ));
    // And through the resolver, for did:web.
    let r = resolver(ResolverConfig::with_plc_url(stub.url()), StaticDns::new());
    for did in [
        "did:web:127.0.0.1",
        "did:web:10.0.0.1",
        "did:web:169.254.169.254",
    ] {
        match r.resolve_did(&did.parse().unwrap()).await {
            Err(ResolveError::Unavailable { reason }) => {
                assert!(reason.contains("not a public address"), "{did}: {reason}")
            }
            other => panic!("{did}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn names_resolving_to_private_addresses_are_refused_without_connecting() {
    let stub = Stub::start().await;
    let public: IpAddr = "8.8.8.8".parse().unwrap();
    let mut dns = StaticDns::new().with_addr("mixed.test", public);
    for (i, ip) in [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "169.254.169.254",
        "100.64.0.1",
        "fd00::1",
    ]
    .iter()
    .enumerate()
    {
        dns = dns.with_addr(&format!("evil{i}.test"), ip.parse().unwrap());
    }
    dns = dns.with_addr("mixed.test", localhost());
    let fetcher = guarded(dns.clone());
    for host in (0..6)
        .map(|i| format!("evil{i}.test"))
        .chain(["mixed.test".to_owned()])
    {
        let url = Url::parse(&format!("https://{host}:{}/x", stub.port())).unwrap();
        match fetcher.get(&url, 1024).await {
            Err(FetchError::ForbiddenAddress { host: h, .. }) => assert_eq!(h, host),
            other => panic!("{host}: expected a refusal, got {other:?}"),
        }
    }
    let url = Url::parse("https://missing.test/x").unwrap();
    assert!(matches!(
        fetcher.get(&url, 1024).await,
        Err(FetchError::NoAddresses { .. })
    ));
    // A handle whose well-known host resolves to loopback is not resolved in production.
    let r = resolver(ResolverConfig::with_plc_url(stub.url()), dns);
    assert!(matches!(
        r.resolve_handle(&"evil0.test".parse().unwrap()).await,
        Err(ResolveError::Unavailable { .. })
    ));
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn redirects_are_followed_only_within_policy() {
    let stub = Stub::start().await;
    let dns = StaticDns::new().with_addr("a.test", localhost());
    let dev = Fetcher::guarded(&Limits::default(), USER_AGENT, Arc::new(dns), true).unwrap();
    let base = stub.url();
    stub.set("GET /hop", Reply::Redirect(format!("{base}/target")));
    stub.set(
        "GET /target",
        Reply::Body(200, "text/plain", b"ok".to_vec()),
    );
    stub.set("GET /loop", Reply::Redirect(format!("{base}/loop")));
    stub.set("GET /ftp", Reply::Redirect("ftp://a.test/x".to_owned()));
    let get = |path: &str| {
        let url = Url::parse(&format!("{base}/{path}")).unwrap();
        let dev = dev.clone();
        async move { dev.get(&url, 1024).await }
    };
    assert_eq!(get("hop").await.unwrap(), b"ok");
    assert!(matches!(
        get("loop").await,
        Err(FetchError::TooManyRedirects { .. })
    ));
    assert!(matches!(
        get("ftp").await,
        Err(FetchError::InsecureScheme { .. })
    ));
}

// ---- cache ----

#[tokio::test]
async fn cache_serves_fresh_then_stale_while_refreshing() {
    let stub = Stub::start().await;
    let old = identity("alice.test", "alice.test");
    old.serve_plc(&stub);
    let clock = Arc::new(ManualClock::new());
    let config = ResolverConfig {
        cache: CachePolicy::default(),
        ..dev_config(&stub)
    };
    let dns = Arc::new(StaticDns::new());
    let r = IdentityResolver::builder(config)
        .txt_lookup(Arc::clone(&dns) as Arc<dyn TxtLookup>)
        .addr_lookup(dns)
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build()
        .unwrap();
    let handle_of = |doc: &crate::DidDocument| doc.handle().unwrap().as_str().to_owned();

    assert_eq!(
        handle_of(&r.resolve_did(&old.did).await.unwrap()),
        "alice.test"
    );
    assert_eq!(stub.hits(), 1);
    clock.advance(Duration::from_secs(59 * 60));
    r.resolve_did(&old.did).await.unwrap();
    assert_eq!(stub.hits(), 1, "fresh: served from the cache");

    // The directory now serves a new handle. Stale: the old answer comes back at once.
    let doc = serde_json::json!({"id": old.did, "alsoKnownAs": ["at://new.test"]});
    stub.set(&format!("GET /{}", old.did), json(200, &doc));
    clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(
        handle_of(&r.resolve_did(&old.did).await.unwrap()),
        "alice.test"
    );
    let mut refreshed = String::new();
    for _ in 0..200 {
        refreshed = handle_of(&r.resolve_did(&old.did).await.unwrap());
        if refreshed == "new.test" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refreshed, "new.test", "the background refresh landed");
    assert_eq!(stub.hits(), 2, "exactly one refresh");

    // The directory fails: the stale entry keeps being served.
    stub.set(
        &format!("GET /{}", old.did),
        json(500, &serde_json::json!({})),
    );
    clock.advance(Duration::from_secs(2 * 3600));
    for _ in 0..5 {
        assert_eq!(
            handle_of(&r.resolve_did(&old.did).await.unwrap()),
            "new.test"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the stale limit the entry is gone and the failure shows.
    clock.advance(Duration::from_secs(24 * 3600));
    assert!(matches!(
        r.resolve_did(&old.did).await,
        Err(ResolveError::Unavailable { .. })
    ));
}

// ---- backup name servers, Lexicon authorities, untrusted GETs ----

fn with_backup(config: ResolverConfig, primary: StaticDns, backup: StaticDns) -> IdentityResolver {
    let primary = Arc::new(primary);
    IdentityResolver::builder(config)
        .txt_lookup(Arc::clone(&primary) as Arc<dyn TxtLookup>)
        .addr_lookup(primary)
        .backup_txt_lookup(Arc::new(backup))
        .build()
        .unwrap()
}

#[tokio::test]
async fn backup_name_servers_are_asked_after_dns_and_https() {
    let stub = Stub::start().await;
    let (a, b, c) = (
        "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
        "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb",
        "did:plc:cccccccccccccccccccccccc",
    );
    stub.set(
        "GET /.well-known/atproto-did",
        Reply::Body(200, "text/plain", c.as_bytes().to_vec()),
    );
    let primary = StaticDns::new()
        .with_txt("_atproto.first.test", &format!("did={a}"))
        .with_addr("third.test", localhost());
    let backup = StaticDns::new()
        .with_txt("_atproto.first.test", &format!("did={b}"))
        .with_txt("_atproto.second.test", &format!("did={b}"))
        .with_txt("_atproto.third.test", &format!("did={b}"))
        .with_txt("_atproto.fourth.test", "did=not-a-did");
    let r = with_backup(dev_config(&stub), primary, backup);
    let resolve = |h: &'static str| {
        let r = r.clone();
        async move { r.resolve_handle(&h.parse().unwrap()).await }
    };
    // The primary answer wins; the backup fills in only when DNS and HTTPS found nothing.
    assert_eq!(resolve("first.test").await.unwrap().as_str(), a);
    assert_eq!(resolve("second.test").await.unwrap().as_str(), b);
    assert_eq!(resolve("third.test").await.unwrap().as_str(), c);
    // A useless backup answer leaves the outcome as it was.
    assert!(matches!(
        resolve("fourth.test").await,
        Err(ResolveError::HandleNotFound { .. })
    ));
}

#[tokio::test]
async fn lexicon_authorities_come_from_exact_dns_names() {
    let stub = Stub::start().await;
    let did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    let dns = StaticDns::new()
        .with_txt("_lexicon.example.com", "v=spf1 -all")
        .with_txt("_lexicon.example.com", &format!("did={did}"))
        .with_txt("_lexicon.two.example.org", &format!("did={did}"))
        .with_txt("_lexicon.two.example.org", &format!("did={did}"))
        .with_txt("_lexicon.bad.example.org", "did=did:nope")
        .with_txt("_lexicon.example.org", &format!("did={did}"));
    let r = resolver(dev_config(&stub), dns);
    let authority = |nsid: &'static str| {
        let r = r.clone();
        async move {
            r.resolve_lexicon_authority(&nsid.parse().unwrap())
                .await
                .unwrap()
        }
    };
    let nsid: Nsid = "com.example.fooBar".parse().unwrap();
    assert_eq!(lexicon_dns_name(&nsid), "_lexicon.example.com");
    assert_eq!(
        lexicon_dns_name(&"App.Bsky.Feed.post".parse().unwrap()),
        "_lexicon.feed.bsky.app"
    );
    assert_eq!(
        authority("com.example.fooBar").await.map(String::from),
        Some(did.to_owned())
    );
    // Two `did=` records, or an invalid DID: no authority.
    assert_eq!(authority("org.example.two.thing").await, None);
    assert_eq!(authority("org.example.bad.thing").await, None);
    // No walking up the hierarchy: `_lexicon.sub.example.org` has no record of its own.
    assert_eq!(authority("org.example.sub.thing").await, None);
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn untrusted_gets_keep_the_ssrf_guard() {
    let stub = Stub::start().await;
    stub.set("GET /x", json(200, &serde_json::json!({"ok": true})));
    let url = format!("{}/x", stub.url());
    let prod = resolver(ResolverConfig::with_plc_url(stub.url()), StaticDns::new());
    assert!(matches!(
        prod.get_untrusted(&url, 1024).await,
        Err(FetchError::InsecureScheme { .. } | FetchError::ForbiddenAddress { .. })
    ));
    let https = format!("https://{}/x", stub.addr);
    assert!(matches!(
        prod.get_untrusted(&https, 1024).await,
        Err(FetchError::ForbiddenAddress { .. })
    ));
    assert!(matches!(
        prod.get_untrusted("not a url", 1024).await,
        Err(FetchError::InvalidUrl { .. })
    ));
    assert_eq!(stub.hits(), 0);
    let dev = resolver(dev_config(&stub), StaticDns::new());
    assert_eq!(
        dev.get_untrusted(&url, 1024).await.unwrap(),
        b"{\"ok\":true}"
    );
    assert!(matches!(
        dev.get_untrusted(&url, 4).await,
        Err(FetchError::TooLarge { .. })
    ));
}

#[test]
fn name_server_lists_must_not_be_empty() {
    assert!(HickoryDns::with_nameservers(&[]).is_err());
}
