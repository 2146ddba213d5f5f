//! Outgoing email: plain-text messages over SMTP (`PDS_EMAIL_SMTP_URL`, from
//! `PDS_EMAIL_FROM_ADDRESS`), or, with no SMTP server configured, logged (tracing, `info`) so
//! that a development server or an operator can still read the codes.
//!
//! URL forms, as the reference PDS (nodemailer) reads them:
//! - `smtp://user:pass@host:port`: STARTTLS when the server offers it (port 587 by default);
//!   `?tls=required` refuses a server without STARTTLS; `?tls=none` never upgrades (local
//!   relays, test sinks; port 25 by default);
//! - `smtps://user:pass@host:port`: TLS from the first byte (port 465 by default).
//!
//! User name and password are percent-decoded. TLS uses rustls with the aws-lc-rs provider and
//! the platform's certificate verifier, as the outbound HTTP client does.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Tokio1Executor};
use pds_store::EmailTokenPurpose;

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The email settings: both variables, or neither.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// `PDS_EMAIL_SMTP_URL`.
    pub smtp_url: String,
    /// `PDS_EMAIL_FROM_ADDRESS` (`name@host` or `Name <name@host>`).
    pub from_address: String,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("from_address", &self.from_address)
            .finish_non_exhaustive()
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient is not a valid address.
    #[error("not a valid email address: {0:?}")]
    InvalidRecipient(String),
    /// The message could not be built.
    #[error("cannot build the message: {0}")]
    Build(String),
    /// The SMTP server could not be reached or refused the message.
    #[error("sending the email failed: {0}")]
    Smtp(String),
}

enum Transport {
    /// No SMTP server: log the message.
    Log,
    /// Send through this server.
    Smtp(Box<Smtp>),
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Sends the server's emails. Cheap to share (held in `AppState`).
pub struct Mailer {
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("smtp", &self.is_smtp())
            .finish()
    }
}

/// The URL lettre understands for a reference-style `PDS_EMAIL_SMTP_URL` (see the module docs).
fn lettre_url(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("expected smtp://… or smtps://…, got {url:?}"))?;
    let scheme = scheme.to_ascii_lowercase();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("no SMTP host in the URL".to_owned());
    }
    let mut params: Vec<&str> = query
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let tls = params
        .iter()
        .find_map(|p| p.strip_prefix("tls="))
        .map(str::to_ascii_lowercase);
    match (scheme.as_str(), tls.as_deref()) {
        ("smtps", None) => {}
        ("smtp", None) => params.push("tls=opportunistic"),
        ("smtp", Some("required" | "opportunistic")) => {}
        ("smtp", Some("none")) => params.retain(|p| !p.starts_with("tls=")),
        ("smtp" | "smtps", Some(other)) => {
            return Err(format!(
                "unknown tls={other} (expected required, opportunistic or none)"
            ));
        }
        (other, _) => {
            return Err(format!(
                "unsupported scheme {other:?} (expected smtp or smtps)"
            ));
        }
    }
    let mut out = format!("{scheme}://{before_query}");
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    Ok(out)
}

/// Checks the email settings without connecting (the configuration calls this so a bad value
/// stops start-up with the variable's name). `Err((variable, problem))`.
pub fn check_config(config: &EmailConfig) -> Result<(), (&'static str, String)> {
    build(config).map(|_| ())
}

fn build(config: &EmailConfig) -> Result<Transport, (&'static str, String)> {
    let from: Mailbox = config.from_address.parse().map_err(|e| {
        (
            "PDS_EMAIL_FROM_ADDRESS",
            format!("not an email address ({e})"),
        )
    })?;
    let url = lettre_url(&config.smtp_url).map_err(|e| ("PDS_EMAIL_SMTP_URL", e))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .map_err(|e| ("PDS_EMAIL_SMTP_URL", e.to_string()))?
        .timeout(Some(SMTP_TIMEOUT))
        .build();
    Ok(Transport::Smtp(Box::new(Smtp { transport, from })))
}

impl Mailer {
    /// A mailer that only logs.
    pub fn log_only() -> Mailer {
        Mailer {
            transport: Transport::Log,
        }
    }

    /// A mailer for these settings (`None`: log only). Does not connect.
    pub fn new(config: Option<&EmailConfig>) -> Result<Mailer, String> {
        let transport = match config {
            None => Transport::Log,
            Some(c) => build(c).map_err(|(var, problem)| format!("{var}: {problem}"))?,
        };
        Ok(Mailer { transport })
    }

