//! Test harness: the real `veche` binary on a loopback port with its own data directory.

#![allow(dead_code)]

pub mod oidc;
pub mod orgs;
pub mod peer;
pub mod second_factor;
pub mod served;

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery staple";

/// A running `veche up`. Killed when dropped; the data directory outlives restarts.
pub struct Veche {
    pub child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    pub port: u16,
    /// The internal listener's port (service to service, and `/metrics`).
    pub internal_port: u16,
    /// The address the public listener binds (loopback unless a test asks otherwise).
    listen_ip: &'static str,
    env: Vec<(String, String)>,
    /// Where the process's log goes (the data directory, unless that was given).
    logs: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// A loopback port free now, and never handed out before in this process: the kernel may
/// offer a port again once its listener closes, and two of a test's servers (or two
/// tests') on one port would answer each other's requests.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Veche {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1", env)
    }

    /// Started with its public listener on `ip` (say `0.0.0.0`); reached on loopback. On
    /// any `ip` but `127.0.0.1` the internal listener is left to its default address.
    pub fn start_on(ip: &'static str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::launch(ip, dir.path().to_path_buf(), dir, env)
    }

    /// Started on a data directory of the test's (say, a small filesystem of its own);
    /// the log goes elsewhere, so that it cannot fill that directory.
    pub fn start_in(data: PathBuf, env: &[(&str, &str)]) -> Self {
        Self::launch("127.0.0.1", data, tempfile::tempdir().unwrap(), env)
    }

    fn launch(ip: &'static str, data: PathBuf, logs: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        let mut v = Veche {
            child: None,
            base: String::new(),
            data,
            port: free_port(),
            internal_port: free_port(),
            listen_ip: ip,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            logs: logs.path().to_path_buf(),
            _dir: Some(logs),
        };
        v.spawn();
        v
    }

    fn spawn(&mut self) {
        self.base = format!("http://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.logs.join(format!(
            "veche-{}.log",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        )))
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_veche"));
        cmd.arg("up")
            .env("VECHE_LISTEN", format!("{}:{}", self.listen_ip, self.port))
            .env("VECHE_DATA_DIR", &self.data)
            .env("VECHE_PUBLIC_URL", &self.base)
            .env("VECHE_LOG", "warn")
            // Tests make many calls from one address; the gateway's own tests turn limits on.
            .env("VECHE_CLIENT_RPS", "0")
            .env("VECHE_USER_RPS", "0")
            // Likewise the allowance of registrations per address (tests/http/abuse.rs sets it).
            .env("VECHE_PASSWORD_HASH_RPS", "0")
            // And the cap of connections per address (tests fire hundreds of requests at once).
            .env("VECHE_CONNECTIONS_PER_CLIENT", "0")
            // Some tests sign up hundreds of people at once, every hash on one core: on a
            // busy machine a sign-up can wait past the gateway's 25 s, and the setup, not
            // the case, would fail with a 504. Tests of the timeout set their own.
            .env("VECHE_UPSTREAM_TIMEOUT", "120")
            .stdout(Stdio::null())
            .stderr(log);
        // Started on another address, the internal listener keeps its default, which is
        // what such a test looks at (internal_url is then unknown).
        if self.listen_ip == "127.0.0.1" {
            cmd.env("VECHE_INTERNAL_LISTEN", format!("127.0.0.1:{}", self.internal_port));
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start veche"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready(self.port) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("veche exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "veche did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process hard (no graceful shutdown) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A URL on the internal listener, where `/metrics` is (never on the public one).
    pub fn internal_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.internal_port, path)
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data.join("mail")
    }

    /// Waits for the newest mail to `to` whose text contains `needle`, returns its text.
    pub fn wait_mail(&self, to: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(text) = newest_mail(&self.mail_dir(), to, needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "no mail to {to} containing {needle}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn mails_to(&self, to: &str) -> usize {
        mails(&self.mail_dir()).into_iter().filter(|m| m.contains(&format!("To: {to}"))).count()
    }
}

/// `GET /readyz` over a plain socket: the harness runs inside async tests and must not
/// start a second runtime.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

impl Drop for Veche {
    fn drop(&mut self) {
        self.kill();
    }
}

fn mails(dir: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "txt"));
    names.sort();
    names.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
}

fn newest_mail(dir: &Path, to: &str, needle: &str) -> Option<String> {
    mails(dir).into_iter().rev().find(|m| m.contains(&format!("To: {to}")) && m.contains(needle))
}

/// The token of the first `?token=` link in a mail.
pub fn token_in(mail: &str) -> String {
    let start = mail.find("token=").expect("a link with a token") + "token=".len();
    mail[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// The Python of the suite's venv, where the independent peers live (icalendar,
/// recurring_ical_events, Authlib, pyotp).
pub fn python() -> String {
    std::env::var("VECHE_PYTHON").unwrap_or_else(|_| {
        panic!("VECHE_PYTHON is not set: run the suite with scripts/test, which makes a venv with the Python peers")
    })
}

/// Runs `tests/python/<script>` with `args`; its stdout as JSON, or a failure with what
/// it printed.
pub fn run_python(script: &str, args: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let out = std::process::Command::new(python()).arg(&path).args(args).output().expect("running python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON ({e})"))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = r.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply { status, content_type, body, headers }
}

impl Reply {
    pub fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["type"].as_str().unwrap().starts_with("https://veche.dev/problems/"), "{self:?}");
        self
    }
}

pub async fn post(v: &Veche, path: &str, body: Value) -> Reply {
    send(client().post(v.url(path)).json(&body)).await
}

pub async fn get_auth(v: &Veche, path: &str, token: &str) -> Reply {
    send(client().get(v.url(path)).bearer_auth(token)).await
}

pub async fn register(v: &Veche, email: &str) -> Reply {
    post(v, "/api/v1/auth/register", json!({"email": email, "password": PASSWORD, "display_name": "Test"})).await
}

pub async fn login(v: &Veche, email: &str, password: &str) -> Reply {
    post(v, "/api/v1/auth/login", json!({"email": email, "password": password})).await
}

/// Registers and logs in; returns (access token, refresh token).
pub async fn signed_up(v: &Veche, email: &str) -> (String, String) {
    assert_eq!(register(v, email).await.status, 201);
    let r = login(v, email, PASSWORD).await;
    assert_eq!(r.status, 200, "{r:?}");
    (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned())
}

/// Creates an administrator with the real `veche admin create`, and logs in.
pub async fn admin(v: &Veche, email: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_veche"))
        .args(["admin", "create", "--email", email])
        .env("VECHE_DATA_DIR", &v.data)
        .env("VECHE_ADMIN_PASSWORD", PASSWORD)
        .env("VECHE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = login(v, email, PASSWORD).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["access_token"].as_str().unwrap().to_owned()
}

/// Sends `size` bytes of body to `path` over a raw socket, announced either by
/// Content-Length or chunked, and returns the status code of the answer. The body is
/// written from another thread: a server that answers early (413) stops reading, and a
/// client that only writes would never see the answer.
pub fn raw_oversized_post(v: &Veche, path: &str, size: usize, chunked: bool) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", v.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let framing = if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {size}") };
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{framing}\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut writer = s.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            let ok = if chunked {
                writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_ok()
                    && writer.write_all(&chunk).is_ok()
                    && writer.write_all(b"\r\n").is_ok()
            } else {
                writer.write_all(&chunk).is_ok()
            };
            if !ok {
                return;
            }
            sent += chunk.len();
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("an answer");
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = feeder.join();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}
