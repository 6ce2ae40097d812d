//! Organizations over real HTTP against the real binary and a real SQLite file: who may
//! do what, invitations by mail, ownership, search, and the membership lookup other
//! services ask with a service token.

use crate::common::orgs::*;
use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_creator_owns_it_and_the_profile_is_public() {
    let v = Veche::start();
    let (anna, _) = signed_up(&v, "anna@example.org").await;
    let body = json!({
        "name": "  Шахматный клуб «Казань» ",
        "description": "Blitz on Thursdays",
        "website": "https://chess.example",
        "logo_url": "https://chess.example/logo.png",
        "contacts": {"email": "hello@chess.example", "phone": "+7 843 123-45-67", "telegram": "@kazanchess"},
    });
    let org = create_org(&v, &anna, body).await;
    assert_eq!(org["name"], "Шахматный клуб «Казань»");
    assert_eq!(org["slug"], "shakhmatnyy-klub-kazan");
    assert_eq!(org["contacts"]["telegram"], "@kazanchess");
    let id = uuid::Uuid::parse_str(org["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4, "random ids, never sequential");
    assert!(org["created_at"].as_str().unwrap().ends_with('Z'), "RFC 3339 in UTC: {org}");

    // Anyone may read the profile, by id or by slug, without signing in.
    let r = call(&v, "GET", &org_path(&org, ""), None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, org);
    let r = call(&v, "GET", "/api/v1/organizations/shakhmatnyy-klub-kazan", None, None).await;
    assert_eq!(r.body["id"], org["id"]);
    call(&v, "GET", "/api/v1/organizations/no-such-club", None, None).await.assert_problem(404);
    call(&v, "GET", &format!("/api/v1/organizations/{}", uuid::Uuid::new_v4()), None, None).await.assert_problem(404);

    // PATCH is a JSON Merge Patch, contacts included: one removed, one added, the rest kept.
    let patch = json!({"contacts": {"phone": null, "vk": "kazanchess"}, "description": null});
    let r = patch_as(&v, &anna, &org_path(&org, ""), patch).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["contacts"],
        json!({"email": "hello@chess.example", "telegram": "@kazanchess", "vk": "kazanchess"})
    );
    assert_eq!(r.body["description"], Value::Null);
    assert_eq!(r.body["website"], org["website"], "left out, so kept");
    // A merge that would pass the bound of ten contacts is refused and changes nothing.
    let many: serde_json::Map<String, Value> = (0..8).map(|i| (format!("site{i}"), json!("x"))).collect();
    let r = patch_as(&v, &anna, &org_path(&org, ""), json!({"contacts": many})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "contacts");
    let r = call(&v, "GET", &org_path(&org, ""), None, None).await;
    assert_eq!(r.body["contacts"].as_object().map(|c| c.len()), Some(3));
    let r = patch_as(&v, &anna, &org_path(&org, ""), json!({"contacts": null})).await;
    assert_eq!(r.body["contacts"], json!({}), "{r:?}");

    // The creator is the owner.
    let members = get_auth(&v, &org_path(&org, "/members"), &anna).await;
    assert_eq!(members.status, 200, "{members:?}");
    let items = members.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], user_id(&anna));
    assert_eq!(items[0]["role"], "owner");

    // Creating needs a signed-in person.
    call(&v, "POST", "/api/v1/organizations", None, Some(json!({"name": "Anon"}))).await.assert_problem(401);
}

#[tokio::test]
async fn members_read_but_cannot_manage() {
    let v = Veche::start();
    let c = cast(&v).await;
    let m = &c.member;
    assert_eq!(get_auth(&v, &org_path(&c.org, "/members"), m).await.status, 200);
    patch_as(&v, m, &org_path(&c.org, ""), json!({"name": "Mine now"})).await.assert_problem(403);
    get_auth(&v, &org_path(&c.org, "/invitations"), m).await.assert_problem(403);
    post_as(&v, m, &org_path(&c.org, "/invitations"), json!({"email": "x@example.org"})).await.assert_problem(403);
    let admin_path = org_path(&c.org, &format!("/members/{}", user_id(&c.admin)));
    patch_as(&v, m, &admin_path, json!({"role": "member"})).await.assert_problem(403);
    delete_as(&v, m, &admin_path).await.assert_problem(403);
    let owner_id = user_id(&c.owner);
    post_as(&v, m, &org_path(&c.org, "/transfer"), json!({"user_id": owner_id})).await.assert_problem(403);
    delete_as(&v, m, &org_path(&c.org, "")).await.assert_problem(403);
    // Nothing changed.
    let r = call(&v, "GET", &org_path(&c.org, ""), None, None).await;
    assert_eq!(r.body["name"], "Kazan Chess Club");
    assert_eq!(get_auth(&v, &admin_path, &c.owner).await.body["role"], "admin");
}

