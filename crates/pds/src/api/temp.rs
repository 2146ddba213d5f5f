//! `com.atproto.temp.*` methods the reference PDS serves itself: `checkSignupQueue` (no queue
//! here: always activated) and `checkHandleAvailability` (whether createAccount would accept the
//! handle, with suggestions when it would not).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_syntax::{Datetime, Handle};

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, parse_param};
use crate::auth::AccessAuth;
use crate::service::account::check_handle;
use crate::state::AppState;

/// The lexicon id, for the union `$type`s of the result.
const CHECK_HANDLE_NSID: &str = "com.atproto.temp.checkHandleAvailability";
/// Most suggestions returned (the reference app view's).
const MAX_SUGGESTIONS: usize = 5;
/// Longest suggested handle (the reference's limit).
const MAX_SUGGESTED_HANDLE_LEN: usize = 30;
/// Two-digit numbers never suggested (as the reference).
const AVOID_DIGITS: &[&str] = &["69"];

/// `com.atproto.temp.checkSignupQueue`: this server has no signup queue.
pub async fn check_signup_queue(_auth: AccessAuth) -> Json<Value> {
    Json(json!({ "activated": true }))
}

/// checkHandleAvailability parameters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckHandleParams {
    handle: String,
    email: Option<String>,
    birth_date: Option<String>,
}

fn email_is_valid(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.contains(char::is_whitespace)
}

/// Whether an account could be created with `handle` now.
async fn is_available(state: &AppState, handle: &str) -> Result<bool, XrpcError> {
    let Ok(parsed) = check_handle(handle, &state.config().service_handle_domains) else {
        return Ok(false);
    };
    Ok(state
        .store()
        .get_account_by_handle(&parsed)
        .await?
        .is_none())
}

/// A candidate: the part before the domain, and how it was made.
struct Candidate {
    label: String,
    method: &'static str,
}

fn append_digits(method: &'static str, s: &str, digits: &str) -> Option<Candidate> {
    if s.is_empty() || digits.is_empty() {
        return None;
    }
    let separator = if s.ends_with(|c: char| c.is_ascii_digit()) {
        "-"
    } else {
        ""
    };
    Some(Candidate {
        label: format!("{s}{separator}{digits}"),
        method,
    })
}

fn random_below(n: u32) -> u32 {
    rand_core::RngCore::next_u32(&mut rand_core::OsRng) % n
}

fn deterministic(label: &str, email: Option<&str>, year: Option<&str>) -> Vec<Candidate> {
    let local = email.and_then(|e| e.split('@').next()).map(|l| {
        l.to_ascii_lowercase()
            .replacen('.', "-", 1)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    });
    let mut out = Vec::new();
    if let Some(year) = year {
        out.extend(append_digits("handle_yob", label, year));
    }
    if let Some(local) = local.as_deref().filter(|l| !l.is_empty()) {
        out.push(Candidate {
            label: local.to_owned(),
            method: "email",
        });
        if let Some(year) = year {
            out.extend(append_digits("email_yob", local, year));
        }
    }
    out
}

fn random(label: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    let chars: Vec<char> = label.chars().collect();
    let want = (chars.len() / 2).min(2);
    let mut got = 0;
    let mut rounds = 0;
    while got < want && rounds < 16 {
        rounds += 1;
        for i in 1..chars.len() {
            if got >= want {
                break;
            }
            if random_below(2) == 0 {
                continue;
            }
            let (left, right): (String, String) =
                (chars[..i].iter().collect(), chars[i..].iter().collect());
            out.push(Candidate {
                label: format!("{left}-{right}"),
                method: "hyphen",
            });
            got += 1;
        }
    }
    let mut digits = 0;
    while digits < 2 {
        let n = random_below(100).to_string();
        if AVOID_DIGITS.contains(&n.as_str()) {
            continue;
        }
        out.extend(append_digits("random_digits", label, &n));
        digits += 1;
    }
    out
}

