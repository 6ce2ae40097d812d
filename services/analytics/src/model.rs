//! Analytics' domain types: the facts it understands and their validation, which rollup
//! counters a fact bumps, and reports (windows of hour, day or week buckets). No I/O here.

use kit::{ApiError, Violations};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Most facts one delivery may carry.
pub const BATCH_MAX: usize = 1000;
/// How far in the future a fact may claim to have happened (clock skew between hosts).
pub const FUTURE_SKEW: i64 = 5 * 60;
/// Facts before 2000-01-01 are garbage; the bound also keeps bucket arithmetic positive.
pub const EPOCH_MIN: i64 = 946_684_800;
/// Most buckets one report may have.
pub const BUCKETS_MAX: i64 = 1000;
const VISITOR_ID_MAX: usize = 64;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
/// 1970-01-05, the first Monday of the Unix era: weeks are counted from it.
const FIRST_MONDAY: i64 = 4 * DAY;

/// Every kind of fact analytics accepts: all that the services' outboxes record, plus
/// client events. Kinds that feed no report (`user.deleted`, ...) are still accepted and
/// kept as raw facts, so a relay never stalls on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum FactKind {
    #[serde(rename = "user.signed_up")]
    UserSignedUp,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "organization.created")]
    OrganizationCreated,
    #[serde(rename = "organization.deleted")]
    OrganizationDeleted,
    #[serde(rename = "member.joined")]
    MemberJoined,
    #[serde(rename = "member.left")]
    MemberLeft,
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged,
    #[serde(rename = "event.published")]
    EventPublished,
    #[serde(rename = "event.cancelled")]
    EventCancelled,
    /// A published event moved in time or place (its attendees are told).
    #[serde(rename = "event.changed")]
    EventChanged,
    #[serde(rename = "event.deleted")]
    EventDeleted,
    #[serde(rename = "event.viewed")]
    EventViewed,
    #[serde(rename = "registration.made")]
    RegistrationMade,
    #[serde(rename = "registration.waitlisted")]
    RegistrationWaitlisted,
    #[serde(rename = "registration.promoted")]
    RegistrationPromoted,
    #[serde(rename = "registration.cancelled")]
    RegistrationCancelled,
    #[serde(rename = "registration.checked_in")]
    RegistrationCheckedIn,
    /// From browsers (`/track`): an event's page shown to a visitor.
    #[serde(rename = "page.viewed")]
    PageViewed,
    /// From browsers: a search run.
    #[serde(rename = "search.performed")]
    SearchPerformed,
    /// From browsers: a link followed, on an event's page or elsewhere.
    #[serde(rename = "link.clicked")]
    LinkClicked,
    /// An organization's outside source was read (events service).
    #[serde(rename = "source.synced")]
    SourceSynced,
    /// An organization's outside source could not be read.
    #[serde(rename = "source.failed")]
    SourceFailed,
    #[serde(rename = "source.deleted")]
    SourceDeleted,
}