#[tokio::test]
async fn admins_edit_and_manage_members_but_cannot_touch_owners() {
    let v = Veche::start();
    let c = cast(&v).await;
    let a = &c.admin;
    let r = patch_as(&v, a, &org_path(&c.org, ""), json!({"description": "Blitz on Thursdays"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["description"], "Blitz on Thursdays");
    assert_eq!(get_auth(&v, &org_path(&c.org, "/invitations"), a).await.status, 200);

    let member_path = org_path(&c.org, &format!("/members/{}", user_id(&c.member)));
    let r = patch_as(&v, a, &member_path, json!({"role": "admin"})).await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("admin")), "{r:?}");
    let r = patch_as(&v, a, &member_path, json!({"role": "member"})).await;
    assert_eq!(r.body["role"], "member");

    // Owners are for owners.
    let owner_path = org_path(&c.org, &format!("/members/{}", user_id(&c.owner)));
    patch_as(&v, a, &owner_path, json!({"role": "member"})).await.assert_problem(403);
    delete_as(&v, a, &owner_path).await.assert_problem(403);
    patch_as(&v, a, &member_path, json!({"role": "owner"})).await.assert_problem(403);
    let r = post_as(&v, a, &org_path(&c.org, "/invitations"), json!({"email": "x@example.org", "role": "owner"})).await;
    r.assert_problem(403);
    let member_id = user_id(&c.member);
    post_as(&v, a, &org_path(&c.org, "/transfer"), json!({"user_id": member_id})).await.assert_problem(403);
    delete_as(&v, a, &org_path(&c.org, "")).await.assert_problem(403);

    // An admin removes a member; the member is gone.
    assert_eq!(delete_as(&v, a, &member_path).await.status, 204);
    get_auth(&v, &org_path(&c.org, "/members"), &c.member).await.assert_problem(403);
    get_auth(&v, &member_path, &c.owner).await.assert_problem(404);
}

#[tokio::test]
async fn strangers_and_other_organizations_cannot_touch_it() {
    let v = Veche::start();
    let c = cast(&v).await;
    let member_path = org_path(&c.org, &format!("/members/{}", user_id(&c.member)));
    let invitation_path = org_path(&c.org, &format!("/invitations/{}", uuid::Uuid::new_v4()));
    for who in [&c.stranger, &c.other_owner] {
        let attempts = [
            get_auth(&v, &org_path(&c.org, "/members"), who).await,
            get_auth(&v, &member_path, who).await,
            get_auth(&v, &org_path(&c.org, "/invitations"), who).await,
            patch_as(&v, who, &org_path(&c.org, ""), json!({"name": "Taken over"})).await,
            delete_as(&v, who, &org_path(&c.org, "")).await,
            patch_as(&v, who, &member_path, json!({"role": "admin"})).await,
            delete_as(&v, who, &member_path).await,
            post_as(&v, who, &org_path(&c.org, "/invitations"), json!({"email": "x@example.org"})).await,
            delete_as(&v, who, &invitation_path).await,
            post_as(&v, who, &org_path(&c.org, "/transfer"), json!({"user_id": user_id(who)})).await,
        ];
        for r in attempts {
            assert!(r.status == 403 || r.status == 404, "never allowed: {r:?}");
            r.assert_problem(r.status);
        }
    }
    // Anonymous callers are asked to sign in.
    call(&v, "GET", &org_path(&c.org, "/members"), None, None).await.assert_problem(401);
    call(&v, "DELETE", &org_path(&c.org, ""), None, None).await.assert_problem(401);
    // The organization and its member are untouched.
    let r = call(&v, "GET", &org_path(&c.org, ""), None, None).await;
    assert_eq!(r.body["name"], "Kazan Chess Club");
    assert_eq!(get_auth(&v, &member_path, &c.owner).await.body["role"], "member");
}

