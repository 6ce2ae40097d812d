//! Outgoing mail: SMTP (lettre) in production, or by default a development mailbox that
//! writes each message as a plain-text file under the data directory, where a person or
//! a test reads the link. (An `.eml` file would carry the body quoted-printable, with
//! links broken across lines: useless to read.)

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dir(PathBuf),
}

/// Sends mail in the background: a slow SMTP server never slows a request, and the
/// answer to "reset my password" takes as long whether or not the account exists.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// SMTP when `smtp_url` is set (`smtps://user:pass@host`, lettre's URL form), else
    /// the file mailbox at `dir`.
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

    pub fn send(&self, to: &str, subject: &str, text: String) {
        let transport = self.transport.clone();
        let (from, to, subject) = (self.from.clone(), to.to_owned(), subject.to_owned());
        tokio::spawn(async move {
            let sent = match &transport {
                Transport::Smtp(t) => match compose(from, &to, &subject, text) {
                    Ok(message) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Transport::Dir(dir) => write_to_dir(dir, &from, &to, &subject, &text).await.map_err(|e| e.to_string()),
            };
            // The recipient is personal data; the log says only that sending failed.
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not send mail");
            }
        });
    }
}

fn compose(from: Mailbox, to: &str, subject: &str, text: String) -> anyhow::Result<Message> {
    Ok(Message::builder().from(from).to(to.parse()?).subject(subject).header(ContentType::TEXT_PLAIN).body(text)?)
}

/// One file per message, named so that `ls` lists them in the order they were sent.
async fn write_to_dir(
    dir: &std::path::Path,
    from: &Mailbox,
    to: &str,
    subject: &str,
    text: &str,
) -> std::io::Result<()> {
    let now = jiff::Timestamp::now();
    let name = format!("{}-{}.txt", now.as_nanosecond(), uuid::Uuid::new_v4().simple());
    let content =
        format!("From: {from}\nTo: {to}\nSubject: {subject}\nDate: {}\n\n{text}", crate::rfc3339(now.as_second()));
    // Write then rename, so a reader never sees half a message.
    let tmp = dir.join(format!(".{name}"));
    tokio::fs::write(&tmp, content).await?;
    tokio::fs::rename(&tmp, dir.join(name)).await
}