impl FactKind {
    pub const ALL: [FactKind; 23] = [
        Self::UserSignedUp,
        Self::UserDeleted,
        Self::OrganizationCreated,
        Self::OrganizationDeleted,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::MemberRoleChanged,
        Self::EventPublished,
        Self::EventCancelled,
        Self::EventChanged,
        Self::EventDeleted,
        Self::EventViewed,
        Self::RegistrationMade,
        Self::RegistrationWaitlisted,
        Self::RegistrationPromoted,
        Self::RegistrationCancelled,
        Self::RegistrationCheckedIn,
        Self::PageViewed,
        Self::SearchPerformed,
        Self::LinkClicked,
        Self::SourceSynced,
        Self::SourceFailed,
        Self::SourceDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserSignedUp => "user.signed_up",
            Self::UserDeleted => "user.deleted",
            Self::OrganizationCreated => "organization.created",
            Self::OrganizationDeleted => "organization.deleted",
            Self::MemberJoined => "member.joined",
            Self::MemberLeft => "member.left",
            Self::MemberRoleChanged => "member.role_changed",
            Self::EventPublished => "event.published",
            Self::EventCancelled => "event.cancelled",
            Self::EventChanged => "event.changed",
            Self::EventDeleted => "event.deleted",
            Self::EventViewed => "event.viewed",
            Self::RegistrationMade => "registration.made",
            Self::RegistrationWaitlisted => "registration.waitlisted",
            Self::RegistrationPromoted => "registration.promoted",
            Self::RegistrationCancelled => "registration.cancelled",
            Self::RegistrationCheckedIn => "registration.checked_in",
            Self::PageViewed => "page.viewed",
            Self::SearchPerformed => "search.performed",
            Self::LinkClicked => "link.clicked",
            Self::SourceSynced => "source.synced",
            Self::SourceFailed => "source.failed",
            Self::SourceDeleted => "source.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The ids a fact of this kind must carry.
    fn requires(self) -> (bool, bool, bool) {
        // (event_id, organization_id, user_id)
        match self {
            Self::UserSignedUp | Self::UserDeleted => (false, false, true),
            Self::OrganizationCreated | Self::OrganizationDeleted => (false, true, false),
            Self::MemberJoined | Self::MemberLeft | Self::MemberRoleChanged => (false, true, true),
            Self::EventPublished
            | Self::EventCancelled
            | Self::EventChanged
            | Self::EventDeleted
            | Self::EventViewed => (true, false, false),
            Self::RegistrationMade
            | Self::RegistrationWaitlisted
            | Self::RegistrationPromoted
            | Self::RegistrationCancelled
            | Self::RegistrationCheckedIn => (true, false, true),
            Self::PageViewed => (true, false, false),
            Self::SearchPerformed | Self::LinkClicked => (false, false, false),
            Self::SourceSynced | Self::SourceFailed | Self::SourceDeleted => (false, true, false),
        }
    }
}

/// Counter names, as they appear in reports.
pub mod metric {
    pub const VIEWS: &str = "views";
    pub const UNIQUE_VISITORS: &str = "unique_visitors";
    pub const REGISTRATIONS: &str = "registrations";
    pub const CANCELLATIONS: &str = "cancellations";
    pub const CHECK_INS: &str = "check_ins";
    pub const MEMBERS_JOINED: &str = "members_joined";
    pub const SIGN_UPS: &str = "sign_ups";
    pub const EVENTS_PUBLISHED: &str = "events_published";
    pub const ORGANIZATIONS_CREATED: &str = "organizations_created";
    pub const SEARCHES: &str = "searches";
    pub const LINK_CLICKS: &str = "link_clicks";
    /// Events an organization published itself, and events it imported from its sources.
    pub const NATIVE_EVENTS: &str = "native_events";
    pub const IMPORTED_EVENTS: &str = "imported_events";
    /// Syncs of an organization's sources that failed.
    pub const SOURCE_FAILURES: &str = "source_failures";

    /// Every metric a rollup may count.
    pub const ALL: [&str; 14] = [
        VIEWS,
        UNIQUE_VISITORS,
        REGISTRATIONS,
        CANCELLATIONS,
        CHECK_INS,
        MEMBERS_JOINED,
        SIGN_UPS,
        EVENTS_PUBLISHED,
        ORGANIZATIONS_CREATED,
        SEARCHES,
        LINK_CLICKS,
        NATIVE_EVENTS,
        IMPORTED_EVENTS,
        SOURCE_FAILURES,
    ];

    /// The metric named `name`, if it is one.
    pub fn known(name: &str) -> Option<&'static str> {
        ALL.into_iter().find(|m| *m == name)
    }
}

/// What a report is about; also the key prefix of its rollup rows. Ordered as the keys
/// are (a UUID's bytes sort as its text does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    Event(Uuid),
    Organization(Uuid),
    Platform,
}

impl Scope {
    /// The rollup key: `event:<id>`, `organization:<id>`, `platform`.
    pub fn key(self) -> String {
        match self {
            Self::Event(id) => format!("event:{id}"),
            Self::Organization(id) => format!("organization:{id}"),
            Self::Platform => "platform".to_owned(),
        }
    }

    /// The columns of this scope's reports, in order.
    pub fn metrics(self) -> &'static [&'static str] {
        use metric::*;
        match self {
            Self::Event(_) => &[VIEWS, UNIQUE_VISITORS, REGISTRATIONS, CANCELLATIONS, CHECK_INS, LINK_CLICKS],
            Self::Organization(_) => &[
                VIEWS,
                UNIQUE_VISITORS,
                REGISTRATIONS,
                CANCELLATIONS,
                CHECK_INS,
                MEMBERS_JOINED,
                NATIVE_EVENTS,
                IMPORTED_EVENTS,
                SOURCE_FAILURES,
            ],
            Self::Platform => &[SIGN_UPS, EVENTS_PUBLISHED, REGISTRATIONS, ORGANIZATIONS_CREATED, SEARCHES],
        }
    }
}

