//! The newcomer's walkthrough, `examples/walkthrough.sh` (curl), against a freshly started
//! `veche up`: it must succeed, twice on the same server (new people each run), and what
//! it says it made must be there when asked through the API.

use crate::common::orgs::call;
use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// What one run of the walkthrough reports it made, from its closing summary.
#[derive(Debug)]
struct Walk {
    organizer: String,
    member: String,
    password: String,
    organization: String,
    event: String,
}

/// Runs the script against `v`, with `json` forcing its JSON reader (None: its own choice).
/// Panics with its whole output unless it exits 0.
fn walkthrough(v: &Veche, json: Option<&str>) -> Walk {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/walkthrough.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).env("VECHE_URL", &v.base).env("VECHE_DATA_DIR", &v.data).env_remove("WALKTHROUGH_JSON");
    if let Some(json) = json {
        cmd.env("WALKTHROUGH_JSON", json);
    }
    let out = cmd.output().expect("run bash examples/walkthrough.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "examples/walkthrough.sh (JSON via {}) exited with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        json.unwrap_or("its choice"),
        out.status
    );

    let summary = stdout.split("==> Done.").nth(1).unwrap_or_else(|| panic!("no closing summary:\n{stdout}"));
    let value = |key: &str| {
        summary
            .lines()
            .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with(' ')).map(|rest| rest.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{key}` in the summary:\n{summary}"))
    };
    let password = summary
        .split("the password of both people: ")
        .nth(1)
        .and_then(|rest| rest.split("):").next())
        .unwrap_or_else(|| panic!("no password in the summary:\n{summary}"))
        .to_owned();
    Walk {
        organizer: value("organizer"),
        member: value("member"),
        password,
        organization: value("organization"),
        event: value("event"),
    }
}

/// Checks through the API what one run says it made.
async fn check(v: &Veche, walk: &Walk) {
    let (org, event) = (&walk.organization, &walk.event);

    // Anyone finds the published event, without a token.
    let found = call(v, "GET", &format!("/api/v1/events?organization_id={org}"), None, None).await;
    assert_eq!(found.status, 200, "{found:?}");
    let items = found.body["items"].as_array().unwrap();
    let listed = items.iter().find(|e| e["id"] == event.as_str());
    let listed = listed.unwrap_or_else(|| panic!("event {event} is not found anonymously: {found:?}"));
    assert_eq!(listed["status"], "published", "{listed}");
    assert_eq!(listed["organization_id"], org.as_str(), "{listed}");

    // One seat is taken, and the calendar file is there for everyone.
    let anon = call(v, "GET", &format!("/api/v1/events/{event}"), None, None).await;
    assert_eq!(anon.status, 200, "{anon:?}");
    assert_eq!(anon.body["registered_count"], 1, "{anon:?}");
    let ics = call(v, "GET", &format!("/api/v1/events/{event}.ics"), None, None).await;
    assert_eq!(ics.status, 200, "{ics:?}");
    assert!(ics.content_type.starts_with("text/calendar"), "{ics:?}");

    // The member holds that seat and is a member (not more) of the organization.
    let r = login(v, &walk.member, &walk.password).await;
    assert_eq!(r.status, 200, "{r:?}");
    let member = r.body["access_token"].as_str().unwrap().to_owned();
    let mine = get_auth(v, "/api/v1/users/me/registrations", &member).await;
    assert_eq!(mine.status, 200, "{mine:?}");
    let seats: Vec<&Value> =
        mine.body["items"].as_array().unwrap().iter().filter(|m| m["event"]["id"] == event.as_str()).collect();
    assert_eq!(seats.len(), 1, "{mine:?}");
    assert_eq!(seats[0]["registration"]["status"], "registered", "{mine:?}");
    let orgs = get_auth(v, "/api/v1/users/me/organizations", &member).await;
    assert_eq!(orgs.status, 200, "{orgs:?}");
    let joined = orgs.body["items"].as_array().unwrap().iter().find(|o| o["id"] == org.as_str());
    assert_eq!(joined.map(|o| &o["role"]), Some(&Value::from("member")), "member of {org}: {orgs:?}");

    // The organizer owns the organization.
    let r = login(v, &walk.organizer, &walk.password).await;
    assert_eq!(r.status, 200, "{r:?}");
    let organizer = r.body["access_token"].as_str().unwrap().to_owned();
    let members = get_auth(v, &format!("/api/v1/organizations/{org}/members"), &organizer).await;
    assert_eq!(members.status, 200, "{members:?}");
    let roles: Vec<&str> =
        members.body["items"].as_array().unwrap().iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles.len(), 2, "an owner and a member: {members:?}");
    assert!(roles.contains(&"owner") && roles.contains(&"member"), "{members:?}");
}

#[tokio::test]
async fn the_walkthrough_runs_against_a_fresh_veche_up_and_again() {
    let v = Veche::start();

    let first = walkthrough(&v, None);
    check(&v, &first).await;

    // Again on the same server: new people, a new organization, a new event; and the JSON
    // reader it falls back to without jq, when Python is there to test it with.
    let python = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    let second = walkthrough(&v, python.then_some("python3"));
    assert_ne!(first.organizer, second.organizer);
    assert_ne!(first.member, second.member);
    assert_ne!(first.organization, second.organization);
    assert_ne!(first.event, second.event);
    check(&v, &second).await;
}
