//! `/api/v1/events`: create, read, change, publish, cancel, delete, search, `.ics`.

use super::{Access, access, calendar_response};
use crate::App;
use crate::model::{EventInput, EventView, Status};
use crate::search::SearchParams;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::page::{Page, encode_cursor};
use kit::patch::MergePatch;
use kit::{ApiError, now_unix};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

#[utoipa::path(post, path = "/api/v1/events", operation_id = "createEvent", tag = "events", security(("bearer" = [])), request_body = EventInput,
    responses((status = 201, description = "the event, a draft", body = EventView, links(
                  ("getEvent" = (operation_id = "getEvent", parameters(("id" = "$response.body#/id")))),
                  ("publishEvent" = (operation_id = "publishEvent", parameters(("id" = "$response.body#/id")))))),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn create(State(app): State<App>, me: AuthUser, Json(input): Json<EventInput>) -> Result<Response, ApiError> {
    let input = input.validate()?;
    if !me.is_admin() {
        let role = app.orgs.role_now(input.organization_id, me.id).await?;
        if !role.is_some_and(|r| r.manages_events()) {
            return Err(ApiError::Forbidden("only admins of the organization may create its events".into()));
        }
    }
    // With a rule, a series: its occurrences are events of their own; the first answers.
    let event = match input.recurrence {
        Some(_) => app.series.create_series(input, me.id, now_unix()).await?,
        None => app.store.create(input, me.id, now_unix()).await?,
    };
    Ok((StatusCode::CREATED, Json(EventView::from(&event))).into_response())
}

#[utoipa::path(get, path = "/api/v1/events", operation_id = "searchEvents", tag = "events", params(SearchParams),
    responses((status = 200, body = Page<EventView>),
              (status = 403, description = "`status` with `organization_id` is for the organization's members", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem),
              (status = 503, description = "too many searches for very common words are running: try again shortly", body = kit::problem::Problem)))]
pub async fn search(
    State(app): State<App>,
    me: Option<AuthUser>,
    Query(params): Query<SearchParams>,
) -> Result<Json<Page<EventView>>, ApiError> {
    let mut search = params.validate()?;
    // An organization's own view (drafts, cancelled, unlisted) is for its members.
    if let (Some(org), Some(_)) = (search.organization_id, &search.statuses) {
        let allowed = match &me {
            Some(me) if me.is_admin() => true,
            Some(me) => app.orgs.role(org, me.id).await?.is_some(),
            None => false,
        };
        if !allowed {
            return Err(ApiError::Forbidden("only members see an organization's unpublished events".into()));
        }
    } else {
        search.statuses = None;
    }
    let (events, next) = app.store.search(search, now_unix()).await?;
    Ok(Json(Page { items: events.iter().map(EventView::from).collect(), next_cursor: next.map(|c| encode_cursor(&c)) }))
}

/// `GET /api/v1/events/{id}.ics`, served by [`get`] (one route takes both forms); this
/// function only documents it.
#[utoipa::path(get, path = "/api/v1/events/{id}.ics", operation_id = "getEventCalendar", tag = "events", security((), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "the event as iCalendar (RFC 5545), for calendar programs", content_type = "text/calendar", body = String),
              (status = 404, description = "no such event, or a draft the caller may not see", body = kit::problem::Problem)))]
#[allow(dead_code, reason = "no route calls it: it carries the OpenAPI description of `get`'s `.ics` form")]
pub async fn get_calendar(state: State<App>, me: Option<AuthUser>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    get(state, me, Path(format!("{id}.ics"))).await
}

/// `{id}` or `{id}.ics`.
fn parse_id(raw: &str) -> Result<(Uuid, bool), ApiError> {
    let (id, ics) = match raw.strip_suffix(".ics") {
        Some(id) => (id, true),
        None => (raw, false),
    };
    Uuid::parse_str(id).map(|u| (u, ics)).map_err(|_| ApiError::NotFound("no such event".into()))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", operation_id = "getEvent", tag = "events", security((), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = EventView, links(("getEventCalendar" = (operation_id = "getEventCalendar", parameters(("id" = "$response.body#/id")))))),
              (status = 404, description = "no such event, or a draft the caller may not see", body = kit::problem::Problem)))]
