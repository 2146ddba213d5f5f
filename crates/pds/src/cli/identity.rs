//! `pds identity resolve <handle|did>`: resolve an identity the way the PDS does and say what is
//! wrong with it, if anything.
//!
//! Prints the DID, the handle and whether it verifies both ways (or why not), the PDS endpoint,
//! the signing key and the DID document; `--json` prints one object with the same fields plus
//! `error: {kind, message}`.
//!
//! Exit codes: 0 resolved (and the handle, if any, verified), 1 invalid DID document (or a
//! declared signing key / PDS endpoint that is unusable), 2 usage, 3 not found (the DID or the
//! handle does not resolve), 4 handle mismatch (not verified in both directions), 5 network
//! failure. A `--plc-url` given here is trusted, loopback included.

use std::process::ExitCode;

use anyhow::Context;
use atp_identity::handle::{HandleError, ResolveError, Resolver, verify_bidirectional};
use atp_identity::resolve::{DEFAULT_PLC_URL, IdentityResolver, ResolverConfig};
use atp_identity::{DidDocError, DidDocument};
use atp_syntax::{AtIdentifier, Did, Handle};
use clap::Subcommand;
use serde_json::{Value, json};

/// Arguments of `pds identity`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: IdentityCommand,
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Resolve a handle or DID: document, verified handle, PDS endpoint, signing key.
    Resolve(ResolveArgs),
}

#[derive(Debug, clap::Args)]
struct ResolveArgs {
    /// A handle (alice.example.com) or a DID (did:plc:…, did:web:…).
    identifier: String,
    /// PLC directory to resolve did:plc with (trusted: http and loopback allowed).
    #[arg(long, default_value = DEFAULT_PLC_URL)]
    plc_url: String,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
    /// Local testing only: allow private and loopback addresses, plain http, and ports in did:web.
    #[arg(long)]
    allow_private_addresses: bool,
}

/// The failure kinds, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InvalidDocument,
    NotFound,
    HandleMismatch,
    Network,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::InvalidDocument => 1,
            Kind::NotFound => 3,
            Kind::HandleMismatch => 4,
            Kind::Network => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::InvalidDocument => "invalid_document",
            Kind::NotFound => "not_found",
            Kind::HandleMismatch => "handle_mismatch",
            Kind::Network => "network",
        }
    }
}

/// Everything found out about the identity; `failure` is the first problem met.
#[derive(Debug, Default)]
struct Report {
    did: Option<Did>,
    handle: Option<String>,
    handle_verified: bool,
    handle_problem: Option<String>,
    doc: Option<DidDocument>,
    failure: Option<(Kind, String)>,
}

impl Report {
    fn fail(&mut self, kind: Kind, message: String) {
        if self.failure.is_none() {
            self.failure = Some((kind, message));
        }
    }
}

/// Runs `pds identity`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        IdentityCommand::Resolve(args) => resolve(args),
    }
}

fn resolve(args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let input: AtIdentifier = args
        .identifier
        .parse()
        .with_context(|| format!("{:?} is neither a handle nor a DID", args.identifier))?;
    let config = ResolverConfig {
        allow_private_addresses: args.allow_private_addresses,
        ..ResolverConfig::with_plc_url(args.plc_url)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut report = runtime.block_on(async {
        let resolver = IdentityResolver::new(config).context("setting up the resolver")?;
        anyhow::Ok(match &input {
            AtIdentifier::Handle(handle) => from_handle(&resolver, handle).await,
            AtIdentifier::Did(did) => from_did(&resolver, did).await,
        })
    })?;
    let pds: Option<Extracted> = report
        .doc
        .as_ref()
        .map(|doc| doc.pds_endpoint().map(str::to_owned));
    let key: Option<Extracted> = report
        .doc
        .as_ref()
        .map(|doc| doc.signing_key().map(|k| k.did_key()));
    // An unusable document outranks a handle problem found with it.
    let unusable = [&pds, &key]
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_ref().err())
        .find(|e| is_unusable(e));
    if let Some(problem) = unusable {
        report.failure = Some((Kind::InvalidDocument, problem.to_string()));
    }
    if args.json {
        print_json(&input, &report, pds.as_ref(), key.as_ref());
    } else {
        print_text(&report, pds.as_ref(), key.as_ref());
    }
    Ok(match &report.failure {
        Some((kind, _)) => ExitCode::from(kind.code()),
        None => ExitCode::SUCCESS,
    })
}

/// A declared but unusable key or endpoint (absent ones are only reported).
fn is_unusable(e: &DidDocError) -> bool {
    !matches!(
        e,
        DidDocError::KeyNotDeclared { .. } | DidDocError::ServiceNotDeclared { .. }
    )
}

fn classify(e: &ResolveError) -> Kind {
    match e {
        ResolveError::DidNotFound { .. }
        | ResolveError::HandleNotFound { .. }
        | ResolveError::UnsupportedMethod { .. }
        | ResolveError::UnsupportedDid { .. } => Kind::NotFound,
        ResolveError::Document(_) => Kind::InvalidDocument,
        ResolveError::Handle(HandleError::NotClaimed { .. } | HandleError::Document(_)) => {
            Kind::HandleMismatch
        }
        ResolveError::Handle(_) => Kind::NotFound,
        _ => Kind::Network,
    }
}

