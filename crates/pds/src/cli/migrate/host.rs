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