    /// Whether messages go to an SMTP server (rather than the log).
    pub fn is_smtp(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// Sends a plain-text message to `to`; with no SMTP server, logs it instead.
    pub async fn send(&self, to: &str, subject: &str, text_body: &str) -> Result<(), MailError> {
        let recipient: Mailbox = to
            .parse()
            .map_err(|_| MailError::InvalidRecipient(to.to_owned()))?;
        match &self.transport {
            Transport::Log => {
                tracing::info!(
                    to = %recipient,
                    subject,
                    body = text_body,
                    "no SMTP server configured (PDS_EMAIL_SMTP_URL): email not sent"
                );
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let Smtp { transport, from } = smtp.as_ref();
                let message = Message::builder()
                    .from(from.clone())
                    .to(recipient)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(text_body.to_owned())
                    .map_err(|e| MailError::Build(e.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError::Smtp(e.to_string()))
            }
        }
    }
}

/// The subject (the reference mailer's) and plain-text body of the message that carries a
/// one-time `token` for `purpose` to the account `handle`; the code is valid `minutes`.
pub fn code_message(
    purpose: EmailTokenPurpose,
    handle: &str,
    token: &str,
    minutes: u64,
) -> (&'static str, String) {
    let (subject, intro) = match purpose {
        EmailTokenPurpose::ConfirmEmail => (
            "Email Confirmation",
            "To confirm this email address, enter this code in your app:",
        ),
        EmailTokenPurpose::UpdateEmail => (
            "Email Update Requested",
            "To change your email address (or turn off sign-in codes by email), enter this \
             code in your app:",
        ),
        EmailTokenPurpose::ResetPassword => (
            "Password Reset Requested",
            "To reset your password, enter this code in your app:",
        ),
        EmailTokenPurpose::DeleteAccount => (
            "Account Deletion Requested",
            "To delete your account for good, enter this code in your app:",
        ),
        EmailTokenPurpose::PlcOperation => (
            "PLC Update Operation Requested",
            "To sign an update of your identity (DID document), enter this code in your app:",
        ),
        EmailTokenPurpose::AuthFactor => (
            "Sign-in Confirmation",
            "We received a sign-in request for your account. To sign in, enter this code in \
             your app:",
        ),
    };
    let outro = if purpose == EmailTokenPurpose::AuthFactor {
        "If this wasn't you, someone knows your password: change it now."
    } else {
        "If you did not ask for it, ignore this message: nothing changes without the code."
    };
    let body = format!(
        "Hello {handle},\n\n\
         {intro}\n\n\
         {token}\n\n\
         It expires in {minutes} minutes and works once. {outro}\n"
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_message_names_the_account_and_carries_the_code() {
        let mut subjects = std::collections::HashSet::new();
        for purpose in EmailTokenPurpose::ALL {
            let (subject, body) = code_message(purpose, "alice.test", "ABCDE-23456", 15);
            assert!(subjects.insert(subject), "{subject} twice");
            assert!(body.starts_with("Hello alice.test,\n"), "{body}");
            assert!(body.contains("\n\nABCDE-23456\n\n"), "{body}");
            assert!(body.contains("expires in 15 minutes"), "{body}");
        }
        let (subject, body) = code_message(
            EmailTokenPurpose::AuthFactor,
            "alice.test",
            "ABCDE-23456",
            15,
        );
        assert_eq!(subject, "Sign-in Confirmation");
        assert!(body.contains("sign-in request"), "{body}");
        assert!(body.contains("change it now"), "{body}");
    }

    #[test]
    fn urls_follow_the_reference_forms() {
        let ok = [
            (
                "smtp://u:p@mail.example.com:587",
                "smtp://u:p@mail.example.com:587?tls=opportunistic",
            ),
            (
                "smtp://mail.example.com",
                "smtp://mail.example.com?tls=opportunistic",
            ),
            (
                "smtps://resend:key@smtp.resend.com:465/",
                "smtps://resend:key@smtp.resend.com:465/",
            ),
            ("smtp://127.0.0.1:2525?tls=none", "smtp://127.0.0.1:2525"),
            ("SMTP://h:25?tls=required", "smtp://h:25?tls=required"),
        ];
        for (given, expected) in ok {
            assert_eq!(lettre_url(given).as_deref(), Ok(expected), "{given}");
        }
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://",
            "smtp://u:p@:25",
            "smtp://h?tls=maybe",
        ] {
            assert!(lettre_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_checks_name_the_variable() {
        let config = |url: &str, from: &str| EmailConfig {
            smtp_url: url.to_owned(),
            from_address: from.to_owned(),
        };
        assert!(check_config(&config("smtp://h:25", "PDS <pds@example.com>")).is_ok());
        assert!(check_config(&config("smtps://u:p@h", "pds@example.com")).is_ok());
        assert_eq!(
            check_config(&config("smtp://h", "not an address"))
                .unwrap_err()
                .0,
            "PDS_EMAIL_FROM_ADDRESS"
        );
        assert_eq!(
            check_config(&config("ftp://h", "pds@example.com"))
                .unwrap_err()
                .0,
            "PDS_EMAIL_SMTP_URL"
        );
        let shown = format!("{:?}", config("smtp://u:secret@h", "pds@example.com"));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[tokio::test]
    async fn log_only_accepts_valid_recipients() {
        let mailer = Mailer::log_only();
        assert!(!mailer.is_smtp());
        mailer
            .send("alice@example.com", "Email Confirmation", "code")
            .await
            .unwrap();
        assert!(matches!(
            mailer.send("not an address", "s", "b").await,
            Err(MailError::InvalidRecipient(_))
        ));
    }
}
