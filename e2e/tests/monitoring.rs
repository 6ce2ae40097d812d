//! The chart's Grafana dashboard and alert rules against the code: every PromQL
//! expression in them parses, and every metric it selects is one that the services or
//! the operator export, under the name the Prometheus exporter gives it. A renamed
//! metric, a typo or a series that was never there fails here, not on a blank panel or a
//! silent alert in production. No cluster needed.
//!
//! What "exported" means is read from the sources, not kept in a list: the names given
//! to the `metrics` crate's `counter!`, `gauge!` and `histogram!` in `services/*/src` and
//! `operator/src`, plus the series metrics-exporter-prometheus derives from a histogram
//! (`_bucket` when buckets are configured for it, `_sum`, `_count`). That exporter keeps
//! counter names as given (it appends `_total` only with `with_recommended_naming`, which
//! the code does not use; checked below).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::Deserialize;

const DASHBOARD: &str = "charts/veche-operator/dashboards/veche-platform.json";
const RULES: &str = "charts/veche-operator/rules/veche.rules.yaml";

/// Series Prometheus makes itself for every target it scrapes.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// One metric the code declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// What the code exports: series name -> where it is declared.
struct Exported {
    series: BTreeMap<String, String>,
}

impl Exported {
    /// Reads the metric declarations and the exporter's bucket configuration from
    /// `services/*/src` and `operator/src`.
    fn from_sources() -> Exported {
        let mut files = Vec::new();
        let services = Path::new(&e2e::repo("services")).to_path_buf();
        for entry in std::fs::read_dir(&services).expect("reading services/").flatten() {
            rust_files(&entry.path().join("src"), &mut files);
        }
        rust_files(Path::new(&e2e::repo("operator/src")), &mut files);
        assert!(files.len() > 20, "found only {} Rust files under services/*/src and operator/src", files.len());

        let mut declared = Vec::new();
        let mut bucketed = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            let short =
                file.to_string_lossy().rsplit_once("/../").map_or(file.display().to_string(), |(_, r)| r.into());
            // Either would rename the series (`_total` on counters, unit suffixes), and the
            // names below would no longer be what Prometheus sees.
            for renaming in ["with_recommended_naming", "set_enable_unit_suffix"] {
                assert!(!text.contains(renaming), "{short} calls {renaming}: teach this test the exporter's renaming");
            }
            declared.extend(declarations(&text).into_iter().map(|(kind, name)| (kind, name, short.clone())));
            bucketed.extend(bucket_matchers(&text));
        }
        assert!(!bucketed.is_empty(), "no PrometheusBuilder::set_buckets_for_metric matcher found");
        Exported::new(declared, &bucketed)
    }

    fn new(declared: Vec<(Kind, Result<String, String>, String)>, bucketed: &[Matcher]) -> Exported {
        let mut series = BTreeMap::new();
        for (kind, name, file) in declared {
            let name = name.unwrap_or_else(|call| {
                panic!("{file}: `{call}` does not name its metric with a string literal; this test reads names from the source")
            });
            let names = match kind {
                Kind::Counter | Kind::Gauge => vec![name.clone()],
                // With buckets, a histogram; without, a summary: quantiles under the bare name.
                Kind::Histogram if bucketed.iter().any(|m| m.matches(&name)) => {
                    vec![format!("{name}_bucket"), format!("{name}_sum"), format!("{name}_count")]
                }
                Kind::Histogram => vec![name.clone(), format!("{name}_sum"), format!("{name}_count")],
            };
            for series_name in names {
                series.insert(series_name, format!("{kind:?} {name} in {file}"));
            }
        }
        Exported { series }
    }

    fn contains(&self, name: &str) -> bool {
        self.series.contains_key(name)
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The metrics a source file declares: `counter!("name"`, `gauge!(...)`, `histogram!(...)`
/// (with or without `metrics::`). A first argument that is not a string literal comes
/// back as `Err(the call)`, since its name cannot be known from here.
fn declarations(text: &str) -> Vec<(Kind, Result<String, String>)> {
    let mut found = Vec::new();
    for (kind, mac) in [(Kind::Counter, "counter!("), (Kind::Gauge, "gauge!("), (Kind::Histogram, "histogram!(")] {
        for (at, _) in text.match_indices(mac) {
            // `describe_counter!(` and the like describe, they do not declare.
            if text[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let args = text[at + mac.len()..].trim_start();
            let name = string_literal(args).ok_or_else(|| {
                let call: String = args.chars().take_while(|c| *c != ')').take(60).collect();
                format!("{mac}{call})")
            });
            found.push((kind, name));
        }
    }
    found
}

/// A name matcher of `set_buckets_for_metric`.
#[derive(Debug)]
enum Matcher {
    Full(String),
    Prefix(String),
    Suffix(String),
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Full(s) => name == s,
            Matcher::Prefix(s) => name.starts_with(s.as_str()),
            Matcher::Suffix(s) => name.ends_with(s.as_str()),
        }
    }
}