/// Ids a fact's payload may carry; anything else in an outbox payload (`slug`, `role`,
/// ...) is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FactPayload {
    pub event_id: Option<Uuid>,
    /// The organization an event fact belongs to, when the sender knows it: only event
    /// facts that carry it count towards organization reports.
    pub organization_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// An anonymous browser's id (1 to 64 of `A-Z a-z 0-9 - _`), for unique visitors.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub visitor_id: Option<String>,
    /// The outside source an imported event came from (`event.published`).
    pub source_id: Option<Uuid>,
}

/// One fact as delivered: an outbox row, its time in RFC 3339.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactIn {
    /// The fact's identity across redeliveries: the outbox row's `id`.
    pub id: Uuid,
    pub kind: FactKind,
    /// When it happened, RFC 3339; at most 5 minutes ahead of this service's clock.
    pub occurred_at: String,
    #[serde(default)]
    pub payload: FactPayload,
}

/// `POST /internal/v1/analytics/facts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactBatch {
    /// At most 1,000 facts; all are stored, or none.
    pub facts: Vec<FactIn>,
}

/// A validated fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub id: Uuid,
    pub kind: FactKind,
    /// Unix seconds.
    pub occurred_at: i64,
    pub event_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub visitor_id: Option<String>,
    /// Whether an `event.published` came from an outside source (counted, not stored).
    pub imported: bool,
}

/// The answer to a delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ingested {
    /// Facts seen for the first time, now counted.
    pub accepted: u64,
    /// Facts already stored: counted before, not again.
    pub duplicates: u64,
    /// Facts older than the raw-fact retention: they can no longer be told apart from
    /// redeliveries, so they are not counted.
    pub expired: u64,
}

pub fn is_visitor_id(s: &str) -> bool {
    (1..=VISITOR_ID_MAX).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses an RFC 3339 time into Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    kit::parse_rfc3339(s)
}

impl FactBatch {
    /// Checks every fact; one bad fact refuses the whole batch, naming it (`facts[3].kind`).
    pub fn validate(self, now: i64) -> Result<Vec<Fact>, ApiError> {
        if self.facts.len() > BATCH_MAX {
            return Err(ApiError::field("facts", format!("at most {BATCH_MAX} facts per batch")));
        }
        let mut v = Violations::new();
        let mut out = Vec::with_capacity(self.facts.len());
        for (i, f) in self.facts.into_iter().enumerate() {
            let at = |field: &str| format!("facts[{i}].{field}");
            let occurred_at = match parse_time(&f.occurred_at) {
                None => {
                    v.add(at("occurred_at"), "must be an RFC 3339 time");
                    0
                }
                Some(t) if t > now + FUTURE_SKEW => {
                    v.add(at("occurred_at"), "must not be more than 5 minutes in the future");
                    t
                }
                Some(t) if t < EPOCH_MIN => {
                    v.add(at("occurred_at"), "must not be before 2000");
                    t
                }
                Some(t) => t,
            };
            let p = f.payload;
            let (event, organization, user) = f.kind.requires();
            v.check(!event || p.event_id.is_some(), &at("payload.event_id"), "is required for this kind");
            v.check(
                !organization || p.organization_id.is_some(),
                &at("payload.organization_id"),
                "is required for this kind",
            );
            v.check(!user || p.user_id.is_some(), &at("payload.user_id"), "is required for this kind");
            if let Some(visitor) = &p.visitor_id {
                v.check(is_visitor_id(visitor), &at("payload.visitor_id"), "must be 1 to 64 of A-Z a-z 0-9 - _");
            }
            out.push(Fact {
                id: f.id,
                kind: f.kind,
                occurred_at,
                event_id: p.event_id,
                organization_id: p.organization_id,
                user_id: p.user_id,
                visitor_id: p.visitor_id,
                imported: p.source_id.is_some(),
            });
        }
        v.into_result()?;
        Ok(out)
    }
}

