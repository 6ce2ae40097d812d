//! Outgoing mail: SMTP (lettre) in a cluster, or by default a development mailbox that
//! writes each message under the data directory twice: as readable text (`.txt`, where a
//! person or a test reads the link; an `.eml` carries the body quoted-printable, with
//! links broken across lines) and as the very message SMTP would carry (`.eml`, for a
//! mail program). What a mail says lives in [`letters`], in the recipient's language.

pub mod letters;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

pub use letters::{Language, Letter};

/// Where mail goes, as every service reads it (`veche up` shares one for all).
#[derive(Debug, Clone, clap::Args)]
pub struct MailArgs {
    /// SMTP server URL (`smtps://user:password@host:465`, or `smtp://host:25?tls=required`);
    /// without it, mail is written to `<data dir>/mail`.
    #[arg(long, env = catalog::env::SMTP_URL, hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of platform mail.
    #[arg(long, env = catalog::env::MAIL_FROM, default_value = "Veche <no-reply@veche.local>")]
    pub mail_from: String,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dir(PathBuf),
}

/// A file a mail carries (an event's `.ics`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    /// A MIME type, with parameters (`text/calendar; charset=utf-8; method=PUBLISH`).
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One message to one person: a [`Letter`] (subject, text and HTML) with its attachments.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    pub letter: Letter,
    pub attachments: Vec<Attachment>,
}

impl Mail {
    pub fn new(to: &str, letter: Letter) -> Self {
        Self { to: to.to_owned(), letter, attachments: Vec::new() }
    }

    pub fn attach(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }
}

/// Why a message was not sent, and whether trying again could help.
#[derive(Debug, thiserror::Error)]
#[error("{why}")]
pub struct SendError {
    /// The server refused the message for good (an unknown mailbox, a malformed
    /// address): sending it again gives the same answer.
    pub permanent: bool,
    why: String,
}

impl SendError {
    fn permanent(why: impl ToString) -> Self {
        Self { permanent: true, why: why.to_string() }
    }

    fn transient(why: impl ToString) -> Self {
        Self { permanent: false, why: why.to_string() }
    }
}

/// Sends mail: in the background for a request that must not wait ([`Mailer::send`]),
/// or awaited by a notifier that records what was sent ([`Mailer::deliver`]).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// SMTP when `smtp_url` is set (lettre's URL form), else the file mailbox at `dir`.
    pub fn new(smtp_url: Option<&str>, dir: PathBuf, from: &str) -> anyhow::Result<Self> {
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build()),
            None => {
                std::fs::create_dir_all(&dir)?;
                Transport::Dir(dir)
            }
        };
        Ok(Self { transport, from: from.parse()? })
    }

    /// Sends `mail` in the background: a slow SMTP server never slows a request, and the
    /// answer to "reset my password" takes as long whether or not the account exists.
    pub fn send(&self, mail: Mail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            // The recipient is personal data; the log says only that sending failed.
            if let Err(e) = mailer.deliver(&mail).await {
                tracing::warn!(error = %e, "could not send mail");
            }
        });
    }

    /// Writes `letter` in `language` from `context` and sends it in the background to
    /// `to`. A letter that cannot be written (a bug: the tests render every one) is
    /// logged, never sent half-filled.
    pub fn send_letter(&self, to: &str, letter: &str, language: Language, context: impl serde::Serialize) {
        match letters::write(letter, language, context) {
            Ok(written) => self.send(Mail::new(to, written)),
            Err(e) => tracing::error!(letter, error = %e, "could not write mail"),
        }
    }

    /// Sends `mail` and answers once the server (or the mailbox directory) has it.
    pub async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        let message = compose(self.from.clone(), mail)?;
        match &self.transport {
            Transport::Smtp(t) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError { permanent: refuses_recipient(&e), why: e.to_string() }),
            Transport::Dir(dir) => {
                write_to_dir(dir, &self.from, mail, &message.formatted()).await.map_err(SendError::transient)
            }
        }
    }
}

/// Whether the server refused the recipient for good (RFC 5321: 550 no such mailbox,
/// 551 not local, 553 a mailbox name not allowed). Any other refusal, even a permanent
/// one (535 a wrong password, a refused sender), is the platform's own trouble: kept
/// and tried again, rather than every reader's mail thrown away.
fn refuses_recipient(e: &lettre::transport::smtp::Error) -> bool {
    e.is_permanent() && e.status().is_some_and(|code| matches!(u16::from(code), 550 | 551 | 553))
}