#[tokio::test]
async fn platform_admins_may_do_anything() {
    let v = Veche::start();
    let c = cast(&v).await;
    let root = admin(&v, "root@example.org").await;
    assert_eq!(get_auth(&v, &org_path(&c.org, "/members"), &root).await.status, 200);
    let r = patch_as(&v, &root, &org_path(&c.org, ""), json!({"name": "Renamed by staff"})).await;
    assert_eq!(r.body["name"], "Renamed by staff", "{r:?}");
    let owner_path = org_path(&c.org, &format!("/members/{}", user_id(&c.owner)));
    // Still, an organization keeps an owner, whoever asks.
    patch_as(&v, &root, &owner_path, json!({"role": "admin"})).await.assert_problem(409);
    assert_eq!(delete_as(&v, &root, &org_path(&c.org, "")).await.status, 204);
    call(&v, "GET", &org_path(&c.org, ""), None, None).await.assert_problem(404);
}

#[tokio::test]
async fn invitation_by_mail_is_accepted_once_by_the_invited_address() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Chess"})).await;
    let (boris, _) = signed_up(&v, "boris@example.org").await;
    let (eve, _) = signed_up(&v, "eve@example.org").await;

    // Invited with a differently-cased address; the link points at the public URL.
    let token = invite(&v, &org, &owner, "Boris@Example.ORG", "admin").await;
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    let pending = get_auth(&v, &org_path(&org, "/invitations"), &owner).await;
    let items = pending.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending:?}");
    assert_eq!(items[0]["email"], "boris@example.org");
    assert_eq!(items[0]["role"], "admin");
    assert!(!pending.body.to_string().contains(&token));

    // Someone else with the link is refused, and does not spend it.
    accept(&v, &eve, &token).await.assert_problem(403);
    get_auth(&v, &org_path(&org, "/members"), &eve).await.assert_problem(403);

    let r = accept(&v, &boris, &token).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["user_id"], user_id(&boris));
    assert_eq!(r.body["role"], "admin");
    let mine = get_auth(&v, "/api/v1/users/me/organizations", &boris).await;
    assert_eq!(mine.body["items"][0]["id"], org["id"]);
    assert_eq!(mine.body["items"][0]["role"], "admin");

    // Single use.
    let again = accept(&v, &boris, &token).await;
    again.assert_problem(410);
    assert_eq!(again.body["type"], "https://veche.dev/problems/gone");
    let pending = get_auth(&v, &org_path(&org, "/invitations"), &owner).await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 0);

    // Revoked links and made-up ones are gone too.
    let (carol, _) = signed_up(&v, "carol@example.org").await;
    let token = invite(&v, &org, &boris, "carol@example.org", "member").await;
    let pending = get_auth(&v, &org_path(&org, "/invitations"), &boris).await;
    let invitation_id = pending.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(delete_as(&v, &boris, &org_path(&org, &format!("/invitations/{invitation_id}"))).await.status, 204);
    accept(&v, &carol, &token).await.assert_problem(410);
    accept(&v, &carol, "made-up-token").await.assert_problem(410);
    accept(&v, &carol, &"x".repeat(10_000)).await.assert_problem(410);
    call(&v, "POST", "/api/v1/organizations/invitations/accept", None, Some(json!({"token": token})))
        .await
        .assert_problem(401);
    get_auth(&v, &org_path(&org, "/members"), &carol).await.assert_problem(403);
}

