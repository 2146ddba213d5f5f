//! Email codes end to end against the real `pds serve`: every flow mails its code through an
//! SMTP sink on 127.0.0.1 written here (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT), and the
//! code read from the received message is what the next call uses. Also: codes read with
//! `pds account token` when no SMTP server is configured, and the background jobs (scheduled
//! deletion across a restart, removal of stale uploads).

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64;
use harness::{Reply, Server, create_account, files_under, get, login, post, post_bytes};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One message the sink accepted.
#[derive(Debug, Clone)]
struct Mail {
    /// `AUTH PLAIN` identity and password, if the client authenticated.
    auth: Option<(String, String)>,
    from: String,
    to: Vec<String>,
    /// The message (headers and body), dot-unstuffed.
    data: String,
}

impl Mail {
    fn subject(&self) -> &str {
        self.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
    }

    /// The `XXXXX-XXXXX` code in the body.
    fn code(&self) -> String {
        let bytes = self.data.as_bytes();
        let is_code_char = |b: u8| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b);
        (0..bytes.len().saturating_sub(10))
            .find(|&i| {
                bytes[i + 5] == b'-'
                    && bytes[i..i + 5].iter().all(|&b| is_code_char(b))
                    && bytes[i + 6..i + 11].iter().all(|&b| is_code_char(b))
                    && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            })
            .map(|i| self.data[i..i + 11].to_owned())
            .unwrap_or_else(|| panic!("no code in the message:\n{}", self.data))
    }
}

type Outbox = Arc<Mutex<Vec<Mail>>>;

/// A minimal SMTP server on 127.0.0.1; returns its port and what it received.
async fn smtp_sink() -> (u16, Outbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let outbox: Outbox = Arc::default();
    let shared = outbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let outbox = shared.clone();
            tokio::spawn(async move {
                let _ = smtp_session(stream, outbox).await;
            });
        }
    });
    (port, outbox)
}

