//! One PDS host of a migration: an XRPC client, the account's password session on it, and calls
//! that refresh the session (or log in again) once when the access token has expired.

use std::time::Duration;

use anyhow::Context;
use atp_syntax::Nsid;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use xrpc_client::{XrpcClient, XrpcError};
use zeroize::Zeroizing;

/// Connect timeout of every call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest silence while reading a response: an import of a large repository is processed
/// before the host answers.
const READ_TIMEOUT: Duration = Duration::from_secs(600);
/// Total timeout of a JSON call (streams have none).
const JSON_TIMEOUT: Duration = Duration::from_secs(120);

/// A reqwest client with the migration's timeouts and user agent.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("pds-migrate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// What `createSession` said about the account.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub did: String,
    pub handle: String,
    pub active: bool,
    pub status: Option<String>,
}

struct Tokens {
    access: String,
    refresh: String,
}

/// A host and the account's session on it.
pub(crate) struct Host {
    /// "old host" or "new host", for messages.
    pub label: &'static str,
    client: XrpcClient,
    identifier: Mutex<String>,
    password: Zeroizing<String>,
    auth_factor_token: Option<Zeroizing<String>>,
    tokens: Mutex<Option<Tokens>>,
}

impl Host {
    /// A host at `url`, logging in as `identifier` with `password`.
    pub(crate) fn new(
        label: &'static str,
        url: &str,
        http: reqwest::Client,
        identifier: &str,
        password: Zeroizing<String>,
    ) -> anyhow::Result<Host> {
        let client = XrpcClient::with_client(url, http)
            .with_context(|| format!("the {label} URL {url:?}"))?
            .with_timeout(Some(JSON_TIMEOUT));
        Ok(Host {
            label,
            client,
            identifier: Mutex::new(identifier.to_owned()),
            password,
            auth_factor_token: None,
            tokens: Mutex::new(None),
        })
    }

    /// Sends this email code with the login (hosts with two-factor sign-in).
    pub(crate) fn set_auth_factor_token(&mut self, token: Option<Zeroizing<String>>) {
        self.auth_factor_token = token;
    }

    /// Logs in with `identifier` from now on (the DID, once known, survives handle changes).
    pub(crate) async fn set_identifier(&self, identifier: &str) {
        *self.identifier.lock().await = identifier.to_owned();
    }

    /// The client without credentials.
    pub(crate) fn anonymous(&self) -> &XrpcClient {
        &self.client
    }

    /// `com.atproto.server.createSession` with the password; keeps the tokens.
    pub(crate) async fn login(&self) -> Result<SessionInfo, XrpcError> {
        let identifier = self.identifier.lock().await.clone();
        let mut input = json!({"identifier": identifier, "password": self.password.as_str()});
        if let Some(token) = &self.auth_factor_token {
            input["authFactorToken"] = json!(token.as_str());
        }
        let out: Value = self
            .client
            .procedure(&method("com.atproto.server.createSession"), &input)
            .await?;
        self.keep_session(&out).await
    }