pub async fn get(State(app): State<App>, me: Option<AuthUser>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let (id, ics) = parse_id(&raw)?;
    let (event, role) = access(&app, id, me.as_ref(), Access::Read).await?;
    app.views.record(event.id, me.as_ref().map(|m| m.id));
    if ics && let Some(member) = &event.series {
        // An occurrence of a series answers with the series: one item with its rule. Its
        // drafts are the organization's business: to others they are left out.
        let insider = role.is_some() || me.as_ref().is_some_and(AuthUser::is_admin);
        let template = app.series.series(member.series_id).await?;
        let mut members = app.series.occurrences(member.series_id).await?;
        for e in members.iter_mut().filter(|e| !insider && e.status == Status::Draft) {
            e.status = Status::Cancelled;
        }
        let mut master = members.first().cloned().unwrap_or_else(|| event.clone());
        master.input = template.unwrap_or_else(|| event.input.clone());
        master.status = match members.iter().all(|e| e.status == Status::Cancelled) {
            true => Status::Cancelled,
            false => Status::Published,
        };
        let body = crate::ics::series_calendar(&master, &members, &app.public_url, jiff::Timestamp::now());
        return Ok(calendar_response(body, &format!("{}.ics", member.series_id)));
    }
    if ics {
        let body = crate::ics::calendar(
            &event.input.title,
            &[crate::ics::Entry::from(&event)],
            &app.public_url,
            jiff::Timestamp::now(),
        );
        return Ok(calendar_response(body, &format!("{}.ics", event.id)));
    }
    Ok(Json(EventView::from(&event)).into_response())
}

/// Whether a change is to one occurrence of a series or to the whole series.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesScope {
    /// For an occurrence of a series: `true` changes the series (every upcoming
    /// occurrence not edited on its own follows; a changed `recurrence` adds and cancels
    /// occurrences), `false` (the default) this occurrence only.
    #[serde(default)]
    pub series: bool,
}

/// The series of `event`, when the caller asked to act on it.
fn series_of(event: &crate::model::Event, scope: &SeriesScope) -> Result<Option<Uuid>, ApiError> {
    match (&event.series, scope.series) {
        (Some(member), true) => Ok(Some(member.series_id)),
        (None, true) => Err(ApiError::field("series", "this event is not an occurrence of a series")),
        _ => Ok(None),
    }
}

#[utoipa::path(patch, path = "/api/v1/events/{id}", operation_id = "updateEvent", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path), SeriesScope),
    request_body(content = serde_json::Value, description = "a JSON Merge Patch (RFC 7396) of the event's fields (with `series=true`, of its series': its first occurrence's times and its `recurrence`)"),
    responses((status = 200, body = EventView), (status = 403, body = kit::problem::Problem),
              (status = 409, description = "a field an imported event's source keeps", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn patch(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(scope): Query<SeriesScope>,
    patch: MergePatch,
) -> Result<Json<EventView>, ApiError> {
    let (event, _) = access(&app, id, Some(&me), Access::Manage).await?;
    if let Some(series) = series_of(&event, &scope)? {
        let template = app.series.series(series).await?.ok_or_else(|| ApiError::NotFound("no such series".into()))?;
        let input: EventInput = patch.applied(&template)?;
        if input.organization_id != template.organization_id {
            return Err(ApiError::field("organization_id", "an event cannot move to another organization"));
        }
        if input.recurrence.is_none() {
            return Err(ApiError::field("recurrence", "a series keeps its rule: cancel the series to end it"));
        }
        app.series.update_series(series, input.validate()?, now_unix()).await?;
        let event = app.store.get(id).await?.ok_or_else(|| ApiError::NotFound("no such event".into()))?;
        return Ok(Json(EventView::from(&event)));
    }
    let input: EventInput = patch.applied(&event.input)?;
    if input.recurrence.is_some() {
        let why = match event.series {
            Some(_) => "belongs to the series: change it with ?series=true",
            None => "makes a series: create one with POST /api/v1/events",
        };
        return Err(ApiError::field("recurrence", why));
    }
    if input.organization_id != event.input.organization_id {
        return Err(ApiError::field("organization_id", "an event cannot move to another organization"));
    }
    let input = input.validate()?;
    if event.source.as_ref().is_some_and(|s| !s.detached) {
        let fields = crate::import::plan::changed_source_fields(&event.input, &input);
        if !fields.is_empty() {
            return Err(ApiError::Conflict(format!(
                "this event is imported, and its source keeps {} up to date: detach it \
                 (POST /api/v1/events/{id}/detach) to change them here",
                fields.join(", ")
            )));
        }
    }
    let updated = app.store.update(id, input, now_unix()).await?;
    Ok(Json(EventView::from(&updated)))
}

#[utoipa::path(post, path = "/api/v1/events/{id}/detach", operation_id = "detachEvent", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "the event, now the organization's own: syncs of its source leave it alone", body = EventView),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 404, description = "no such event, or a draft the caller may not see", body = kit::problem::Problem),
              (status = 409, description = "not an imported event", body = kit::problem::Problem)))]
