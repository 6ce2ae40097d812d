//! Dependencies failing: a service another one needs is gone, or the disk is full. The
//! caller gets a clear problem, nothing is half-written, and everything recovers, without
//! loss, once the dependency is back.

use crate::ALONE;
use crate::common::served::Served;
use crate::common::{PASSWORD, Reply, free_port, send};
use crate::load::{Outcome, attempt, event_body, eventually, request};
use serde_json::{Value, json};
use std::time::Duration;

/// The platform as a cluster runs it: every service a process of its own (`veche serve`),
/// each with its own store, behind the gateway with the operator's route table.
struct Cluster {
    /// Kept running: every other service checks tokens against it.
    _users: Served,
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
        Cluster {
            _users: users,
            organizations,
            events,
            analytics,
            gateway,
            http: crate::load::client(),
            _routes: routes,
        }
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Outcome {
        attempt(request(&self.http, method, self.url(path), token, body)).await
    }

    /// The whole answer, for checking a problem.
    async fn reply(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        send(request(&self.http, method, self.url(path), token, body)).await
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
    let made = c.ok("POST", "/api/v1/events", Some(&owner), Some(event_body(&first, "Before", Some(100)))).await;
    let before = made["id"].as_str().unwrap().to_owned();
    let stranger = c.person("stranger@deps.test").await;

    c.organizations.kill();
    let events_db = c.events.data().join("events.db");
    let (rows, facts) =
        (count(&events_db, "SELECT count(*) FROM events"), count(&events_db, "SELECT count(*) FROM outbox"));
    // A role events has not asked about yet: only organizations knows it.
    c.reply("POST", "/api/v1/events", Some(&owner), Some(event_body(&second, "During", Some(100))))
        .await
        .assert_problem(503);
    c.reply("POST", &format!("/api/v1/events/{before}/publish"), Some(&stranger), None).await.assert_problem(503);
    let edit = json!({"title": "Renamed by a stranger"});
    c.reply("PATCH", &format!("/api/v1/events/{before}"), Some(&stranger), Some(edit)).await.assert_problem(503);
    assert_eq!(count(&events_db, "SELECT count(*) FROM events"), rows, "no event was half-made");
    assert_eq!(count(&events_db, "SELECT count(*) FROM outbox"), facts, "no fact of a change that did not happen");
    // What needs no one's role still works: the organizer's own draft, already known.
    assert_eq!(c.ok("GET", &format!("/api/v1/events/{before}"), Some(&owner), None).await["title"], "Before");

    c.organizations.restart();
    eventually(Duration::from_secs(30), "events creates again once organizations is back", || async {
        c.call("POST", "/api/v1/events", Some(&owner), Some(event_body(&second, "After", Some(100))))
            .await
            .acked()
            .is_some()
    })
    .await;
    assert_eq!(count(&events_db, "SELECT count(*) FROM events"), rows + 1, "exactly the event asked for after");
    // And the stranger is told the truth now: a draft of others is not found.
    c.reply("POST", &format!("/api/v1/events/{before}/publish"), Some(&stranger), None).await.assert_problem(404);
}

/// Analytics is gone while the platform keeps working: the facts wait in the outboxes (the
/// relay's lag rises), and once analytics is back they all arrive, each counted once.
#[tokio::test]
async fn facts_wait_in_the_outbox_while_analytics_is_down_and_arrive_once() {
    let _alone = ALONE.lock().await;
    let views = if crate::long_mode() { 100_000 } else { 20_000 };
    let mut c = Cluster::start();
    let owner = c.person("owner@facts.test").await;
    let org = c.ok("POST", "/api/v1/organizations", Some(&owner), Some(json!({"name": "Facts"}))).await;
    let made = c
        .ok("POST", "/api/v1/events", Some(&owner), Some(event_body(org["id"].as_str().unwrap(), "Seen", Some(100))))
        .await;
    let event = made["id"].as_str().unwrap().to_owned();
    c.ok("POST", &format!("/api/v1/events/{event}/publish"), Some(&owner), None).await;
    let report = format!("/api/v1/analytics/events/{event}?bucket=day");
    eventually(Duration::from_secs(30), "analytics knows the event", || async {
        c.call("GET", &report, Some(&owner), None).await.acked().is_some()
    })
    .await;

    c.analytics.kill();
    // The hour analytics is away, compressed: page views from many visitors, sign-ups and
    // registrations.
    let page = c.url(&format!("/api/v1/events/{event}"));
    let started = std::time::Instant::now();
    for chunk in 0..views / 500 {
        let batch = (0..500).map(|i| {
            let visitor = format!("visitor-{}", chunk * 500 + i);
            c.http.get(&page).header("x-forwarded-for", visitor).send()
        });
        for r in futures::future::join_all(batch).await {
            assert_eq!(r.unwrap().status(), 200);
        }
    }
    let mut attendees = Vec::new();
    for i in 0..5 {
        let token = c.person(&format!("attendee{i}@facts.test")).await;
        c.ok("POST", &format!("/api/v1/events/{event}/registrations"), Some(&token), None).await;
        attendees.push(token);
    }
    let events_db = c.events.data().join("events.db");
    let viewed = |db: &std::path::Path| {
        count(
            db,
            &format!(
                "SELECT count(*) FROM outbox WHERE kind = 'event.viewed' AND payload ->> '$.event_id' = '{event}'"
            ),
        )
    };
    eventually(Duration::from_secs(30), "every view is in the events service's outbox", || async {
        viewed(&events_db) >= views as i64
    })
    .await;
    let held = viewed(&events_db);
    eventually(Duration::from_secs(30), "the relay's lag shows what waits", || async {
        c.lag(&c.events, "events").await >= held as f64
    })
    .await;
    eprintln!(
        "dependencies: {held} views and 5 registrations held while analytics was down ({:.1} s of traffic), lag {}",
        started.elapsed().as_secs_f64(),
        c.lag(&c.events, "events").await
    );

    c.analytics.restart();
    let drained = std::time::Instant::now();
    let made = count(
        &events_db,
        &format!(
            "SELECT count(*) FROM outbox WHERE kind IN ('registration.made', 'registration.waitlisted') AND payload ->> '$.event_id' = '{event}'"
        ),
    );
    eventually(Duration::from_secs(120), "every held fact reaches analytics", || async {
        let totals = c.call("GET", &report, Some(&owner), None).await;
        totals.acked().is_some_and(|t| t["totals"]["views"] == held && t["totals"]["registrations"] == made)
    })
    .await;
    eventually(Duration::from_secs(30), "the lag is back to nothing", || async {
        c.lag(&c.events, "events").await == 0.0
    })
    .await;
    eprintln!("dependencies: drained {held} facts in {:.1} s", drained.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = c.ok("GET", &report, Some(&owner), None).await;
    assert_eq!(again["totals"]["views"], held, "each counted once, even after the relay had time to send again");
}

/// A filesystem of its own, small, for the data directory; unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "veche-small-disk"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            mounted.success(),
            "the full-disk test mounts a small tmpfs for the data directory, which takes root (or CAP_SYS_ADMIN); \
             run the suite as root or in a container that allows mounts"
        );
        SmallDisk(dir)
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    /// Fills what is left with a file of its own; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let ballast = self.path().join("ballast");
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let small = vec![0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.flush();
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// The data directory's disk fills up: writes are refused with a 507 problem (never a
/// 500), reads keep working, and once there is room again writes go on, nothing lost and
/// every store intact.
#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_loses_nothing() {
    let _alone = ALONE.lock().await;
    let disk = SmallDisk::mount("48m");
    let data = disk.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut v = crate::common::Veche::start_in(data.clone(), &[]);
    let (http, base) = (crate::load::client(), v.base.clone());
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        send(request(&http, method, format!("{base}{path}"), token, body))
    };
    let (owner, _) = crate::common::signed_up(&v, "owner@disk.test").await;
    let org = call("POST", "/api/v1/organizations", Some(&owner), Some(json!({"name": "Disk"}))).await;
    let org = org.body["id"].as_str().unwrap().to_owned();
    let mut kept = Vec::new();
    let create =
        |title: String| call("POST", "/api/v1/events", Some(&owner), Some(event_body(&org, &title, Some(100))));
    let first = create("Before the disk filled".into()).await;
    assert_eq!(first.status, 201, "{first:?}");
    let event = first.body["id"].as_str().unwrap().to_owned();
    kept.push(event.clone());
    let published = call("POST", &format!("/api/v1/events/{event}/publish"), Some(&owner), None).await;
    assert_eq!(published.status, 200, "{published:?}");

