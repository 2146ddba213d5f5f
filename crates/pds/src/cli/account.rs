//! `pds account create|list|info|takedown|untakedown|delete|reset-password`: account
//! administration through a running server's admin API (see `admin_api.rs` for the connection
//! and the exit codes); `pds account token` (`account_token.rs`) reads the data directory.
//!
//! Accounts are named by DID or handle (a handle is resolved by the server). Output is
//! `name: value` lines (a table for `list`), or one JSON document with `--json`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Value, json};

use super::admin_api::{AdminApi, Failure, ServerArgs, exit_code, random_password};

/// Arguments of `pds account`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account; when the server requires invite codes, an admin code is made for it.
    Create {
        /// Email address of the account.
        email: String,
        /// Handle (a bare name gets the server's first handle domain).
        handle: String,
        /// Password [default: a random one, printed once].
        #[arg(long)]
        password: Option<String>,
        /// Invite code to use instead of making one.
        #[arg(long)]
        invite_code: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the hosted accounts: handle, email, DID and status.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show an account: handle, email, status, invites.
    Info {
        /// DID or handle.
        account: String,
        /// Print the admin API's account view and status as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Take an account down: no login, its repository is no longer served.
    Takedown {
        /// DID or handle.
        account: String,
        /// Moderation reference to record [default: the current time].
        #[arg(long = "ref", value_name = "REF")]
        reference: Option<String>,
    },
    /// Lift an account's takedown.
    Untakedown {
        /// DID or handle.
        account: String,
    },
    /// Delete an account and everything it stores (cannot be undone).
    Delete {
        /// DID or handle.
        account: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Set a new random password (printed once) and end the account's sessions.
    ResetPassword {
        /// DID or handle.
        account: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print an account's live email code (from the data directory; no admin API needed).
    Token(super::account_token::TokenArgs),
}

/// Runs `pds account`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let AccountCommand::Token(token) = args.command {
        return super::account_token::run(token);
    }
    let api = AdminApi::connect(&args.server)?;
    let result = match args.command {
        AccountCommand::Token(_) => return Ok(ExitCode::from(2)),
        AccountCommand::Create {
            email,
            handle,
            password,
            invite_code,
            json,
        } => create(&api, &email, &handle, password, invite_code, json),
        AccountCommand::List { json } => list(&api, json),
        AccountCommand::Info { account, json } => info(&api, &account, json),
        AccountCommand::Takedown { account, reference } => {
            set_takedown(&api, &account, true, reference)
        }
        AccountCommand::Untakedown { account } => set_takedown(&api, &account, false, None),
        AccountCommand::Delete { account, yes } => delete(&api, &account, yes),
        AccountCommand::ResetPassword { account, json } => reset_password(&api, &account, json),
    };
    Ok(exit_code(result))
}

/// Prints `(name, value)` lines with the values aligned.
fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 1;
    for (name, value) in fields {
        println!("{:<width$} {value}", format!("{name}:"));
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn create(
    api: &AdminApi,
    email: &str,
    handle: &str,
    password: Option<String>,
    invite_code: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let server: Value = api.query("com.atproto.server.describeServer", &())?;
    let handle = if handle.contains('.') {
        handle.to_owned()
    } else {
        let domain = server["availableUserDomains"][0]
            .as_str()
            .ok_or_else(|| anyhow!("the server names no handle domain; give a full handle"))?;
        format!("{handle}{domain}")
    };
    let invite_code = match invite_code {
        Some(code) => Some(code),
        None if server["inviteCodeRequired"] == json!(true) => {
            let out: Value = api.procedure(
                "com.atproto.server.createInviteCode",
                &json!({"useCount": 1}),
            )?;
            Some(
                out["code"]
                    .as_str()
                    .ok_or_else(|| anyhow!("createInviteCode answered without a code"))?
                    .to_owned(),
            )
        }
        None => None,
    };
    let generated = password.is_none();
    let password = password.unwrap_or_else(random_password);
    let mut input = json!({"email": email, "handle": handle, "password": password});
    if let Some(code) = &invite_code {
        input["inviteCode"] = json!(code);
    }
    let out: Value = api.procedure("com.atproto.server.createAccount", &input)?;
    let did = out["did"].as_str().unwrap_or_default();
    let handle = out["handle"].as_str().unwrap_or(&handle);
    if json {
        let mut doc = json!({"did": did, "handle": handle});
        if generated {
            doc["password"] = json!(password);
        }
        print_json(&doc);
        return Ok(());
    }
    let mut fields = vec![("did", did.to_owned()), ("handle", handle.to_owned())];
    if generated {
        fields.push(("password", password));
    }
    print_fields(&fields);
    if generated {
        eprintln!("Save this password: it will not be shown again.");
    }
    Ok(())
}

/// Every hosted repository (listRepos, all pages).
fn all_repos(api: &AdminApi) -> Result<Vec<Value>, Failure> {
    let mut repos = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: Value = api.query(
            "com.atproto.sync.listRepos",
            &json!({"limit": 1000, "cursor": cursor}),
        )?;
        let items = page["repos"].as_array().cloned().unwrap_or_default();
        let done = items.is_empty();
        repos.extend(items);
        cursor = page["cursor"].as_str().map(str::to_owned);
        if done || cursor.is_none() {
            return Ok(repos);
        }
    }
}

/// `takendown`, `deactivated`, ... or `active`.
fn status_of(repo: &Value) -> String {
    match repo["status"].as_str() {
        Some(status) => status.to_owned(),
        None if repo["active"] == json!(false) => "inactive".to_owned(),
        None => "active".to_owned(),
    }
}

fn list(api: &AdminApi, json: bool) -> Result<(), Failure> {
    let repos = all_repos(api)?;
    let mut rows = Vec::with_capacity(repos.len());
    for chunk in repos.chunks(100) {
        let dids: Vec<&str> = chunk.iter().filter_map(|r| r["did"].as_str()).collect();
        let out: Value = api.query("com.atproto.admin.getAccountInfos", &json!({"dids": dids}))?;
        let infos = out["infos"].as_array().cloned().unwrap_or_default();
        for repo in chunk {
            let info = infos.iter().find(|i| i["did"] == repo["did"]);
            let field = |name: &str| info.and_then(|i| i[name].as_str()).unwrap_or("").to_owned();
            rows.push(json!({
                "did": repo["did"],
                "handle": field("handle"),
                "email": field("email"),
                "status": status_of(repo),
            }));
        }
    }
    if json {
        print_json(&Value::Array(rows));
        return Ok(());
    }
    let columns = ["handle", "email", "did", "status"];
    let cell = |row: &Value, c: &str| row[c].as_str().unwrap_or("").to_owned();
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_ascii_uppercase()).collect());
    for row in &rows {
        line(columns.iter().map(|c| cell(row, c)).collect());
    }
    Ok(())
}