/// The `Matcher::Full|Prefix|Suffix("...")` a source file configures buckets with.
fn bucket_matchers(text: &str) -> Vec<Matcher> {
    let mut found = Vec::new();
    for (variant, make) in [
        ("Matcher::Full(", Matcher::Full as fn(String) -> Matcher),
        ("Matcher::Prefix(", Matcher::Prefix),
        ("Matcher::Suffix(", Matcher::Suffix),
    ] {
        for (at, _) in text.match_indices(variant) {
            if let Some(s) = string_literal(text[at + variant.len()..].trim_start()) {
                found.push(make(s));
            }
        }
    }
    found
}

/// The contents of the string literal `text` starts with (metric names need no escapes).
fn string_literal(text: &str) -> Option<String> {
    let rest = text.strip_prefix('"')?;
    rest.find('"').map(|end| rest[..end].to_string())
}

/// One PromQL expression of the chart and where it is.
#[derive(Debug)]
struct Query {
    place: String,
    promql: String,
}

/// Every query of the dashboard: panel targets and query variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<Query> {
    fn walk(value: &serde_json::Value, place: &str, out: &mut Vec<Query>) {
        match value {
            serde_json::Value::Object(map) => {
                let place = match map.get("title").or_else(|| map.get("name")).and_then(|t| t.as_str()) {
                    Some(title) => format!("{place} / {title}"),
                    None => place.to_string(),
                };
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    let reference = map.get("refId").and_then(|r| r.as_str()).unwrap_or("?");
                    out.push(Query { place: format!("{place} [{reference}]"), promql: grafana_to_promql(expr) });
                }
                // A query variable: label_values(selector, label) or a plain query.
                if map.get("type").and_then(|t| t.as_str()) == Some("query") {
                    let query = map.get("query").map(|q| q.get("query").unwrap_or(q)).and_then(|q| q.as_str());
                    if let Some(query) = query.and_then(variable_promql) {
                        out.push(Query { place: format!("{place} (variable)"), promql: grafana_to_promql(&query) });
                    }
                }
                for (key, child) in map {
                    if key != "query" {
                        walk(child, &place, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, place, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "dashboard", &mut out);
    out
}

/// The PromQL inside a Grafana Prometheus variable query, if it has any.
fn variable_promql(query: &str) -> Option<String> {
    let query = query.trim();
    if let Some(args) = query.strip_prefix("label_values(").and_then(|a| a.strip_suffix(')')) {
        // label_values(label) names no metric; label_values(selector, label) does.
        return args.rsplit_once(',').map(|(selector, _)| selector.trim().to_string());
    }
    if let Some(expr) = query.strip_prefix("query_result(").and_then(|a| a.strip_suffix(')')) {
        return Some(expr.to_string());
    }
    (!query.starts_with("label_names(") && !query.starts_with("metrics(")).then(|| query.to_string())
}

/// Grafana's variables replaced by what Prometheus would get: `$__rate_interval` and the
/// like by a duration, every other `$name` or `${name}` by a plain value.
fn grafana_to_promql(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').unwrap_or(braced.len());
                (&braced[..end], end + 2)
            }
            None => {
                let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        out.push_str(if name.starts_with("__") { "5m" } else { "x" });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The alert and recording rules of the chart, as a PrometheusRule's `spec.groups`.
#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
}

fn rule_file() -> RuleFile {
    let text = std::fs::read_to_string(e2e::repo(RULES)).expect("reading the chart's rules");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{RULES}: {e}"))
}

fn rule_queries(rules: &RuleFile) -> Vec<Query> {
    let mut out = Vec::new();
    for group in &rules.groups {
        for rule in &group.rules {
            let name = rule.alert.as_deref().or(rule.record.as_deref()).unwrap_or("(unnamed)");
            out.push(Query { place: format!("rules / {} / {name}", group.name), promql: rule.expr.clone() });
        }
    }
    out
}

/// The metric names an expression selects; `Err` when it does not parse or selects by
/// something other than one exact name (which this test could not check).
fn selected_metrics(promql: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>, Vec<String>);
    impl Names {
        fn add(&mut self, vs: &VectorSelector) {
            let by_label = vs
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
                .map(|m| m.value.clone());
            match vs.name.clone().or(by_label) {
                Some(name) => {
                    self.0.insert(name);
                }
                None => self.1.push(format!("a selector without one exact metric name: {vs}")),
            }
        }
    }
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            match expr {
                Expr::VectorSelector(vs) => self.add(vs),
                Expr::MatrixSelector(ms) => self.add(&ms.vs),
                _ => {}
            }
            Ok(true)
        }
    }
    let ast = parser::parse(promql).map_err(|e| format!("does not parse: {e}"))?;
    let mut names = Names(BTreeSet::new(), Vec::new());
    walk_expr(&mut names, &ast)?;
    if !names.1.is_empty() {
        return Err(names.1.join("; "));
    }
    Ok(names.0)
}