impl Fact {
    /// The rollup counters this fact bumps by one: `(scope key, metric)`.
    pub fn counters(&self) -> Vec<(Scope, &'static str)> {
        use metric::*;
        let mut out = Vec::new();
        let event = self.event_id.map(Scope::Event);
        let organization = self.organization_id.map(Scope::Organization);
        let mut both = |metric: &'static str| {
            for scope in [event, organization].into_iter().flatten() {
                out.push((scope, metric));
            }
        };
        match self.kind {
            FactKind::EventViewed => both(VIEWS),
            FactKind::RegistrationMade | FactKind::RegistrationWaitlisted => {
                both(REGISTRATIONS);
                out.push((Scope::Platform, REGISTRATIONS));
            }
            FactKind::RegistrationCancelled => both(CANCELLATIONS),
            FactKind::RegistrationCheckedIn => both(CHECK_INS),
            FactKind::MemberJoined => {
                if let Some(o) = organization {
                    out.push((o, MEMBERS_JOINED));
                }
            }
            FactKind::UserSignedUp => out.push((Scope::Platform, SIGN_UPS)),
            FactKind::EventPublished => {
                out.push((Scope::Platform, EVENTS_PUBLISHED));
                if let Some(o) = organization {
                    out.push((o, if self.imported { IMPORTED_EVENTS } else { NATIVE_EVENTS }));
                }
            }
            FactKind::SourceFailed => {
                if let Some(o) = organization {
                    out.push((o, SOURCE_FAILURES));
                }
            }
            FactKind::OrganizationCreated => out.push((Scope::Platform, ORGANIZATIONS_CREATED)),
            // The events service counts views as it serves them (`event.viewed`); a
            // browser's page view adds its visitor, not a second view.
            FactKind::PageViewed => {}
            FactKind::SearchPerformed => out.push((Scope::Platform, SEARCHES)),
            FactKind::LinkClicked => both(LINK_CLICKS),
            FactKind::UserDeleted
            | FactKind::OrganizationDeleted
            | FactKind::MemberLeft
            | FactKind::MemberRoleChanged
            | FactKind::EventCancelled
            | FactKind::EventChanged
            | FactKind::EventDeleted
            | FactKind::RegistrationPromoted
            | FactKind::SourceSynced
            | FactKind::SourceDeleted => {}
        }
        out
    }

    /// Who viewed, for unique visitors: the anonymous visitor id, else the signed-in
    /// user. A view by neither counts as a view but not as a visitor.
    pub fn visitor(&self) -> Option<String> {
        if !matches!(self.kind, FactKind::EventViewed | FactKind::PageViewed) {
            return None;
        }
        self.visitor_id.clone().map(|v| format!("v:{v}")).or_else(|| self.user_id.map(|u| format!("u:{u}")))
    }

    /// The scopes whose unique visitors this fact may add to.
    pub fn visitor_scopes(&self) -> impl Iterator<Item = Scope> + use<> {
        [self.event_id.map(Scope::Event), self.organization_id.map(Scope::Organization)].into_iter().flatten()
    }
}

/// Who reads a report about something of `organization` (`None`: the platform's, or an
/// event whose organization is not known yet): platform admins always; admins and owners
/// of that organization; nobody else.
pub fn may_read(organization: Option<Uuid>, role: Option<clients::organizations::Role>, platform_admin: bool) -> bool {
    platform_admin || (organization.is_some() && role.is_some_and(clients::organizations::Role::manages_events))
}

/// The start of the hour `t` falls in.
pub fn hour_of(t: i64) -> i64 {
    t - t.rem_euclid(HOUR)
}

/// The size of a report's buckets. Days and weeks are UTC; weeks start on Monday.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BucketSize {
    Hour,
    #[default]
    Day,
    Week,
}

impl BucketSize {
    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => HOUR,
            Self::Day => DAY,
            Self::Week => WEEK,
        }
    }

    /// Where bucket boundaries are counted from (a Monday for weeks).
    pub fn origin(self) -> i64 {
        match self {
            Self::Hour | Self::Day => 0,
            Self::Week => FIRST_MONDAY,
        }
    }

    /// The start of the bucket `t` falls in.
    pub fn floor(self, t: i64) -> i64 {
        t - (t - self.origin()).rem_euclid(self.seconds())
    }

    /// The first bucket boundary at or after `t`.
    pub fn ceil(self, t: i64) -> i64 {
        let f = self.floor(t);
        if f == t { t } else { f + self.seconds() }
    }
}

