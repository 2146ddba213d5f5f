//! The DID side of a migration: reading the DID document and the PLC data from the account's
//! directory, and comparing them with what the new host recommends.

use anyhow::{Context, bail};
use atp_crypto::PublicKey;
use atp_identity::DidDocument;
use serde_json::Value;

/// Where a DID's document lives.
pub(crate) struct Directory {
    http: reqwest::Client,
    plc_url: String,
}

/// The part of the DID document a migration changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// `#atproto_pds` endpoint.
    pub endpoint: String,
    /// `#atproto` signing key as a `did:key`.
    pub signing_key: String,
}

impl Directory {
    pub(crate) fn new(http: reqwest::Client, plc_url: &str) -> Directory {
        Directory {
            http,
            plc_url: plc_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The PLC directory's URL.
    pub(crate) fn plc_url(&self) -> &str {
        &self.plc_url
    }

    /// The DID document: from the PLC directory for `did:plc`, from `/.well-known/did.json`
    /// for `did:web`.
    pub(crate) async fn document(&self, did: &str) -> anyhow::Result<DidDocument> {
        let url = if did.starts_with("did:plc:") {
            format!("{}/{did}", self.plc_url)
        } else if let Some(host) = did.strip_prefix("did:web:") {
            if host.contains(':') {
                bail!("did:web with a path is not supported: {did}");
            }
            format!("https://{}/.well-known/did.json", host.replace("%3A", ":"))
        } else {
            bail!("unsupported DID method: {did}");
        };
        let res = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("fetching the DID document {url}"))?;
        if !res.status().is_success() {
            bail!("fetching the DID document {url}: HTTP {}", res.status());
        }
        let bytes = res.bytes().await.context("reading the DID document")?;
        let doc = DidDocument::parse(&bytes).context("parsing the DID document")?;
        if doc.id.as_str() != did {
            bail!("the DID document at {url} is for {}, not {did}", doc.id);
        }
        Ok(doc)
    }

    /// What the DID document says now: PDS endpoint and signing key.
    pub(crate) async fn pointer(&self, did: &str) -> anyhow::Result<Pointer> {
        let doc = self.document(did).await?;
        Ok(Pointer {
            endpoint: doc
                .pds_endpoint()
                .context("the DID document names no PDS")?
                .trim_end_matches('/')
                .to_owned(),
            signing_key: doc
                .signing_key()
                .context("the DID document has no #atproto key")?
                .did_key(),
        })
    }
}

/// What `getRecommendedDidCredentials` says the document should point at.
pub(crate) fn recommended_pointer(creds: &Value) -> anyhow::Result<Pointer> {
    let endpoint = creds
        .pointer("/services/atproto_pds/endpoint")
        .and_then(Value::as_str)
        .context("getRecommendedDidCredentials gave no services.atproto_pds.endpoint")?;
    let key = creds
        .pointer("/verificationMethods/atproto")
        .and_then(Value::as_str)
        .context("getRecommendedDidCredentials gave no verificationMethods.atproto")?;
    // Normalise the key's spelling through the parser.
    let key = PublicKey::from_did_key(key)
        .map(|k| k.did_key())
        .unwrap_or_else(|_| key.to_owned());
    Ok(Pointer {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        signing_key: key,
    })
}
