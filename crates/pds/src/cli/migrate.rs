//! `pds migrate`: moves an account between two PDS hosts (ours or others) with the official
//! flow, resumably, and verifies the result.
//!
//! Steps (each recorded in the state file when done, so a run killed at any point continues
//! where it stopped): log in to the old host; `create-account` on the new host with the existing
//! DID (a service-auth token from the old host, `aud` the new host's service DID, `lxm`
//! createAccount), or log in there when resuming; `import-repo` (`sync.getRepo` streamed into
//! `repo.importRepo`); `blobs` (those `listMissingBlobs` names, `sync.getBlob` streamed into
//! `uploadBlob`, `--blob-concurrency` at once); `preferences`; `snapshot` (the source account as it
//! is just before the handover: re-imports if it changed since the export); the PLC handover
//! (`plc-request`: the old host mails a token; `plc-sign` with the new host's recommended
//! credentials; `plc-submit` through the new host); `activate` the new account;
//! `deactivate-old`; then `verify`: the DID document names the new host and its key, the record
//! set and MST data CID equal the source's, no blob is missing and the blob set is equal, the
//! preferences are equal, the old account is deactivated.
//!
//! Secrets may come from the environment instead of flags (so they are not in the process
//! list): `PDS_MIGRATE_PASSWORD`, `PDS_MIGRATE_NEW_PASSWORD`, `PDS_MIGRATE_INVITE_CODE`,
//! `PDS_MIGRATE_PLC_TOKEN`, `PDS_MIGRATE_AUTH_FACTOR_TOKEN`; `PDS_MIGRATE_PLC_TOKEN_CMD` and
//! `PDS_DID_PLC_URL` set `--plc-token-cmd` and `--plc-url`. Anything missing is asked for on the
//! terminal, or is a usage error without one.
//!
//! Exit codes: 0 migrated and every check passed; 1 a step failed or a check did not pass (the
//! message says what to do next; running the same command again continues); 2 usage errors.
//! Test hooks (not for users): `PDS_MIGRATE_TEST_STOP_AFTER=<step>` exits with 3 right after that
//! step is recorded (`blobs:<n>`: after n blobs moved in this run), and
//! `PDS_MIGRATE_TEST_BLOB_DELAY_MS` pauses before each blob.

mod host;
mod identity;
mod progress;
mod prompt;
mod state;
mod transfer;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use xrpc_client::XrpcError;
use zeroize::Zeroizing;

use host::{Host, is_expired};
use identity::{Directory, Pointer, recommended_pointer};
use progress::human_bytes;
use state::{MigrationState, StateFile};

/// A token mailed by `requestPlcOperationSignature` is valid this long at the reference; a
/// request older than this is made again before asking for the token.
const PLC_TOKEN_REUSE: Duration = Duration::from_secs(10 * 60);

/// Arguments of `pds migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The old host's URL (where the account is now), e.g. https://old-pds.example.com.
    #[arg(long)]
    from: Option<String>,
    /// The new host's URL.
    #[arg(long)]
    to: Option<String>,
    /// The account's handle (or DID) on the old host.
    #[arg(long)]
    handle: Option<String>,
    /// The account's password on the old host [env: PDS_MIGRATE_PASSWORD].
    #[arg(long, env = "PDS_MIGRATE_PASSWORD", hide_env = true)]
    password: Option<String>,
    /// The handle on the new host.
    #[arg(long)]
    new_handle: Option<String>,
    /// The email address of the account on the new host.
    #[arg(long)]
    email: Option<String>,
    /// The password on the new host (default: the old one) [env: PDS_MIGRATE_NEW_PASSWORD].
    #[arg(long, env = "PDS_MIGRATE_NEW_PASSWORD", hide_env = true)]
    new_password: Option<String>,
    /// An invite code for the new host, if it needs one [env: PDS_MIGRATE_INVITE_CODE].
    #[arg(long, env = "PDS_MIGRATE_INVITE_CODE", hide_env = true)]
    invite_code: Option<String>,
    /// The PLC token the old host mailed [env: PDS_MIGRATE_PLC_TOKEN].
    #[arg(long, env = "PDS_MIGRATE_PLC_TOKEN", hide_env = true)]
    plc_token: Option<String>,
    /// A shell command that prints the PLC token (run after the old host was asked to mail it;
    /// PDS_MIGRATE_DID and PDS_MIGRATE_HANDLE are set for it) [env: PDS_MIGRATE_PLC_TOKEN_CMD].
    #[arg(long, env = "PDS_MIGRATE_PLC_TOKEN_CMD", hide_env = true)]
    plc_token_cmd: Option<String>,
    /// The sign-in code the old host mails, if it asks for one [env: PDS_MIGRATE_AUTH_FACTOR_TOKEN].
    #[arg(long, env = "PDS_MIGRATE_AUTH_FACTOR_TOKEN", hide_env = true)]
    auth_factor_token: Option<String>,
    /// The PLC directory of the DID.
    #[arg(long, env = "PDS_DID_PLC_URL", default_value = "https://plc.directory")]
    plc_url: String,
    /// The state file (default: ./pds-migrate-<did>.json).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// How many blobs move at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    blob_concurrency: u16,
}

