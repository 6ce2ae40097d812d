//! A real OpenID provider for the sign-in tests (npm's oidc-provider, `tests/oidc/
//! provider.mjs`), a misbehaving one (`tests/python/hostile_oidc.py`), and a scripted user
//! agent (`tests/python/oidc_login.py`) that goes through them as a browser would.

#![allow(dead_code)]

use super::*;
use std::io::{BufRead, BufReader};

pub const CLIENT_ID: &str = "veche";
pub const CLIENT_SECRET: &str = "a client secret long enough";

/// Veche with the provider `corp` at a port chosen now, and that provider started.
pub fn with_provider() -> (Veche, OidcProvider) {
    let port = free_port();
    let v = Veche::start_with(&[("VECHE_AUTH_PROVIDERS", &OidcProvider::config(port))]);
    let provider = OidcProvider::start(port, &v);
    (v, provider)
}

/// A running provider; killed when dropped.
pub struct OidcProvider {
    child: Child,
    pub port: u16,
}

impl OidcProvider {
    pub fn issuer_on(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// The `VECHE_AUTH_PROVIDERS` value naming a provider `corp` at `port`.
    pub fn config(port: u16) -> String {
        Self::config_binding(port, &[])
    }

    /// The same, with email `domains` bound to it.
    pub fn config_binding(port: u16, domains: &[&str]) -> String {
        json!([{"id": "corp", "name": "Corporate SSO", "kind": "oidc", "issuer": Self::issuer_on(port),
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "domains": domains}])
        .to_string()
    }

    /// Starts the provider on `port`, its client registered with Veche's callback.
    pub fn start(port: u16, v: &Veche) -> Self {
        let modules = std::env::var("VECHE_BROWSER_MODULES").unwrap_or_else(|_| {
            panic!("VECHE_BROWSER_MODULES is not set: run the suite with scripts/test, which installs oidc-provider")
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", v.url("/api/v1/auth/oauth/corp/callback"))
            .env("VECHE_BROWSER_MODULES", modules)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "the provider did not start: {line:?}");
        // Keep reading what it prints: a closed pipe would end it at its next notice.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { child, port }
    }

    /// Adds a signing key that signs from now on.
    pub async fn rotate(&self) {
        let r = client().post(format!("{}/test/rotate", Self::issuer_on(self.port))).send().await.unwrap();
        assert!(r.status().is_success());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Goes from `start` (Veche's start URL, or a provider's authorization URL) through the
/// provider's login form as `login`, and answers the query the browser brings back to
/// `return_to`, plus `_callback` (Veche's callback URL it went through). With `stop`,
/// stops before calling Veche's callback and answers just `_callback`.
pub fn browse(start: &str, return_to: &str, login: &str, stop: bool) -> Value {
    let stop = if stop { "stop" } else { "go" };
    run_python("oidc_login.py", &[start, return_to, login, stop])
}

/// A provider stand-in written in Python: `hostile_oidc.py` (an OpenID provider whose ID
/// tokens go wrong as told), `github_standin.py`, `yandex_standin.py` or
/// `vkid_standin.py` (those services' OAuth and user endpoints).
pub struct StandIn {
    child: Child,
    pub port: u16,
}

impl StandIn {
    pub fn start(script: &str, port: u16) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
        let mut child = Command::new(python())
            .arg(script)
            .args([&port.to_string(), CLIENT_ID, CLIENT_SECRET])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "the stand-in did not start: {line:?}");
        Self { child, port }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        client().post(format!("{}{path}", OidcProvider::issuer_on(self.port)))
    }

    /// `hostile_oidc.py`: what goes wrong in the next ID tokens.
    pub async fn mode(&self, mode: &str) {
        let r = self.post("/test/mode").body(mode.to_owned()).send().await.unwrap();
        assert_eq!(r.status(), 204, "mode {mode}");
    }

    /// `github_standin.py`, `yandex_standin.py`, `vkid_standin.py`: who signs in next.
    pub async fn person(&self, person: Value) {
        let r = self.post("/test/user").json(&person).send().await.unwrap();
        assert_eq!(r.status(), 204, "{person}");
    }

    /// The `VECHE_AUTH_PROVIDERS` value naming a plain OAuth provider of `kind` (`yandex`,
    /// `vkid`) here, as `id`, with its endpoints at these paths.
    pub fn plain_config(port: u16, kind: &str, id: &str, paths: [&str; 3]) -> String {
        let base = OidcProvider::issuer_on(port);
        json!([{"id": id, "name": id, "kind": kind, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "authorization_url": format!("{base}{}", paths[0]), "token_url": format!("{base}{}", paths[1]),
                "api_url": format!("{base}{}", paths[2])}])
        .to_string()
    }

    /// The `VECHE_AUTH_PROVIDERS` value naming a GitHub-kind provider `gh` here.
    pub fn github_config(port: u16) -> String {
        let base = OidcProvider::issuer_on(port);
        // The secret by reference, as the operator renders it (from a Secret into this variable).
        json!([{"id": "gh", "name": "GitHub", "kind": "github", "client_id": CLIENT_ID,
                "client_secret_env": "VECHE_AUTH_CLIENT_SECRET_GH",
                "authorization_url": format!("{base}/login/oauth/authorize"),
                "token_url": format!("{base}/login/oauth/access_token"), "api_url": format!("{base}/api")}])
        .to_string()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
