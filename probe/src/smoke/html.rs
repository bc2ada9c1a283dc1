//! The report people look at (`--format html`): one self-contained page, no scripts (a CSP
//! forbids them), that draws the topology the checks covered — internet, App Service's front,
//! each app's instances in the VNet, the targets they reach and their DNS — with every edge
//! green or red by the checks over it, then the per-instance matrix, each failure's diagnosis,
//! the change since the baseline, and every result's evidence and facts.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use url::Url;

use crate::smoke::compare::ChangeKind;
use crate::smoke::report::{CheckResult, SuiteReport, Verdict};

/// The green of passing edges and marks.
pub const PASS_COLOUR: &str = "#1e8e3e";
/// The red of failing edges and marks.
pub const FAIL_COLOUR: &str = "#d93025";

/// HTML-escapes text (and drops control characters, as the text report does).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The host a target names: a URL's host, `host:port`'s host, a resolve's name.
fn target_host(result: &CheckResult) -> String {
    if result.action == "http"
        && let Ok(url) = Url::parse(&result.target)
    {
        return url.host_str().unwrap_or_default().to_owned();
    }
    let target = result.target.split_whitespace().next().unwrap_or_default();
    match target.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => {
            host.trim_matches(['[', ']']).to_owned()
        }
        _ => target.to_owned(),
    }
}

/// A box in the picture.
struct Node {
    id: String,
    column: usize,
    label: String,
    detail: String,
}

/// A line in the picture, with the results that cover it.
struct Edge {
    from: String,
    to: String,
    checks: Vec<(String, Verdict)>,
}

struct Picture {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Picture {
    fn node(&mut self, id: &str, column: usize, label: &str, detail: &str) {
        if !self.nodes.iter().any(|n| n.id == id) {
            self.nodes.push(Node {
                id: id.to_owned(),
                column,
                label: label.to_owned(),
                detail: detail.to_owned(),
            });
        }
    }

