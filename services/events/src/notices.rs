//! Mail to attendees: what their registration became (a seat with its ticket, a place on
//! the waitlist, a seat freed up for them), news of an event they hold a place at (a
//! new time or place, a cancellation), and a reminder a day before. Facts come from the
//! outbox through [`kit::notify`]; reminders from a scan of what is due.
//!
//! Mail answering a person's own registration always goes; news of an event follows
//! their `notifications.email` preference, reminders `notifications.event_reminders`.

use crate::ics::{self, Entry};
use crate::model::{Event, RegistrationStatus};
use crate::store::{EventStore, RegistrationFilter};
use crate::ticket;
use clients::people::{Directory, Person};
use kit::db::Db;
use kit::mail::{Attachment, Language, Mail, Mailer, letters};
use kit::notify::{Compose, Notice};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long before an event its reminder goes out.
pub const REMINDER_LEAD: i64 = 24 * 3600;
/// Reminders handled per scan.
const REMINDERS_PER_SCAN: u32 = 500;
/// Attendees read per page when an event's news goes to all of them.
const PAGE: u32 = 1000;

#[derive(Clone)]
pub struct Notices {
    pub store: Arc<dyn EventStore>,
    pub people: Directory,
    pub public_url: String,
}

fn payload_id(fact: &Value, field: &str) -> Option<Uuid> {
    fact["payload"][field].as_str().and_then(|s| s.parse().ok())
}

impl Compose for Notices {
    const KINDS: &'static [&'static str] =
        &["registration.made", "registration.waitlisted", "registration.promoted", "event.changed", "event.cancelled"];

    async fn compose(&self, fact: &Value) -> anyhow::Result<Vec<Notice>> {
        let Some(event_id) = payload_id(fact, "event_id") else { return Ok(Vec::new()) };
        let Some(event) = self.store.get(event_id).await? else { return Ok(Vec::new()) };
        let fact_id = fact["id"].as_str().unwrap_or_default();
        let kind = fact["kind"].as_str().unwrap_or_default();
        match kind {
            "registration.made" | "registration.promoted" | "registration.waitlisted" => {
                let Some(user) = payload_id(fact, "user_id") else { return Ok(Vec::new()) };
                self.registration_news(fact_id, kind, &event, user).await
            }
            _ => self.event_news(fact_id, kind, &event, &fact["payload"]).await,
        }
    }
}

impl Notices {
    /// A seat, a place on the waitlist or a promotion, told to its holder while it is
    /// still so (a seat cancelled before the mail went needs no mail).
    async fn registration_news(
        &self,
        fact_id: &str,
        kind: &str,
        event: &Event,
        user: Uuid,
    ) -> anyhow::Result<Vec<Notice>> {
        let waitlisted = kind == "registration.waitlisted";
        let expected = if waitlisted { RegistrationStatus::Waitlisted } else { RegistrationStatus::Registered };
        let Some((registration, code)) = self.store.ticket(event.id, user).await? else { return Ok(Vec::new()) };
        if registration.status != expected {
            return Ok(Vec::new());
        }
        let Some(person) = self.person(user).await? else { return Ok(Vec::new()) };
        let letter = match kind {
            "registration.made" => "registered",
            "registration.promoted" => "promoted",
            _ => "waitlisted",
        };
        let ticket = (!waitlisted).then_some(code.as_str());
        let mail = self.mail(letter, event, &person, ticket, json!({}))?;
        Ok(vec![Notice { key: format!("{fact_id}:{user}"), mail }])
    }

    /// A new time or place, or a cancellation, told to everyone holding a seat or a
    /// place on the waitlist who wants such news.
    async fn event_news(
        &self,
        fact_id: &str,
        kind: &str,
        event: &Event,
        payload: &Value,
    ) -> anyhow::Result<Vec<Notice>> {
        let (letter, extra) = match kind {
            "event.changed" => (
                "event_changed",
                json!({"time_changed": payload["time_changed"], "place_changed": payload["place_changed"]}),
            ),
            _ => ("event_cancelled", json!({})),
        };
        let mut notices = Vec::new();
        let mut after = 0;
        loop {
            let page =
                self.store.registrations(event.id, RegistrationFilter { status: None, after, limit: PAGE }).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            let holders: Vec<Uuid> = page
                .iter()
                .filter(|l| l.registration.status != RegistrationStatus::Cancelled)
                .map(|l| l.registration.user_id)
                .collect();
            for person in self.people(&holders).await?.values().filter(|p| p.event_updates) {
                let mail = self.mail(letter, event, person, None, extra.clone())?;
                notices.push(Notice { key: format!("{fact_id}:{}", person.id), mail });
            }
        }
        Ok(notices)
    }