    /// Takes the tokens of a `createSession`/`createAccount`/`refreshSession` answer.
    pub(crate) async fn keep_session(&self, out: &Value) -> Result<SessionInfo, XrpcError> {
        let text = |k: &str| out.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(access), Some(refresh), Some(did)) =
            (text("accessJwt"), text("refreshJwt"), text("did"))
        else {
            return Err(bad_answer("a session without accessJwt, refreshJwt or did"));
        };
        *self.tokens.lock().await = Some(Tokens { access, refresh });
        Ok(SessionInfo {
            did,
            handle: text("handle").unwrap_or_default(),
            active: out.get("active").and_then(Value::as_bool).unwrap_or(true),
            status: text("status"),
        })
    }

    /// The client with the current access token.
    pub(crate) async fn authed(&self) -> Result<XrpcClient, XrpcError> {
        let guard = self.tokens.lock().await;
        match guard.as_ref() {
            Some(t) => self.client.clone().with_bearer(&t.access),
            None => Ok(self.client.clone()),
        }
    }

    /// After an `ExpiredToken` answer to a call made with `used` (a client from
    /// [`Host::authed`]): refreshes the session, or logs in again if the refresh fails. If
    /// another task refreshed meanwhile, nothing is done.
    pub(crate) async fn renew(&self, used_access: &str) -> Result<(), XrpcError> {
        let mut guard = self.tokens.lock().await;
        let refresh = match guard.as_ref() {
            Some(t) if t.access != used_access => return Ok(()),
            Some(t) => t.refresh.clone(),
            None => String::new(),
        };
        if !refresh.is_empty() {
            let client = self.client.clone().with_bearer(&refresh)?;
            let res: Result<Value, _> = client
                .procedure_bytes(
                    &method("com.atproto.server.refreshSession"),
                    "application/json",
                    Vec::new(),
                )
                .await;
            if let Ok(out) = res {
                let text = |k: &str| out.get(k).and_then(Value::as_str).map(str::to_owned);
                if let (Some(access), Some(refresh)) = (text("accessJwt"), text("refreshJwt")) {
                    *guard = Some(Tokens { access, refresh });
                    return Ok(());
                }
            }
        }
        drop(guard);
        self.login().await.map(|_| ())
    }

    /// The access token now in use ("" before login).
    pub(crate) async fn access_token(&self) -> String {
        self.tokens
            .lock()
            .await
            .as_ref()
            .map(|t| t.access.clone())
            .unwrap_or_default()
    }

    /// An authenticated query, retried once after renewing an expired session.
    pub(crate) async fn query<P, O>(&self, name: &'static str, params: &P) -> Result<O, XrpcError>
    where
        P: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let nsid = method(name);
        let used = self.access_token().await;
        match self.authed().await?.query(&nsid, params).await {
            Err(e) if is_expired(&e) => {
                self.renew(&used).await?;
                self.authed().await?.query(&nsid, params).await
            }
            other => other,
        }
    }

    /// An authenticated procedure with a JSON body, retried once after renewing an expired
    /// session.
    pub(crate) async fn procedure<I, O>(
        &self,
        name: &'static str,
        input: &I,
    ) -> Result<O, XrpcError>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let nsid = method(name);
        let used = self.access_token().await;
        match self.authed().await?.procedure(&nsid, input).await {
            Err(e) if is_expired(&e) => {
                self.renew(&used).await?;
                self.authed().await?.procedure(&nsid, input).await
            }
            other => other,
        }
    }

    /// A procedure without input or output (no request body at all: the reference refuses a
    /// body where the lexicon declares no input), retried once after renewing an expired session.
    pub(crate) async fn call_empty(&self, name: &'static str) -> Result<(), XrpcError> {
        let nsid = method(name);
        let used = self.access_token().await;
        let send = |client: xrpc_client::XrpcClient| {
            let nsid = nsid.clone();
            async move {
                client
                    .procedure_bytes::<Value>(&nsid, "application/json", Vec::new())
                    .await
            }
        };
        match send(self.authed().await?).await {
            Err(e) if is_expired(&e) => {
                self.renew(&used).await?;
                send(self.authed().await?).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// A procedure without output (`Value` swallows an empty or JSON body).
    pub(crate) async fn call<I>(&self, name: &'static str, input: &I) -> Result<(), XrpcError>
    where
        I: Serialize + ?Sized,
    {
        self.procedure::<I, Value>(name, input).await.map(|_| ())
    }
}

/// A method name: every caller passes an NSID literal, which always parses.
pub(crate) fn method(name: &'static str) -> Nsid {
    #[allow(clippy::expect_used)]
    name.parse().expect("an NSID literal")
}

/// Whether the error says the access token expired (the reference's `ExpiredToken`, also a
/// 401 with that name from some hosts).
pub(crate) fn is_expired(e: &XrpcError) -> bool {
    e.error_name() == Some("ExpiredToken")
}

/// An answer that is not what the lexicon says.
pub(crate) fn bad_answer(what: &str) -> XrpcError {
    XrpcError::Response {
        status: xrpc_client::StatusCode::BAD_GATEWAY,
        error: Some("BadAnswer".to_owned()),
        message: Some(what.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pds::auth::{Claims, sign_jwt};
    use pds::state::{AppState, Plc, Secrets};

    /// Our server in-process on a loopback port.
    async fn serve() -> (String, AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let vars = vec![(
            "PDS_DATA_DIRECTORY".to_owned(),
            dir.path().to_str().unwrap().to_owned(),
        )];
        let (config, _) = pds::config::Config::from_vars(vars).unwrap();
        let store = pds_store::Store::open(&config.data_dir).unwrap();
        let secrets = Secrets::load_or_generate(&config).unwrap();
        let plc = plc_directory::PlcDirectory::open(dir.path().join("plc.sqlite")).unwrap();
        let state = AppState::new(config, store, secrets, Plc::Embedded(plc), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = pds::app(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, state, dir)
    }

    /// `token` with the same claims but expired a minute ago, signed with the server's secret.
    fn expired(state: &AppState, typ: &str, token: &str) -> String {
        let payload = token.split('.').nth(1).unwrap();
        let payload = data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap();
        let mut claims: Claims = serde_json::from_slice(&payload).unwrap();
        claims.exp = chrono::Utc::now().timestamp() - 60;
        sign_jwt(state.secrets().jwt_secret.as_bytes(), typ, &claims)
    }

    async fn set_tokens(host: &Host, access: String, refresh: String) {
        *host.tokens.lock().await = Some(Tokens { access, refresh });
    }

    async fn tokens(host: &Host) -> (String, String) {
        let guard = host.tokens.lock().await;
        let t = guard.as_ref().unwrap();
        (t.access.clone(), t.refresh.clone())
    }

    #[tokio::test]
    async fn an_expired_session_is_renewed_and_the_call_retried() {
        let (url, state, _dir) = serve().await;
        let password = Zeroizing::new("hunter22".to_owned());
        let host = Host::new(
            "old host",
            &url,
            http_client().unwrap(),
            "alice.test",
            password,
        )
        .unwrap();
        let created: Value = host
            .anonymous()
            .procedure(
                &method("com.atproto.server.createAccount"),
                &json!({"handle": "alice.test", "email": "a@example.com", "password": "hunter22"}),
            )
            .await
            .unwrap();
        let did = created["did"].as_str().unwrap().to_owned();
        host.login().await.unwrap();

        // An expired access token: refreshed once, then the call goes through.
        let (access, refresh) = tokens(&host).await;
        let stale = expired(&state, "at+jwt", &access);
        set_tokens(&host, stale.clone(), refresh.clone()).await;
        let me: Value = host
            .query("com.atproto.server.getSession", &json!({}))
            .await
            .unwrap();
        assert_eq!(me["did"], did.as_str());
        let (renewed, rotated) = tokens(&host).await;
        assert_ne!(renewed, stale);
        assert_ne!(rotated, refresh, "the session was refreshed, not replaced");

        // The refresh token expired too: a new login, then the procedure goes through.
        let stale_refresh = expired(&state, "refresh+jwt", &rotated);
        let stale = expired(&state, "at+jwt", &renewed);
        set_tokens(&host, stale.clone(), stale_refresh.clone()).await;
        let record: Value = host
            .procedure(
                "com.atproto.repo.createRecord",
                &json!({
                    "repo": did,
                    "collection": "app.bsky.feed.post",
                    "record": {"$type": "app.bsky.feed.post", "text": "after a renewal",
                               "createdAt": "2026-11-27T00:00:00.000Z"},
                }),
            )
            .await
            .unwrap();
        assert!(record["uri"].as_str().unwrap().starts_with("at://"));
        let (access, refresh) = tokens(&host).await;
        assert!(access != stale && refresh != stale_refresh);

        // A token that is not expired but invalid is an error, not a renewal.
        set_tokens(&host, "not.a.token".to_owned(), refresh).await;
        let err = host
            .query::<_, Value>("com.atproto.server.getSession", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.error_name(), Some("InvalidToken"));
    }
}
