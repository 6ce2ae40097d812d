//! One release, one version: the binaries (the workspace's version), the images
//! (`scripts/images` tags them with it; the Dockerfile's default), the Helm chart
//! (`version` and `appVersion`, and the operator image's tag follows `appVersion`), the
//! CRDs (labelled with it) and the changelog (a section for it). A version bump that
//! misses one of them fails here, naming it.

use std::path::{Path, PathBuf};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chart {
    version: String,
    app_version: String,
}

#[test]
fn the_chart_carries_the_release_and_its_image_tag_follows_app_version() {
    let chart: Chart = serde_saphyr::from_str(&read("charts/veche-operator/Chart.yaml")).unwrap();
    assert_eq!(chart.version, VERSION, "Chart.yaml version");
    assert_eq!(chart.app_version, VERSION, "Chart.yaml appVersion");
    let deployment = read("charts/veche-operator/templates/deployment.yaml");
    assert!(
        deployment.contains(".Values.image.tag | default .Chart.AppVersion"),
        "the operator's image tag defaults to the chart's appVersion"
    );
    let values = read("charts/veche-operator/values.yaml");
    assert!(values.contains("  tag: \"\""), "values.yaml leaves image.tag empty, so appVersion decides");
}

#[test]
fn the_dockerfile_defaults_to_the_release() {
    let dockerfile = read("Dockerfile");
    let defaults: Vec<&str> = dockerfile.lines().filter_map(|l| l.trim().strip_prefix("ARG VERSION=")).collect();
    assert!(!defaults.is_empty(), "the Dockerfile's final stages take ARG VERSION");
    assert!(defaults.iter().all(|v| *v == VERSION), "Dockerfile ARG VERSION defaults {defaults:?}, not {VERSION}");
}

#[test]
fn the_crds_are_labelled_with_the_release() {
    for file in ["crds/platform.yaml", "crds/servicedeployment.yaml"] {
        let crd: serde_json::Value = serde_saphyr::from_str(&read(file)).unwrap();
        assert_eq!(crd["metadata"]["labels"]["app.kubernetes.io/version"], VERSION, "{file}");
    }
}

#[test]
fn the_changelog_has_a_section_for_the_release() {
    let changelog = read("CHANGELOG.md");
    let heading = format!("## [{VERSION}]");
    assert!(changelog.lines().any(|l| l.starts_with(&heading)), "CHANGELOG.md has no `{heading}` section");
}
