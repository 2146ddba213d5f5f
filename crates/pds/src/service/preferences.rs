//! Account preferences (`app.bsky.actor.getPreferences` / `putPreferences`), kept on the PDS as
//! the reference does: only the `app.bsky` namespace, the whole set replaced at once.
//!
//! Rules (the reference's `actor-store/preference`):
//! - every preference is an object with a string `$type` inside `app.bsky`;
//! - `app.bsky.actor.defs#personalDetailsPref` (the birth date) needs a full session: app
//!   passwords neither see it, nor set it, nor remove it (a put under an app password keeps it);
//! - `app.bsky.actor.defs#declaredAgePref` is read-only: computed on read from the birth date
//!   (`isOverAge13/16/18`), and silently dropped from a put.

use atp_syntax::Did;
use chrono::{Datelike, NaiveDate};
use pds_store::Preference;
use serde_json::{Map, Value};

use crate::api::error::XrpcError;
use crate::state::AppState;

/// The namespace served here.
pub const NAMESPACE: &str = "app.bsky";
/// The birth-date preference: full sessions only.
pub const PERSONAL_DETAILS_PREF: &str = "app.bsky.actor.defs#personalDetailsPref";
/// The computed, read-only age preference.
pub const DECLARED_AGE_PREF: &str = "app.bsky.actor.defs#declaredAgePref";

/// Whether a session with (`full`) or without full access may see or set `pref_type`.
pub fn pref_allowed(pref_type: &str, full: bool) -> bool {
    full || pref_type != PERSONAL_DETAILS_PREF
}

/// Whether `pref_type` is computed by the server (never stored).
pub fn is_read_only(pref_type: &str) -> bool {
    pref_type == DECLARED_AGE_PREF
}

fn in_namespace(name: &str) -> bool {
    name == NAMESPACE
        || name
            .strip_prefix(NAMESPACE)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Completed years between `birth` and `today` (negative for a future birth date).
fn age_on(birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// The birth date of a `birthDate` string: an RFC 3339 datetime (its UTC date) or a bare
/// `YYYY-MM-DD`; anything else is no date (all age flags then read false, as the reference's
/// `NaN` comparisons do).
fn birth_date(s: &str) -> Option<NaiveDate> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc).date_naive())
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// The computed `declaredAgePref` for a `birthDate` string, on `today`.
pub fn declared_age_pref(birth: &str, today: NaiveDate) -> Value {
    let age = birth_date(birth).map(|b| age_on(b, today));
    let over = |n: i32| age.is_some_and(|a| a >= n);
    serde_json::json!({
        "$type": DECLARED_AGE_PREF,
        "isOverAge13": over(13),
        "isOverAge16": over(16),
        "isOverAge18": over(18),
    })
}