fn info(api: &AdminApi, account: &str, json: bool) -> Result<(), Failure> {
    let did = api.resolve_did(account)?;
    let view: Value = api.query("com.atproto.admin.getAccountInfo", &json!({"did": did}))?;
    let status: Value = api.query("com.atproto.admin.getSubjectStatus", &json!({"did": did}))?;
    if json {
        print_json(&json!({"account": view, "status": status}));
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let email = match (view["email"].as_str(), view["emailConfirmedAt"].as_str()) {
        (None, _) => "(none)".to_owned(),
        (Some(e), Some(at)) => format!("{e} (confirmed {at})"),
        (Some(e), None) => format!("{e} (not confirmed)"),
    };
    let state = if status["takedown"]["applied"] == json!(true) {
        format!("takendown (ref {})", text(&status["takedown"]["ref"]))
    } else if let Some(at) = view["deactivatedAt"].as_str() {
        format!("deactivated since {at}")
    } else {
        "active".to_owned()
    };
    let invites = view["invites"].as_array().map_or(0, Vec::len);
    let yes_no = |v: &Value| if *v == json!(true) { "yes" } else { "no" }.to_owned();
    print_fields(&[
        ("did", text(&view["did"])),
        ("handle", text(&view["handle"])),
        ("email", email),
        ("created", text(&view["indexedAt"])),
        ("status", state),
        (
            "invited with",
            view["invitedBy"]["code"].as_str().unwrap_or("-").to_owned(),
        ),
        ("invite codes", invites.to_string()),
        ("invites disabled", yes_no(&view["invitesDisabled"])),
    ]);
    Ok(())
}

fn set_takedown(
    api: &AdminApi,
    account: &str,
    applied: bool,
    reference: Option<String>,
) -> Result<(), Failure> {
    let did = api.resolve_did(account)?;
    let mut takedown = json!({"applied": applied});
    if let Some(r) = reference {
        takedown["ref"] = json!(r);
    }
    let input = json!({
        "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": did},
        "takedown": takedown,
    });
    let _: Value = api.procedure("com.atproto.admin.updateSubjectStatus", &input)?;
    let status: Value = api.query("com.atproto.admin.getSubjectStatus", &json!({"did": did}))?;
    if applied {
        let reference = status["takedown"]["ref"].as_str().unwrap_or("");
        println!("{did}: taken down (ref {reference})");
    } else {
        println!("{did}: takedown lifted");
    }
    Ok(())
}

/// Asks on the terminal whether to delete; `--yes` skips the question.
fn confirm_delete(did: &str, handle: &str, yes: bool) -> Result<bool, Failure> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Failed(anyhow!(
            "refusing to delete {did} without confirmation: pass --yes"
        )));
    }
    eprint!("Delete {handle} ({did}) and everything it stores? This cannot be undone. [y/N] ");
    std::io::stderr()
        .flush()
        .map_err(|e| Failure::Failed(e.into()))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn delete(api: &AdminApi, account: &str, yes: bool) -> Result<(), Failure> {
    let did = api.resolve_did(account)?;
    let view: Value = api.query("com.atproto.admin.getAccountInfo", &json!({"did": did}))?;
    let handle = view["handle"].as_str().unwrap_or("");
    if !confirm_delete(&did, handle, yes)? {
        return Err(Failure::Failed(anyhow!("not deleted")));
    }
    let _: Value = api.procedure("com.atproto.admin.deleteAccount", &json!({"did": did}))?;
    println!("{did}: deleted");
    Ok(())
}

fn reset_password(api: &AdminApi, account: &str, json: bool) -> Result<(), Failure> {
    let did = api.resolve_did(account)?;
    let password = random_password();
    let _: Value = api.procedure(
        "com.atproto.admin.updateAccountPassword",
        &json!({"did": did, "password": password}),
    )?;
    if json {
        print_json(&json!({"did": did, "password": password}));
    } else {
        print_fields(&[("did", did), ("password", password)]);
    }
    Ok(())
}
