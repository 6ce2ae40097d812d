// Stamps the git commit into `--version` (`veche 0.1.0 (commit 1a2b3c4d5e6f)`), so an
// image or a binary found on a node says exactly what it was built from.
//
// The commit comes from `VECHE_GIT_COMMIT` when the build is given it (an image build
// sees no `.git`), else from `git rev-parse`, else it is "unknown". The operator's
// build script is this file too (`operator/build.rs` includes it): one rule, one place.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VECHE_GIT_COMMIT");
    let given = std::env::var("VECHE_GIT_COMMIT").ok().filter(|c| !c.trim().is_empty());
    let commit = given.or_else(head_commit).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=VECHE_GIT_COMMIT={}", commit.trim());
}

/// The checked-out commit, abbreviated; reruns this script when HEAD moves.
fn head_commit() -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).current_dir(&dir).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // HEAD itself (a checkout of another branch) and the ref it points at (a new commit).
    for path in ["HEAD", "packed-refs"] {
        watch(&git(&["rev-parse", "--git-path", path])?, &dir);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&git(&["rev-parse", "--git-path", &branch])?, &dir);
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn watch(path: &str, dir: &str) {
    let path = Path::new(dir).join(path);
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