/// Adds the available handles among `candidates` (under `domain`) to `found`.
async fn consider(
    state: &AppState,
    candidates: Vec<Candidate>,
    tentative: &str,
    domain: &str,
    found: &mut Vec<(String, &'static str)>,
) -> Result<(), XrpcError> {
    for c in candidates {
        let handle = format!("{}{domain}", c.label);
        if handle == tentative
            || handle.len() > MAX_SUGGESTED_HANDLE_LEN
            || found.iter().any(|(h, _)| *h == handle)
            || handle.parse::<Handle>().is_err()
        {
            continue;
        }
        if is_available(state, &handle).await? {
            found.push((handle, c.method));
        }
    }
    Ok(())
}

/// Up to [`MAX_SUGGESTIONS`] available handles built from `tentative`'s first label (and the
/// email and birth year), under `domain`.
async fn suggestions(
    state: &AppState,
    tentative: &str,
    domain: &str,
    email: Option<&str>,
    year: Option<&str>,
) -> Result<Vec<Value>, XrpcError> {
    let label = tentative.split('.').next().unwrap_or_default();
    let mut found: Vec<(String, &'static str)> = Vec::new();
    let fixed = deterministic(label, email, year);
    consider(state, fixed, tentative, domain, &mut found).await?;
    let mut attempt = 0;
    while found.len() < MAX_SUGGESTIONS && attempt < 3 {
        consider(state, random(label), tentative, domain, &mut found).await?;
        attempt += 1;
    }
    Ok(found
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(handle, method)| json!({"handle": handle, "method": method}))
        .collect())
}

/// The two-digit birth year, unless it is one the reference avoids.
fn birth_year(birth: &Datetime) -> Option<String> {
    let year: String = birth.as_str().chars().take(4).collect();
    let short = year.get(2..4)?.to_owned();
    (!AVOID_DIGITS.contains(&short.as_str())).then_some(short)
}

/// `com.atproto.temp.checkHandleAvailability`.
pub async fn check_handle_availability(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<CheckHandleParams>,
) -> Result<Json<Value>, XrpcError> {
    let handle: Handle = parse_param("handle", &p.handle)?;
    let birth: Option<Datetime> = p
        .birth_date
        .as_deref()
        .map(|b| parse_param("birthDate", b))
        .transpose()?;
    if let Some(email) = p.email.as_deref().filter(|e| !e.is_empty())
        && !email_is_valid(email)
    {
        return Err(XrpcError::invalid_request("Invalid email address.").named("InvalidEmail"));
    }
    let handle = handle.as_str().to_ascii_lowercase();
    let result = if is_available(&state, &handle).await? {
        json!({ "$type": format!("{CHECK_HANDLE_NSID}#resultAvailable") })
    } else {
        let domains = &state.config().service_handle_domains;
        let domain = domains
            .iter()
            .find(|d| handle.ends_with(d.as_str()))
            .or_else(|| domains.first())
            .cloned()
            .unwrap_or_default();
        let year = birth.as_ref().and_then(birth_year);
        let suggestions = suggestions(
            &state,
            &handle,
            &domain,
            p.email.as_deref().filter(|e| !e.is_empty()),
            year.as_deref(),
        )
        .await?;
        json!({
            "$type": format!("{CHECK_HANDLE_NSID}#resultUnavailable"),
            "suggestions": suggestions,
        })
    };
    Ok(Json(json!({ "handle": handle, "result": result })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        let labels = |cs: Vec<Candidate>| -> Vec<(String, &'static str)> {
            cs.into_iter().map(|c| (c.label, c.method)).collect()
        };
        assert_eq!(
            labels(deterministic("alice", Some("Al.Ice@x.com"), Some("90"))),
            vec![
                ("alice90".to_owned(), "handle_yob"),
                ("al-ice".to_owned(), "email"),
                ("al-ice90".to_owned(), "email_yob"),
            ]
        );
        assert_eq!(
            labels(deterministic("bob2", None, Some("01"))),
            vec![("bob2-01".to_owned(), "handle_yob")]
        );
        assert!(deterministic("bob", None, None).is_empty());
        let r = random("alice");
        assert_eq!(r.iter().filter(|c| c.method == "hyphen").count(), 2);
        assert_eq!(r.iter().filter(|c| c.method == "random_digits").count(), 2);
        for c in &r {
            assert!(
                !c.label.starts_with('-') && !c.label.ends_with('-'),
                "{}",
                c.label
            );
        }
        assert!(random("a").iter().all(|c| c.method == "random_digits"));
    }

    #[test]
    fn emails_and_years() {
        assert!(email_is_valid("a@b.co"));
        assert!(!email_is_valid("a@b"));
        assert!(!email_is_valid("@b.co"));
        assert!(!email_is_valid("a b@c.co"));
        let year = |s: &str| birth_year(&s.parse().unwrap());
        assert_eq!(year("1990-09-11T18:05:42.556Z").as_deref(), Some("90"));
        assert_eq!(year("1969-09-11T18:05:42.556Z"), None);
    }
}