pub async fn detach(State(app): State<App>, me: AuthUser, Path(id): Path<Uuid>) -> Result<Json<EventView>, ApiError> {
    access(&app, id, Some(&me), Access::Manage).await?;
    let event = app.sources.detach(id, now_unix()).await?;
    Ok(Json(EventView::from(&event)))
}

async fn transition(
    app: App,
    me: AuthUser,
    id: Uuid,
    scope: SeriesScope,
    status: Status,
) -> Result<Json<EventView>, ApiError> {
    let (event, _) = access(&app, id, Some(&me), Access::Manage).await?;
    if let Some(series) = series_of(&event, &scope)? {
        app.series.set_series_status(series, status, now_unix()).await?;
        let event = app.store.get(id).await?.ok_or_else(|| ApiError::NotFound("no such event".into()))?;
        return Ok(Json(EventView::from(&event)));
    }
    let event = app.store.set_status(id, status, now_unix()).await?;
    Ok(Json(EventView::from(&event)))
}

#[utoipa::path(post, path = "/api/v1/events/{id}/publish", operation_id = "publishEvent", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path), SeriesScope),
    responses((status = 200, description = "the event (with `series=true`, after every draft of its series was published, and later occurrences will be)", body = EventView),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem), (status = 409, description = "not a draft", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn publish(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(scope): Query<SeriesScope>,
) -> Result<Json<EventView>, ApiError> {
    transition(app, me, id, scope, Status::Published).await
}

#[utoipa::path(post, path = "/api/v1/events/{id}/cancel", operation_id = "cancelEvent", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path), SeriesScope),
    responses((status = 200, description = "the event (with `series=true`, after every upcoming occurrence of its series was cancelled)", body = EventView),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem), (status = 409, description = "already cancelled", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn cancel(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(scope): Query<SeriesScope>,
) -> Result<Json<EventView>, ApiError> {
    transition(app, me, id, scope, Status::Cancelled).await
}

#[utoipa::path(get, path = "/api/v1/events/{id}/occurrences", operation_id = "listOccurrences", tag = "events", security((), ("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "every occurrence of the event's series by start (those the caller may see); the event alone when it is not in a series", body = Page<EventView>),
              (status = 404, description = "no such event, or a draft the caller may not see", body = kit::problem::Problem)))]
pub async fn occurrences(
    State(app): State<App>,
    me: Option<AuthUser>,
    Path(id): Path<Uuid>,
) -> Result<Json<Page<EventView>>, ApiError> {
    let (event, role) = access(&app, id, me.as_ref(), Access::Read).await?;
    let insider = role.is_some() || me.as_ref().is_some_and(AuthUser::is_admin);
    let events = match &event.series {
        Some(member) => app.series.occurrences(member.series_id).await?,
        None => vec![event],
    };
    // Drafts are the organization's business.
    let items = events.iter().filter(|e| insider || e.status != Status::Draft).map(EventView::from).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

#[utoipa::path(delete, path = "/api/v1/events/{id}", operation_id = "deleteEvent", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem)))]
pub async fn delete(State(app): State<App>, me: AuthUser, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    access(&app, id, Some(&me), Access::Manage).await?;
    app.store.delete(id, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}