    let ballast = disk.fill();
    // Writes until one is refused (pages SQLite already has may take a few), each answer a
    // success or a 507 problem.
    let mut refused = 0;
    let description = "a long description ".repeat(200);
    for i in 0..500 {
        let mut body = event_body(&org, &format!("While full {i}"), Some(100));
        body["description"] = json!(description);
        let r = call("POST", "/api/v1/events", Some(&owner), Some(body)).await;
        if r.status == 201 {
            kept.push(r.body["id"].as_str().unwrap().to_owned());
            continue;
        }
        r.assert_problem(507);
        refused += 1;
        break;
    }
    assert_eq!(refused, 1, "a write was refused once the disk was full");
    // Every kind of write: a success or a 507 problem, never a 500.
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/v1/auth/register".into(),
            Some(json!({"email": "late@disk.test", "password": PASSWORD, "display_name": "Late"})),
        ),
        ("POST", "/api/v1/organizations".into(), Some(json!({"name": "Full"}))),
        ("PATCH", "/api/v1/users/me".into(), Some(json!({"display_name": "Renamed while full"}))),
        ("POST", format!("/api/v1/events/{event}/registrations"), None),
        ("PATCH", format!("/api/v1/events/{event}"), Some(json!({"title": "Retitled while full"}))),
    ];
    let mut statuses = Vec::new();
    for (method, path, body) in &writes {
        let r = call(method, path, Some(&owner), body.clone()).await;
        assert!(r.status < 300 || r.status == 507, "{method} {path} on a full disk: {r:?}");
        eprintln!("dependencies: full disk: {method} {path}: {}", r.status);
        if r.status == 507 {
            r.assert_problem(507);
        }
        statuses.push(r.status);
    }
    // A refused creation left nothing behind; an acknowledged one is there.
    let rows = |db: &str, sql: &str| count(&data.join(db), sql);
    let accounts = rows("users.db", "SELECT count(*) FROM users WHERE email = 'late@disk.test'");
    assert_eq!(accounts, i64::from(statuses[0] == 201), "the sign-up answered {}", statuses[0]);
    let organizations = rows("organizations.db", "SELECT count(*) FROM organizations WHERE name = 'Full'");
    assert_eq!(organizations, i64::from(statuses[1] == 201), "the organization answered {}", statuses[1]);
    // Reads go on.
    for path in [format!("/api/v1/events/{event}"), "/api/v1/events?q=disk".into(), "/api/v1/users/me".into()] {
        assert_eq!(call("GET", &path, Some(&owner), None).await.status, 200, "GET {path} on a full disk");
    }

    std::fs::remove_file(ballast).unwrap();
    let after = create("After the disk had room".into()).await;
    assert_eq!(after.status, 201, "writes go on once there is room: {after:?}");
    kept.push(after.body["id"].as_str().unwrap().to_owned());
    v.kill();
    crate::load::check_integrity(&data);
    v.restart();
    let fresh = crate::load::client();
    for id in &kept {
        let r = send(fresh.get(v.url(&format!("/api/v1/events/{id}"))).bearer_auth(&owner)).await;
        assert_eq!(r.status, 200, "the acknowledged event {id} is there: {r:?}");
    }
    eprintln!("dependencies: full disk: {} events kept, writes refused with 507, reads served", kept.len());
}
