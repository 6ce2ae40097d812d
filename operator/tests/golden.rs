//! Golden files: what the operator renders for each example Platform, every object in
//! full. A change to rendering shows up here as a readable diff of YAML; when the
//! change is intended, regenerate with
//!
//!     UPDATE_GOLDEN=1 cargo test -p veche-operator --test golden
//!
//! and review the diff like code.

use operator::crd::Platform;
use operator::render::platform::{self, CountingEntropy, Inputs};
use operator::render::service;
use serde::Serialize;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads an example as the API server would hand it over: with namespace, uid and
/// generation set.
fn load(example: &str) -> Platform {
    let text = std::fs::read_to_string(root().join("examples").join(example)).unwrap();
    let mut platform: Platform = serde_saphyr::from_str(&text).unwrap();
    platform.metadata.namespace = Some("apps".into());
    platform.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    platform.metadata.generation = Some(1);
    platform
}

fn doc(out: &mut String, obj: &impl Serialize) {
    out.push_str("---\n");
    out.push_str(&serde_saphyr::to_string(obj).unwrap());
}

/// Everything the two controllers would apply for a Platform, as one YAML stream.
fn render_all(platform: &Platform) -> String {
    let inputs = Inputs { now: 1_767_225_600, signing_keys: None, service_clients: None };
    let objects = platform::render(platform, &inputs, &mut CountingEntropy(0)).unwrap();
    let mut out = String::new();
    out.push_str(&format!("# endpoint: {}\n", objects.endpoint));
    doc(&mut out, &objects.signing_keys);
    doc(&mut out, &objects.service_clients);
    doc(&mut out, &objects.routes);
    if let Some(ingress) = &objects.ingress {
        doc(&mut out, ingress);
    }
    if let Some(route) = &objects.http_route {
        doc(&mut out, route);
    }
    for (i, sd) in objects.services.iter().enumerate() {
        doc(&mut out, sd);
        // The API server gives each ServiceDeployment a uid before its controller sees it.
        let mut sd = sd.clone();
        sd.metadata.uid = Some(format!("00000000-0000-0000-0000-00000000010{i}"));
        let children = service::render(platform, &sd).unwrap();
        doc(&mut out, &children.service_account);
        if let Some(pvc) = &children.pvc {
            doc(&mut out, pvc);
        }
        doc(&mut out, &children.deployment);
        doc(&mut out, &children.service);
        doc(&mut out, &children.pdb);
        if let Some(hpa) = &children.hpa {
            doc(&mut out, hpa);
        }
        doc(&mut out, &children.network_policy);
    }
    out
}

fn check(example: &str) {
    let rendered = render_all(&load(example));
    let golden = root().join("operator/tests/golden").join(example);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if rendered != expected {
        let first = rendered.lines().zip(expected.lines()).position(|(a, b)| a != b);
        panic!(
            "rendering of examples/{example} differs from {} (first differing line: {:?}).\n\
             If the change is intended: UPDATE_GOLDEN=1 cargo test -p veche-operator --test golden",
            golden.display(),
            first.map(|n| n + 1)
        );
    }
}

#[test]
fn minimal_platform_renders_as_golden() {
    check("platform-minimal.yaml");
}

#[test]
fn production_platform_renders_as_golden() {
    check("platform-production.yaml");
}

#[test]
fn ydb_platform_with_http_route_renders_as_golden() {
    check("platform-ydb.yaml");
}
