//! Lexicon resolution for `com.atproto.lexicon.resolveLexicon`, as the atproto specification's
//! "Lexicon Publication and Resolution" and the reference `@atproto/lexicon-resolver`:
//!
//! 1. the NSID's authority, reversed, under `_lexicon.` is looked up in DNS (TXT; exactly one
//!    `did=<DID>` record, no walking up or down the hierarchy);
//! 2. that DID's document gives the PDS endpoint and the signing key;
//! 3. the record `com.atproto.lexicon.schema/<nsid>` is fetched from that PDS with
//!    `com.atproto.sync.getRecord` (a CAR: the commit, the MST path, the record) through the
//!    identity resolver's SSRF-guarded client;
//! 4. the proof is verified: one root, a commit of that DID signed by its key, the record
//!    proven under the commit's tree; the record must be a `com.atproto.lexicon.schema`, a valid
//!    Lexicon document (`atp-lexicon`), and its `id` must be the NSID.
//!
//! Every failure is `LexiconNotFound` with a message naming the step. Answers are cached per
//! NSID ([`LexiconCache`]: 5 minutes, failures 30 seconds), so a caller cannot make this server
//! repeat the lookups in a loop. A commit whose signature fails with a cached DID document is
//! checked once more against a fresh document (the key may have been rotated).
//!
//! Nothing is special about accounts hosted here: their records are fetched over HTTP as any
//! other, so what is verified is what the network sees.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atp_crypto::PublicKey;
use atp_data::Cid;
use atp_data::car::CarReader;
use atp_repo::{BlockMap, SignedCommit, verify_record_proof};
use atp_syntax::{Did, Nsid};
use serde_json::Value as Json;

use crate::service::resolution;
use crate::state::AppState;

/// The collection Lexicon schemas are published in.
pub const SCHEMA_COLLECTION: &str = "com.atproto.lexicon.schema";
/// Largest record proof accepted: the reference's 1 MiB + 10 KiB (just above the largest record).
pub const MAX_PROOF_BYTES: usize = (1024 + 10) * 1024;
/// How long a resolved Lexicon is served from the cache.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a failure is served from the cache.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);
/// Most NSIDs cached at once (expired entries go first, then everything).
const MAX_CACHED: usize = 1024;

/// A resolved Lexicon: the lexicon's output.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLexicon {
    /// `at://<did>/com.atproto.lexicon.schema/<nsid>`.
    pub uri: String,
    /// The record's CID.
    pub cid: Cid,
    /// The record, in atproto JSON.
    pub schema: Json,
}

impl ResolvedLexicon {
    /// The lexicon's JSON output.
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "cid": self.cid.to_string(),
            "schema": self.schema,
            "uri": self.uri,
        })
    }
}

/// Why a Lexicon could not be resolved (all are `LexiconNotFound`); the text says which step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LexiconNotFound(pub String);

/// One resolution's outcome.
type Answer = Result<ResolvedLexicon, LexiconNotFound>;

/// Answers per NSID, with their expiry.
#[derive(Debug, Default)]
pub struct LexiconCache {
    entries: Mutex<HashMap<String, (Instant, Answer)>>,
}

impl LexiconCache {
    fn get(&self, nsid: &str, now: Instant) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(nsid)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, answer)| answer.clone())
    }

    fn put(&self, nsid: &str, answer: Answer, now: Instant) {
        let ttl = if answer.is_ok() {
            CACHE_TTL
        } else {
            FAILURE_TTL
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_CACHED {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
        }
        entries.insert(nsid.to_owned(), (now + ttl, answer));
    }
}

/// Resolves `nsid` (from the cache when fresh).
pub async fn resolve_lexicon(
    state: &AppState,
    nsid: &Nsid,
) -> Result<ResolvedLexicon, LexiconNotFound> {
    let cache = state.lexicon_cache();
    if let Some(answer) = cache.get(nsid.as_str(), Instant::now()) {
        return answer;
    }
    let answer = resolve_uncached(state, nsid).await;
    if let Err(e) = &answer {
        tracing::debug!(nsid = %nsid, error = %e, "Lexicon resolution failed");
    }
    cache.put(nsid.as_str(), answer.clone(), Instant::now());
    answer
}

fn not_found(nsid: &Nsid, what: impl std::fmt::Display) -> LexiconNotFound {
    LexiconNotFound(format!("{what} ({nsid})"))
}