/// The steps, in order, as named in the state file's messages and the test hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    LoginOld,
    DescribeNew,
    CreateAccount,
    ImportRepo,
    Blobs,
    Preferences,
    Snapshot,
    PlcRequest,
    PlcSign,
    PlcSubmit,
    Activate,
    DeactivateOld,
    Verify,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::LoginOld => "login-old",
            Step::DescribeNew => "describe-new",
            Step::CreateAccount => "create-account",
            Step::ImportRepo => "import-repo",
            Step::Blobs => "blobs",
            Step::Preferences => "preferences",
            Step::Snapshot => "snapshot",
            Step::PlcRequest => "plc-request",
            Step::PlcSign => "plc-sign",
            Step::PlcSubmit => "plc-submit",
            Step::Activate => "activate",
            Step::DeactivateOld => "deactivate-old",
            Step::Verify => "verify",
        }
    }

    /// What to do after this step failed.
    fn advice(self) -> &'static str {
        match self {
            Step::LoginOld => {
                "check --from, --handle and --password (and --auth-factor-token if the old host \
                 mails a sign-in code), then run again"
            }
            Step::DescribeNew => "check --to: it must be the new PDS's base URL; then run again",
            Step::CreateAccount => {
                "check --new-handle (it must end in one of the new host's domains), --email and \
                 --invite-code; if the account was already created there with another password, \
                 pass that one as --new-password; then run again"
            }
            Step::ImportRepo => {
                "run the same command again: the import starts over and replaces the new host's \
                 copy; if the new host says the repository is too large, ask its operator to \
                 raise its import limit (PDS_MAX_REPO_IMPORT_SIZE on our server)"
            }
            Step::Blobs => {
                "run the same command again: only the blobs still missing on the new host are \
                 moved; a blob the old host no longer has cannot be moved (see the list above)"
            }
            Step::Preferences | Step::Snapshot => "run the same command again",
            Step::PlcRequest | Step::PlcSign => {
                "run the same command again; if the token was wrong or expired, run again without \
                 --plc-token (a new one is mailed, then asked for or read with --plc-token-cmd)"
            }
            Step::PlcSubmit => {
                "run the same command again (a refused operation is signed anew, with a new token); \
                 the DID document is at --plc-url/<did>"
            }
            Step::Activate => {
                "run the same command again; the new host activates the account only once the DID \
                 document names it and its key"
            }
            Step::DeactivateOld => {
                "run the same command again, or log in to the old host and deactivate the account \
                 there (the new account is active already)"
            }
            Step::Verify => "see the failed checks above; running again repeats the checks",
        }
    }
}

/// A failure of one step.
struct StepFailure {
    step: Step,
    error: anyhow::Error,
}

trait InStep<T> {
    fn in_step(self, step: Step) -> Result<T, StepFailure>;
}

impl<T, E: Into<anyhow::Error>> InStep<T> for Result<T, E> {
    fn in_step(self, step: Step) -> Result<T, StepFailure> {
        self.map_err(|e| StepFailure {
            step,
            error: e.into(),
        })
    }
}

