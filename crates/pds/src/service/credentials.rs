//! App passwords, invite codes and the email sign-in factor: generation of the secrets, the
//! second step of a password login, and the store calls around them.

use atp_syntax::Did;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use pds_store::{Account, AppPassword, EmailTokenPurpose, InviteCode, NewInviteCode, StoreError};

use crate::api::error::XrpcError;
use crate::auth;
use crate::service::account::{AccountError, Login};
use crate::service::email_tokens;
use crate::state::AppState;

/// The `forAccount` / `createdBy` of codes the administrator creates.
pub const ADMIN_ACCOUNT: &str = "admin";

/// `n` random lower-case base32 characters (`a-z2-7`).
fn random_base32(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(8) * 5];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let mut s = BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
    s.truncate(n);
    s
}

/// A new app password, `xxxx-xxxx-xxxx-xxxx` (as the reference).
pub fn generate_app_password() -> String {
    let chars = random_base32(16);
    let groups: Vec<&str> = (0..4).map(|i| &chars[i * 4..i * 4 + 4]).collect();
    groups.join("-")
}

/// A new invite code, `<hostname with dashes>-xxxxx-xxxxx` (as the reference).
pub fn generate_invite_code(hostname: &str) -> String {
    let token = random_base32(10);
    format!(
        "{}-{}-{}",
        hostname.replace('.', "-"),
        &token[..5],
        &token[5..]
    )
}

/// A created app password; `password` is shown once and never stored in clear.
#[derive(Debug, Clone)]
pub struct CreatedAppPassword {
    /// Its name.
    pub name: String,
    /// The password itself.
    pub password: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether it grants privileged access.
    pub privileged: bool,
}

