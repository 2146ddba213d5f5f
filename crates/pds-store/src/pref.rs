//! Account preferences (`app.bsky.actor.getPreferences` / `putPreferences`).
//!
//! Each preference is one row: its `$type` (`name`) and its JSON. Several rows may share a name;
//! order is insertion order. Writes replace a whole namespace at once (e.g. every `app.bsky`
//! preference), as the reference PDS does.

use atp_syntax::Did;
use rusqlite::params;

use crate::Store;
use crate::error::StoreError;

/// One preference.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    /// Its `$type`.
    pub name: String,
    /// Its JSON value (the whole object, `$type` included).
    pub value: serde_json::Value,
}

/// Whether `name` is `namespace` or inside it (`namespace.` prefix).
fn in_namespace(name: &str, namespace: &str) -> bool {
    name == namespace
        || name
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with('.'))
}

impl Store {
    /// The account's preferences in `namespace` (e.g. `app.bsky`), in stored order.
    pub async fn get_preferences(
        &self,
        did: &Did,
        namespace: &str,
    ) -> Result<Vec<Preference>, StoreError> {
        let (did, namespace) = (did.clone(), namespace.to_owned());
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT name, value_json FROM account_pref WHERE did = ?1 ORDER BY id",
                )?;
                let rows = stmt.query_map([did.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                let mut prefs = Vec::new();
                for row in rows {
                    let (name, json) = row?;
                    if !in_namespace(&name, &namespace) {
                        continue;
                    }
                    let value = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        reason: format!("preference {name} of {did}: {e}"),
                    })?;
                    prefs.push(Preference { name, value });
                }
                Ok(prefs)
            })
            .await
    }

    /// Replaces the account's preferences in `namespace` with `prefs`, atomically. Every
    /// preference must be inside the namespace ([`StoreError::PreferenceOutsideNamespace`]).
    pub async fn put_preferences(
        &self,
        did: &Did,
        namespace: &str,
        prefs: Vec<Preference>,
    ) -> Result<(), StoreError> {
        self.put_preferences_keeping(did, namespace, prefs, Vec::new())
            .await
    }

    /// Like [`Store::put_preferences`], but the stored preferences named in `keep` stay (the
    /// caller may not replace them, e.g. full-access-only preferences under an app password);
    /// they keep their place before the new ones. Read, delete and insert are one transaction.
    pub async fn put_preferences_keeping(
        &self,
        did: &Did,
        namespace: &str,
        prefs: Vec<Preference>,
        keep: Vec<String>,
    ) -> Result<(), StoreError> {
        if let Some(p) = prefs.iter().find(|p| !in_namespace(&p.name, namespace)) {
            return Err(StoreError::PreferenceOutsideNamespace {
                name: p.name.clone(),
                namespace: namespace.to_owned(),
            });
        }
        let (did, namespace) = (did.clone(), namespace.to_owned());
        self.db()
            .write(move |conn| {
                if !crate::db::exists(conn, "SELECT 1 FROM account WHERE did = ?1", [did.as_str()])?
                {
                    return Err(StoreError::AccountNotFound { did });
                }
                let mut ids = Vec::new();
                {
                    let mut stmt =
                        conn.prepare_cached("SELECT id, name FROM account_pref WHERE did = ?1")?;
                    let rows = stmt.query_map([did.as_str()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })?;
                    for row in rows {
                        let (id, name) = row?;
                        if in_namespace(&name, &namespace) && !keep.contains(&name) {
                            ids.push(id);
                        }
                    }
                }
                let mut delete = conn.prepare_cached("DELETE FROM account_pref WHERE id = ?1")?;
                for id in ids {
                    delete.execute([id])?;
                }
                let mut insert = conn.prepare_cached(
                    "INSERT INTO account_pref (did, name, value_json) VALUES (?1, ?2, ?3)",
                )?;
                for p in &prefs {
                    insert.execute(params![did.as_str(), p.name, p.value.to_string()])?;
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::in_namespace;

    #[test]
    fn namespace_prefix() {
        assert!(in_namespace("app.bsky", "app.bsky"));
        assert!(in_namespace(
            "app.bsky.actor.defs#adultContentPref",
            "app.bsky"
        ));
        assert!(!in_namespace("app.bskyx.foo", "app.bsky"));
        assert!(!in_namespace("com.example", "app.bsky"));
    }
}
