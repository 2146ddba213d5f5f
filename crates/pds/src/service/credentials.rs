//! App passwords and invite codes: generation of the secrets, and the store calls around them.

use atp_syntax::Did;
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use pds_store::{AppPassword, InviteCode, NewInviteCode, StoreError};

use crate::auth;
use crate::service::account::AccountError;
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