#[tokio::test]
async fn the_last_owner_cannot_leave_be_demoted_or_removed() {
    let v = Veche::start();
    let c = cast(&v).await;
    let owner_path = org_path(&c.org, &format!("/members/{}", user_id(&c.owner)));
    let r = delete_as(&v, &c.owner, &owner_path).await;
    r.assert_problem(409);
    assert!(r.body["detail"].as_str().unwrap().contains("owner"), "{r:?}");
    patch_as(&v, &c.owner, &owner_path, json!({"role": "admin"})).await.assert_problem(409);

    // A member may leave.
    let member_path = org_path(&c.org, &format!("/members/{}", user_id(&c.member)));
    assert_eq!(delete_as(&v, &c.member, &member_path).await.status, 204);
    let mine = get_auth(&v, "/api/v1/users/me/organizations", &c.member).await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 0);

    // With a second owner, the first may step down and then leave.
    let admin_path = org_path(&c.org, &format!("/members/{}", user_id(&c.admin)));
    assert_eq!(patch_as(&v, &c.owner, &admin_path, json!({"role": "owner"})).await.status, 200);
    assert_eq!(patch_as(&v, &c.owner, &owner_path, json!({"role": "admin"})).await.body["role"], "admin");
    assert_eq!(delete_as(&v, &c.owner, &owner_path).await.status, 204);
    delete_as(&v, &c.admin, &admin_path).await.assert_problem(409);
}

#[tokio::test]
async fn transfer_makes_a_member_owner_and_the_owner_admin() {
    let v = Veche::start();
    let c = cast(&v).await;
    let transfer = org_path(&c.org, "/transfer");
    let r = post_as(&v, &c.owner, &transfer, json!({"user_id": user_id(&c.stranger)})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "user_id");
    post_as(&v, &c.owner, &transfer, json!({"user_id": user_id(&c.owner)})).await.assert_problem(422);

    let r = post_as(&v, &c.owner, &transfer, json!({"user_id": user_id(&c.member)})).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(role_of(&v, &c.org, &c.admin, &c.member).await, "owner");
    assert_eq!(role_of(&v, &c.org, &c.admin, &c.owner).await, "admin");
    // The former owner lost what only owners may do; the new one has it.
    delete_as(&v, &c.owner, &org_path(&c.org, "")).await.assert_problem(403);
    assert_eq!(delete_as(&v, &c.member, &org_path(&c.org, "")).await.status, 204);
}

#[tokio::test]
async fn my_organizations_show_my_role_in_each() {
    let v = Veche::start();
    let (anna, _) = signed_up(&v, "anna@example.org").await;
    let (boris, _) = signed_up(&v, "boris@example.org").await;
    let alpha = create_org(&v, &anna, json!({"name": "Alpha", "slug": "alpha-club"})).await;
    let beta = create_org(&v, &boris, json!({"name": "Beta"})).await;
    let token = invite(&v, &beta, &boris, "anna@example.org", "member").await;
    assert_eq!(accept(&v, &anna, &token).await.status, 200);
    create_org(&v, &boris, json!({"name": "Gamma"})).await;

    let first = get_auth(&v, "/api/v1/users/me/organizations?limit=1", &anna).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        first.body["items"],
        json!([{"id": alpha["id"], "name": "Alpha", "slug": "alpha-club", "role": "owner"}])
    );
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = get_auth(&v, &format!("/api/v1/users/me/organizations?limit=1&cursor={cursor}"), &anna).await;
    assert_eq!(rest.body["items"], json!([{"id": beta["id"], "name": "Beta", "slug": "beta", "role": "member"}]));
    assert!(rest.body.get("next_cursor").is_none(), "{rest:?}");
    call(&v, "GET", "/api/v1/users/me/organizations", None, None).await.assert_problem(401);
}

#[tokio::test]
async fn search_finds_by_name_and_pages_with_cursors() {
    let v = Veche::start();
    let (anna, _) = signed_up(&v, "anna@example.org").await;
    let names = ["Go Club", "Chess club", "Book Club", "Running Club", "Club of Clubs", "Art Club", "Jazz"];
    for name in names {
        create_org(&v, &anna, json!({"name": name})).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/organizations?q=CLUB&limit=2&cursor={c}"),
            None => "/api/v1/organizations?q=CLUB&limit=2".to_owned(),
        };
        let r = call(&v, "GET", &path, None, None).await;
        assert_eq!(r.status, 200, "{r:?}");
        pages += 1;
        for item in r.body["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(seen, vec!["Art Club", "Book Club", "Chess club", "Club of Clubs", "Go Club", "Running Club"]);
    assert_eq!(pages, 3);
    let all = call(&v, "GET", "/api/v1/organizations", None, None).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), names.len());
    let none = call(&v, "GET", "/api/v1/organizations?q=%25", None, None).await;
    assert_eq!(none.body["items"].as_array().unwrap().len(), 0, "wildcards are literal");

    for bad in
        ["limit=0", "limit=201", "limit=banana", "cursor=garbage", "sort=name", &format!("q={}", "q".repeat(101))]
    {
        call(&v, "GET", &format!("/api/v1/organizations?{bad}"), None, None).await.assert_problem(422);
    }
}

