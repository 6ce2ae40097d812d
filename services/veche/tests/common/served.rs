//! `veche serve <service>`: one service alone, as in a container.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `veche serve <what>` process, killed when dropped.
pub struct Served {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Served {
    pub fn start(what: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_veche"));
        cmd.args(["serve", what])
            .env("VECHE_LISTEN", format!("127.0.0.1:{port}"))
            .env("VECHE_DATA_DIR", dir.path())
            .env("VECHE_LOG", "warn")
            // Alone, a service is its own public address (and the users service its own issuer).
            .env("VECHE_PUBLIC_URL", &base)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut served = Served { child, base, _dir: dir };
        served.wait_ready();
        served
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
