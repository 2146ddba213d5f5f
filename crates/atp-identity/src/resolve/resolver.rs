//! [`IdentityResolver`]: the network implementation of [`Resolver`], with caching.

use std::sync::Arc;

use atp_syntax::{Did, Handle, Nsid};
use reqwest::Url;

use super::ResolverConfig;
use super::cache::{Clock, SwrCache, SystemClock};
use super::dns::{AddrLookup, DnsError, HickoryDns, TxtLookup};
use super::fetch::{FetchError, Fetcher};
use super::plc_client::{PlcClient, PlcError};
use super::web::{did_web_url, handle_tld_is_reserved, handle_url};
use crate::did_doc::DidDocument;
use crate::handle::{
    HandleError, ResolveError, Resolver, dns_txt_name, parse_dns_txt, parse_well_known,
};

/// Why an [`IdentityResolver`] could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The system DNS configuration could not be read.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The PLC directory URL is unusable, or the HTTP client could not be built.
    #[error(transparent)]
    Plc(#[from] PlcError),
    /// The HTTP client for untrusted fetches could not be built.
    #[error(transparent)]
    Http(#[from] FetchError),
}

/// Resolves DIDs (`did:plc`, `did:web`) and handles over the network, with caching and the SSRF
/// guard. Cheap to clone (shared state).
///
/// `resolve_handle` answers are *not* bidirectionally verified; use
/// [`crate::handle::resolve_verified`].
#[derive(Clone)]
pub struct IdentityResolver {
    inner: Arc<Inner>,
}

struct Inner {
    config: ResolverConfig,
    plc: PlcClient,
    web: Fetcher,
    txt: Arc<dyn TxtLookup>,
    backup_txt: Option<Arc<dyn TxtLookup>>,
    dids: Arc<SwrCache<Did, DidDocument>>,
    handles: Arc<SwrCache<String, Did>>,
}

impl std::fmt::Debug for IdentityResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityResolver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Builds an [`IdentityResolver`], with injectable DNS and clock.
pub struct IdentityResolverBuilder {
    config: ResolverConfig,
    txt: Option<Arc<dyn TxtLookup>>,
    backup_txt: Option<Arc<dyn TxtLookup>>,
    addrs: Option<Arc<dyn AddrLookup>>,
    clock: Arc<dyn Clock>,
}

impl IdentityResolverBuilder {
    /// TXT lookups through `txt` instead of the system resolver.
    pub fn txt_lookup(mut self, txt: Arc<dyn TxtLookup>) -> IdentityResolverBuilder {
        self.txt = Some(txt);
        self
    }

    /// Handle TXT lookups tried last, when neither `txt` nor the HTTPS well-known file gave a
    /// DID (the reference PDS's `PDS_HANDLE_BACKUP_NAMESERVERS`).
    pub fn backup_txt_lookup(mut self, txt: Arc<dyn TxtLookup>) -> IdentityResolverBuilder {
        self.backup_txt = Some(txt);
        self
    }

    /// Address lookups (for did:web and well-known fetches) through `addrs`.
    pub fn addr_lookup(mut self, addrs: Arc<dyn AddrLookup>) -> IdentityResolverBuilder {
        self.addrs = Some(addrs);
        self
    }

    /// The cache's clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> IdentityResolverBuilder {
        self.clock = clock;
        self
    }

    /// Builds the resolver; DNS not injected comes from the system configuration (hickory).
    pub fn build(self) -> Result<IdentityResolver, BuildError> {
        let config = self.config;
        let (txt, addrs) = match (self.txt, self.addrs) {
            (Some(txt), Some(addrs)) => (txt, addrs),
            (txt, addrs) => {
                let system = Arc::new(HickoryDns::from_system()?);
                (
                    txt.unwrap_or_else(|| Arc::clone(&system) as Arc<dyn TxtLookup>),
                    addrs.unwrap_or(system as Arc<dyn AddrLookup>),
                )
            }
        };
        let plc = PlcClient::with_user_agent(&config.plc_url, &config.limits, &config.user_agent)?;
        let web = Fetcher::guarded(
            &config.limits,
            &config.user_agent,
            addrs,
            config.allow_private_addresses,
        )?;
        let dids = Arc::new(SwrCache::new(config.cache, Arc::clone(&self.clock)));
        let handles = Arc::new(SwrCache::new(config.cache, self.clock));
        Ok(IdentityResolver {
            inner: Arc::new(Inner {
                config,
                plc,
                web,
                txt,
                backup_txt: self.backup_txt,
                dids,
                handles,
            }),
        })
    }
}