/// Creates an app password named `name` for `did`.
pub async fn create_app_password(
    state: &AppState,
    did: &Did,
    name: String,
    privileged: bool,
) -> Result<CreatedAppPassword, AccountError> {
    if name.trim().is_empty() {
        return Err(AccountError::InvalidRequest(
            "App password name must not be empty".into(),
        ));
    }
    let password = generate_app_password();
    let clear = password.clone();
    let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&clear))
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))?
        .map_err(|e| AccountError::Internal(e.message))?;
    let created_at = Utc::now();
    let row = AppPassword {
        name: name.clone(),
        password_hash,
        privileged,
        created_at,
    };
    match state.store().create_app_password(did, row).await {
        Ok(()) => {}
        Err(StoreError::AppPasswordExists { .. }) => {
            return Err(AccountError::InvalidRequest(
                "could not create app-specific password".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(CreatedAppPassword {
        name,
        password,
        created_at,
        privileged,
    })
}

/// What the email sign-in factor asks of a password login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FactorStep {
    /// A code was given: it must be the live `auth_factor` code.
    UseCode,
    /// The factor is on and no code was given: mail one and refuse.
    MailCode,
    /// Nothing.
    Pass,
}

/// As the reference's login: a given code is always checked (even with an app password or the
/// factor off); without one, only an account password login of an account with the factor on
/// and an email address needs one (app passwords skip the factor).
fn factor_step(account: &Account, app_password: bool, code: Option<&str>) -> FactorStep {
    if code.is_some_and(|c| !c.is_empty()) {
        FactorStep::UseCode
    } else if account.email.is_some() && account.email_auth_factor_at.is_some() && !app_password {
        FactorStep::MailCode
    } else {
        FactorStep::Pass
    }
}

/// `401 AuthFactorTokenRequired`, as the reference's `AuthFactorRequiredError`.
fn auth_factor_required() -> XrpcError {
    XrpcError::new(
        StatusCode::UNAUTHORIZED,
        "AuthFactorTokenRequired",
        "A sign in code has been sent to your email address",
    )
}

/// The second step of a password login (createSession's `authFactorToken`): uses up the given
/// code (`InvalidToken`, `ExpiredToken`), or mails a fresh sign-in code and refuses with
/// `AuthFactorTokenRequired`, or lets the login through; see [`factor_step`].
pub async fn check_email_auth_factor(
    state: &AppState,
    login: &Login,
    auth_factor_token: Option<&str>,
) -> Result<(), XrpcError> {
    let account = &login.account;
    match factor_step(
        account,
        login.app_password_name.is_some(),
        auth_factor_token,
    ) {
        FactorStep::UseCode => {
            let code = auth_factor_token.unwrap_or_default();
            email_tokens::consume(state, &account.did, EmailTokenPurpose::AuthFactor, code).await
        }
        FactorStep::MailCode => {
            let to = account.email.as_deref().unwrap_or_default();
            email_tokens::issue_and_mail(state, account, to, EmailTokenPurpose::AuthFactor).await?;
            Err(auth_factor_required())
        }
        FactorStep::Pass => Ok(()),
    }
}

/// Creates `count` codes of `uses` uses for each of `accounts`, issued by the administrator.
/// Returns the codes per account, in the order given.
pub async fn create_invite_codes(
    state: &AppState,
    accounts: &[String],
    count: u32,
    uses: u32,
) -> Result<Vec<(String, Vec<String>)>, AccountError> {
    if uses == 0 || count == 0 {
        return Err(AccountError::InvalidRequest(
            "useCount and codeCount must be at least 1".into(),
        ));
    }
    let hostname = &state.config().hostname;
    let mut out = Vec::with_capacity(accounts.len());
    let mut rows = Vec::new();
    for account in accounts {
        let codes: Vec<String> = (0..count).map(|_| generate_invite_code(hostname)).collect();
        rows.extend(codes.iter().map(|code| NewInviteCode {
            code: code.clone(),
            available_uses: uses,
            for_account: account.clone(),
            created_by: ADMIN_ACCOUNT.to_owned(),
        }));
        out.push((account.clone(), codes));
    }
    state.store().create_invite_codes(rows, Utc::now()).await?;
    Ok(out)
}

/// The invite codes issued to `did`; without `include_used`, only codes with uses left.
pub async fn account_invite_codes(
    state: &AppState,
    did: &Did,
    include_used: bool,
) -> Result<Vec<InviteCode>, AccountError> {
    let codes = state.store().list_invite_codes(did.as_str()).await?;
    Ok(codes
        .into_iter()
        .filter(|c| include_used || c.is_available())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(email: Option<&str>, factor_on: bool) -> Account {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Account {
            did: "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap(),
            handle: "alice.test".parse().unwrap(),
            email: email.map(str::to_owned),
            password_hash: None,
            created_at: t,
            email_confirmed_at: Some(t),
            deactivated_at: None,
            delete_after: None,
            takedown_ref: None,
            invites_disabled: false,
            email_auth_factor_at: factor_on.then_some(t),
        }
    }

    #[test]
    fn the_email_factor_follows_the_reference_login() {
        use FactorStep::*;
        let on = account(Some("a@example.com"), true);
        let off = account(Some("a@example.com"), false);
        let no_email = account(None, true);
        let cases = [
            (&on, false, None, MailCode),
            (&on, false, Some(""), MailCode),
            (&on, false, Some("AAAAA-BBBBB"), UseCode),
            // App passwords skip the factor, but a code given is still checked.
            (&on, true, None, Pass),
            (&on, true, Some("AAAAA-BBBBB"), UseCode),
            (&off, false, None, Pass),
            (&off, false, Some("AAAAA-BBBBB"), UseCode),
            (&no_email, false, None, Pass),
        ];
        for (i, (account, app_password, code, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                factor_step(account, app_password, code),
                expected,
                "case {i}"
            );
        }
        let e = auth_factor_required();
        assert_eq!(
            (e.status, e.error),
            (StatusCode::UNAUTHORIZED, "AuthFactorTokenRequired")
        );
    }

    #[test]
    fn generated_secrets_have_the_reference_shape() {
        let p = generate_app_password();
        assert_eq!(p.len(), 19);
        let groups: Vec<&str> = p.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| {
            g.len() == 4
                && g.chars()
                    .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        }));
        assert_ne!(p, generate_app_password());
        let code = generate_invite_code("pds.example.com");
        assert!(code.starts_with("pds-example-com-"), "{code}");
        assert_eq!(code.len(), "pds-example-com-".len() + 11);
    }
}