    async fn person(&self, id: Uuid) -> anyhow::Result<Option<Person>> {
        Ok(self.people(&[id]).await?.remove(&id))
    }

    async fn people(&self, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Person>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.people.look_up(ids, None).await.map_err(|_| anyhow::anyhow!("the users service cannot be reached"))
    }

    /// One letter about `event` to `person`, with the event's calendar file (and the
    /// ticket's QR code when there is a ticket).
    fn mail(
        &self,
        letter: &str,
        event: &Event,
        person: &Person,
        ticket: Option<&str>,
        extra: Value,
    ) -> anyhow::Result<Mail> {
        let language = Language::of_tag(&person.language);
        let mut context = json!({
            "name": person.display_name,
            "event": event.input.title,
            "when": letters::when(event.input.start, &person.time_zone, language),
            "place": place(event),
            "online": event.input.online_url,
            "ticket": ticket,
        });
        if let (Some(context), Value::Object(extra)) = (context.as_object_mut(), extra) {
            context.extend(extra);
        }
        let written = letters::write(letter, language, context)?;
        let calendar =
            ics::calendar(&event.input.title, &[Entry { event, ticket }], &self.public_url, jiff::Timestamp::now());
        let mut mail = Mail::new(&person.email, written).attach(Attachment {
            name: "event.ics".into(),
            content_type: "text/calendar; charset=utf-8; method=PUBLISH".into(),
            body: calendar.into_bytes(),
        });
        if let Some(code) = ticket {
            mail = mail.attach(Attachment {
                name: "ticket.svg".into(),
                content_type: "image/svg+xml".into(),
                body: ticket::qr_svg(code).into_bytes(),
            });
        }
        Ok(mail)
    }

    /// Sends the reminders due now, for ever, every `interval`.
    pub async fn remind(self, db: Db, mailer: Mailer, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            match self.remind_once(&db, &mailer).await {
                Ok(sent) => {
                    if sent > 0 {
                        tracing::debug!(sent, "reminders sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sending reminders failed"),
            }
        }
    }

    async fn remind_once(&self, db: &Db, mailer: &Mailer) -> anyhow::Result<usize> {
        let now = kit::now_unix();
        let due = self.store.due_reminders(now, now + REMINDER_LEAD, REMINDERS_PER_SCAN).await?;
        let ids: Vec<Uuid> = due.iter().map(|d| d.user_id).collect();
        let people = self.people(&ids).await?;
        let (mut notices, mut unwanted) = (Vec::new(), Vec::new());
        for reminder in &due {
            let wanted = people.get(&reminder.user_id).filter(|p| p.event_reminders);
            let event = self.store.get(reminder.event_id).await?;
            let (Some(person), Some(event)) = (wanted, event) else {
                unwanted.push(reminder.key());
                continue;
            };
            let Some((_, code)) = self.store.ticket(event.id, person.id).await? else { continue };
            let mail = self.mail("reminder", &event, person, Some(&code), json!({}))?;
            notices.push(Notice { key: reminder.key(), mail });
        }
        let sent = notices.len();
        kit::notify::record(db, unwanted).await?;
        kit::notify::send_once(db, mailer, notices).await?;
        Ok(sent)
    }
}

/// Where an event happens, in one line: the venue's name, address and city.
fn place(event: &Event) -> Option<String> {
    let venue = event.input.venue.as_ref()?;
    let parts: Vec<&str> =
        [venue.name.as_deref(), venue.address.as_deref(), Some(venue.city.as_str())].into_iter().flatten().collect();
    Some(parts.join(", "))
}