    fn cover(&mut self, from: &str, to: &str, result: &CheckResult) {
        let check = match &result.instance {
            Some(instance) => format!("{} [{instance}]", result.name),
            None => result.name.clone(),
        };
        match self.edges.iter_mut().find(|e| e.from == from && e.to == to) {
            Some(edge) => edge.checks.push((check, result.verdict)),
            None => self.edges.push(Edge {
                from: from.to_owned(),
                to: to.to_owned(),
                checks: vec![(check, result.verdict)],
            }),
        }
    }
}

const INTERNET: &str = "internet";

/// Which part of the topology each result covers.
fn picture(report: &SuiteReport) -> Picture {
    let mut p = Picture {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let app_hosts: Vec<(String, String)> = report
        .apps
        .iter()
        .map(|(name, url)| {
            let host = Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
                })
                .unwrap_or_default();
            (name.clone(), host)
        })
        .collect();
    let app_of_url = |result: &CheckResult| -> Option<String> {
        let url = Url::parse(&result.target).ok()?;
        let host = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
        app_hosts
            .iter()
            .find(|(_, h)| *h == host)
            .map(|(name, _)| name.clone())
    };
    // Back-end instances the back end named when it reported its caller.
    let backend_instances: BTreeSet<String> = report
        .results
        .iter()
        .filter_map(|r| r.facts.caller.as_ref()?.instance.clone())
        .collect();
    let mut main_target: Option<String> = None;
    for result in &report.results {
        if result.from != "here" && report.apps.contains_key(&result.from) {
            let app = &result.from;
            let front = format!("front:{app}");
            p.node(&front, 1, app, "App Service front end");
            let instance = result
                .instance
                .clone()
                .or_else(|| result.answered_by.clone());
            let inner = match &instance {
                Some(id) => {
                    let node = format!("instance:{app}:{id}");
                    p.node(&node, 2, &format!("{app} {id}"), "instance");
                    node
                }
                None => {
                    let node = format!("instance:{app}:*");
                    p.node(&node, 2, app, "any instance");
                    node
                }
            };
            p.cover(&front, &inner, result);
            if result.action == "resolve" {
                let dns = format!("dns:{app}");
                p.node(&dns, 3, "DNS", &format!("as {app} resolves"));
                p.cover(&inner, &dns, result);
            } else {
                let host = target_host(result);
                let node = format!("target:{host}");
                p.node(&node, 3, &host, "");
                main_target.get_or_insert(node.clone());
                p.cover(&inner, &node, result);
            }
        }
    }
    for result in report.results.iter().filter(|r| r.from == "here") {
        p.node(INTERNET, 0, "Internet", "where probe ran");
        if let Some(app) = app_of_url(result) {
            let front = format!("front:{app}");
            p.node(&front, 1, &app, "App Service front end");
            p.cover(INTERNET, &front, result);
            // What the back end saw of this app's calls covers the VNet path behind it.
            if result.facts.caller.is_some()
                && let Some(target) = &main_target
            {
                let from = p
                    .nodes
                    .iter()
                    .find(|n| n.id.starts_with(&format!("instance:{app}:")))
                    .map(|n| n.id.clone());
                if let Some(from) = from {
                    p.cover(&from, &target.clone(), result);
                }
            }
        } else if result.action == "resolve" {
            p.node("dns:here", 3, "DNS", "as the internet resolves");
            p.cover(INTERNET, "dns:here", result);
        } else {
            let host = target_host(result);
            let node = format!("target:{host}");
            p.node(&node, 3, &host, "");
            p.cover(INTERNET, &node, result);
        }
    }
    if let Some(target) = &main_target
        && !backend_instances.is_empty()
        && let Some(node) = p.nodes.iter_mut().find(|n| &n.id == target)
    {
        node.detail = format!(
            "back end instances: {}",
            backend_instances.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    p
}

const NODE_W: f64 = 180.0;
const NODE_H: f64 = 48.0;
const ROW: f64 = 72.0;
/// Where the first row starts: room above for edges that jump columns.
const TOP: f64 = 72.0;
const COLUMN_X: [f64; 4] = [16.0, 256.0, 508.0, 760.0];

fn svg(p: &Picture) -> String {
    let position = |id: &str| -> Option<(f64, f64)> {
        let node = p.nodes.iter().find(|n| n.id == id)?;
        // DNS below the targets in its column.
        let mut column: Vec<&Node> = p.nodes.iter().filter(|n| n.column == node.column).collect();
        column.sort_by_key(|n| n.id.starts_with("dns:"));
        let row = column.iter().position(|n| n.id == id)?;
        Some((COLUMN_X[node.column], TOP + row as f64 * ROW))
    };
    let rows = (0..COLUMN_X.len())
        .map(|c| p.nodes.iter().filter(|n| n.column == c).count())
        .max()
        .unwrap_or(1)
        .max(1);
    let height = TOP + rows as f64 * ROW + 16.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="topology" viewBox="0 0 960 {height}" width="960" height="{height}" role="img" aria-label="topology">"#
    );
    let vnet: Vec<_> = p.nodes.iter().filter(|n| n.column == 2).collect();
    if !vnet.is_empty() {
        let bottom = TOP + vnet.len() as f64 * ROW - ROW + NODE_H;
        let _ = write!(
            out,
            r##"<rect class="vnet" x="{}" y="{}" width="{}" height="{}" rx="10" fill="#eef3fb" stroke="#7a9cc6" stroke-dasharray="6 4"/><text x="{}" y="{}" class="zone">VNet (integration subnet)</text>"##,
            COLUMN_X[2] - 12.0,
            TOP - 12.0,
            NODE_W + 24.0,
            bottom - TOP + 36.0,
            COLUMN_X[2] - 4.0,
            bottom + 18.0,
        );
    }
    for edge in &p.edges {
        let (Some((x1, y1)), Some((x2, y2))) = (position(&edge.from), position(&edge.to)) else {
            continue;
        };
        let failed = edge
            .checks
            .iter()
            .filter(|(_, v)| *v == Verdict::Fail)
            .count();
        let (class, colour) = if failed > 0 {
            ("edge fail", FAIL_COLOUR)
        } else {
            ("edge pass", PASS_COLOUR)
        };
        let title = edge
            .checks
            .iter()
            .map(|(name, verdict)| {
                format!(
                    "{} {}",
                    if *verdict == Verdict::Pass {
                        "✓"
                    } else {
                        "✗"
                    },
                    esc(name)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2.0);
        let (ex, ey) = (x2, y2 + NODE_H / 2.0);
        // An edge that jumps columns arcs over the boxes between (the internet straight to a
        // back end); neighbours are joined by a straight line.
        let path = if ex - sx > COLUMN_X[1] - NODE_W + 1.0 {
            let top = (sy.min(ey) - NODE_H / 2.0 - 30.0).max(4.0);
            format!("M {sx} {sy} C {sx} {top} {ex} {top} {ex} {ey}")
        } else {
            format!("M {sx} {sy} L {ex} {ey}")
        };
        let _ = write!(
            out,
            r#"<g class="{class}" data-from="{}" data-to="{}" data-failed="{failed}"><title>{title}</title><path d="{path}" fill="none" stroke="{colour}" stroke-width="8" stroke-linecap="round"/><circle cx="{ex}" cy="{ey}" r="7" fill="{colour}"/></g>"#,
            esc(&edge.from),
            esc(&edge.to),
        );
    }
    for node in &p.nodes {
        let Some((x, y)) = position(&node.id) else {
            continue;
        };
        let _ = write!(
            out,
            r##"<g class="node" data-id="{}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="#ffffff" stroke="#5f6368"/><text x="{}" y="{}" class="label">{}</text><text x="{}" y="{}" class="detail">{}</text></g>"##,
            esc(&node.id),
            x + 8.0,
            y + 20.0,
            esc(&node.label),
            x + 8.0,
            y + 38.0,
            esc(&node.detail),
        );
    }
    out.push_str("</svg>");
    out
}

fn instance_label(result: &CheckResult) -> String {
    result.instance.clone().unwrap_or_else(|| "—".into())
}

fn matrix(report: &SuiteReport) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for result in &report.results {
        if !names.contains(&result.name.as_str()) {
            names.push(&result.name);
        }
        let column = instance_label(result);
        if !columns.contains(&column) {
            columns.push(column);
        }
    }
    // Unpinned results first, then instances in order.
    columns.sort_by_key(|c| (c != "—", c.clone()));
    let mut out = String::from(r#"<table class="matrix"><thead><tr><th>check</th>"#);
    for column in &columns {
        let _ = write!(
            out,
            "<th>{}</th>",
            if column == "—" {
                "not fanned out".to_owned()
            } else {
                esc(column)
            }
        );
    }
    out.push_str("</tr></thead><tbody>");
    for name in names {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", esc(name));
        for column in &columns {
            match report
                .results
                .iter()
                .find(|r| r.name == name && instance_label(r) == *column)
            {
                Some(r) if r.verdict == Verdict::Pass => {
                    out.push_str(r#"<td class="cell pass">✓ pass</td>"#)
                }
                Some(r) => {
                    let _ = write!(
                        out,
                        r#"<td class="cell fail">✗ {}</td>"#,
                        esc(r.code.as_deref().unwrap_or("failed"))
                    );
                }
                None => out.push_str(r#"<td class="cell none"></td>"#),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn failures(report: &SuiteReport) -> String {
    let mut out = String::new();
    for result in report.failures() {
        let _ = write!(
            out,
            r#"<article class="failure"><h3>✗ {}{}</h3><p class="code">{}</p><p class="diagnosis">{}</p><ul class="evidence">"#,
            esc(&result.name),
            result
                .instance
                .as_ref()
                .map(|i| format!(" [{}]", esc(i)))
                .unwrap_or_default(),
            esc(result.code.as_deref().unwrap_or_default()),
            esc(result.diagnosis.as_deref().unwrap_or_default()),
        );
        for line in &result.evidence {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul></article>");
    }
    if out.is_empty() {
        out.push_str(r#"<p class="none">No failures.</p>"#);
    }
    out
}

fn changes(report: &SuiteReport) -> String {
    let Some(comparison) = &report.baseline else {
        return r#"<p class="none">No baseline given (run with <code>--baseline PREVIOUS.json</code>).</p>"#.into();
    };
    let mut out = format!(
        r#"<p class="since">Since the run of {}: {}.</p>"#,
        esc(&comparison.baseline_started_at),
        esc(&comparison.summary())
    );
    if comparison.suite_changed {
        out.push_str(r#"<p class="note">The suite changed since the baseline.</p>"#);
    }
    if comparison.changes.is_empty() {
        return out;
    }
    out.push_str(r#"<table class="changes"><thead><tr><th>change</th><th>check</th><th>instance</th><th>code</th><th>facts</th></tr></thead><tbody>"#);
    for change in &comparison.changes {
        let class = match change.change {
            ChangeKind::NewlyFailing | ChangeKind::StillFailing => "fail",
            ChangeKind::NewlyPassing => "pass",
            _ => "other",
        };
        let kind = serde_json::to_value(change.change)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let code = match (&change.code_before, &change.code_after) {
            (Some(b), Some(a)) if b != a => format!("{} → {}", esc(b), esc(a)),
            (_, Some(a)) => esc(a),
            (Some(b), None) => format!("was {}", esc(b)),
            (None, None) => String::new(),
        };
        let facts = change
            .facts
            .iter()
            .filter(|f| f.fact != "code")
            .map(|f| format!("{}: {} → {}", esc(&f.fact), esc(&f.before), esc(&f.after)))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            out,
            r#"<tr class="change {class}" data-change="{kind}"><td>{}</td><td>{}</td><td>{}</td><td>{code}</td><td>{facts}</td></tr>"#,
            kind.replace('_', " "),
            esc(&change.name),
            esc(change.instance.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn details(report: &SuiteReport) -> String {
    let mut out = String::new();
    for result in &report.results {
        let facts = serde_json::to_string_pretty(&result.facts).unwrap_or_default();
        let _ = write!(
            out,
            r#"<details class="result {}"><summary>{} {} <span class="where">({}{}, {} {})</span></summary><ul>"#,
            if result.verdict == Verdict::Pass {
                "pass"
            } else {
                "fail"
            },
            if result.verdict == Verdict::Pass {
                "✓"
            } else {
                "✗"
            },
            esc(&result.name),
            esc(&format!("from {}", result.from)),
            result
                .instance
                .as_ref()
                .or(result.answered_by.as_ref())
                .map(|i| format!(", instance {}", esc(i)))
                .unwrap_or_default(),
            esc(&result.action),
            esc(&result.target),
        );
        for line in &result.evidence {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        let _ = write!(out, "</ul><pre>{}</pre></details>", esc(&facts));
    }
    out
}

const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 24px 48px; color: #202124; }
header.verdict { margin: 0 -24px 16px; padding: 16px 24px; }
header.pass { background: #e6f4ea; }
header.fail { background: #fce8e6; }
h1 { margin: 0 0 4px; font-size: 24px; }
h2 { font-size: 18px; margin: 24px 0 8px; }
.meta { color: #5f6368; font-size: 13px; margin: 0; }
svg.topology { max-width: 100%; height: auto; }
svg text.label { font: 600 13px system-ui, sans-serif; fill: #202124; }
svg text.detail, svg text.zone { font: 11px system-ui, sans-serif; fill: #5f6368; }
.legend { font-size: 13px; color: #5f6368; }
.legend b.pass { color: #137333; } .legend b.fail { color: #c5221f; }
table { border-collapse: collapse; }
th, td { border: 1px solid #dadce0; padding: 4px 10px; text-align: left; vertical-align: top; }
td.pass { background: #e6f4ea; }
td.fail { background: #fce8e6; font-weight: 600; }
tr.change.fail td:first-child { background: #fce8e6; }
tr.change.pass td:first-child { background: #e6f4ea; }
article.failure { border-left: 4px solid #c5221f; padding: 4px 12px; margin: 8px 0; background: #fffafa; }
article.failure h3 { margin: 4px 0; font-size: 15px; }
p.code { font-family: monospace; margin: 0; }
details.result { margin: 2px 0; }
pre { background: #f8f9fa; padding: 8px; font-size: 12px; overflow-x: auto; }
"#;

impl SuiteReport {
    /// One self-contained HTML page: the verdict, the topology picture, the per-instance
    /// matrix, each failure's diagnosis, the change since the baseline, and every result.
    pub fn render_html(&self) -> String {
        let total = self.results.len();
        let (class, headline) = if self.all_passed() {
            ("pass", format!("Locked down: all {total} checks passed"))
        } else {
            ("fail", format!("{} of {total} checks failed", self.failed))
        };
        let mut meta = vec![];
        if !self.started_at.is_empty() {
            meta.push(format!("started {}", esc(&self.started_at)));
        }
        meta.push(format!("{:.0} ms", self.duration_ms));
        if let Some(host) = &self.ran_from.host {
            meta.push(format!("from {}", esc(host)));
        }
        if !self.suite_digest.is_empty() {
            meta.push(format!("suite {}", esc(&self.suite_digest)));
        }
        meta.push(format!(
            "{} {}, report schema {}",
            esc(&self.tool.name),
            esc(&self.tool.version),
            self.schema_version
        ));
        let picture = picture(self);
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lockdown smoke: {headline}</title>
<style>{STYLE}</style></head>
<body>
<header class="verdict {class}"><h1>{headline}</h1><p class="meta">{meta}</p></header>
<section id="topology"><h2>What the checks covered</h2>{svg}
<p class="legend"><b class="pass">green</b>: every check over that edge passed · <b class="fail">red</b>: one failed (hover an edge for its checks)</p></section>
<section id="matrix"><h2>Per instance</h2>{matrix}</section>
<section id="failures"><h2>Diagnoses</h2>{failures}</section>
<section id="changes"><h2>Since the baseline</h2>{changes}</section>
<section id="results"><h2>Every result</h2>{details}</section>
</body></html>
"#,
            meta = meta.join(" · "),
            svg = svg(&picture),
            matrix = matrix(self),
            failures = failures(self),
            changes = changes(self),
            details = details(self),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::facts::Facts;

    fn result(
        name: &str,
        from: &str,
        instance: Option<&str>,
        target: &str,
        verdict: Verdict,
    ) -> CheckResult {
        CheckResult {
            name: name.into(),
            from: from.into(),
            via: None,
            instance: instance.map(str::to_owned),
            answered_by: instance.map(str::to_owned),
            action: if target.starts_with("http") {
                "http"
            } else {
                "tcpping"
            }
            .into(),
            target: target.into(),
            verdict,
            code: (verdict == Verdict::Fail).then(|| "access_restricted".into()),
            diagnosis: (verdict == Verdict::Fail).then(|| "<blocked> & \"why\"".into()),
            evidence: vec!["seen <script>alert(1)</script>".into()],
            facts: Facts::default(),
            attempts: 1,
            duration_ms: 1.0,
        }
    }

    #[test]
    fn edges_take_the_colour_of_their_checks_and_text_is_escaped() {
        let mut report = SuiteReport::new(
            vec![
                result(
                    "reach",
                    "frontend",
                    Some("fe-0"),
                    "http://app-be:8081/healthz",
                    Verdict::Pass,
                ),
                result(
                    "reach",
                    "frontend",
                    Some("fe-1"),
                    "http://app-be:8081/healthz",
                    Verdict::Fail,
                ),
                result(
                    "denied",
                    "here",
                    None,
                    "http://app-be:8081/healthz",
                    Verdict::Pass,
                ),
            ],
            3.0,
        );
        report
            .apps
            .insert("frontend".into(), "http://127.0.0.1:8080/".into());
        let html = report.render_html();
        assert!(!html.contains("<script"), "no script, even from evidence");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;blocked&gt; &amp; &quot;why&quot;"));
        assert!(html.contains("1 of 3 checks failed"));
        let fail_edges = html.matches(r#"class="edge fail""#).count();
        let pass_edges = html.matches(r#"class="edge pass""#).count();
        // fe-1: front→instance and instance→back end are red; fe-0's two and internet→back end green.
        assert_eq!((fail_edges, pass_edges), (2, 3), "{html}");
        assert_eq!(html.matches(r#"<td class="cell fail">"#).count(), 1);
        assert!(html.contains("No baseline given"));
    }

    #[test]
    fn targets_name_their_host() {
        let r = |action: &str, target: &str| CheckResult {
            action: action.into(),
            ..result("x", "here", None, target, Verdict::Pass)
        };
        assert_eq!(target_host(&r("tcpping", "app-be:443")), "app-be");
        assert_eq!(target_host(&r("tcpping", "[::1]:53")), "::1");
        assert_eq!(target_host(&r("resolve", "app-be (A)")), "app-be");
        assert_eq!(target_host(&r("http", "https://h.example/x")), "h.example");
    }
}