async fn resolve_uncached(
    state: &AppState,
    nsid: &Nsid,
) -> Result<ResolvedLexicon, LexiconNotFound> {
    let resolver = state
        .resolver()
        .ok_or_else(|| not_found(nsid, "Lexicon resolution is not available"))?;
    let did = match resolver.resolve_lexicon_authority(nsid).await {
        Ok(Some(did)) => did,
        Ok(None) => {
            return Err(not_found(
                nsid,
                "Could not resolve a DID authority for NSID",
            ));
        }
        Err(e) => {
            return Err(not_found(
                nsid,
                format_args!("Could not resolve a DID authority for NSID: {e}"),
            ));
        }
    };
    let (endpoint, key) = pds_and_key(state, nsid, &did, false).await?;
    let car = fetch_proof(state, nsid, &did, &endpoint).await?;
    match verify_proof(nsid, &did, &key, &car) {
        Err(Failure::Signature(first)) => {
            // The cached document may hold a rotated-out key: check once against a fresh one.
            let (fresh_endpoint, fresh_key) = pds_and_key(state, nsid, &did, true).await?;
            if same_key(&fresh_key, &key) {
                return Err(first);
            }
            let car = if fresh_endpoint == endpoint {
                car
            } else {
                fetch_proof(state, nsid, &did, &fresh_endpoint).await?
            };
            verify_proof(nsid, &did, &fresh_key, &car).map_err(Failure::into_inner)
        }
        other => other.map_err(Failure::into_inner),
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.curve() == b.curve() && a.to_compressed() == b.to_compressed()
}

/// The PDS endpoint and signing key of `did`'s document (a handle is not required).
async fn pds_and_key(
    state: &AppState,
    nsid: &Nsid,
    did: &Did,
    fresh: bool,
) -> Result<(String, PublicKey), LexiconNotFound> {
    let context = "Could not resolve Lexicon schema record: could not resolve DID identity data";
    let doc = resolution::resolve_did(state, did, fresh)
        .await
        .map_err(|e| not_found(nsid, format_args!("{context}: {e}")))?;
    let endpoint = doc
        .pds_endpoint()
        .map_err(|e| not_found(nsid, format_args!("{context}: {e}")))?
        .to_owned();
    let key = doc
        .signing_key()
        .map_err(|e| not_found(nsid, format_args!("{context}: {e}")))?;
    Ok((endpoint, key))
}

/// `com.atproto.sync.getRecord` of the schema record at `endpoint`.
async fn fetch_proof(
    state: &AppState,
    nsid: &Nsid,
    did: &Did,
    endpoint: &str,
) -> Result<Vec<u8>, LexiconNotFound> {
    let context = "Could not resolve Lexicon schema record: could not fetch record proof";
    let mut url = reqwest::Url::parse(endpoint)
        .map_err(|e| not_found(nsid, format_args!("{context}: bad PDS endpoint: {e}")))?;
    url.set_path("/xrpc/com.atproto.sync.getRecord");
    url.set_fragment(None);
    url.query_pairs_mut()
        .clear()
        .append_pair("did", did.as_str())
        .append_pair("collection", SCHEMA_COLLECTION)
        .append_pair("rkey", nsid.as_str());
    let resolver = state
        .resolver()
        .ok_or_else(|| not_found(nsid, "Lexicon resolution is not available"))?;
    resolver
        .get_untrusted(url.as_str(), MAX_PROOF_BYTES)
        .await
        .map_err(|e| not_found(nsid, format_args!("{context}: {e}")))
}

/// A verification failure; a bad signature is told apart (it is retried with a fresh key).
enum Failure {
    Signature(LexiconNotFound),
    Other(LexiconNotFound),
}

impl Failure {
    fn into_inner(self) -> LexiconNotFound {
        match self {
            Failure::Signature(e) | Failure::Other(e) => e,
        }
    }
}

/// Checks the record proof in `car` for `did`'s record `com.atproto.lexicon.schema/<nsid>`,
/// signed with `key`, and the record itself.
fn verify_proof(
    nsid: &Nsid,
    did: &Did,
    key: &PublicKey,
    car: &[u8],
) -> Result<ResolvedLexicon, Failure> {
    let fail = |what: String| Failure::Other(not_found(nsid, what));
    let record_error = |what: &str| {
        Failure::Other(not_found(
            nsid,
            format_args!("Could not resolve Lexicon schema record: {what}"),
        ))
    };
    let malformed =
        |e: &dyn std::fmt::Display| record_error(&format!("malformed record proof: {e}"));
    let mut reader = CarReader::new(car).map_err(|e| malformed(&e))?;
    let root = match reader.roots() {
        [root] => *root,
        roots => {
            return Err(malformed(&format_args!(
                "expected one root, found {}",
                roots.len()
            )));
        }
    };
    let mut blocks = BlockMap::new();
    while let Some((cid, bytes)) = reader.next_block().map_err(|e| malformed(&e))? {
        blocks.insert(cid, bytes);
    }
    let commit_bytes = blocks
        .get(&root)
        .ok_or_else(|| malformed(&"the root block is missing"))?;
    let commit = SignedCommit::from_cbor(commit_bytes)
        .map_err(|e| record_error(&format!("invalid commit in record proof: {e}")))?;
    if commit.did() != did {
        return Err(record_error(&format!("invalid repo did: {}", commit.did())));
    }
    if commit.verify(key).is_err() {
        return Err(Failure::Signature(not_found(
            nsid,
            format_args!(
                "Could not resolve Lexicon schema record: invalid signature on commit: {root}"
            ),
        )));
    }
    let path = format!("{SCHEMA_COLLECTION}/{nsid}");
    let cid = verify_record_proof(commit.data(), &path, &blocks)
        .map_err(|e| malformed(&e))?
        .ok_or_else(|| record_error("record not found in proof"))?;
    let bytes = blocks
        .get(&cid)
        .ok_or_else(|| record_error("record block missing from proof"))?;
    let record = atp_data::cbor::from_slice(bytes)
        .map_err(|e| record_error(&format!("invalid record: {e}")))?;
    if record.get("$type").and_then(|t| t.as_str()) != Some(SCHEMA_COLLECTION) {
        return Err(fail("Invalid Lexicon schema record".to_owned()));
    }
    let schema = atp_data::json::to_json(&record);
    if let Err(e) = atp_lexicon::Catalog::new().add(&schema) {
        return Err(fail(format!("Invalid Lexicon document: {e}")));
    }
    let id = schema.get("id").and_then(Json::as_str).unwrap_or_default();
    if id != nsid.as_str() {
        return Err(fail(format!(
            "Lexicon schema record id ({id}) does not match NSID"
        )));
    }
    Ok(ResolvedLexicon {
        uri: format!("at://{did}/{path}"),
        cid,
        schema,
    })
}