/// The preferences `did` may see with (`full`) or without full access, the computed age
/// preference included.
pub async fn get(
    state: &AppState,
    did: &Did,
    full: bool,
    today: NaiveDate,
) -> Result<Vec<Value>, XrpcError> {
    let stored = state.store().get_preferences(did, NAMESPACE).await?;
    let mut prefs: Vec<(String, Value)> = stored.into_iter().map(|p| (p.name, p.value)).collect();
    let birth = prefs
        .iter()
        .find(|(name, _)| name == PERSONAL_DETAILS_PREF)
        .and_then(|(_, v)| {
            v.get("birthDate")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    if let Some(birth) = birth {
        prefs.push((
            DECLARED_AGE_PREF.to_owned(),
            declared_age_pref(&birth, today),
        ));
    }
    Ok(prefs
        .into_iter()
        .filter(|(name, _)| pref_allowed(name, full))
        .map(|(_, v)| v)
        .collect())
}

/// Checks a putPreferences body: an object whose `preferences` is an array of objects, each
/// with a string `$type` inside `app.bsky` that this session may set. Returns the preferences
/// to store (read-only ones dropped).
pub fn check_input(input: &Value, full: bool) -> Result<Vec<Preference>, XrpcError> {
    let body = input
        .as_object()
        .ok_or_else(|| XrpcError::invalid_request("Input must be an object"))?;
    let items = match body.get("preferences") {
        None => {
            return Err(XrpcError::invalid_request(
                "Input must have the property \"preferences\"",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(XrpcError::invalid_request(
                "Input/preferences must be an array",
            ));
        }
    };
    let mut objects: Vec<&Map<String, Value>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_object() {
            Some(obj) if obj.contains_key("$type") => objects.push(obj),
            _ => {
                return Err(XrpcError::invalid_request(format!(
                    "Input/preferences/{i} must be an object which includes the \"$type\" property"
                )));
            }
        }
    }
    let mut typed = Vec::with_capacity(objects.len());
    for obj in objects {
        let name = obj
            .get("$type")
            .and_then(Value::as_str)
            .ok_or_else(|| XrpcError::invalid_request("Preference is missing a $type"))?;
        typed.push((name.to_owned(), Value::Object(obj.clone())));
    }
    if !typed.iter().all(|(name, _)| in_namespace(name)) {
        return Err(XrpcError::invalid_request(format!(
            "Some preferences are not in the {NAMESPACE} namespace"
        )));
    }
    let forbidden: Vec<&str> = typed
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !pref_allowed(name, full))
        .collect();
    if !forbidden.is_empty() {
        return Err(XrpcError::invalid_request(format!(
            "Do not have authorization to set preferences: {}",
            forbidden.join(", ")
        )));
    }
    Ok(typed
        .into_iter()
        .filter(|(name, _)| !is_read_only(name))
        .map(|(name, value)| Preference { name, value })
        .collect())
}

/// Replaces `did`'s `app.bsky` preferences with the checked `input`; the preferences this
/// session may not set stay as they are. Nothing changes when the input is refused.
pub async fn put(state: &AppState, did: &Did, full: bool, input: &Value) -> Result<(), XrpcError> {
    let prefs = check_input(input, full)?;
    let keep = if full {
        Vec::new()
    } else {
        vec![PERSONAL_DETAILS_PREF.to_owned()]
    };
    state
        .store()
        .put_preferences_keeping(did, NAMESPACE, prefs, keep)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn declared_age_counts_completed_years() {
        let today = date("2025-06-15");
        let flags = |birth: &str| {
            let v = declared_age_pref(birth, today);
            (
                v["isOverAge13"].as_bool().unwrap(),
                v["isOverAge16"].as_bool().unwrap(),
                v["isOverAge18"].as_bool().unwrap(),
            )
        };
        assert_eq!(flags("2007-06-15T00:00:00.000Z"), (true, true, true));
        assert_eq!(flags("2007-06-16T00:00:00.000Z"), (true, true, false));
        assert_eq!(flags("2009-06-15"), (true, true, false));
        assert_eq!(flags("2012-06-15"), (true, false, false));
        assert_eq!(flags("2012-06-16"), (false, false, false));
        assert_eq!(flags("2030-01-01"), (false, false, false));
        assert_eq!(flags("not a date"), (false, false, false));
        assert_eq!(
            declared_age_pref("1970-01-01", today)["$type"],
            DECLARED_AGE_PREF
        );
    }

    #[test]
    fn input_checks_in_the_reference_order() {
        let err = |v: Value, full: bool| check_input(&v, full).unwrap_err().message;
        assert_eq!(
            err(json!({}), true),
            "Input must have the property \"preferences\""
        );
        assert_eq!(err(json!([]), true), "Input must be an object");
        assert_eq!(
            err(json!({"preferences": {}}), true),
            "Input/preferences must be an array"
        );
        assert_eq!(
            err(
                json!({"preferences": [{"$type": "app.bsky.x"}, {"a": 1}]}),
                true
            ),
            "Input/preferences/1 must be an object which includes the \"$type\" property"
        );
        assert_eq!(
            err(json!({"preferences": [3]}), true),
            "Input/preferences/0 must be an object which includes the \"$type\" property"
        );
        assert_eq!(
            err(json!({"preferences": [{"$type": 5}]}), true),
            "Preference is missing a $type"
        );
        assert_eq!(
            err(json!({"preferences": [{"$type": "app.bskyx.foo"}]}), true),
            "Some preferences are not in the app.bsky namespace"
        );
        assert_eq!(
            err(
                json!({"preferences": [{"$type": PERSONAL_DETAILS_PREF, "birthDate": "2000-01-01"}]}),
                false
            ),
            format!("Do not have authorization to set preferences: {PERSONAL_DETAILS_PREF}")
        );
        let ok = check_input(
            &json!({"preferences": [
                {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true},
                {"$type": DECLARED_AGE_PREF, "isOverAge18": true},
                {"$type": PERSONAL_DETAILS_PREF, "birthDate": "2000-01-01"},
            ]}),
            true,
        )
        .unwrap();
        let names: Vec<&str> = ok.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "app.bsky.actor.defs#adultContentPref",
                PERSONAL_DETAILS_PREF
            ]
        );
        assert_eq!(ok[0].value["enabled"], true);
    }
}