/// Everything wrong with `queries` against `exported`, one line each.
fn problems(queries: &[Query], exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    for query in queries {
        match selected_metrics(&query.promql) {
            Err(e) => problems.push(format!("{}: {e}\n    {}", query.place, query.promql.trim())),
            Ok(names) if names.is_empty() => problems.push(format!("{}: selects no metric", query.place)),
            Ok(names) => {
                for name in names {
                    let known = exported.contains(&name) || PROMETHEUS_SERIES.contains(&name.as_str());
                    if !known {
                        problems.push(format!("{}: `{name}` is not exported by the code", query.place));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn dashboard_and_rules_select_only_metrics_the_code_exports() {
    let exported = Exported::from_sources();
    let text = std::fs::read_to_string(e2e::repo(DASHBOARD)).expect("reading the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let mut queries = dashboard_queries(&dashboard);
    let panels = queries.len();
    // Guards against a walk that finds nothing (a changed layout) and passes vacuously.
    assert!(panels >= 30, "only {panels} queries found in {DASHBOARD}");
    let rules = rule_file();
    queries.extend(rule_queries(&rules));
    assert!(queries.len() - panels >= 6, "only {} rules found in {RULES}", queries.len() - panels);

    let problems = problems(&queries, &exported);
    let exported_list: Vec<&String> = exported.series.keys().collect();
    assert!(
        problems.is_empty(),
        "{} problem(s) in the chart's monitoring queries:\n  {}\n\nseries the code exports: {exported_list:?}",
        problems.len(),
        problems.join("\n  ")
    );

    // What the chart promises in values.yaml: these alerts exist.
    let alerts: BTreeSet<&str> =
        rules.groups.iter().flat_map(|g| &g.rules).filter_map(|r| r.alert.as_deref()).collect();
    for alert in
        ["VecheGatewayHigh5xxRatio", "VecheOutboxLagGrowing", "VecheOperatorReconcileErrors", "VechePlatformNotReady"]
    {
        assert!(alerts.contains(alert), "{RULES} has no alert {alert}; it has {alerts:?}");
    }
}

#[test]
fn the_check_reports_a_metric_the_code_does_not_export() {
    let exported = Exported::from_sources();
    let query = |promql: &str| vec![Query { place: "test".into(), promql: grafana_to_promql(promql) }];
    // The real name passes, a misspelt one does not.
    assert_eq!(
        problems(&query("sum(rate(gateway_requests_total[$__rate_interval]))"), &exported),
        Vec::<String>::new()
    );
    let found = problems(&query(r#"sum(rate(gateway_request_total{platform=~"$platform"}[5m]))"#), &exported);
    assert_eq!(found, ["test: `gateway_request_total` is not exported by the code"]);
    // A histogram's buckets exist; a counter's do not.
    assert!(problems(&query("http_request_duration_seconds_bucket"), &exported).is_empty());
    assert_eq!(problems(&query("http_requests_total_bucket"), &exported).len(), 1);
}

#[test]
fn the_check_reports_promql_that_does_not_parse_or_cannot_be_checked() {
    let exported = Exported::from_sources();
    let query = |promql: &str| vec![Query { place: "test".into(), promql: promql.into() }];
    let broken = problems(&query("sum by (job (rate(http_requests_total[5m]))"), &exported);
    assert!(broken.len() == 1 && broken[0].contains("does not parse"), "{broken:?}");
    let by_regex = problems(&query(r#"{__name__=~"gateway_.*"}"#), &exported);
    assert!(by_regex.len() == 1 && by_regex[0].contains("without one exact metric name"), "{by_regex:?}");
}

#[test]
fn source_scan_finds_declarations_and_bucket_matchers() {
    let source = r#"
        metrics::counter!("a_total", "k" => v).increment(1);
        let g = gauge!(
            "b_in_flight");
        metrics::histogram!("c_duration_seconds", &labels);
        histogram!("d_size");
        describe_counter!("e_total", "not a declaration");
        counter!(NAME);
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &[1.0])
    "#;
    let found = declarations(source);
    assert!(found.contains(&(Kind::Counter, Ok("a_total".into()))));
    assert!(found.contains(&(Kind::Gauge, Ok("b_in_flight".into()))));
    assert!(found.contains(&(Kind::Counter, Err("counter!(NAME)".into()))));
    assert_eq!(found.len(), 5, "{found:?}");
    let exported = Exported::new(
        found.into_iter().filter(|(_, n)| n.is_ok()).map(|(k, n)| (k, n, "test.rs".into())).collect(),
        &bucket_matchers(source),
    );
    let series: Vec<&str> = exported.series.keys().map(String::as_str).collect();
    assert_eq!(
        series,
        [
            "a_total",
            "b_in_flight",
            "c_duration_seconds_bucket",
            "c_duration_seconds_count",
            "c_duration_seconds_sum",
            "d_size",
            "d_size_count",
            "d_size_sum"
        ]
    );
}