/// Runs `pds migrate`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let inputs = match Inputs::gather(args) {
        Ok(inputs) => inputs,
        Err(e) if e.downcast_ref::<prompt::Missing>().is_some() => {
            eprintln!("error: {e}");
            eprintln!("run `pds migrate --help` for the options and environment variables");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let mut ctx = None;
    let result = runtime.block_on(migrate(&inputs, &mut ctx));
    match result {
        Ok(summary) => {
            summary.print(started.elapsed());
            Ok(if summary.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(failure) => {
            eprintln!();
            eprintln!("error in step {}: {:#}", failure.step.name(), failure.error);
            if let Some(e) = failure.error.downcast_ref::<XrpcError>()
                && e.status().is_none()
            {
                eprintln!("  (the host could not be reached or the connection broke)");
            }
            let missing_token = failure.step == Step::PlcSign
                && failure.error.downcast_ref::<prompt::Missing>().is_some();
            if missing_token {
                eprintln!(
                    "what to do next: the old host has mailed a PLC token to the account's email \
                     address; run the same command again within 15 minutes with --plc-token \
                     <token> (or PDS_MIGRATE_PLC_TOKEN), or with --plc-token-cmd"
                );
            } else {
                eprintln!("what to do next: {}", failure.step.advice());
            }
            if let Some(path) = ctx {
                eprintln!(
                    "progress is kept in {}: running the same command again continues from there",
                    path.display()
                );
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Everything the command was given or asked for.
struct Inputs {
    from: String,
    to: String,
    handle: String,
    password: Zeroizing<String>,
    new_handle: String,
    email: String,
    new_password: Zeroizing<String>,
    invite_code: Option<String>,
    plc_token: Option<Zeroizing<String>>,
    plc_token_cmd: Option<String>,
    auth_factor_token: Option<Zeroizing<String>>,
    plc_url: String,
    state_file: Option<PathBuf>,
    blob_concurrency: usize,
}

impl Inputs {
    fn gather(args: Args) -> anyhow::Result<Inputs> {
        let from = prompt::text(
            args.from,
            "Old host URL (e.g. https://old.example)",
            "--from",
        )?;
        let to = prompt::text(args.to, "New host URL", "--to")?;
        if from.trim_end_matches('/') == to.trim_end_matches('/') {
            return Err(prompt::Missing("--from and --to name the same host".to_owned()).into());
        }
        let handle = prompt::text(args.handle, "Handle (or DID) on the old host", "--handle")?;
        let password = prompt::secret(
            args.password,
            "Password on the old host",
            "--password (or PDS_MIGRATE_PASSWORD)",
        )?;
        let new_handle = prompt::text(args.new_handle, "Handle on the new host", "--new-handle")?;
        let email = prompt::text(args.email, "Email on the new host", "--email")?;
        let new_password = match args.new_password.filter(|p| !p.is_empty()) {
            Some(p) => Zeroizing::new(p),
            None => password.clone(),
        };
        Ok(Inputs {
            from: from.trim_end_matches('/').to_owned(),
            to: to.trim_end_matches('/').to_owned(),
            handle: handle.trim_start_matches('@').to_owned(),
            password,
            new_handle: new_handle.trim_start_matches('@').to_owned(),
            email,
            new_password,
            invite_code: args.invite_code.filter(|c| !c.trim().is_empty()),
            plc_token: args
                .plc_token
                .filter(|t| !t.trim().is_empty())
                .map(|t| Zeroizing::new(t.trim().to_owned())),
            plc_token_cmd: args.plc_token_cmd.filter(|c| !c.trim().is_empty()),
            auth_factor_token: args
                .auth_factor_token
                .filter(|t| !t.trim().is_empty())
                .map(Zeroizing::new),
            plc_url: args.plc_url,
            state_file: args.state_file,
            blob_concurrency: usize::from(args.blob_concurrency),
        })
    }
}

/// Exits with 3 if the test hook asks to stop after `step`.
fn test_hook(step: Step) {
    if std::env::var("PDS_MIGRATE_TEST_STOP_AFTER").as_deref() == Ok(step.name()) {
        println!("test hook: stopping after {}", step.name());
        std::process::exit(3);
    }
}

/// Marks a step done: saves the state, prints, and runs the test hook.
fn done(file: &mut StateFile, step: Step, what: &str) -> Result<(), StepFailure> {
    file.save().in_step(step)?;
    println!("[done] {}: {what}", step.name());
    test_hook(step);
    Ok(())
}

fn skipped(step: Step) {
    println!("[skip] {}: done in an earlier run", step.name());
}

/// `checkAccountStatus` on the new host.
async fn account_status(new: &Host) -> Result<Value, XrpcError> {
    new.query("com.atproto.server.checkAccountStatus", &())
        .await
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The whole migration; `state_path` is set once the state file is known (for the messages).
async fn migrate(
    inputs: &Inputs,
    state_path: &mut Option<PathBuf>,
) -> Result<Summary, StepFailure> {
    println!(
        "pds migrate: {} from {} to {} (new handle {})",
        inputs.handle, inputs.from, inputs.to, inputs.new_handle
    );
    let http = host::http_client().in_step(Step::LoginOld)?;
    let mut old = Host::new(
        "old host",
        &inputs.from,
        http.clone(),
        &inputs.handle,
        inputs.password.clone(),
    )
    .in_step(Step::LoginOld)?;
    old.set_auth_factor_token(inputs.auth_factor_token.clone());
    let new = Host::new(
        "new host",
        &inputs.to,
        http.clone(),
        &inputs.new_handle,
        inputs.new_password.clone(),
    )
    .in_step(Step::DescribeNew)?;
    let directory = Directory::new(http, &inputs.plc_url);

    // Log in to the old host.
    let session = match old.login().await {
        Ok(s) => s,
        Err(e) if e.error_name() == Some("AuthFactorTokenRequired") && prompt::interactive() => {
            let token = prompt::secret(
                None,
                "The old host mailed a sign-in code; enter it",
                "--auth-factor-token",
            )
            .in_step(Step::LoginOld)?;
            old.set_auth_factor_token(Some(token));
            old.login().await.in_step(Step::LoginOld)?
        }
        Err(e) => {
            return Err(anyhow!(e).context("logging in to the old host")).in_step(Step::LoginOld);
        }
    };
    let did = session.did.clone();
    old.set_identifier(&did).await;
    println!(
        "logged in to the old host as {} ({did}){}",
        session.handle,
        match (&session.active, &session.status) {
            (false, Some(s)) => format!(", account {s}"),
            _ => String::new(),
        }
    );
    let path = inputs
        .state_file
        .clone()
        .unwrap_or_else(|| state::default_path(&did));
    *state_path = Some(path.clone());
    let mut file =
        StateFile::open(&path, &did, &inputs.from, &inputs.to).in_step(Step::LoginOld)?;
    if file.resumed {
        println!("resuming from {}", path.display());
    } else {
        file.state.new_handle = inputs.new_handle.clone();
        file.save().in_step(Step::LoginOld)?;
        println!("state file: {}", path.display());
    }

    // The new host's service DID.
    let described: Value = new
        .anonymous()
        .query(&host::method("com.atproto.server.describeServer"), &())
        .await
        .map_err(|e| anyhow!(e).context("describeServer on the new host"))
        .in_step(Step::DescribeNew)?;
    let service_did = described
        .get("did")
        .and_then(Value::as_str)
        .context("the new host's describeServer names no DID")
        .in_step(Step::DescribeNew)?
        .to_owned();
    file.state.new_service_did = Some(service_did.clone());

    create_account(
        inputs,
        &old,
        &new,
        &did,
        &service_did,
        &described,
        &mut file,
    )
    .await?;

    let mut totals = Totals::default();
    for round in 1..=3 {
        import_repo(&old, &new, &did, &mut file, &mut totals).await?;
        blobs(inputs, &old, &new, &did, &mut file, &mut totals).await?;
        preferences(&old, &new, &mut file).await?;
        if snapshot(&old, &new, &did, &mut file).await? {
            break;
        }
        if round == 3 {
            return Err(anyhow!(
                "the old repository keeps changing; stop writing to it during the migration"
            ))
            .in_step(Step::Snapshot);
        }
    }

    let creds: Value = new
        .query("com.atproto.identity.getRecommendedDidCredentials", &())
        .await
        .map_err(|e| anyhow!(e).context("getRecommendedDidCredentials on the new host"))
        .in_step(Step::PlcRequest)?;
    let want = recommended_pointer(&creds).in_step(Step::PlcRequest)?;
    plc_handover(
        inputs, &old, &new, &directory, &did, &creds, &want, &mut file,
    )
    .await?;

    // Activate the new account.
    if file.state.activated {
        skipped(Step::Activate);
    } else {
        let status = account_status(&new).await.in_step(Step::Activate)?;
        if status.get("activated").and_then(Value::as_bool) != Some(true) {
            new.call_empty("com.atproto.server.activateAccount")
                .await
                .map_err(|e| anyhow!(e).context("activateAccount on the new host"))
                .in_step(Step::Activate)?;
        }
        file.state.activated = true;
        done(
            &mut file,
            Step::Activate,
            "the account is active on the new host",
        )?;
    }

    // Deactivate the old one, noting whether it changed after the snapshot.
    if file.state.old_deactivated {
        skipped(Step::DeactivateOld);
    } else {
        if let Ok((commit, _)) = verify::head(&old, &did).await {
            file.state.old_final_commit = Some(commit);
        }
        old.call("com.atproto.server.deactivateAccount", &json!({}))
            .await
            .map_err(|e| anyhow!(e).context("deactivateAccount on the old host"))
            .in_step(Step::DeactivateOld)?;
        file.state.old_deactivated = true;
        done(
            &mut file,
            Step::DeactivateOld,
            "the account is deactivated on the old host",
        )?;
    }

    let checks = verify_all(&old, &new, &directory, &did, &want, &file.state).await;
    file.state.verified = checks.iter().all(|c| c.passed);
    file.save().in_step(Step::Verify)?;
    Ok(Summary {
        did,
        handle: inputs.new_handle.clone(),
        from: inputs.from.clone(),
        to: inputs.to.clone(),
        state_file: path,
        state: file.state.clone(),
        totals,
        checks,
    })
}

/// Step create-account (or log in on the new host when it exists).
async fn create_account(
    inputs: &Inputs,
    old: &Host,
    new: &Host,
    did: &str,
    service_did: &str,
    described: &Value,
    file: &mut StateFile,
) -> Result<(), StepFailure> {
    new.set_identifier(did).await;
    if file.state.account_created {
        new.login()
            .await
            .map_err(|e| {
                anyhow!(e).context("logging in to the account on the new host (created earlier)")
            })
            .in_step(Step::CreateAccount)?;
        skipped(Step::CreateAccount);
        return Ok(());
    }
    let invite_code = match &inputs.invite_code {
        Some(c) => Some(c.clone()),
        None if described.get("inviteCodeRequired").and_then(Value::as_bool) == Some(true) => Some(
            prompt::text(
                None,
                "The new host needs an invite code",
                "--invite-code (or PDS_MIGRATE_INVITE_CODE)",
            )
            .in_step(Step::CreateAccount)?,
        ),
        None => None,
    };
    let token: Value = old
        .query(
            "com.atproto.server.getServiceAuth",
            &json!({"aud": service_did, "lxm": "com.atproto.server.createAccount"}),
        )
        .await
        .map_err(|e| anyhow!(e).context("getServiceAuth on the old host"))
        .in_step(Step::CreateAccount)?;
    let token = token
        .get("token")
        .and_then(Value::as_str)
        .context("getServiceAuth gave no token")
        .in_step(Step::CreateAccount)?;
    let mut input = json!({
        "did": did,
        "handle": inputs.new_handle,
        "email": inputs.email,
        "password": inputs.new_password.as_str(),
    });
    if let Some(code) = invite_code {
        input["inviteCode"] = json!(code);
    }
    let client = new
        .anonymous()
        .clone()
        .with_bearer(token)
        .in_step(Step::CreateAccount)?;
    let created: Result<Value, XrpcError> = client
        .procedure(&host::method("com.atproto.server.createAccount"), &input)
        .await;
    match created {
        Ok(out) => {
            new.keep_session(&out).await.in_step(Step::CreateAccount)?;
        }
        Err(e) => {
            // An earlier run may have created it and been stopped before recording it.
            match new.login().await {
                Ok(s) if s.did == did => {
                    println!("the account already exists on the new host: logged in");
                }
                _ => {
                    return Err(anyhow!(e).context("createAccount on the new host"))
                        .in_step(Step::CreateAccount);
                }
            }
        }
    }
    file.state.account_created = true;
    done(
        file,
        Step::CreateAccount,
        &format!(
            "{} on {} (deactivated until the handover)",
            inputs.new_handle, inputs.to
        ),
    )
}

/// What this run moved.
#[derive(Default)]
struct Totals {
    repo_bytes: u64,
    blobs: u64,
    blob_bytes: u64,
}

/// Step import-repo.
async fn import_repo(
    old: &Host,
    new: &Host,
    did: &str,
    file: &mut StateFile,
    totals: &mut Totals,
) -> Result<(), StepFailure> {
    if file.state.imported_commit.is_some() {
        skipped(Step::ImportRepo);
        return Ok(());
    }
    let status = account_status(new).await.in_step(Step::ImportRepo)?;
    if status.get("activated").and_then(Value::as_bool) == Some(true) {
        return Err(anyhow!(
            "the account on the new host is already active, and importRepo needs a deactivated \
             account; if an earlier migration finished, there is nothing to do"
        ))
        .in_step(Step::ImportRepo);
    }
    let (old_head, _) = verify::head(old, did).await.in_step(Step::ImportRepo)?;
    if status.get("repoCommit").and_then(Value::as_str) == Some(old_head.as_str()) {
        println!("the new host already holds commit {old_head}");
    } else {
        totals.repo_bytes += transfer::transfer_repo(old, new, did)
            .await
            .in_step(Step::ImportRepo)?;
    }
    let status = account_status(new).await.in_step(Step::ImportRepo)?;
    let commit = status
        .get("repoCommit")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    file.state.imported_commit = Some(commit.clone());
    done(
        file,
        Step::ImportRepo,
        &format!(
            "commit {commit}: {} records, {} blobs referenced",
            count(&status, "indexedRecords"),
            count(&status, "expectedBlobs")
        ),
    )
}

/// Step blobs.
async fn blobs(
    inputs: &Inputs,
    old: &Host,
    new: &Host,
    did: &str,
    file: &mut StateFile,
    totals: &mut Totals,
) -> Result<(), StepFailure> {
    if file.state.blobs_done {
        skipped(Step::Blobs);
        return Ok(());
    }
    let status = account_status(new).await.in_step(Step::Blobs)?;
    let missing = count(&status, "expectedBlobs").saturating_sub(count(&status, "importedBlobs"));
    let outcome = transfer::transfer_blobs(old, new, did, missing, inputs.blob_concurrency)
        .await
        .in_step(Step::Blobs)?;
    totals.blobs += outcome.moved;
    totals.blob_bytes += outcome.bytes;
    file.state.blobs_moved += outcome.moved;
    file.state.blob_bytes_moved += outcome.bytes;
    file.state.blobs_done = true;
    done(
        file,
        Step::Blobs,
        &format!(
            "{} moved in this run ({}); none missing",
            outcome.moved,
            human_bytes(outcome.bytes)
        ),
    )
}

/// Step preferences.
async fn preferences(old: &Host, new: &Host, file: &mut StateFile) -> Result<(), StepFailure> {
    if file.state.preferences_done {
        skipped(Step::Preferences);
        return Ok(());
    }
    let n = copy_preferences(old, new).await?;
    file.state.preferences_done = true;
    done(file, Step::Preferences, &format!("{n} copied"))
}

async fn copy_preferences(old: &Host, new: &Host) -> Result<usize, StepFailure> {
    let prefs = verify::preferences(old).await.in_step(Step::Preferences)?;
    new.call(
        "app.bsky.actor.putPreferences",
        &json!({"preferences": prefs}),
    )
    .await
    .map_err(|e| anyhow!(e).context("putPreferences on the new host"))
    .in_step(Step::Preferences)?;
    Ok(prefs.as_array().map_or(0, Vec::len))
}

/// Step snapshot. `Ok(false)`: the old repository changed since the import, so the import and
/// the blob step were reset and must run again.
async fn snapshot(
    old: &Host,
    new: &Host,
    did: &str,
    file: &mut StateFile,
) -> Result<bool, StepFailure> {
    if file.state.source.is_some() {
        skipped(Step::Snapshot);
        return Ok(true);
    }
    let snap = verify::snapshot(old, did).await.in_step(Step::Snapshot)?;
    if file.state.imported_commit.as_deref() != Some(snap.commit.as_str()) {
        println!(
            "the old repository changed since the export (now at {}): importing it again",
            snap.commit
        );
        file.state.imported_commit = None;
        file.state.blobs_done = false;
        file.state.preferences_done = false;
        file.save().in_step(Step::Snapshot)?;
        return Ok(false);
    }
    let (_, new_prefs) =
        verify::preferences_digest(&verify::preferences(new).await.in_step(Step::Snapshot)?);
    if new_prefs != snap.preferences_digest {
        println!("the preferences changed on the old host: copying them again");
        copy_preferences(old, new).await?;
    }
    let what = format!(
        "data {}, {} records, {} blobs, {} preferences",
        snap.data, snap.records, snap.blobs, snap.preferences
    );
    file.state.source = Some(snap);
    done(file, Step::Snapshot, &what)?;
    Ok(true)
}

/// How the PLC token is obtained.
fn token_source(inputs: &Inputs) -> &'static str {
    if inputs.plc_token.is_some() {
        "--plc-token"
    } else if inputs.plc_token_cmd.is_some() {
        "--plc-token-cmd"
    } else {
        "prompt"
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Steps plc-request, plc-sign and plc-submit.
#[allow(clippy::too_many_arguments)]
async fn plc_handover(
    inputs: &Inputs,
    old: &Host,
    new: &Host,
    directory: &Directory,
    did: &str,
    creds: &Value,
    want: &Pointer,
    file: &mut StateFile,
) -> Result<(), StepFailure> {
    if file.state.plc_submitted {
        skipped(Step::PlcSubmit);
        return Ok(());
    }
    if directory.pointer(did).await.ok().as_ref() == Some(want) {
        println!("the DID document already names the new host and its key");
        file.state.plc_submitted = true;
        return done(file, Step::PlcSubmit, "nothing to submit");
    }
    if !did.starts_with("did:plc:") {
        return Err(anyhow!(
            "{did} is not a did:plc: update its DID document yourself so that #atproto_pds is {} \
             and #atproto is {}, then run again",
            want.endpoint,
            want.signing_key
        ))
        .in_step(Step::PlcSubmit);
    }
    if file.state.plc_operation.is_none() {
        let mut attempt = 0;
        let operation = loop {
            attempt += 1;
            let fresh = file
                .state
                .plc_requested_at
                .is_some_and(|t| now_secs() - t < PLC_TOKEN_REUSE.as_secs() as i64);
            let explicit = inputs.plc_token.is_some() && attempt == 1;
            if (explicit && file.state.plc_requested_at.is_none()) || (!explicit && !fresh) {
                old.call_empty("com.atproto.identity.requestPlcOperationSignature")
                    .await
                    .map_err(|e| anyhow!(e).context("requestPlcOperationSignature on the old host"))
                    .in_step(Step::PlcRequest)?;
                file.state.plc_requested_at = Some(now_secs());
                done(
                    file,
                    Step::PlcRequest,
                    "the old host mailed a PLC token to the account's email",
                )?;
            } else if attempt == 1 {
                skipped(Step::PlcRequest);
            }
            let token = match (&inputs.plc_token, &inputs.plc_token_cmd) {
                (Some(t), _) if attempt == 1 => t.clone(),
                (_, Some(cmd)) => prompt::run_token_command(cmd, did, &inputs.handle)
                    .await
                    .in_step(Step::PlcSign)?,
                _ => prompt::secret(
                    None,
                    "Enter the PLC token the old host mailed (XXXXX-XXXXX)",
                    "--plc-token, --plc-token-cmd or PDS_MIGRATE_PLC_TOKEN",
                )
                .in_step(Step::PlcSign)?,
            };
            let mut input = creds.clone();
            input["token"] = json!(token.as_str());
            let signed: Result<Value, XrpcError> = old
                .procedure("com.atproto.identity.signPlcOperation", &input)
                .await;
            match signed {
                Ok(out) => match out.get("operation") {
                    Some(op) => break op.clone(),
                    None => {
                        return Err(anyhow!("signPlcOperation gave no operation"))
                            .in_step(Step::PlcSign);
                    }
                },
                Err(e)
                    if attempt < 3
                        && (is_expired(&e) || e.error_name() == Some("InvalidToken"))
                        && (inputs.plc_token_cmd.is_some() || prompt::interactive()) =>
                {
                    println!(
                        "the old host refused the PLC token ({e}); asking it to mail a new one"
                    );
                    file.state.plc_requested_at = None;
                }
                Err(e) => {
                    if is_expired(&e) || e.error_name() == Some("InvalidToken") {
                        file.state.plc_requested_at = None;
                        file.save().in_step(Step::PlcSign)?;
                    }
                    return Err(anyhow!(e).context(format!(
                        "signPlcOperation on the old host (token from {})",
                        token_source(inputs)
                    )))
                    .in_step(Step::PlcSign);
                }
            }
        };
        file.state.plc_operation = Some(operation);
        done(
            file,
            Step::PlcSign,
            "the old host signed the operation handing the DID to the new host",
        )?;
    } else {
        skipped(Step::PlcSign);
    }
    let operation = file.state.plc_operation.clone().unwrap_or(Value::Null);
    let submitted = new
        .call(
            "com.atproto.identity.submitPlcOperation",
            &json!({"operation": operation}),
        )
        .await;
    if let Err(e) = submitted {
        // Submitted by an earlier run that was stopped before recording it?
        if directory.pointer(did).await.ok().as_ref() != Some(want) {
            if e.status().is_some_and(|s| s.is_client_error()) && !is_expired(&e) {
                file.state.plc_operation = None;
                file.state.plc_requested_at = None;
                file.save().in_step(Step::PlcSubmit)?;
            }
            return Err(anyhow!(e).context("submitPlcOperation on the new host"))
                .in_step(Step::PlcSubmit);
        }
    }
    // The directory answers at once; allow a little time for a cache in between.
    let mut now = directory.pointer(did).await;
    for _ in 0..20 {
        if now.as_ref().ok() == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        now = directory.pointer(did).await;
    }
    match now {
        Ok(p) if &p == want => {}
        Ok(p) => {
            return Err(anyhow!(
                "after the submission the DID document names {} with key {}, not {} with {}",
                p.endpoint,
                p.signing_key,
                want.endpoint,
                want.signing_key
            ))
            .in_step(Step::PlcSubmit);
        }
        Err(e) => return Err(e).in_step(Step::PlcSubmit),
    }
    file.state.plc_submitted = true;
    done(
        file,
        Step::PlcSubmit,
        &format!(
            "the DID document names {} and key {}",
            want.endpoint, want.signing_key
        ),
    )
}

/// One check of the final verification.
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

fn check(name: &'static str, result: anyhow::Result<String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            passed: true,
            detail,
        },
        Err(e) => Check {
            name,
            passed: false,
            detail: format!("{e:#}"),
        },
    }
}

/// Fails unless the new host's set (`got`) has the old host's count and digest.
fn same_set(what: &str, got: &verify::SetDigest, count: u64, digest: &str) -> anyhow::Result<()> {
    if got.count() != count || got.hex() != digest {
        bail!(
            "{} {what} on the new host, {count} on the old, or different ones",
            got.count()
        );
    }
    Ok(())
}

/// Step verify: every check, each reported on its own.
async fn verify_all(
    old: &Host,
    new: &Host,
    directory: &Directory,
    did: &str,
    want: &Pointer,
    state: &MigrationState,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let Some(source) = state.source.as_ref() else {
        checks.push(check(
            "source snapshot",
            Err(anyhow!("no snapshot was recorded")),
        ));
        return checks;
    };
    checks.push(check(
        "DID document names the new host and its key",
        async {
            let now = directory.pointer(did).await?;
            if &now != want {
                bail!(
                    "{} with key {} (expected {} with {})",
                    now.endpoint,
                    now.signing_key,
                    want.endpoint,
                    want.signing_key
                );
            }
            Ok(format!("{} at {}/{did}", now.endpoint, directory.plc_url()))
        }
        .await,
    ));
    checks.push(check(
        "new account active",
        async {
            let status = account_status(new).await?;
            let active = status.get("activated").and_then(Value::as_bool) == Some(true);
            let valid = status.get("validDid").and_then(Value::as_bool) == Some(true);
            if !active || !valid {
                bail!("checkAccountStatus: activated {active}, validDid {valid}");
            }
            Ok("activated, validDid".to_owned())
        }
        .await,
    ));
    checks.push(check(
        "records and data CID equal",
        async {
            let (_, data) = verify::head(new, did).await?;
            if data != source.data {
                bail!(
                    "data CID {data} on the new host, {} on the old",
                    source.data
                );
            }
            let records = verify::records(new, did).await?;
            same_set("records", &records, source.records, &source.records_digest)?;
            Ok(format!("{} records, data {data}", records.count()))
        }
        .await,
    ));
    checks.push(check(
        "every blob present",
        async {
            let missing: Value = new
                .query("com.atproto.repo.listMissingBlobs", &json!({"limit": 10}))
                .await?;
            let n = missing
                .get("blobs")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if n > 0 {
                bail!("the new host still misses blobs: {}", missing["blobs"]);
            }
            let status = account_status(new).await?;
            let (expected, imported) = (
                count(&status, "expectedBlobs"),
                count(&status, "importedBlobs"),
            );
            if imported < expected {
                bail!("checkAccountStatus: {imported} of {expected} blobs");
            }
            let blobs = verify::blobs(new, did).await?;
            same_set("blobs", &blobs, source.blobs, &source.blobs_digest)?;
            Ok(format!("{} blobs", blobs.count()))
        }
        .await,
    ));
    checks.push(check(
        "preferences equal",
        async {
            let prefs = verify::preferences(new).await?;
            let (n, digest) = verify::preferences_digest(&prefs);
            if digest != source.preferences_digest {
                bail!(
                    "{n} preferences on the new host differ from the {} on the old",
                    source.preferences
                );
            }
            Ok(format!("{n} preferences"))
        }
        .await,
    ));
    checks.push(check(
        "old account deactivated",
        async {
            let status: Value = old
                .anonymous()
                .query(
                    &host::method("com.atproto.sync.getRepoStatus"),
                    &json!({"did": did}),
                )
                .await?;
            if status.get("active").and_then(Value::as_bool) != Some(false) {
                bail!("getRepoStatus on the old host: {status}");
            }
            Ok(format!(
                "status {}",
                status
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("inactive")
            ))
        }
        .await,
    ));
    checks.push(check(
        "no writes on the old host after the snapshot",
        async {
            match &state.old_final_commit {
                Some(c) if c != &source.commit => bail!(
                    "the old repository moved from {} to {c} after the snapshot: those writes are \
                 only on the old host",
                    source.commit
                ),
                _ => Ok(format!("head {}", source.commit)),
            }
        }
        .await,
    ));
    checks
}

/// The end-of-run report.
struct Summary {
    did: String,
    handle: String,
    from: String,
    to: String,
    state_file: PathBuf,
    state: MigrationState,
    totals: Totals,
    checks: Vec<Check>,
}

impl Summary {
    fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn print(&self, elapsed: Duration) {
        println!();
        println!("== summary");
        println!("account:   {} ({})", self.did, self.handle);
        println!("moved:     {} -> {}", self.from, self.to);
        if let Some(s) = &self.state.source {
            println!(
                "content:   {} records, {} blobs, {} preferences",
                s.records, s.blobs, s.preferences
            );
        }
        println!(
            "this run:  repository {}, {} blobs ({}), {:.1} s",
            human_bytes(self.totals.repo_bytes),
            self.totals.blobs,
            human_bytes(self.totals.blob_bytes),
            elapsed.as_secs_f64()
        );
        println!("checks:");
        for c in &self.checks {
            println!(
                "  [{}] {}: {}",
                if c.passed { "ok" } else { "FAILED" },
                c.name,
                c.detail
            );
        }
        if self.all_passed() {
            println!(
                "migration verified; the state file {} can be removed",
                self.state_file.display()
            );
        } else {
            println!(
                "migration NOT verified: {} (state in {})",
                Step::Verify.advice(),
                self.state_file.display()
            );
        }
    }
}