impl IdentityResolver {
    /// A builder for `config` (system DNS, real clock unless injected).
    pub fn builder(config: ResolverConfig) -> IdentityResolverBuilder {
        IdentityResolverBuilder {
            config,
            txt: None,
            backup_txt: None,
            addrs: None,
            clock: Arc::new(SystemClock::default()),
        }
    }

    /// A resolver with the system DNS and the real clock.
    pub fn new(config: ResolverConfig) -> Result<IdentityResolver, BuildError> {
        IdentityResolver::builder(config).build()
    }

    /// The configuration.
    pub fn config(&self) -> &ResolverConfig {
        &self.inner.config
    }

    /// The PLC directory client.
    pub fn plc(&self) -> &PlcClient {
        &self.inner.plc
    }

    /// Fetches the document of `did` bypassing the cache, and caches it (e.g. after a signature
    /// failed with the cached key).
    pub async fn refresh_did(&self, did: &Did) -> Result<DidDocument, ResolveError> {
        let result = Arc::clone(&self.inner).fetch_did(did.clone()).await;
        match &result {
            Ok(doc) => self.inner.dids.insert(did.clone(), doc.clone()),
            Err(_) => self.inner.dids.remove(did),
        }
        result
    }

    /// Forgets what is cached about `did`.
    pub fn invalidate_did(&self, did: &Did) {
        self.inner.dids.remove(did);
    }

    /// Forgets what is cached about `handle`.
    pub fn invalidate_handle(&self, handle: &Handle) {
        self.inner.handles.remove(&handle_key(handle));
    }

    /// The DID a Lexicon's authority names: the TXT records of `_lexicon.<authority>` (not
    /// cached here), of which exactly one must be `did=<valid DID>`; `None` otherwise, as the
    /// reference. The lookup never walks up or down the DNS hierarchy.
    pub async fn resolve_lexicon_authority(&self, nsid: &Nsid) -> Result<Option<Did>, DnsError> {
        let records = self.inner.txt.txt(&lexicon_dns_name(nsid)).await?;
        Ok(parse_dns_txt(&records).ok())
    }

    /// GETs a URL taken from a DID document or a handle through the SSRF-guarded client (https
    /// and public addresses only unless [`ResolverConfig::allow_private_addresses`], redirects
    /// checked, timeouts), returning at most `limit` bytes of a 2xx body.
    pub async fn get_untrusted(&self, url: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        self.inner.web.get(&parsed, limit).await
    }
}

/// The DNS name holding a Lexicon's authority: `_lexicon.` and the NSID's authority in DNS order
/// (`app.bsky.feed.post` gives `_lexicon.feed.bsky.app`).
pub fn lexicon_dns_name(nsid: &Nsid) -> String {
    format!("_lexicon.{}", nsid.authority())
}

fn handle_key(handle: &Handle) -> String {
    handle.as_str().to_ascii_lowercase()
}

impl Resolver for IdentityResolver {
    async fn resolve_did(&self, did: &Did) -> Result<DidDocument, ResolveError> {
        let inner = Arc::clone(&self.inner);
        let key = did.clone();
        self.inner
            .dids
            .get_or_fetch(did.clone(), move || inner.fetch_did(key))
            .await
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Did, ResolveError> {
        let inner = Arc::clone(&self.inner);
        let key = handle.clone();
        self.inner
            .handles
            .get_or_fetch(handle_key(handle), move || inner.fetch_handle(key))
            .await
    }
}

/// What one handle-resolution method found.
enum Found {
    /// Nothing there (no record, 404, no such host).
    Nothing,
    /// An answer, but not a usable one.
    Invalid(HandleError),
    /// The lookup itself failed.
    Failed(String),
}

impl Inner {
    async fn fetch_did(self: Arc<Self>, did: Did) -> Result<DidDocument, ResolveError> {
        let doc = match did.method() {
            "plc" => self
                .plc
                .did_document(&did)
                .await
                .map_err(|e| plc_error(&did, e))?,
            "web" => self.fetch_did_web(&did).await?,
            other => {
                return Err(ResolveError::UnsupportedMethod {
                    method: other.to_owned(),
                });
            }
        };
        doc.ensure_id(&did)?;
        Ok(doc)
    }

