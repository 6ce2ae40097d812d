//! `veche serve <service>`: one service alone, as in a container.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `veche serve <what>` process, killed when dropped. Its port and data directory stay
/// its own across [`Served::restart`].
pub struct Served {
    child: Child,
    pub base: String,
    what: String,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Served {
    pub fn start(what: &str, env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port, what, env)
    }

    /// Started on a port chosen before (say, one another service was already told).
    pub fn start_on(port: u16, what: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let base = format!("http://127.0.0.1:{port}");
        let child = spawn(what, &base, dir.path(), &env);
        let mut served = Served { child, base, what: what.to_owned(), env, _dir: dir };
        served.wait_ready();
        served
    }

    /// Kills the process hard (SIGKILL), as a crash or an evicted pod would end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the service again on its port and data, after [`Served::kill`].
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.what, &self.base, self._dir.path(), &self.env);
        self.wait_ready();
    }

    pub fn data(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default();
                panic!("veche exited during start-up: {status}\n{log}");
            }
            if ready_over_socket(&format!("{}/readyz", self.base)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not ready in time");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(what: &str, base: &str, data: &std::path::Path, env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data.join("log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veche"));
    cmd.args(["serve", what])
        .env("VECHE_LISTEN", base.trim_start_matches("http://"))
        .env("VECHE_DATA_DIR", data)
        .env("VECHE_LOG", "warn")
        // Tests fire hundreds of requests at once from one address (a test of the cap sets it).
        .env("VECHE_CONNECTIONS_PER_CLIENT", "0")
        // Alone, a service is its own public address (and the users service its own issuer).
        .env("VECHE_PUBLIC_URL", base)
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Readiness over a raw socket, so waiting needs no async runtime.
pub fn ready_over_socket(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let Ok(mut s) = TcpStream::connect(host) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}