fn handle_failure(handle: &Handle, e: &ResolveError) -> String {
    match e {
        ResolveError::HandleNotFound { .. } => format!(
            "handle {handle} does not resolve (no _atproto TXT record, no /.well-known/atproto-did)"
        ),
        other => format!("handle {handle} does not resolve: {other}"),
    }
}

async fn from_handle(resolver: &IdentityResolver, handle: &Handle) -> Report {
    let mut report = Report {
        handle: Some(handle.as_str().to_owned()),
        ..Report::default()
    };
    let did = match resolver.resolve_handle(handle).await {
        Ok(did) => did,
        Err(e) => {
            let message = handle_failure(handle, &e);
            report.handle_problem = Some(message.clone());
            report.fail(classify(&e), message);
            return report;
        }
    };
    report.did = Some(did.clone());
    match resolver.resolve_did(&did).await {
        Ok(doc) => {
            match verify_bidirectional(handle, &did, &doc) {
                Ok(()) => report.handle_verified = true,
                Err(e) => {
                    report.handle_problem = Some(e.to_string());
                    report.fail(Kind::HandleMismatch, format!("handle not verified: {e}"));
                }
            }
            report.doc = Some(doc);
        }
        Err(e) => report.fail(classify(&e), format!("{did}: {e}")),
    }
    report
}

async fn from_did(resolver: &IdentityResolver, did: &Did) -> Report {
    let mut report = Report {
        did: Some(did.clone()),
        ..Report::default()
    };
    let doc = match resolver.resolve_did(did).await {
        Ok(doc) => doc,
        Err(e) => {
            report.fail(classify(&e), format!("{did}: {e}"));
            return report;
        }
    };
    let problem = match doc.handle() {
        Err(DidDocError::HandleNotDeclared) => None,
        Err(e) => Some((Kind::HandleMismatch, e.to_string())),
        Ok(handle) => {
            report.handle = Some(handle.as_str().to_owned());
            match resolver.resolve_handle(&handle).await {
                Ok(found) if &found == did => {
                    report.handle_verified = true;
                    None
                }
                Ok(found) => Some((
                    Kind::HandleMismatch,
                    format!("handle {handle} resolves to {found}, not {did}"),
                )),
                Err(e) => {
                    let kind = match classify(&e) {
                        Kind::Network => Kind::Network,
                        _ => Kind::HandleMismatch,
                    };
                    Some((kind, handle_failure(&handle, &e)))
                }
            }
        }
    };
    if let Some((kind, message)) = problem {
        report.handle_problem = Some(message.clone());
        report.fail(kind, message);
    }
    report.doc = Some(doc);
    report
}

type Extracted = Result<String, DidDocError>;

fn shown(value: Option<&Extracted>) -> String {
    match value {
        Some(Ok(v)) => v.clone(),
        Some(Err(e)) => format!("(none: {e})"),
        None => "(unknown)".to_owned(),
    }
}

fn print_text(report: &Report, pds: Option<&Extracted>, key: Option<&Extracted>) {
    if let Some((kind, message)) = &report.failure {
        eprintln!("{}: {message}", kind.name().replace('_', " "));
    }
    let did = report.did.as_ref().map_or("(unknown)", Did::as_str);
    println!("did: {did}");
    let handle = match (
        &report.handle,
        report.handle_verified,
        &report.handle_problem,
    ) {
        (None, _, _) => "(none declared)".to_owned(),
        (Some(h), true, _) => format!("{h} (verified)"),
        (Some(h), false, Some(why)) => format!("{h} (NOT verified: {why})"),
        (Some(h), false, None) => format!("{h} (NOT verified)"),
    };
    println!("handle: {handle}");
    println!("pds: {}", shown(pds));
    println!("signing key: {}", shown(key));
    if let Some(doc) = &report.doc {
        let pretty = serde_json::to_string_pretty(&doc.to_json()).unwrap_or_default();
        println!("document:\n{pretty}");
    }
}

fn print_json(
    input: &AtIdentifier,
    report: &Report,
    pds: Option<&Extracted>,
    key: Option<&Extracted>,
) {
    let ok = |v: Option<&Extracted>| {
        v.and_then(|r| r.as_ref().ok())
            .map_or(Value::Null, |s| json!(s))
    };
    let err = |v: Option<&Extracted>| {
        v.and_then(|r| r.as_ref().err())
            .map_or(Value::Null, |e| json!(e.to_string()))
    };
    let object = json!({
        "input": input.as_str(),
        "did": report.did.as_ref().map(Did::as_str),
        "handle": report.handle,
        "handleVerified": report.handle_verified,
        "handleProblem": report.handle_problem,
        "pdsEndpoint": ok(pds),
        "pdsProblem": err(pds),
        "signingKey": ok(key),
        "signingKeyProblem": err(key),
        "didDocument": report.doc.as_ref().map(DidDocument::to_json),
        "error": report.failure.as_ref().map(|(kind, message)| json!({
            "kind": kind.name(),
            "message": message,
        })),
    });
    println!("{object}");
}
