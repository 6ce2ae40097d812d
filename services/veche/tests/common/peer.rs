//! An independent peer written in Python (an SMTP server, a webhook receiver) on a
//! loopback port, keeping what it receives in a directory. Stopped when dropped.

#![allow(dead_code)]

use super::{free_port, python};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

pub struct Peer {
    child: Child,
    /// The peer runs until its standard input closes: a test that dies takes it along.
    _stdin: ChildStdin,
    pub port: u16,
    /// Where it keeps what it received.
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Peer {
    /// Starts `tests/python/<script> PORT DIR` and waits for its "ready".
    pub fn start(script: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("received");
        let port = free_port();
        let mut child = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script))
            .arg(port.to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{script} did not start");
        let stdin = child.stdin.take().unwrap();
        Self { child, _stdin: stdin, port, dir, _tmp: tmp }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
