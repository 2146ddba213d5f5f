//! Values `pds migrate` needs but was not given: asked on the terminal when there is one, a
//! usage error otherwise (so a script never hangs on a prompt).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// Whether prompts are possible: stdin and stderr are terminals.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A missing value in a non-interactive run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Missing(pub String);

/// `given`, or a line asked for on the terminal (`flag` names the option in the error).
pub(crate) fn text(given: Option<String>, question: &str, flag: &str) -> anyhow::Result<String> {
    if let Some(v) = given.filter(|v| !v.trim().is_empty()) {
        return Ok(v.trim().to_owned());
    }
    if !interactive() {
        return Err(Missing(format!("missing {flag} (no terminal to ask on)")).into());
    }
    loop {
        eprint!("{question}: ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the terminal")?;
        if n == 0 {
            bail!("no answer for {flag} (end of input)");
        }
        let line = line.trim();
        if !line.is_empty() {
            return Ok(line.to_owned());
        }
    }
}

/// `given`, or a secret asked for on the terminal without echo (`source` names the option and
/// environment variable in the error).
pub(crate) fn secret(
    given: Option<String>,
    question: &str,
    source: &str,
) -> anyhow::Result<Zeroizing<String>> {
    if let Some(v) = given.filter(|v| !v.is_empty()) {
        return Ok(Zeroizing::new(v));
    }
    if !interactive() {
        return Err(Missing(format!("missing {source} (no terminal to ask on)")).into());
    }
    let term = console::Term::stderr();
    loop {
        term.write_str(&format!("{question}: "))
            .context("writing to the terminal")?;
        let line = Zeroizing::new(term.read_secure_line().context("reading the terminal")?);
        if !line.trim().is_empty() {
            return Ok(Zeroizing::new(line.trim().to_owned()));
        }
    }
}

/// Runs `command` with `sh -c` and returns the first non-empty line it prints (the PLC token).
/// `PDS_MIGRATE_DID` and `PDS_MIGRATE_HANDLE` are set for it.
pub(crate) async fn run_token_command(
    command: &str,
    did: &str,
    handle: &str,
) -> anyhow::Result<Zeroizing<String>> {
    let (command_owned, did, handle) = (command.to_owned(), did.to_owned(), handle.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command_owned)
            .env("PDS_MIGRATE_DID", did)
            .env("PDS_MIGRATE_HANDLE", handle)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await
    .context("the --plc-token-cmd thread")?
    .with_context(|| format!("running --plc-token-cmd {command:?}"))?;
    if !out.status.success() {
        bail!("--plc-token-cmd {command:?} failed ({})", out.status);
    }
    let stdout = Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
    match stdout.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(token) => Ok(Zeroizing::new(token.to_owned())),
        None => bail!("--plc-token-cmd {command:?} printed no token"),
    }
}
