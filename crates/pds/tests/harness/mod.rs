//! Shared by the end-to-end tests: start the real `pds serve` binary in development mode on
//! free loopback ports (PDS and embedded PLC directory) with a given data directory, wait until
//! it answers `/xrpc/_health`, and talk XRPC to it with reqwest.
//!
//! Each test file includes this with `mod harness;`, so not every file uses every helper.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A free loopback port (bound, then released: another process could take it in between,
/// which is unlikely enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local_addr")
        .port()
}

/// A running `pds serve`; killed (SIGKILL) and reaped when dropped, pass or fail.
pub struct Server {
    child: Option<Child>,
    /// The PDS port.
    pub port: u16,
    /// The embedded PLC directory's port.
    pub plc_port: u16,
    /// The data directory.
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    extra_env: Vec<(String, String)>,
}

impl Server {
    /// Starts the server on fresh free ports over `data_dir`, with extra environment variables,
    /// and waits until it is healthy.
    pub async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let extra_env = extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Server::start_on(data_dir, free_port(), free_port(), extra_env).await
    }

    async fn start_on(
        data_dir: &Path,
        port: u16,
        plc_port: u16,
        extra_env: Vec<(String, String)>,
    ) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_pds"))
            .arg("serve")
            .env("PDS_PORT", port.to_string())
            .env("PDS_PLC_EMBEDDED_PORT", plc_port.to_string())
            .env("PDS_DATA_DIRECTORY", data_dir)
            .env("PDS_HOSTNAME", "localhost")
            .env("PDS_DEV_MODE", "true")
            .env("LOG_LEVEL", "warn")
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pds serve");
        let mut server = Server {
            child: Some(child),
            port,
            plc_port,
            data_dir: data_dir.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            extra_env,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client
                .get(format!("{}/xrpc/_health", self.base))
                .send()
                .await
                && res.status().is_success()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("try_wait")
            {
                panic!("pds serve exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "pds serve did not become healthy within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the server (no shutdown hooks run) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory, ports and environment.
    pub async fn restart(&mut self) {
        self.kill();
        let restarted = Server::start_on(
            &self.data_dir,
            self.port,
            self.plc_port,
            std::mem::take(&mut self.extra_env),
        )
        .await;
        *self = restarted;
    }

    /// `<base>/xrpc/<method>`.
    pub fn xrpc(&self, method: &str) -> String {
        format!("{}/xrpc/{method}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An XRPC response: status and JSON body (`Value::Null` if the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
}

impl Reply {
    /// Reads a response's status and JSON body.
    pub async fn read(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// The body of a 200, or a panic naming `what`.
    pub fn ok(self, what: &str) -> Value {
        assert_eq!(self.status, 200, "{what}: {}", self.body);
        self.body
    }

    /// The XRPC error name of a failure.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// POSTs JSON to an XRPC procedure.
pub async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> Reply {
    let mut req = client.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::read(req.send().await.expect("send")).await
}

/// `createSession` with this identifier and password.
pub async fn login(client: &reqwest::Client, server: &Server, id: &str, password: &str) -> Reply {
    post(
        client,
        &server.xrpc("com.atproto.server.createSession"),
        None,
        &json!({"identifier": id, "password": password}),
    )
    .await
}

/// GETs an XRPC query with these parameters.
pub async fn get(client: &reqwest::Client, url: &str, params: &[(&str, &str)]) -> Reply {
    let mut url = url.to_owned();
    for (i, (k, v)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&format!("{}={}", encode(k), encode(v)));
    }
    Reply::read(client.get(&url).send().await.expect("send")).await
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// POSTs raw bytes (uploadBlob).
pub async fn post_bytes(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    bytes: Vec<u8>,
) -> Reply {
    let mut req = client
        .post(url)
        .header("content-type", content_type)
        .body(bytes);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::read(req.send().await.expect("send")).await
}

/// A created account: its DID, handle and access token.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its DID.
    pub did: String,
    /// Its handle.
    pub handle: String,
    /// An access token.
    pub access: String,
}

/// Creates `<name>.test` with password `hunter22`.
pub async fn create_account(client: &reqwest::Client, server: &Server, name: &str) -> Account {
    let handle = format!("{name}.test");
    let body = post(
        client,
        &server.xrpc("com.atproto.server.createAccount"),
        None,
        &json!({"handle": handle, "email": format!("{name}@example.com"), "password": "hunter22"}),
    )
    .await
    .ok("createAccount");
    Account {
        did: body["did"].as_str().expect("did").to_owned(),
        handle,
        access: body["accessJwt"].as_str().expect("accessJwt").to_owned(),
    }
}

/// Every file under `dir` (recursively) with its bytes, sorted by path; empty if `dir` does
/// not exist.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read blob file");
                out.push((path.strip_prefix(dir).expect("prefix").to_owned(), bytes));
            }
        }
    }
    out.sort();
    out
}