#[tokio::test]
async fn slugs_are_unique() {
    let v = Veche::start();
    let (anna, _) = signed_up(&v, "anna@example.org").await;
    let first = create_org(&v, &anna, json!({"name": "Chess", "slug": "chess"})).await;
    let r = post_as(&v, &anna, "/api/v1/organizations", json!({"name": "Other", "slug": "chess"})).await;
    r.assert_problem(409);
    assert_eq!(r.body["type"], "https://veche.dev/problems/conflict");
    // A slug made from the name never conflicts: it gets a number.
    assert_eq!(create_org(&v, &anna, json!({"name": "Chess"})).await["slug"], "chess-2");
    let other = create_org(&v, &anna, json!({"name": "Go", "slug": "go-club"})).await;
    patch_as(&v, &anna, &org_path(&other, ""), json!({"slug": "chess"})).await.assert_problem(409);
    let r = patch_as(&v, &anna, &org_path(&first, ""), json!({"slug": "kazan-chess"})).await;
    assert_eq!(r.body["slug"], "kazan-chess");
    // The old slug is free again.
    assert_eq!(patch_as(&v, &anna, &org_path(&other, ""), json!({"slug": "chess"})).await.status, 200);
}

#[tokio::test]
async fn bad_input_gets_problems_never_500() {
    let v = Veche::start();
    let (anna, _) = signed_up(&v, "anna@example.org").await;
    let org = create_org(&v, &anna, json!({"name": "Chess"})).await;
    let me = user_id(&anna);
    let endpoints = [
        ("POST", "/api/v1/organizations".to_owned()),
        ("PATCH", org_path(&org, "")),
        ("POST", org_path(&org, "/transfer")),
        ("PATCH", org_path(&org, &format!("/members/{me}"))),
        ("POST", org_path(&org, "/invitations")),
        ("POST", "/api/v1/organizations/invitations/accept".to_owned()),
    ];
    let bodies = [
        "{\"name\": ",
        "[1,2,3]",
        "null",
        r#"{"name": 5, "slug": [], "contacts": "x", "role": 1, "email": {}, "token": 7, "user_id": "nope"}"#,
        r#"{"name": "A", "is_admin": true, "role": "admin", "email": "a@b.co", "token": "t", "user_id": "x"}"#,
    ];
    for (method, path) in &endpoints {
        for body in bodies {
            let req = client()
                .request(method.parse().unwrap(), v.url(path))
                .bearer_auth(&anna)
                .header("content-type", "application/json")
                .body(body);
            let r = send(req).await;
            assert!((400..500).contains(&r.status), "{method} {path} {body}: {r:?}");
            r.assert_problem(r.status);
        }
        let req = client().request(method.parse().unwrap(), v.url(path)).bearer_auth(&anna).body("name=x");
        send(req.header("content-type", "text/plain")).await.assert_problem(415);
    }

    // Each bad field is named.
    let r = post_as(
        &v,
        &anna,
        "/api/v1/organizations",
        json!({
            "name": "n".repeat(500), "slug": "Not A Slug", "description": "d".repeat(6000),
            "logo_url": "javascript:alert(1)", "website": "ftp://example.org",
            "contacts": {"email": "nope", "phone": "call me", "fax": "f".repeat(300)},
        }),
    )
    .await;
    r.assert_problem(422);
    let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        vec!["name", "slug", "description", "logo_url", "website", "contacts.email", "contacts.fax", "contacts.phone"]
    );
    let r = post_as(&v, &anna, "/api/v1/organizations", json!({"name": "A", "contacts": {"x": 1}})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "contacts.x");
    patch_as(&v, &anna, &org_path(&org, ""), json!({"name": null})).await.assert_problem(422);
    let r = post_as(&v, &anna, &org_path(&org, "/invitations"), json!({"email": "not-an-email"})).await;
    assert_eq!(r.body["errors"][0]["field"], "email", "{r:?}");
    let r = patch_as(&v, &anna, &org_path(&org, &format!("/members/{me}")), json!({"role": "emperor"})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "role");

    // Ids that are not ids lead nowhere.
    get_auth(&v, "/api/v1/organizations/not-a-uuid/members", &anna).await.assert_problem(404);
    delete_as(&v, &anna, "/api/v1/organizations/not-a-uuid").await.assert_problem(404);
    get_auth(&v, &org_path(&org, "/members/not-a-uuid"), &anna).await.assert_problem(404);
    // Nothing was created by any of that.
    let all = call(&v, "GET", "/api/v1/organizations", None, None).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1, "{all:?}");
}