/// The output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Json,
    Csv,
}

/// `?from=&to=&bucket=&format=` of a report.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Start, RFC 3339 or a date (that day's start in `time_zone`), rounded down to its
    /// bucket; default: 30 days before the end of `to`'s bucket.
    #[param(schema_with = kit::schemas::date_or_date_time)]
    pub from: Option<String>,
    /// End (exclusive), RFC 3339 or a date (the whole day included), rounded up to a
    /// bucket boundary; default: now.
    #[param(schema_with = kit::schemas::date_or_date_time)]
    pub to: Option<String>,
    /// The IANA zone plain dates in `from` and `to` are read in (UTC when left out).
    #[param(schema_with = kit::schemas::time_zone)]
    pub time_zone: Option<String>,
    /// `hour`, `day` (default) or `week`.
    #[param(inline)]
    pub bucket: Option<BucketSize>,
    /// `json` (default) or `csv`; `Accept: text/csv` also asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

/// A validated report window: whole buckets from `start` up to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub size: BucketSize,
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn buckets(&self) -> impl Iterator<Item = i64> + use<> {
        let step = self.size.seconds() as usize;
        (self.start..self.end).step_by(step)
    }
}

/// The default window when `from` is left out.
const DEFAULT_SPAN: i64 = 30 * DAY;

impl ReportParams {
    pub fn validate(&self, now: i64) -> Result<Window, ApiError> {
        let mut v = Violations::new();
        let zone = kit::moment::zone(&mut v, "time_zone", self.time_zone.as_deref());
        let mut time = |field: &str, value: &Option<String>, end| {
            let t = value.as_deref().map(|s| kit::moment::parse(s, &zone, end).filter(|t| *t >= EPOCH_MIN));
            if t == Some(None) {
                v.add(field, "must be an RFC 3339 time or a date (2027-02-01), after 2000");
            }
            t.flatten()
        };
        let to = time("to", &self.to, kit::moment::End::Finish);
        let from = time("from", &self.from, kit::moment::End::Start);
        v.into_result()?;
        let size = self.bucket.unwrap_or_default();
        let to = to.unwrap_or(now);
        // By default the last 30 days, today included: 30 day buckets.
        let from = from.unwrap_or(size.ceil(to) - DEFAULT_SPAN);
        if from >= to {
            return Err(ApiError::field("from", "must be before `to`"));
        }
        let window = Window { size, start: size.floor(from), end: size.ceil(to) };
        if (window.end - window.start) / size.seconds() > BUCKETS_MAX {
            return Err(ApiError::field("bucket", format!("at most {BUCKETS_MAX} buckets: pick a larger bucket")));
        }
        Ok(window)
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    /// The bucket's start, RFC 3339 UTC.
    pub start: String,
    pub values: BTreeMap<String, i64>,
}

/// A report: totals over the window, and a series of every bucket in it (empty ones too),
/// plus what its scope adds (the funnel, top events or organizations, active users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// Sums over the window; `unique_visitors` is the number of distinct visitors over
    /// the whole window, not the sum of the buckets'. Unique visitors (and active users)
    /// are HyperLogLog estimates: exact up to about a hundred, within about 1% beyond.
    pub totals: BTreeMap<String, i64>,
    pub series: Vec<Bucket>,
    /// Events and organizations: view → registration → check-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<Funnel>,
    /// Organizations: its events with the most registrations in the window (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_events: Option<Vec<Ranked>>,
    /// The platform: organizations with the most registrations in the window (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_organizations: Option<Vec<Ranked>>,
    /// The platform: distinct users who did anything (signed up, registered, joined, ...)
    /// in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_users: Option<i64>,
}

/// The funnel of an event or an organization's events over a window, each step within
/// the one before: a registration made without a recorded view (from an app, a link in
/// a mail) counts as a view, and a check-in in the window of a registration made before
/// it as a registration. Rates are `null` when the step before is zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Funnel {
    /// At least `registrations`.
    pub views: i64,
    /// At least `check_ins`.
    pub registrations: i64,
    pub check_ins: i64,
    /// registrations / views.
    pub view_to_registration: Option<f64>,
    /// check_ins / registrations: the attendance rate.
    pub attendance_rate: Option<f64>,
}

