//! Email codes end to end against the real `pds serve`: every flow mails its code through an
//! SMTP sink on 127.0.0.1 written here (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT), and the
//! code read from the received message is what the next call uses; the email sign-in factor
//! (updateEmail `emailAuthFactor`, createSession `authFactorToken`) the same way. Also: codes
//! read with `pds account token` when no SMTP server is configured, and the background jobs
//! (scheduled deletion across a restart, removal of stale uploads).

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64;
use harness::{Account, Reply, Server, create_account, files_under, get, login, post, post_bytes};
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

/// The sink's messages, read in order.
struct Inbox {
    outbox: Outbox,
    read: usize,
}

impl Inbox {
    fn new(outbox: Outbox) -> Inbox {
        Inbox { outbox, read: 0 }
    }

    /// Waits for the next message and checks its subject and recipient.
    async fn next(&mut self, subject: &str, to: &str) -> Mail {
        self.read += 1;
        let n = self.read;
        for _ in 0..200 {
            let mail = {
                let mails = self.outbox.lock().unwrap();
                assert!(mails.len() <= n, "more messages than expected: {mails:#?}");
                mails.get(n - 1).cloned()
            };
            if let Some(mail) = mail {
                assert_eq!(
                    (mail.subject(), mail.to.clone()),
                    (subject, vec![format!("<{to}>")]),
                    "message {n}: {}",
                    mail.data
                );
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "expected a message {n} ({subject}), got {:#?}",
            self.outbox.lock().unwrap()
        );
    }

    /// Asserts that nothing arrived since the last message read.
    fn nothing_new(&self, what: &str) {
        let mails = self.outbox.lock().unwrap();
        assert_eq!(mails.len(), self.read, "{what}: unexpected mail {mails:#?}");
    }
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

/// Calls one server's XRPC procedures with one client and one session (or none).
#[derive(Clone, Copy)]
struct Caller<'a> {
    c: &'a reqwest::Client,
    server: &'a Server,
    token: Option<&'a str>,
}

impl<'a> Caller<'a> {
    fn new(c: &'a reqwest::Client, server: &'a Server, token: Option<&'a str>) -> Caller<'a> {
        Caller { c, server, token }
    }

    async fn post(self, method: &str, body: &Value) -> Reply {
        post(self.c, &self.server.xrpc(method), self.token, body).await
    }

    /// The body of a 200 answer.
    async fn ok(self, method: &str, body: &Value) -> Value {
        self.post(method, body).await.ok(method)
    }

    /// Asserts that the call fails with this status and error name.
    async fn fails(self, method: &str, body: &Value, status: u16, name: &str, what: &str) -> Reply {
        let reply = self.post(method, body).await;
        expect_error(&reply, status, name, what);
        reply
    }

    /// getSession of this caller's session.
    async fn session(self) -> Value {
        let res = self
            .c
            .get(self.server.xrpc("com.atproto.server.getSession"))
            .bearer_auth(self.token.expect("a session"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.json().await.unwrap()
    }
}

/// `createSession` with this password and, if given, `authFactorToken`.
async fn login_with(
    anon: Caller<'_>,
    id: &str,
    password: &str,
    auth_factor_token: Option<&str>,
) -> Reply {
    let mut body = json!({"identifier": id, "password": password});
    if let Some(code) = auth_factor_token {
        body["authFactorToken"] = json!(code);
    }
    anon.post("com.atproto.server.createSession", &body).await
}

fn expect_error(reply: &Reply, status: u16, name: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.error()),
        (status, name),
        "{what}: {}",
        reply.body
    );
}

/// Moves every email code of `did` 16 minutes into the past (expired).
fn age_email_tokens(dir: &std::path::Path, did: &str) {
    let db = rusqlite::Connection::open(dir.join("pds.sqlite")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let n = db
        .execute(
            "UPDATE email_token SET requested_at = requested_at - 16 * 60 * 1000 WHERE did = ?1",
            [did],
        )
        .unwrap();
    assert!(n > 0, "no code to age");
}

/// A server that mails through a fresh SMTP sink, and the account alice.
struct Mailing {
    /// The data directory (kept until the test ends).
    dir: tempfile::TempDir,
    server: Server,
    inbox: Inbox,
    c: reqwest::Client,
    alice: Account,
}

async fn mailing() -> Mailing {
    let dir = tempfile::tempdir().unwrap();
    let (smtp_port, outbox) = smtp_sink().await;
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
    Mailing {
        dir,
        server,
        inbox: Inbox::new(outbox),
        c,
        alice,
    }
}

#[tokio::test]
async fn every_email_flow_through_an_smtp_sink() {
    let Mailing {
        dir,
        server,
        mut inbox,
        c,
        alice,
    } = mailing().await;
    let as_alice = Caller::new(&c, &server, Some(&alice.access));
    let anon = Caller::new(&c, &server, None);
    let x = |m: &str| server.xrpc(m);
    let s = as_alice.session().await;
    assert_eq!(
        (&s["email"], &s["emailConfirmed"], &s["emailAuthFactor"]),
        (&json!("alice@example.com"), &json!(false), &json!(false))
    );

    // requestEmailConfirmation / confirmEmail.
    as_alice
        .ok("com.atproto.server.requestEmailConfirmation", &json!({}))
        .await;
    let mail = inbox.next("Email Confirmation", "alice@example.com").await;
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
    let confirm_email = "com.atproto.server.confirmEmail";
    let confirm = |email: &str, token: &str| json!({"email": email, "token": token});
    as_alice
        .fails(
            confirm_email,
            &confirm("bob@example.com", &code),
            400,
            "InvalidEmail",
            "confirmEmail with another address",
        )
        .await;
    as_alice
        .fails(
            confirm_email,
            &confirm("alice@example.com", "AAAAA-AAAAA"),
            400,
            "InvalidToken",
            "confirmEmail with a wrong code",
        )
        .await;
    assert_eq!(as_alice.session().await["emailConfirmed"], false);
    // Codes are case-insensitive and work once.
    as_alice
        .ok(
            confirm_email,
            &confirm("ALICE@example.com", &code.to_lowercase()),
        )
        .await;
    assert_eq!(as_alice.session().await["emailConfirmed"], true);
    as_alice
        .fails(
            confirm_email,
            &confirm("alice@example.com", &code),
            400,
            "InvalidToken",
            "a used code",
        )
        .await;
    let r = anon
        .post(confirm_email, &confirm("alice@example.com", &code))
        .await;
    assert_eq!(r.status, 401, "no session: {}", r.body);

    // requestEmailUpdate / updateEmail: a code is needed while the address is confirmed.
    let request_update = "com.atproto.server.requestEmailUpdate";
    let r = as_alice.ok(request_update, &json!({})).await;
    assert_eq!(r, json!({"tokenRequired": true}));
    let mail = inbox
        .next("Email Update Requested", "alice@example.com")
        .await;
    let update = "com.atproto.server.updateEmail";
    let to = |email: &str, token: &str| json!({"email": email, "token": token});
    as_alice
        .fails(
            update,
            &json!({"email": "alice2@example.com"}),
            400,
            "TokenRequired",
            "updateEmail without the code",
        )
        .await;
    as_alice
        .fails(
            update,
            &to("alice2@example.com", "BBBBB-BBBBB"),
            400,
            "InvalidToken",
            "updateEmail with a wrong code",
        )
        .await;
    as_alice
        .fails(
            update,
            &to("not-an-address", &mail.code()),
            400,
            "InvalidRequest",
            "updateEmail to a bad address",
        )
        .await;
    as_alice
        .fails(
            update,
            &json!({"email": "alice2@example.com", "emailAuthFactor": true, "token": mail.code()}),
            400,
            "InvalidRequest",
            "the sign-in factor goes with the current, confirmed address",
        )
        .await;
    as_alice
        .ok(
            update,
            &json!({"email": "Alice2@Example.com", "emailAuthFactor": false, "token": mail.code()}),
        )
        .await;
    let s = as_alice.session().await;
    assert_eq!(
        (&s["email"], &s["emailConfirmed"]),
        (&json!("alice2@example.com"), &json!(false))
    );
    // Unconfirmed: no code, no mail.
    let r = as_alice.ok(request_update, &json!({})).await;
    assert_eq!(r, json!({"tokenRequired": false}));
    as_alice
        .ok(update, &json!({"email": "alice@example.com"}))
        .await;
    // Another account's address is refused.
    let bob = create_account(&c, &server, "bob").await;
    as_alice
        .fails(
            update,
            &json!({"email": "bob@example.com"}),
            400,
            "InvalidRequest",
            "updateEmail to a taken address",
        )
        .await;
    inbox.nothing_new("unconfirmed address changes");

    // An expired code: age it in the database.
    as_alice
        .ok("com.atproto.server.requestEmailConfirmation", &json!({}))
        .await;
    let code = inbox
        .next("Email Confirmation", "alice@example.com")
        .await
        .code();
    age_email_tokens(dir.path(), &alice.did);
    as_alice
        .fails(
            confirm_email,
            &confirm("alice@example.com", &code),
            400,
            "ExpiredToken",
            "an expired code",
        )
        .await;

    // requestPasswordReset / resetPassword: sessions are revoked.
    let first = login(&c, &server, "alice.test", "hunter22")
        .await
        .ok("login");
    let refresh = first["refreshJwt"].as_str().unwrap().to_owned();
    let request_reset = "com.atproto.server.requestPasswordReset";
    anon.ok(request_reset, &json!({"email": "nobody@example.com"}))
        .await;
    anon.ok(request_reset, &json!({"email": "ALICE@example.com"}))
        .await;
    let mail = inbox
        .next("Password Reset Requested", "alice@example.com")
        .await;
    assert!(mail.data.contains("alice.test"), "{}", mail.data);
    let reset = "com.atproto.server.resetPassword";
    let new_password = |token: &str, password: &str| json!({"token": token, "password": password});
    anon.fails(
        reset,
        &new_password("CCCCC-CCCCC", "new-password"),
        400,
        "InvalidToken",
        "resetPassword with a wrong code",
    )
    .await;
    anon.fails(
        reset,
        &new_password(&mail.code(), &"x".repeat(300)),
        400,
        "InvalidRequest",
        "a too long password",
    )
    .await;
    anon.ok(reset, &new_password(&mail.code(), "new-password"))
        .await;
    anon.fails(
        reset,
        &new_password(&mail.code(), "other"),
        400,
        "InvalidToken",
        "a used reset code",
    )
    .await;
    let r = Caller::new(&c, &server, Some(&refresh))
        .post("com.atproto.server.refreshSession", &json!({}))
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
    let as_alice = Caller::new(&c, &server, Some(&access));

    // requestPlcOperationSignature: a code for signPlcOperation, full sessions only.
    let app = as_alice
        .ok(
            "com.atproto.server.createAppPassword",
            &json!({"name": "app"}),
        )
        .await;
    let app_session = login(&c, &server, "alice.test", app["password"].as_str().unwrap())
        .await
        .ok("app login");
    let request_plc = "com.atproto.identity.requestPlcOperationSignature";
    let r = Caller::new(&c, &server, app_session["accessJwt"].as_str())
        .post(request_plc, &json!({}))
        .await;
    assert_eq!(r.status, 401, "app passwords may not: {}", r.body);
    as_alice.ok(request_plc, &json!({})).await;
    let mail = inbox
        .next("PLC Update Operation Requested", "alice@example.com")
        .await;
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
    let sign = "com.atproto.identity.signPlcOperation";
    as_alice
        .fails(
            sign,
            &json!({"token": "EEEEE-EEEEE"}),
            400,
            "InvalidToken",
            "signPlcOperation with a wrong code",
        )
        .await;
    let r = as_alice.ok(sign, &json!({"token": mail.code()})).await;
    assert!(r["operation"].is_object(), "signPlcOperation: {r}");
    as_alice
        .fails(
            sign,
            &json!({"token": mail.code()}),
            400,
            "InvalidToken",
            "a used PLC code",
        )
        .await;

    // admin.sendEmail and admin.updateAccountEmail.
    let send = x("com.atproto.admin.sendEmail");
    let body = json!({"recipientDid": bob.did, "senderDid": alice.did, "content": "Hello Bob,\n.\nA line with a dot.", "comment": "test"});
    let r = admin_post(&c, &send, &body, false).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = admin_post(&c, &send, &body, true).await;
    assert_eq!(r.ok("sendEmail"), json!({"sent": true}));
    let mail = inbox.next("Message via your PDS", "bob@example.com").await;
    assert!(
        mail.data.contains("Hello Bob,\n.\nA line with a dot."),
        "{}",
        mail.data
    );
    let r = admin_post(&c, &send, &json!({"recipientDid": "did:plc:nobodynobodynobodynobody", "senderDid": alice.did, "content": "x", "subject": "S"}), true).await;
    expect_error(&r, 400, "InvalidRequest", "sendEmail to an unknown account");
    let change = x("com.atproto.admin.updateAccountEmail");
    let change_to = |account: &str, email: &str| json!({"account": account, "email": email});
    let r = admin_post(
        &c,
        &change,
        &change_to("bob.test", "robert@example.com"),
        false,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    admin_post(
        &c,
        &change,
        &change_to("bob.test", "robert@example.com"),
        true,
    )
    .await
    .ok("updateAccountEmail");
    let as_bob = Caller::new(&c, &server, Some(&bob.access));
    assert_eq!(as_bob.session().await["email"], "robert@example.com");
    for (account, email, what) in [
        (
            "nobody.test",
            "n@example.com",
            "updateAccountEmail of an unknown account",
        ),
        (
            bob.did.as_str(),
            "alice@example.com",
            "updateAccountEmail to a taken address",
        ),
    ] {
        let r = admin_post(&c, &change, &change_to(account, email), true).await;
        expect_error(&r, 400, "InvalidRequest", what);
    }

    // requestAccountDelete / deleteAccount.
    as_alice
        .ok("com.atproto.server.requestAccountDelete", &json!({}))
        .await;
    let mail = inbox
        .next("Account Deletion Requested", "alice@example.com")
        .await;
    let delete = "com.atproto.server.deleteAccount";
    let deletion = |did: &str, password: &str, token: &str| json!({"did": did, "password": password, "token": token});
    anon.fails(
        delete,
        &deletion(&alice.did, "hunter22", &mail.code()),
        401,
        "AuthenticationRequired",
        "deleteAccount with a wrong password",
    )
    .await;
    anon.fails(
        delete,
        &deletion(&alice.did, "new-password", "DDDDD-DDDDD"),
        400,
        "InvalidToken",
        "deleteAccount with a wrong code",
    )
    .await;
    anon.fails(
        delete,
        &deletion(&bob.did, "hunter22", &mail.code()),
        400,
        "InvalidToken",
        "another account's code",
    )
    .await;
    anon.ok(delete, &deletion(&alice.did, "new-password", &mail.code()))
        .await;
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
    anon.fails(
        delete,
        &deletion(&alice.did, "new-password", &mail.code()),
        400,
        "InvalidRequest",
        "deleting twice",
    )
    .await;
    // Bob is untouched.
    assert_eq!(login(&c, &server, "bob.test", "hunter22").await.status, 200);
    inbox.nothing_new("the end");
}

/// Confirms `caller`'s address (`email`) with the mailed code.
async fn confirm_address(caller: Caller<'_>, inbox: &mut Inbox, email: &str) {
    caller
        .ok("com.atproto.server.requestEmailConfirmation", &json!({}))
        .await;
    let code = inbox.next("Email Confirmation", email).await.code();
    caller
        .ok(
            "com.atproto.server.confirmEmail",
            &json!({"email": email, "token": code}),
        )
        .await;
}

#[tokio::test]
async fn email_sign_in_factor_through_an_smtp_sink() {
    let Mailing {
        dir,
        server,
        mut inbox,
        c,
        alice,
    } = mailing().await;
    let as_alice = Caller::new(&c, &server, Some(&alice.access));
    let anon = Caller::new(&c, &server, None);
    let update = "com.atproto.server.updateEmail";
    let factor = |on: bool| json!({"email": "alice@example.com", "emailAuthFactor": on});
    let state = |s: &Value| (s["emailConfirmed"].clone(), s["emailAuthFactor"].clone());

    // Turning it on needs a confirmed address: the current one.
    as_alice
        .fails(
            update,
            &factor(true),
            400,
            "InvalidRequest",
            "an unconfirmed address",
        )
        .await;
    confirm_address(as_alice, &mut inbox, "alice@example.com").await;
    as_alice
        .fails(
            update,
            &json!({"email": "new@example.com", "emailAuthFactor": true}),
            400,
            "InvalidRequest",
            "with another address",
        )
        .await;
    // On at once: no code, no mail, the address stays confirmed; twice is the same.
    for _ in 0..2 {
        as_alice
            .ok(
                update,
                &json!({"email": "ALICE@example.com", "emailAuthFactor": true}),
            )
            .await;
    }
    let s = as_alice.session().await;
    assert_eq!(
        (s["email"].clone(), state(&s)),
        (json!("alice@example.com"), (json!(true), json!(true)))
    );
    inbox.nothing_new("turning the factor on");

    // A password login now mails a sign-in code and fails until it is given.
    let r = login_with(anon, "alice.test", "hunter22", None).await;
    expect_error(&r, 401, "AuthFactorTokenRequired", "login without the code");
    assert_eq!(
        r.body["message"],
        "A sign in code has been sent to your email address"
    );
    let mail = inbox
        .next("Sign-in Confirmation", "alice@example.com")
        .await;
    assert!(mail.data.contains("alice.test"), "{}", mail.data);
    let code = mail.code();
    let r = login_with(anon, "alice.test", "wrong", Some(&code)).await;
    expect_error(
        &r,
        401,
        "AuthenticationRequired",
        "the password comes first",
    );
    let r = login_with(anon, "alice.test", "hunter22", Some("AAAAA-AAAAA")).await;
    expect_error(&r, 400, "InvalidToken", "a wrong sign-in code");
    // The right code (any case, by email address too) works once.
    let session = login_with(
        anon,
        "alice@example.com",
        "hunter22",
        Some(&code.to_lowercase()),
    )
    .await
    .ok("login with the code");
    assert_eq!(state(&session), (json!(true), json!(true)));
    let r = login_with(anon, "alice.test", "hunter22", Some(&code)).await;
    expect_error(&r, 400, "InvalidToken", "a used sign-in code");
    inbox.nothing_new("checking codes");
    let refreshed = Caller::new(&c, &server, session["refreshJwt"].as_str())
        .ok("com.atproto.server.refreshSession", &json!({}))
        .await;
    assert_eq!(state(&refreshed), (json!(true), json!(true)));

    // App passwords skip the factor (as the reference), but a code given is still checked.
    let app = as_alice
        .ok(
            "com.atproto.server.createAppPassword",
            &json!({"name": "app"}),
        )
        .await;
    let app_password = app["password"].as_str().unwrap();
    login_with(anon, "alice.test", app_password, None)
        .await
        .ok("app password login");
    let r = login_with(anon, "alice.test", app_password, Some("AAAAA-AAAAA")).await;
    expect_error(&r, 400, "InvalidToken", "an app password with a wrong code");
    inbox.nothing_new("app password logins");

    // An expired sign-in code.
    let r = login_with(anon, "alice.test", "hunter22", None).await;
    expect_error(&r, 401, "AuthFactorTokenRequired", "login without the code");
    let code = inbox
        .next("Sign-in Confirmation", "alice@example.com")
        .await
        .code();
    age_email_tokens(dir.path(), &alice.did);
    let r = login_with(anon, "alice.test", "hunter22", Some(&code)).await;
    expect_error(&r, 400, "ExpiredToken", "an expired sign-in code");

    // Turning it off takes two calls: the first mails an update_email code.
    as_alice
        .fails(
            update,
            &factor(false),
            400,
            "TokenRequired",
            "turning off without a code",
        )
        .await;
    let code = inbox
        .next("Email Update Requested", "alice@example.com")
        .await
        .code();
    let off = |token: &str| json!({"email": "alice@example.com", "emailAuthFactor": false, "token": token});
    as_alice
        .fails(
            update,
            &off("BBBBB-BBBBB"),
            400,
            "InvalidToken",
            "turning off with a wrong code",
        )
        .await;
    assert_eq!(as_alice.session().await["emailAuthFactor"], true);
    as_alice.ok(update, &off(&code)).await;
    let s = as_alice.session().await;
    assert_eq!(state(&s), (json!(true), json!(false)));
    // Off is off: a plain login, and turning it off again changes nothing.
    let session = login_with(anon, "alice.test", "hunter22", None)
        .await
        .ok("login with the factor off");
    assert_eq!(state(&session), (json!(true), json!(false)));
    as_alice.ok(update, &factor(false)).await;
    inbox.nothing_new("the factor is off");

    // A new address turns the factor off (codes must not go to an unconfirmed inbox).
    as_alice.ok(update, &factor(true)).await;
    as_alice
        .ok("com.atproto.server.requestEmailUpdate", &json!({}))
        .await;
    let code = inbox
        .next("Email Update Requested", "alice@example.com")
        .await
        .code();
    as_alice
        .ok(
            update,
            &json!({"email": "alice2@example.com", "token": code}),
        )
        .await;
    let s = as_alice.session().await;
    assert_eq!(state(&s), (json!(false), json!(false)));
    login_with(anon, "alice.test", "hunter22", None)
        .await
        .ok("login after the address changed");
    inbox.nothing_new("the end");
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
    let as_alice = Caller::new(&c, &server, Some(&alice.access));
    // Logged, not sent.
    as_alice
        .ok("com.atproto.server.requestEmailConfirmation", &json!({}))
        .await;
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
    as_alice
        .ok(
            "com.atproto.server.confirmEmail",
            &json!({"email": "alice@example.com", "token": code}),
        )
        .await;
    assert_eq!(
        pds(&["account", "token", "alice.test", "confirm_email"], &data)
            .status
            .code(),
        Some(1)
    );
    // The email sign-in factor: the operator reads the sign-in code (`auth_factor`).
    as_alice
        .ok(
            "com.atproto.server.updateEmail",
            &json!({"email": "alice@example.com", "emailAuthFactor": true}),
        )
        .await;
    let anon = Caller::new(&c, &server, None);
    let r = login_with(anon, "alice.test", "hunter22", None).await;
    expect_error(&r, 401, "AuthFactorTokenRequired", "login without the code");
    let out = pds(&["account", "token", "alice.test", "auth_factor"], &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    login_with(anon, "alice.test", "hunter22", Some(&code))
        .await
        .ok("login with the code from the CLI");
    // After the server stops, the database is still readable.
    as_alice
        .ok(
            "com.atproto.identity.requestPlcOperationSignature",
            &json!({}),
        )
        .await;
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
    let as_alice = Caller::new(&c, &server, Some(&alice.access));
    let bob = create_account(&c, &server, "bob").await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(2);
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let deactivate = "com.atproto.server.deactivateAccount";
    as_alice
        .ok(deactivate, &json!({"deleteAfter": at(deadline)}))
        .await;
    let later = chrono::Utc::now() + chrono::Duration::days(30);
    Caller::new(&c, &server, Some(&bob.access))
        .ok(deactivate, &json!({"deleteAfter": at(later)}))
        .await;
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
    let as_alice = Caller::new(&c, &server, Some(&alice.access));
    let upload = |bytes: &'static [u8]| {
        let (c, url, token) = (
            &c,
            server.xrpc("com.atproto.repo.uploadBlob"),
            &alice.access,
        );
        async move {
            post_bytes(c, &url, Some(token), "image/png", bytes.to_vec())
                .await
                .ok("upload")
        }
    };
    let unused = upload(b"never used").await;
    let used = upload(b"used").await;
    let record = json!({"$type": "app.bsky.feed.post", "text": "with a blob", "createdAt": "2024-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": used["blob"]}]}});
    as_alice
        .ok(
            "com.atproto.repo.createRecord",
            &json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": record}),
        )
        .await;
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
