//! Dependencies failing: a service another one needs is gone, or the disk is full. The
//! caller gets a clear problem, nothing is half-written, and everything recovers, without
//! loss, once the dependency is back.

use crate::ALONE;
use crate::common::served::Served;
use crate::common::{PASSWORD, Reply, free_port, send};
use crate::load::{Outcome, attempt, eventually};
use serde_json::{Value, json};
use std::time::Duration;

/// The platform as a cluster runs it: every service a process of its own (`veche serve`),
/// each with its own store, behind the gateway with the operator's route table.
struct Cluster {
    users: Served,
    organizations: Served,
    events: Served,
    analytics: Served,
    gateway: Served,
    http: reqwest::Client,
    _routes: tempfile::NamedTempFile,
}

impl Cluster {
    fn start() -> Self {
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
        let secret = |name: &str| format!("a-test-secret-of-{name}-long-enough");
        let names = ["users", "organizations", "events", "analytics", "gateway"];
        let clients = names.map(|n| format!("{n}={}", secret(n))).join(",");
        let of = |name: &str| -> Vec<(&'static str, String)> {
            vec![
                ("VECHE_ISSUER", url(0)),
                ("VECHE_USERS_URL", url(0)),
                ("VECHE_ORGANIZATIONS_URL", url(1)),
                ("VECHE_ANALYTICS_URL", url(3)),
                ("VECHE_SERVICE_CLIENT_SECRET", secret(name)),
                ("VECHE_UPSTREAM_TIMEOUT", "10".into()),
            ]
        };
        let mut users_env = of("users");
        users_env.extend([("VECHE_SERVICE_CLIENTS", clients), ("VECHE_PASSWORD_HASH_RPS", "0".into())]);
        let users = Served::start_on(ports[0], "users", &users_env);
        let organizations = Served::start_on(ports[1], "organizations", &of("organizations"));
        let analytics = Served::start_on(ports[3], "analytics", &of("analytics"));
        let events = Served::start_on(ports[2], "events", &of("events"));

        // The operator's table, its upstreams on these ports.
        let names_of = operator::render::Names { platform: "test".into(), namespace: "test".into() };
        let rendered = operator::render::routes::route_table(
            &names_of,
            &catalog::Service::ALL,
            operator::render::routes::DEFAULT_ROUTES,
        );
        let mut table = serde_json::to_value(&rendered).unwrap();
        for (i, name) in names.iter().enumerate().take(4) {
            table["upstreams"][name] = json!([url(i)]);
        }
        let routes = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(routes.path(), table.to_string()).unwrap();
        let mut gateway_env = of("gateway");
        gateway_env.extend([
            ("VECHE_GATEWAY_ROUTES", routes.path().display().to_string()),
            ("VECHE_CLIENT_RPS", "0".into()),
            ("VECHE_USER_RPS", "0".into()),
        ]);
        let gateway = Served::start_on(ports[4], "gateway", &gateway_env);
        Cluster { users, organizations, events, analytics, gateway, http: crate::load::client(), _routes: routes }
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Outcome {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        attempt(req).await
    }

    /// The whole answer, for checking a problem.
    async fn reply(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        send(req).await
    }

    async fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let r = self.call(method, path, token, body).await;
        r.acked().unwrap_or_else(|| panic!("{method} {path}: {r:?}")).clone()
    }

    async fn person(&self, email: &str) -> String {
        let body = json!({ "email": email, "password": PASSWORD, "display_name": "Person" });
        self.ok("POST", "/api/v1/auth/register", None, Some(body)).await;
        let login = json!({ "email": email, "password": PASSWORD });
        self.ok("POST", "/api/v1/auth/login", None, Some(login)).await["access_token"].as_str().unwrap().to_owned()
    }

    /// The relay's lag of `service`, as its `/metrics` says.
    async fn lag(&self, service: &Served, name: &str) -> f64 {
        let text = self.http.get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let series = format!("outbox_relay_lag{{service=\"{name}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    }
}

fn event_body(org: &str, title: &str) -> Value {
    json!({"title": title, "description": "", "start": "2031-03-05T16:00:00Z", "end": "2031-03-05T18:00:00Z",
           "time_zone": "Europe/Moscow", "format": "online", "online_url": "https://example.org/live", "tags": [],
           "category": "talk", "capacity": 100, "organization_id": org})
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn events_answers_503_while_organizations_is_down_and_writes_nothing() {
    let _alone = ALONE.lock().await;
    let mut c = Cluster::start();
    let owner = c.person("owner@deps.test").await;
    let first = c.ok("POST", "/api/v1/organizations", Some(&owner), Some(json!({"name": "First"}))).await;
    let second = c.ok("POST", "/api/v1/organizations", Some(&owner), Some(json!({"name": "Second"}))).await;
    let (first, second) = (first["id"].as_str().unwrap().to_owned(), second["id"].as_str().unwrap().to_owned());
    let made = c.ok("POST", "/api/v1/events", Some(&owner), Some(event_body(&first, "Before"))).await;
    let before = made["id"].as_str().unwrap().to_owned();
    let stranger = c.person("stranger@deps.test").await;

    c.organizations.kill();
    let events_db = c.events.data().join("events.db");
    let (rows, facts) =
        (count(&events_db, "SELECT count(*) FROM events"), count(&events_db, "SELECT count(*) FROM outbox"));
    // A role events has not asked about yet: only organizations knows it.
    c.reply("POST", "/api/v1/events", Some(&owner), Some(event_body(&second, "During"))).await.assert_problem(503);
    c.reply("POST", &format!("/api/v1/events/{before}/publish"), Some(&stranger), None).await.assert_problem(503);
    let edit = json!({"title": "Renamed by a stranger"});
    c.reply("PATCH", &format!("/api/v1/events/{before}"), Some(&stranger), Some(edit)).await.assert_problem(503);
    assert_eq!(count(&events_db, "SELECT count(*) FROM events"), rows, "no event was half-made");
    assert_eq!(count(&events_db, "SELECT count(*) FROM outbox"), facts, "no fact of a change that did not happen");
    // What needs no one's role still works: the organizer's own draft, already known.
    assert_eq!(c.ok("GET", &format!("/api/v1/events/{before}"), Some(&owner), None).await["title"], "Before");

    c.organizations.restart();
    eventually(Duration::from_secs(30), "events creates again once organizations is back", || async {
        c.call("POST", "/api/v1/events", Some(&owner), Some(event_body(&second, "After"))).await.acked().is_some()
    })
    .await;
    assert_eq!(count(&events_db, "SELECT count(*) FROM events"), rows + 1, "exactly the event asked for after");
    // And the stranger is told the truth now: a draft of others is not found.
    c.reply("POST", &format!("/api/v1/events/{before}/publish"), Some(&stranger), None).await.assert_problem(404);
}