impl Funnel {
    /// From a report's totals, when they hold the three steps.
    pub fn of(totals: &BTreeMap<String, i64>) -> Option<Funnel> {
        let check_ins = *totals.get(metric::CHECK_INS)?;
        let registrations = (*totals.get(metric::REGISTRATIONS)?).max(check_ins);
        let views = (*totals.get(metric::VIEWS)?).max(registrations);
        let rate = |n: i64, d: i64| (d > 0).then(|| (n as f64 / d as f64 * 1000.0).round() / 1000.0);
        Some(Funnel {
            views,
            registrations,
            check_ins,
            view_to_registration: rate(registrations, views),
            attendance_rate: rate(check_ins, registrations),
        })
    }
}

/// An event or organization and its registrations in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ranked {
    pub id: Uuid,
    pub registrations: i64,
}

/// What the store read for a window: `(metric, bucket start) -> value` and, for unique
/// visitors, per-bucket and whole-window distinct counts.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub values: HashMap<(String, i64), i64>,
    pub visitors: HashMap<i64, i64>,
    pub visitors_total: i64,
}

/// Builds a report of `metrics` over `window` from what the store counted.
pub fn assemble(window: Window, metrics: &[&str], counts: &Counts) -> Report {
    let mut totals: BTreeMap<String, i64> = metrics.iter().map(|m| ((*m).to_owned(), 0)).collect();
    let series = window
        .buckets()
        .map(|start| {
            let values = metrics
                .iter()
                .map(|m| {
                    let value = if *m == metric::UNIQUE_VISITORS {
                        counts.visitors.get(&start).copied().unwrap_or(0)
                    } else {
                        counts.values.get(&((*m).to_owned(), start)).copied().unwrap_or(0)
                    };
                    if *m != metric::UNIQUE_VISITORS {
                        *totals.entry((*m).to_owned()).or_default() += value;
                    }
                    ((*m).to_owned(), value)
                })
                .collect();
            Bucket { start: kit::rfc3339(start), values }
        })
        .collect();
    if metrics.contains(&metric::UNIQUE_VISITORS) {
        totals.insert(metric::UNIQUE_VISITORS.to_owned(), counts.visitors_total);
    }
    let funnel = Funnel::of(&totals);
    Report { totals, series, funnel, top_events: None, top_organizations: None, active_users: None }
}