async fn smtp_session(stream: tokio::net::TcpStream, outbox: Outbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut auth, mut from, mut to) = (None, String::new(), Vec::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if let Some(creds) = line.strip_prefix("AUTH PLAIN ") {
            let decoded = BASE64.decode(creds.trim().as_bytes()).unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|&b| b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            auth = parts
                .get(1)
                .zip(parts.get(2))
                .map(|(u, p)| (u.clone(), p.clone()));
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push('\n');
            }
            outbox.lock().unwrap().push(Mail {
                auth: auth.clone(),
                from: from.clone(),
                to: to.clone(),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper == "RSET" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

/// Waits until the sink holds `n` messages; returns the last.
async fn mail_number(outbox: &Outbox, n: usize) -> Mail {
    for _ in 0..200 {
        {
            let mails = outbox.lock().unwrap();
            if mails.len() >= n {
                assert_eq!(mails.len(), n, "more messages than expected: {mails:#?}");
                return mails[n - 1].clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {n} messages, got {:#?}", outbox.lock().unwrap());
}

const ADMIN_PASSWORD: &str = "admin-secret";

fn admin_header() -> String {
    format!(
        "Basic {}",
        BASE64.encode(format!("admin:{ADMIN_PASSWORD}").as_bytes())
    )
}

async fn admin_post(client: &reqwest::Client, url: &str, body: &Value, auth: bool) -> Reply {
    let mut req = client.post(url).json(body);
    if auth {
        req = req.header("authorization", admin_header());
    }
    Reply::read(req.send().await.expect("send")).await
}

/// POSTs to XRPC procedures with one client and one session (or none).
#[derive(Clone, Copy)]
struct Caller<'a> {
    c: &'a reqwest::Client,
    token: Option<&'a str>,
}

impl Caller<'_> {
    async fn post(self, url: &str, body: &Value) -> Reply {
        post(self.c, url, self.token, body).await
    }
}

async fn session(client: &reqwest::Client, server: &Server, token: &str) -> Value {
    let res = client
        .get(server.xrpc("com.atproto.server.getSession"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

fn expect_error(reply: &Reply, status: u16, name: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.error()),
        (status, name),
        "{what}: {}",
        reply.body
    );
}

#[tokio::test]
async fn every_email_flow_through_an_smtp_sink() {
    let (smtp_port, outbox) = smtp_sink().await;
    let dir = tempfile::tempdir().unwrap();
    // Credentials are percent-decoded; with no STARTTLS offered, smtp:// stays plain.
    let url = format!("smtp://mailer%40pds.test:p%40ss@127.0.0.1:{smtp_port}");
    let server = Server::start(
        dir.path(),
        &[
            ("PDS_EMAIL_SMTP_URL", &url),
            ("PDS_EMAIL_FROM_ADDRESS", "PDS <noreply@pds.test>"),
            ("PDS_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ],
    )
    .await;
    let c = reqwest::Client::new();
    let alice = create_account(&c, &server, "alice").await;
    let as_alice = Caller {
        c: &c,
        token: Some(&alice.access),
    };
    let anon = Caller { c: &c, token: None };
    let x = |m: &str| server.xrpc(m);
    let s = session(&c, &server, &alice.access).await;
    assert_eq!(
        (&s["email"], &s["emailConfirmed"], &s["emailAuthFactor"]),
        (&json!("alice@example.com"), &json!(false), &json!(false))
    );
    let mut sent = 0;

    // requestEmailConfirmation / confirmEmail.
    let r = as_alice
        .post(
            &x("com.atproto.server.requestEmailConfirmation"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sent += 1;
    let mail = mail_number(&outbox, sent).await;
    assert_eq!(mail.subject(), "Email Confirmation");
    assert_eq!(mail.to, vec!["<alice@example.com>"]);
    assert_eq!(mail.from, "<noreply@pds.test>");
    assert_eq!(
        mail.auth,
        Some(("mailer@pds.test".to_owned(), "p@ss".to_owned()))
    );
    assert!(
        mail.data.contains("From: PDS <noreply@pds.test>"),
        "{}",
        mail.data
    );
    let code = mail.code();
    let confirm = |email: &str, token: &str| json!({"email": email, "token": token});
    let r = as_alice
        .post(
            &x("com.atproto.server.confirmEmail"),
            &confirm("bob@example.com", &code),
        )
        .await;
    expect_error(&r, 400, "InvalidEmail", "confirmEmail with another address");
    let r = as_alice
        .post(
            &x("com.atproto.server.confirmEmail"),
            &confirm("alice@example.com", "AAAAA-AAAAA"),
        )
        .await;
    expect_error(&r, 400, "InvalidToken", "confirmEmail with a wrong code");
    assert_eq!(
        session(&c, &server, &alice.access).await["emailConfirmed"],
        false
    );
    // Codes are case-insensitive and work once.
    let r = as_alice
        .post(
            &x("com.atproto.server.confirmEmail"),
            &confirm("ALICE@example.com", &code.to_lowercase()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        session(&c, &server, &alice.access).await["emailConfirmed"],
        true
    );
    let r = as_alice
        .post(
            &x("com.atproto.server.confirmEmail"),
            &confirm("alice@example.com", &code),
        )
        .await;
    expect_error(&r, 400, "InvalidToken", "a used code");
    let r = anon
        .post(
            &x("com.atproto.server.confirmEmail"),
            &confirm("alice@example.com", &code),
        )
        .await;
    assert_eq!(r.status, 401, "no session: {}", r.body);

    // requestEmailUpdate / updateEmail: a code is needed while the address is confirmed.
    let r = as_alice
        .post(&x("com.atproto.server.requestEmailUpdate"), &json!({}))
        .await;
    assert_eq!(r.ok("requestEmailUpdate"), json!({"tokenRequired": true}));
    sent += 1;
    let mail = mail_number(&outbox, sent).await;
    assert_eq!(mail.subject(), "Email Update Requested");
    assert_eq!(mail.to, vec!["<alice@example.com>"]);
    let update = x("com.atproto.server.updateEmail");
    let r = as_alice
        .post(&update, &json!({"email": "alice2@example.com"}))
        .await;
    expect_error(&r, 400, "TokenRequired", "updateEmail without the code");
    let r = as_alice
        .post(
            &update,
            &json!({"email": "alice2@example.com", "token": "BBBBB-BBBBB"}),
        )
        .await;
    expect_error(&r, 400, "InvalidToken", "updateEmail with a wrong code");
    let r = as_alice
        .post(
            &update,
            &json!({"email": "not-an-address", "token": mail.code()}),
        )
        .await;
    expect_error(&r, 400, "InvalidRequest", "updateEmail to a bad address");
    let r = as_alice
        .post(
            &update,
            &json!({"email": "alice2@example.com", "emailAuthFactor": true, "token": mail.code()}),
        )
        .await;
    expect_error(&r, 400, "InvalidRequest", "emailAuthFactor is not offered");
    let r = as_alice
        .post(
            &update,
            &json!({"email": "Alice2@Example.com", "emailAuthFactor": false, "token": mail.code()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = session(&c, &server, &alice.access).await;
    assert_eq!(
        (&s["email"], &s["emailConfirmed"]),
        (&json!("alice2@example.com"), &json!(false))
    );
    // Unconfirmed: no code, no mail.
    let r = as_alice
        .post(&x("com.atproto.server.requestEmailUpdate"), &json!({}))
        .await;
    assert_eq!(r.ok("requestEmailUpdate"), json!({"tokenRequired": false}));
    let r = as_alice
        .post(&update, &json!({"email": "alice@example.com"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Another account's address is refused.
    let bob = create_account(&c, &server, "bob").await;
    let r = as_alice
        .post(&update, &json!({"email": "bob@example.com"}))
        .await;
    expect_error(&r, 400, "InvalidRequest", "updateEmail to a taken address");
    assert_eq!(
        mail_number(&outbox, sent).await.subject(),
        "Email Update Requested"
    );

    // An expired code: age it in the database.
    let r = as_alice
        .post(
            &x("com.atproto.server.requestEmailConfirmation"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sent += 1;
    let code = mail_number(&outbox, sent).await.code();
    {
        let db = rusqlite::Connection::open(dir.path().join("pds.sqlite")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let n = db
            .execute(
                "UPDATE email_token SET requested_at = requested_at - 16 * 60 * 1000 WHERE did = ?1",
                [&alice.did],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let r = as_alice
        .post(
            &x("com.atproto.server.confirmEmail"),
            &confirm("alice@example.com", &code),
        )
        .await;
    expect_error(&r, 400, "ExpiredToken", "an expired code");

    // requestPasswordReset / resetPassword: sessions are revoked.
    let first = login(&c, &server, "alice.test", "hunter22")
        .await
        .ok("login");
    let refresh = first["refreshJwt"].as_str().unwrap().to_owned();
    let r = anon
        .post(
            &x("com.atproto.server.requestPasswordReset"),
            &json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(r.status, 200, "unknown address: {}", r.body);
    let r = anon
        .post(
            &x("com.atproto.server.requestPasswordReset"),
            &json!({"email": "ALICE@example.com"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sent += 1;
    let mail = mail_number(&outbox, sent).await;
    assert_eq!(mail.subject(), "Password Reset Requested");
    assert!(mail.data.contains("alice.test"), "{}", mail.data);
    let reset = x("com.atproto.server.resetPassword");
    let r = anon
        .post(
            &reset,
            &json!({"token": "CCCCC-CCCCC", "password": "new-password"}),
        )
        .await;
    expect_error(&r, 400, "InvalidToken", "resetPassword with a wrong code");
    let r = anon
        .post(
            &reset,
            &json!({"token": mail.code(), "password": "x".repeat(300)}),
        )
        .await;
    expect_error(&r, 400, "InvalidRequest", "a too long password");
    let r = anon
        .post(
            &reset,
            &json!({"token": mail.code(), "password": "new-password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = anon
        .post(&reset, &json!({"token": mail.code(), "password": "other"}))
        .await;
    expect_error(&r, 400, "InvalidToken", "a used reset code");
    let r = post(
        &c,
        &x("com.atproto.server.refreshSession"),
        Some(&refresh),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 400, "the old session must be revoked: {}", r.body);
    assert_eq!(
        login(&c, &server, "alice.test", "hunter22").await.status,
        401
    );
    let fresh = login(&c, &server, "alice.test", "new-password")
        .await
        .ok("login");
    let access = fresh["accessJwt"].as_str().unwrap().to_owned();

    // requestPlcOperationSignature: a code for signPlcOperation, full sessions only.
    let app = post(
        &c,
        &x("com.atproto.server.createAppPassword"),
        Some(&access),
        &json!({"name": "app"}),
    )
    .await
    .ok("createAppPassword");
    let app_session = login(&c, &server, "alice.test", app["password"].as_str().unwrap())
        .await
        .ok("app login");
    let app_access = app_session["accessJwt"].as_str().unwrap();
    let r = post(
        &c,
        &x("com.atproto.identity.requestPlcOperationSignature"),
        Some(app_access),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 401, "app passwords may not: {}", r.body);
    let r = post(
        &c,
        &x("com.atproto.identity.requestPlcOperationSignature"),
        Some(&access),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sent += 1;
    let mail = mail_number(&outbox, sent).await;
    assert_eq!(mail.subject(), "PLC Update Operation Requested");
    let db = dir.path().join("pds.sqlite");
    let stored: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT token FROM email_token WHERE did = ?1 AND purpose = 'plc_operation'",
            [&alice.did],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, mail.code());
    // signPlcOperation (the migration side) takes the mailed code once.
    let sign = x("com.atproto.identity.signPlcOperation");
    let r = post(&c, &sign, Some(&access), &json!({"token": "EEEEE-EEEEE"})).await;
    expect_error(
        &r,
        400,
        "InvalidToken",
        "signPlcOperation with a wrong code",
    );
    let r = post(&c, &sign, Some(&access), &json!({"token": mail.code()})).await;
    assert!(
        r.body["operation"].is_object(),
        "signPlcOperation: {}",
        r.body
    );
    let r = post(&c, &sign, Some(&access), &json!({"token": mail.code()})).await;
    expect_error(&r, 400, "InvalidToken", "a used PLC code");

    // admin.sendEmail and admin.updateAccountEmail.
    let send = x("com.atproto.admin.sendEmail");
    let body = json!({"recipientDid": bob.did, "senderDid": alice.did, "content": "Hello Bob,\n.\nA line with a dot.", "comment": "test"});
    let r = admin_post(&c, &send, &body, false).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = admin_post(&c, &send, &body, true).await;
    assert_eq!(r.ok("sendEmail"), json!({"sent": true}));
    sent += 1;
    let mail = mail_number(&outbox, sent).await;
    assert_eq!(
        (mail.subject(), mail.to.clone()),
        ("Message via your PDS", vec!["<bob@example.com>".to_owned()])
    );
    assert!(
        mail.data.contains("Hello Bob,\n.\nA line with a dot."),
        "{}",
        mail.data
    );
    let r = admin_post(&c, &send, &json!({"recipientDid": "did:plc:nobodynobodynobodynobody", "senderDid": alice.did, "content": "x", "subject": "S"}), true).await;
    expect_error(&r, 400, "InvalidRequest", "sendEmail to an unknown account");
    let change = x("com.atproto.admin.updateAccountEmail");
    let r = admin_post(
        &c,
        &change,
        &json!({"account": "bob.test", "email": "robert@example.com"}),
        false,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = admin_post(
        &c,
        &change,
        &json!({"account": "bob.test", "email": "robert@example.com"}),
        true,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        session(&c, &server, &bob.access).await["email"],
        "robert@example.com"
    );
    let r = admin_post(
        &c,
        &change,
        &json!({"account": "nobody.test", "email": "n@example.com"}),
        true,
    )
    .await;
    expect_error(
        &r,
        400,
        "InvalidRequest",
        "updateAccountEmail of an unknown account",
    );
    let r = admin_post(
        &c,
        &change,
        &json!({"account": bob.did, "email": "alice@example.com"}),
        true,
    )
    .await;
    expect_error(
        &r,
        400,
        "InvalidRequest",
        "updateAccountEmail to a taken address",
    );

    // requestAccountDelete / deleteAccount.
    let r = post(
        &c,
        &x("com.atproto.server.requestAccountDelete"),
        Some(&access),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sent += 1;
    let mail = mail_number(&outbox, sent).await;
    assert_eq!(mail.subject(), "Account Deletion Requested");
    let delete = x("com.atproto.server.deleteAccount");
    let r = anon
        .post(
            &delete,
            &json!({"did": alice.did, "password": "hunter22", "token": mail.code()}),
        )
        .await;
    expect_error(
        &r,
        401,
        "AuthenticationRequired",
        "deleteAccount with a wrong password",
    );
    let r = anon
        .post(
            &delete,
            &json!({"did": alice.did, "password": "new-password", "token": "DDDDD-DDDDD"}),
        )
        .await;
    expect_error(&r, 400, "InvalidToken", "deleteAccount with a wrong code");
    let r = anon
        .post(
            &delete,
            &json!({"did": bob.did, "password": "hunter22", "token": mail.code()}),
        )
        .await;
    expect_error(&r, 400, "InvalidToken", "another account's code");
    let r = anon
        .post(
            &delete,
            &json!({"did": alice.did, "password": "new-password", "token": mail.code()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        login(&c, &server, "alice.test", "new-password")
            .await
            .status,
        401
    );
    let r = get(
        &c,
        &x("com.atproto.sync.getRepoStatus"),
        &[("did", &alice.did)],
    )
    .await;
    expect_error(&r, 400, "RepoNotFound", "the deleted repository");
    let r = anon
        .post(
            &delete,
            &json!({"did": alice.did, "password": "new-password", "token": mail.code()}),
        )
        .await;
    expect_error(&r, 400, "InvalidRequest", "deleting twice");
    // Bob is untouched.
    assert_eq!(login(&c, &server, "bob.test", "hunter22").await.status, 200);
    assert_eq!(outbox.lock().unwrap().len(), sent, "no unexpected messages");
}

/// Runs `pds` with these arguments and environment.
fn pds(args: &[&str], env: &[(&str, &std::path::Path)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pds"));
    cmd.args(args).env_remove("PDS_DATA_DIRECTORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pds")
}

#[tokio::test]
async fn without_smtp_codes_are_read_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let c = reqwest::Client::new();
    let alice = create_account(&c, &server, "alice").await;
    let as_alice = Caller {
        c: &c,
        token: Some(&alice.access),
    };
    let r = as_alice
        .post(
            &server.xrpc("com.atproto.server.requestEmailConfirmation"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "logged, not sent: {}", r.body);
    let data = [("PDS_DATA_DIRECTORY", dir.path())];
    // While the server runs, by handle (PDS_DATA_DIRECTORY) or DID (--data-dir).
    let out = pds(&["account", "token", "alice.test", "confirm_email"], &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 11, "{code}");
    let dir_arg = dir.path().to_str().unwrap();
    let out = pds(
        &[
            "account",
            "token",
            &alice.did,
            "confirm_email",
            "--data-dir",
            dir_arg,
        ],
        &[],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), code);
    // No code for another purpose, no such account, a bad purpose, no database.
    assert_eq!(
        pds(&["account", "token", "alice.test", "delete_account"], &data)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        pds(&["account", "token", "nobody.test", "confirm_email"], &data)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        pds(&["account", "token", "alice.test", "sign_in"], &data)
            .status
            .code(),
        Some(2)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = pds(
        &[
            "account",
            "token",
            "alice.test",
            "confirm_email",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    // The code works once; then the CLI has nothing to show.
    let r = as_alice
        .post(
            &server.xrpc("com.atproto.server.confirmEmail"),
            &json!({"email": "alice@example.com", "token": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        pds(&["account", "token", "alice.test", "confirm_email"], &data)
            .status
            .code(),
        Some(1)
    );
    // After the server stops, the database is still readable.
    let r = as_alice
        .post(
            &server.xrpc("com.atproto.identity.requestPlcOperationSignature"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(server);
    let out = pds(&["account", "token", "ALICE.test", "plc_operation"], &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn scheduled_deletion_happens_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("PDS_JOBS_INTERVAL_MS", "200")];
    let mut server = Server::start(dir.path(), &env).await;
    let c = reqwest::Client::new();
    let alice = create_account(&c, &server, "alice").await;
    let as_alice = Caller {
        c: &c,
        token: Some(&alice.access),
    };
    let bob = create_account(&c, &server, "bob").await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(2);
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let deactivate = server.xrpc("com.atproto.server.deactivateAccount");
    let r = as_alice
        .post(&deactivate, &json!({"deleteAfter": at(deadline)}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let later = chrono::Utc::now() + chrono::Duration::days(30);
    let r = post(
        &c,
        &deactivate,
        Some(&bob.access),
        &json!({"deleteAfter": at(later)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Down before the deadline, up after it.
    server.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.restart().await;
    let status = |did: String| {
        let (c, url) = (c.clone(), server.xrpc("com.atproto.sync.getRepoStatus"));
        async move { get(&c, &url, &[("did", &did)]).await }
    };
    wait_until("alice's scheduled deletion", || {
        let s = status(alice.did.clone());
        async move { s.await.error() == "RepoNotFound" }
    })
    .await;
    assert_eq!(
        login(&c, &server, "alice.test", "hunter22").await.status,
        401
    );
    // Bob's deadline is a month away: still there, deactivated.
    let r = status(bob.did.clone()).await.ok("bob's status");
    assert_eq!(
        (&r["active"], &r["status"]),
        (&json!(false), &json!("deactivated"))
    );
}

#[tokio::test]
async fn uploads_no_record_uses_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PDS_JOBS_INTERVAL_MS", "200"),
        ("PDS_BLOB_TEMP_TTL_MS", "1000"),
    ];
    let server = Server::start(dir.path(), &env).await;
    let c = reqwest::Client::new();
    let alice = create_account(&c, &server, "alice").await;
    let as_alice = Caller {
        c: &c,
        token: Some(&alice.access),
    };
    let upload = server.xrpc("com.atproto.repo.uploadBlob");
    let unused = post_bytes(
        &c,
        &upload,
        Some(&alice.access),
        "image/png",
        b"never used".to_vec(),
    )
    .await
    .ok("upload");
    let used = post_bytes(
        &c,
        &upload,
        Some(&alice.access),
        "image/png",
        b"used".to_vec(),
    )
    .await
    .ok("upload");
    let record = json!({"$type": "app.bsky.feed.post", "text": "with a blob", "createdAt": "2024-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": used["blob"]}]}});
    let r = as_alice
        .post(
            &server.xrpc("com.atproto.repo.createRecord"),
            &json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": record}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tmp = dir.path().join("blobs").join("tmp");
    assert_eq!(files_under(&tmp).len(), 1, "the unused upload waits in tmp");
    wait_until("the stale upload's removal", || {
        let tmp = tmp.clone();
        async move { files_under(&tmp).is_empty() }
    })
    .await;
    let db = rusqlite::Connection::open(dir.path().join("pds.sqlite")).unwrap();
    let temporary: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM blob WHERE status = 'temporary'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(temporary, 0);
    // The referenced blob is still served; the unused one is not.
    let cid = |v: &Value| v["blob"]["ref"]["$link"].as_str().unwrap().to_owned();
    let url = format!(
        "{}?did={}&cid={}",
        server.xrpc("com.atproto.sync.getBlob"),
        alice.did,
        cid(&used)
    );
    let blob = c.get(url).send().await.unwrap();
    assert_eq!(blob.status().as_u16(), 200);
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"used");
    let r = get(
        &c,
        &server.xrpc("com.atproto.sync.getBlob"),
        &[("did", &alice.did), ("cid", &cid(&unused))],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
}