/// The MIME message: text and HTML as alternatives, attachments beside them.
fn compose(from: Mailbox, mail: &Mail) -> Result<Message, SendError> {
    let to: Mailbox = mail.to.parse().map_err(SendError::permanent)?;
    let letter = &mail.letter;
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(letter.text.clone());
    let body = match &letter.html {
        Some(html) => MultiPart::alternative()
            .singlepart(text)
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
        None if mail.attachments.is_empty() => {
            return Message::builder()
                .from(from)
                .to(to)
                .subject(&letter.subject)
                .singlepart(text)
                .map_err(SendError::permanent);
        }
        None => MultiPart::mixed().singlepart(text),
    };
    let body = if mail.attachments.is_empty() {
        body
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &mail.attachments {
            let content_type = ContentType::parse(&a.content_type).map_err(SendError::permanent)?;
            mixed = mixed.singlepart(LettreAttachment::new(a.name.clone()).body(a.body.clone(), content_type));
        }
        mixed
    };
    Message::builder().from(from).to(to).subject(&letter.subject).multipart(body).map_err(SendError::permanent)
}

/// Two files per message, named so that `ls` lists them in the order they were sent.
async fn write_to_dir(dir: &std::path::Path, from: &Mailbox, mail: &Mail, eml: &[u8]) -> std::io::Result<()> {
    let now = jiff::Timestamp::now();
    let name = format!("{}-{}", now.as_nanosecond(), uuid::Uuid::new_v4().simple());
    let attached: String =
        mail.attachments.iter().map(|a| format!("Attachment: {} ({})\n", a.name, a.content_type)).collect();
    let text = format!(
        "From: {from}\nTo: {}\nSubject: {}\nDate: {}\n{attached}\n{}",
        mail.to,
        mail.letter.subject,
        crate::rfc3339(now.as_second()),
        mail.letter.text
    );
    // The .eml first: a reader that waits for the .txt finds both.
    for (extension, content) in [("eml", eml), ("txt", text.as_bytes())] {
        // Write then rename, so a reader never sees half a message.
        let tmp = dir.join(format!(".{name}.{extension}"));
        tokio::fs::write(&tmp, content).await?;
        tokio::fs::rename(&tmp, dir.join(format!("{name}.{extension}"))).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(html: bool) -> Letter {
        Letter {
            subject: "Встреча: всё в силе".into(),
            text: "Привет!\n\nhttps://veche.example/e/1\n".into(),
            html: html.then(|| "<p>Привет!</p>".to_owned()),
        }
    }

    fn calendar() -> Attachment {
        Attachment {
            name: "event.ics".into(),
            content_type: "text/calendar; charset=utf-8; method=PUBLISH".into(),
            body: b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_vec(),
        }
    }

    fn formatted(mail: &Mail) -> String {
        String::from_utf8(compose("Veche <no-reply@veche.local>".parse().unwrap(), mail).unwrap().formatted()).unwrap()
    }

    #[test]
    fn text_html_and_a_calendar_make_one_mixed_message() {
        let eml = formatted(&Mail::new("ann@example.com", letter(true)).attach(calendar()));
        assert!(eml.contains("multipart/mixed"), "{eml}");
        assert!(eml.contains("multipart/alternative"), "{eml}");
        assert!(eml.contains("text/html"), "{eml}");
        assert!(eml.contains("filename=\"event.ics\""), "{eml}");
        // A non-ASCII subject is encoded (RFC 2047), never sent raw.
        assert!(eml.contains("Subject: =?utf-8?"), "{eml}");
    }

    #[test]
    fn plain_text_alone_stays_one_part() {
        let eml = formatted(&Mail::new("ann@example.com", letter(false)));
        assert!(!eml.contains("multipart"), "{eml}");
        assert!(eml.contains("Content-Type: text/plain; charset=utf-8"), "{eml}");
    }

    #[test]
    fn a_malformed_address_is_a_permanent_failure() {
        let e = compose("a@b.c".parse().unwrap(), &Mail::new("not an address", letter(false))).unwrap_err();
        assert!(e.permanent);
    }
}