#[tokio::test]
async fn services_look_up_memberships_with_a_service_token() {
    let secret = "events-secret-of-enough-length";
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let internal = format!("http://127.0.0.1:{port}");
    let v = Veche::start_with(&[
        ("VECHE_SERVICE_CLIENTS", &format!("events={secret}")),
        ("VECHE_INTERNAL_LISTEN", &format!("127.0.0.1:{port}")),
    ]);
    let c = cast(&v).await;
    // Services call each other on the internal address, as in a cluster.
    let tokens = kit::service_token::ServiceTokens::new(kit::service_token::ClientCredentials {
        token_url: format!("{internal}/api/v1/auth/token"),
        client_id: "events".into(),
        client_secret: secret.into(),
    });
    let service = tokens.token_for("organizations").await.expect("a service token");
    let inside = |path: &str| client().get(format!("{internal}{path}")).bearer_auth(&service);

    let admin_id = user_id(&c.admin);
    let path = org_path(&c.org, &format!("/members/{admin_id}"));
    let r = send(inside(&path)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"organization_id": c.org["id"], "user_id": admin_id, "role": "admin"}));
    let stranger_path = org_path(&c.org, &format!("/members/{}", user_id(&c.stranger)));
    send(inside(&stranger_path)).await.assert_problem(404);
    let nowhere = format!("/api/v1/organizations/{}/members/{admin_id}", uuid::Uuid::new_v4());
    send(inside(&nowhere)).await.assert_problem(404);
    // From outside, the gateway refuses service tokens: they are for calls between services.
    get_auth(&v, &path, &service).await.assert_problem(401);

    // Members may ask too; a stranger may not, except about themselves.
    assert_eq!(get_auth(&v, &path, &c.member).await.body["role"], "admin");
    get_auth(&v, &path, &c.stranger).await.assert_problem(403);
    get_auth(&v, &path, &c.other_owner).await.assert_problem(403);
    get_auth(&v, &stranger_path, &c.stranger).await.assert_problem(404);
    call(&v, "GET", &path, None, None).await.assert_problem(401);

    // A token for another audience is refused; a service is not a person.
    let for_users = tokens.token_for("users").await.unwrap();
    send(client().get(format!("{internal}{path}")).bearer_auth(&for_users)).await.assert_problem(401);
    let bot = client().post(format!("{internal}/api/v1/organizations")).bearer_auth(&service);
    send(bot.json(&json!({"name": "Bot Club"}))).await.assert_problem(403);
    send(inside(&org_path(&c.org, "/members"))).await.assert_problem(403);
}

#[tokio::test]
async fn the_openapi_document_describes_the_organizations_api() {
    let v = Veche::start();
    let doc = send(client().get(v.url("/openapi.json"))).await.body;
    for path in [
        "/api/v1/organizations",
        "/api/v1/organizations/{id}",
        "/api/v1/organizations/{id}/members/{user_id}",
        "/api/v1/organizations/{id}/invitations",
        "/api/v1/organizations/invitations/accept",
        "/api/v1/organizations/{id}/transfer",
        "/api/v1/users/me/organizations",
        "/api/v1/auth/login",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["OrganizationView"].is_object());
}