    async fn fetch_did_web(&self, did: &Did) -> Result<DidDocument, ResolveError> {
        let url = did_web_url(did, &self.config).map_err(|e| ResolveError::UnsupportedDid {
            did: did.clone(),
            reason: e.to_string(),
        })?;
        let body = self
            .web
            .get(&url, self.config.limits.max_document_bytes)
            .await
            .map_err(|e| match e {
                FetchError::Status {
                    status: 404 | 410, ..
                }
                | FetchError::NoAddresses { .. } => ResolveError::DidNotFound { did: did.clone() },
                other => unavailable(&other),
            })?;
        Ok(DidDocument::parse(&body)?)
    }

    async fn fetch_handle(self: Arc<Self>, handle: Handle) -> Result<Did, ResolveError> {
        let dev = self.config.allow_private_addresses;
        let lower = handle.as_str().to_ascii_lowercase();
        if (!dev && handle_tld_is_reserved(&handle)) || lower.ends_with(".invalid") {
            return Err(ResolveError::HandleNotFound { handle });
        }
        let dns = match self.txt.txt(&dns_txt_name(&handle)).await {
            Ok(records) => match parse_dns_txt(&records) {
                Ok(did) => return Ok(did),
                Err(HandleError::NoDidRecord) => Found::Nothing,
                Err(e) => Found::Invalid(e),
            },
            Err(e) => Found::Failed(e.to_string()),
        };
        let http = match self.fetch_well_known(&handle).await {
            Ok(did) => return Ok(did),
            Err(found) => found,
        };
        // As the reference: the backup name servers only when both methods gave no DID, and
        // whatever goes wrong there leaves the outcome above unchanged.
        if let Some(backup) = &self.backup_txt
            && let Ok(records) = backup.txt(&dns_txt_name(&handle)).await
            && let Ok(did) = parse_dns_txt(&records)
        {
            return Ok(did);
        }
        Err(match (dns, http) {
            (Found::Invalid(e), _) | (_, Found::Invalid(e)) => ResolveError::Handle(e),
            (Found::Failed(dns), Found::Failed(http)) => ResolveError::Unavailable {
                reason: format!("DNS: {dns}; HTTPS: {http}"),
            },
            (Found::Failed(reason), Found::Nothing) | (Found::Nothing, Found::Failed(reason)) => {
                ResolveError::Unavailable { reason }
            }
            (Found::Nothing, Found::Nothing) => ResolveError::HandleNotFound { handle },
        })
    }

    async fn fetch_well_known(&self, handle: &Handle) -> Result<Did, Found> {
        let url = handle_url(handle, &self.config).map_err(|e| Found::Failed(e.to_string()))?;
        let limit = self.config.limits.max_handle_body_bytes;
        let body = match self.web.get(&url, limit).await {
            Ok(body) => body,
            Err(FetchError::Status { status, .. }) if (400..500).contains(&status) => {
                return Err(Found::Nothing);
            }
            // No such host, or a catch-all page far larger than a DID: nothing there.
            Err(FetchError::NoAddresses { .. } | FetchError::TooLarge { .. }) => {
                return Err(Found::Nothing);
            }
            Err(e) => return Err(Found::Failed(e.to_string())),
        };
        // Invalid UTF-8 becomes U+FFFD, which no DID contains: refused as an invalid DID.
        parse_well_known(&String::from_utf8_lossy(&body)).map_err(Found::Invalid)
    }
}

fn unavailable(e: &FetchError) -> ResolveError {
    ResolveError::Unavailable {
        reason: e.to_string(),
    }
}

fn plc_error(did: &Did, e: PlcError) -> ResolveError {
    match e {
        PlcError::NotFound { .. } | PlcError::Tombstoned { .. } => {
            ResolveError::DidNotFound { did: did.clone() }
        }
        PlcError::InvalidDocument(e) => ResolveError::Document(e),
        other => ResolveError::Unavailable {
            reason: other.to_string(),
        },
    }
}