/// A report as CSV: a header (`start` and the metrics in order), one row per bucket.
pub fn to_csv(report: &Report, metrics: &[&str]) -> String {
    let header: Vec<&str> = std::iter::once("start").chain(metrics.iter().copied()).collect();
    let rows = report.series.iter().map(|b| {
        let values = metrics.iter().map(|m| b.values.get(*m).copied().unwrap_or(0).to_string());
        std::iter::once(b.start.clone()).chain(values)
    });
    kit::csv::table(&header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> i64 {
        parse_time(s).unwrap()
    }

    #[test]
    fn buckets_floor_and_ceil_in_utc_with_monday_weeks() {
        let at = t("2026-11-25T13:45:10Z"); // a Wednesday
        assert_eq!(BucketSize::Hour.floor(at), t("2026-11-25T13:00:00Z"));
        assert_eq!(BucketSize::Day.floor(at), t("2026-11-25T00:00:00Z"));
        assert_eq!(BucketSize::Week.floor(at), t("2026-11-23T00:00:00Z"));
        assert_eq!(BucketSize::Week.floor(t("2026-11-23T00:00:00Z")), t("2026-11-23T00:00:00Z"));
        assert_eq!(BucketSize::Week.floor(t("2026-11-22T23:59:59Z")), t("2026-11-16T00:00:00Z"));
        assert_eq!(BucketSize::Day.ceil(at), t("2026-11-26T00:00:00Z"));
        assert_eq!(BucketSize::Day.ceil(t("2026-11-26T00:00:00Z")), t("2026-11-26T00:00:00Z"));
        assert_eq!(hour_of(at), t("2026-11-25T13:00:00Z"));
    }

    #[test]
    fn window_rounds_outwards_and_bounds_the_bucket_count() {
        let p = |from: &str, to: &str, bucket| ReportParams {
            from: Some(from.into()),
            to: Some(to.into()),
            bucket: Some(bucket),
            format: None,
            time_zone: None,
        };
        let now = t("2026-11-25T00:00:00Z");
        let w = p("2026-11-24T10:30:00Z", "2026-11-25T01:00:01Z", BucketSize::Day).validate(now).unwrap();
        assert_eq!((w.start, w.end), (t("2026-11-24T00:00:00Z"), t("2026-11-26T00:00:00Z")));
        assert_eq!(w.buckets().count(), 2);
        assert!(p("2026-11-25T00:00:00Z", "2026-11-24T00:00:00Z", BucketSize::Day).validate(now).is_err());
        assert!(p("2026-11-25T00:00:00Z", "2026-11-25T00:00:00Z", BucketSize::Hour).validate(now).is_err());
        // 1000 hours pass, 1001 do not.
        assert!(p("2026-01-01T00:00:00Z", "2026-02-11T16:00:00Z", BucketSize::Hour).validate(now).is_ok());
        assert!(p("2026-01-01T00:00:00Z", "2026-02-11T17:00:00Z", BucketSize::Hour).validate(now).is_err());
        match p("yesterday", "2026-11-24T00:00:00Z", BucketSize::Day).validate(now) {
            Err(ApiError::Validation(f)) => assert_eq!(f[0].field, "from"),
            other => panic!("unexpected {other:?}"),
        }
        let d = ReportParams::default().validate(now + 1).unwrap();
        assert_eq!((d.size, d.start, d.end), (BucketSize::Day, now - 29 * DAY, now + DAY));
    }

    fn batch(facts: serde_json::Value) -> FactBatch {
        serde_json::from_value(json!({ "facts": facts })).unwrap()
    }

    #[test]
    fn facts_are_checked_per_kind_and_time() {
        let now = t("2026-11-25T12:00:00Z");
        let e = Uuid::new_v4();
        let good = batch(json!([
            {"id": Uuid::new_v4(), "kind": "event.viewed", "occurred_at": "2026-11-25T12:04:59Z",
             "payload": {"event_id": e, "visitor_id": "abc-123", "extra": 1}},
        ]));
        let facts = good.validate(now).unwrap();
        assert_eq!(facts[0].visitor().as_deref(), Some("v:abc-123"));
        assert_eq!(facts[0].counters(), vec![(Scope::Event(e), metric::VIEWS)]);

        let bad = batch(json!([
            {"id": Uuid::new_v4(), "kind": "user.signed_up", "occurred_at": "2026-11-25T12:00:00Z",
             "payload": {"user_id": Uuid::new_v4()}},
            {"id": Uuid::new_v4(), "kind": "registration.made", "occurred_at": "2026-11-25T12:05:01Z",
             "payload": {"event_id": e, "visitor_id": "no spaces"}},
        ]));
        let Err(ApiError::Validation(errors)) = bad.validate(now) else { panic!("accepted a bad batch") };
        let fields: Vec<&str> = errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["facts[1].occurred_at", "facts[1].payload.user_id", "facts[1].payload.visitor_id"]);

        let unknown = serde_json::from_value::<FactBatch>(
            json!({"facts": [{"id": Uuid::new_v4(), "kind": "event.liked", "occurred_at": "2026-11-25T12:00:00Z"}]}),
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn registrations_count_for_event_organization_and_platform() {
        let (e, o) = (Uuid::new_v4(), Uuid::new_v4());
        let f = Fact {
            id: Uuid::new_v4(),
            kind: FactKind::RegistrationWaitlisted,
            occurred_at: EPOCH_MIN,
            event_id: Some(e),
            organization_id: Some(o),
            user_id: Some(Uuid::new_v4()),
            visitor_id: None,
            imported: false,
        };
        assert_eq!(
            f.counters(),
            vec![
                (Scope::Event(e), metric::REGISTRATIONS),
                (Scope::Organization(o), metric::REGISTRATIONS),
                (Scope::Platform, metric::REGISTRATIONS),
            ]
        );
        assert_eq!(f.visitor(), None);
        let promoted = Fact { kind: FactKind::RegistrationPromoted, ..f.clone() };
        assert!(promoted.counters().is_empty(), "a promotion is not a second registration");
        // Published events count for the organization as its own or as imported.
        let published = Fact { kind: FactKind::EventPublished, user_id: None, ..f };
        let org = Scope::Organization(o);
        let platform = (Scope::Platform, metric::EVENTS_PUBLISHED);
        assert_eq!(published.counters(), vec![platform, (org, metric::NATIVE_EVENTS)]);
        let imported = Fact { imported: true, ..published.clone() };
        assert_eq!(imported.counters(), vec![platform, (org, metric::IMPORTED_EVENTS)]);
        let failed = Fact { kind: FactKind::SourceFailed, event_id: None, ..published };
        assert_eq!(failed.counters(), vec![(org, metric::SOURCE_FAILURES)]);
        let parsed =
            batch(json!([{"id": Uuid::new_v4(), "kind": "event.published", "occurred_at": "2026-11-25T12:00:00Z",
            "payload": {"event_id": e, "organization_id": o, "source_id": Uuid::new_v4()}}]))
            .validate(t("2026-11-25T12:00:00Z"))
            .unwrap();
        assert!(parsed[0].imported);
    }

    #[test]
    fn each_funnel_step_is_within_the_one_before() {
        let totals = |v: i64, r: i64, c: i64| -> BTreeMap<String, i64> {
            [(metric::VIEWS, v), (metric::REGISTRATIONS, r), (metric::CHECK_INS, c)]
                .into_iter()
                .map(|(k, n)| (k.to_owned(), n))
                .collect()
        };
        // Two registrations without a recorded view, and a check-in of an older one.
        let f = Funnel::of(&totals(1, 2, 3)).unwrap();
        assert_eq!((f.views, f.registrations, f.check_ins), (3, 3, 3));
        assert_eq!((f.view_to_registration, f.attendance_rate), (Some(1.0), Some(1.0)));
        let f = Funnel::of(&totals(10, 4, 1)).unwrap();
        assert_eq!(
            (f.views, f.registrations, f.view_to_registration, f.attendance_rate),
            (10, 4, Some(0.4), Some(0.25))
        );
    }

    #[test]
    fn assembled_report_fills_empty_buckets_and_totals_distinct_visitors() {
        let start = t("2026-11-23T00:00:00Z");
        let window = Window { size: BucketSize::Day, start, end: start + 3 * DAY };
        let mut counts = Counts::default();
        counts.values.insert((metric::VIEWS.into(), start), 4);
        counts.values.insert((metric::VIEWS.into(), start + 2 * DAY), 1);
        counts.visitors.insert(start, 2);
        counts.visitors.insert(start + 2 * DAY, 1);
        counts.visitors_total = 2;
        let metrics = Scope::Event(Uuid::nil()).metrics();
        let r = assemble(window, metrics, &counts);
        assert_eq!(r.series.len(), 3);
        assert_eq!(r.series[1].start, "2026-11-24T00:00:00Z");
        assert_eq!(r.series[1].values[metric::VIEWS], 0);
        assert_eq!(r.totals[metric::VIEWS], 5);
        assert_eq!(r.totals[metric::UNIQUE_VISITORS], 2);
        assert_eq!(r.totals[metric::CHECK_INS], 0);
        let funnel = r.funnel.clone().expect("an event's report has a funnel");
        assert_eq!((funnel.views, funnel.view_to_registration, funnel.attendance_rate), (5, Some(0.0), None));
        let csv = to_csv(&r, metrics);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "start,views,unique_visitors,registrations,cancellations,check_ins,link_clicks");
        assert_eq!(lines[1], "2026-11-23T00:00:00Z,4,2,0,0,0,0");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn reports_are_read_by_platform_admins_and_the_organizations_admins() {
        use clients::organizations::Role::{Admin, Member, Owner};
        let org = Some(Uuid::nil());
        let table = [
            (org, None, false, false),
            (org, Some(Member), false, false),
            (org, Some(Admin), false, true),
            (org, Some(Owner), false, true),
            (org, None, true, true),
            (None, Some(Owner), false, false),
            (None, None, true, true),
        ];
        for (organization, role, platform_admin, allowed) in table {
            assert_eq!(
                may_read(organization, role, platform_admin),
                allowed,
                "{organization:?} {role:?} {platform_admin}"
            );
        }
    }
}
