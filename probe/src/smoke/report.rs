//! The smoke report: one result per check (per instance when fanned out), rendered as text for
//! a terminal, JSON for scripts, or JUnit XML for CI systems.

use std::io::Cursor;

use std::collections::BTreeMap;
use std::net::IpAddr;

use quick_xml::Writer;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::{Deserialize, Serialize};

use crate::smoke::compare::Comparison;
use crate::smoke::facts::Facts;

/// The version of the JSON report's shape (`schema_version`); `docs/smoke-report.schema.json`
/// describes it. Bump it when a key changes meaning or goes away; new optional keys keep it.
pub const SCHEMA_VERSION: u32 = 1;

/// Text from a remote `/diag` or a target is printed and put in XML: control characters
/// (terminal escapes, characters XML cannot carry) are replaced.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn evidence_text(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| clean(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A line per check with its evidence and diagnosis.
    Text,
    /// The report as JSON (schema: docs/smoke-report.schema.json).
    Json,
    /// JUnit XML for CI systems.
    Junit,
    /// One self-contained page: topology, per-instance matrix, diagnoses, changes.
    Html,
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// At least one did not (or the check could not run).
    Fail,
}

/// One check's result (one per instance when fanned out).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// `here` or the app's name.
    pub from: String,
    /// The app the check went through to reach `from` (its `/diag/backend/…`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The instance it was pinned to (`ARRAffinity`), when fanned out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The instance that answered, as the app's `/diag` said (`X-Instance-Id`); when pinned, a
    /// different one fails the check with `instance_not_pinned`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// `resolve`, `tcpping` or `http`.
    pub action: String,
    /// What the action targeted.
    pub target: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Diagnosis code when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Diagnosis in plain words, with the next step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    /// What was seen, in sentences.
    pub evidence: Vec<String>,
    /// What was seen, as data (the same observations as `evidence`).
    #[serde(default)]
    pub facts: Facts,
    /// How many times it ran (more than one under `--wait`).
    pub attempts: u32,
    /// Time of the last run (the whole suite's time is the report's `duration_ms`).
    pub duration_ms: f64,
}

/// The program that wrote a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `probe` (the lab writes its reports with probe's runner too).
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Default for Tool {
    fn default() -> Self {
        Self {
            name: "probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Where the suite ran from: the machine, and how checks `from = "here"` went out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RanFrom {
    /// The machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `here.source_addr`: the address checks from here bind to, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_addr: Option<IpAddr>,
    /// `here.dns_servers`; empty means the system's resolver.
    #[serde(default)]
    pub dns_servers: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    /// The report's shape ([`SCHEMA_VERSION`]); 0 in a report older than the versioned shape.
    #[serde(default)]
    pub schema_version: u32,
    /// The program that wrote it.
    #[serde(default)]
    pub tool: Tool,
    /// When the run started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: String,
    /// When it ended (RFC 3339, UTC).
    #[serde(default)]
    pub finished_at: String,
    /// `sha256:` and the hex SHA-256 of the suite's TOML text, so a report names the exact
    /// expectations it judged.
    #[serde(default)]
    pub suite_digest: String,
    /// Where it ran from.
    #[serde(default)]
    pub ran_from: RanFrom,
    /// The apps whose `/diag` ran checks, with their URLs.
    #[serde(default)]
    pub apps: BTreeMap<String, String>,
    /// Every result, in the order of the suite.
    pub results: Vec<CheckResult>,
    /// Results that passed.
    pub passed: usize,
    /// Results that failed.
    pub failed: usize,
    /// Wall time of the whole run.
    pub duration_ms: f64,
    /// What changed since an earlier run (`--baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Comparison>,
}

impl SuiteReport {
    /// Builds the totals.
    pub fn new(results: Vec<CheckResult>, duration_ms: f64) -> Self {
        let passed = results
            .iter()
            .filter(|r| r.verdict == Verdict::Pass)
            .count();
        Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool::default(),
            started_at: String::new(),
            finished_at: String::new(),
            suite_digest: String::new(),
            ran_from: RanFrom::default(),
            apps: BTreeMap::new(),
            failed: results.len() - passed,
            passed,
            results,
            duration_ms,
            baseline: None,
        }
    }

    /// True when nothing failed.
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }

    /// The results that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| r.verdict == Verdict::Fail)
    }

    /// A line per result (✓/✗, name, where from), the evidence indented under it, and for
    /// failures the code and the diagnosis.
    pub fn render_text(&self, color: bool) -> String {
        let paint = |code: &str, text: &str| paint(color, code, text);
        let mut out = String::new();
        for result in &self.results {
            let mark = match result.verdict {
                Verdict::Pass => paint("32", "✓"),
                Verdict::Fail => paint("31", "✗"),
            };
            let from = match &result.via {
                Some(via) => format!("{} through {via}", result.from),
                None => result.from.clone(),
            };
            let mut place = match (&result.instance, &result.answered_by) {
                (Some(instance), _) => format!("from {from}, instance {instance}"),
                (None, Some(answered)) => format!("from {from}, answered by {answered}"),
                (None, None) => format!("from {from}"),
            };
            if result.attempts > 1 {
                place += &format!(", {} attempts", result.attempts);
            }
            out += &format!(
                "{mark} {}  {}\n",
                clean(&result.name),
                paint("2", &clean(&format!("({place})")))
            );
            for line in &result.evidence {
                out += &format!("    {}\n", clean(line));
            }
            if let (Some(code), Some(diagnosis)) = (&result.code, &result.diagnosis) {
                out += &format!(
                    "    {} {}\n",
                    paint("1;31", &clean(&format!("{code}:"))),
                    clean(diagnosis)
                );
            }
        }
        let summary = format!(
            "{} passed, {} failed ({} check{} in {:.0} ms)",
            self.passed,
            self.failed,
            self.results.len(),
            if self.results.len() == 1 { "" } else { "s" },
            self.duration_ms
        );
        out += &format!(
            "\n{}\n",
            if self.all_passed() {
                paint("1;32", &summary)
            } else {
                paint("1;31", &summary)
            }
        );
        if let Some(comparison) = &self.baseline {
            out += &comparison.render_text(color);
        }
        out
    }

    /// The report in `format` (`color`: ANSI colours in text).
    pub fn render(&self, format: ReportFormat, color: bool) -> String {
        match format {
            ReportFormat::Text => self.render_text(color),
            ReportFormat::Json => self.render_json(),
            ReportFormat::Junit => self.render_junit(),
            ReportFormat::Html => self.render_html(),
        }
    }

    /// Reads a JSON report (a `--baseline`), checking that its shape is one this version reads.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let report: Self =
            serde_json::from_str(text).map_err(|e| format!("not a smoke report in JSON: {e}"))?;
        if report.schema_version > SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is newer than this probe reads ({SCHEMA_VERSION}): use a newer probe",
                report.schema_version
            ));
        }
        Ok(report)
    }

    /// The report as pretty JSON.
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report always serializes") + "\n"
    }

    /// JUnit XML: one `<testcase>` per result, `<failure>` with the code and diagnosis.
    pub fn render_junit(&self) -> String {
        let mut writer = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        let seconds = |ms: f64| format!("{:.3}", ms / 1000.0);
        let write = |writer: &mut Writer<Cursor<Vec<u8>>>, event: Event<'_>| {
            writer
                .write_event(event)
                .expect("writing to memory cannot fail");
        };
        write(
            &mut writer,
            Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
        );
        let tests = self.results.len().to_string();
        let failures = self.failed.to_string();
        let time = seconds(self.duration_ms);
        let mut suites = BytesStart::new("testsuites");
        suites.push_attribute(("name", "lockdown smoke"));
        suites.push_attribute(("tests", tests.as_str()));
        suites.push_attribute(("failures", failures.as_str()));
        suites.push_attribute(("errors", "0"));
        suites.push_attribute(("time", time.as_str()));
        write(&mut writer, Event::Start(suites));
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", "lockdown smoke"));
        suite.push_attribute(("tests", tests.as_str()));
        suite.push_attribute(("failures", failures.as_str()));
        suite.push_attribute(("errors", "0"));
        suite.push_attribute(("skipped", "0"));
        suite.push_attribute(("time", time.as_str()));
        if !self.started_at.is_empty() {
            suite.push_attribute(("timestamp", self.started_at.as_str()));
        }
        write(&mut writer, Event::Start(suite));
        // The run's identity, so a CI artefact names the suite and tool that judged it.
        write(&mut writer, Event::Start(BytesStart::new("properties")));
        let schema_version = self.schema_version.to_string();
        for (name, value) in [
            ("schema_version", schema_version.as_str()),
            ("tool", self.tool.name.as_str()),
            ("tool_version", self.tool.version.as_str()),
            ("started_at", self.started_at.as_str()),
            ("finished_at", self.finished_at.as_str()),
            ("suite_digest", self.suite_digest.as_str()),
        ] {
            let mut property = BytesStart::new("property");
            property.push_attribute(("name", name));
            property.push_attribute(("value", clean(value).as_str()));
            write(&mut writer, Event::Empty(property));
        }
        write(&mut writer, Event::End(BytesEnd::new("properties")));
        for result in &self.results {
            let name = clean(&match &result.instance {
                Some(instance) => format!("{} [{instance}]", result.name),
                None => result.name.clone(),
            });
            let classname = format!("smoke.{}.{}", result.from, result.action);
            let time = seconds(result.duration_ms);
            let mut case = BytesStart::new("testcase");
            case.push_attribute(("name", name.as_str()));
            case.push_attribute(("classname", classname.as_str()));
            case.push_attribute(("time", time.as_str()));
            write(&mut writer, Event::Start(case));
            if result.verdict == Verdict::Fail {
                let code = clean(result.code.as_deref().unwrap_or_default());
                let message = clean(&format!(
                    "{code}: {}",
                    result.diagnosis.clone().unwrap_or_default()
                ));
                let mut failure = BytesStart::new("failure");
                failure.push_attribute(("type", code.as_str()));
                failure.push_attribute(("message", message.as_str()));
                write(&mut writer, Event::Start(failure));
                write(
                    &mut writer,
                    Event::CData(BytesCData::new(
                        evidence_text(&result.evidence).replace("]]>", "]] >"),
                    )),
                );
                write(&mut writer, Event::End(BytesEnd::new("failure")));
            }
            let out = format!(
                "{}\n{}",
                clean(&result.target),
                evidence_text(&result.evidence)
            );
            write(&mut writer, Event::Start(BytesStart::new("system-out")));
            write(&mut writer, Event::Text(BytesText::new(&out)));
            write(&mut writer, Event::End(BytesEnd::new("system-out")));
            write(&mut writer, Event::End(BytesEnd::new("testcase")));
        }
        write(&mut writer, Event::End(BytesEnd::new("testsuite")));
        write(&mut writer, Event::End(BytesEnd::new("testsuites")));
        String::from_utf8(writer.into_inner().into_inner()).expect("quick-xml writes UTF-8") + "\n"
    }
}

/// `text` in the ANSI colour `code` when `color` (a terminal), else as it is.
pub(crate) fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, verdict: Verdict) -> CheckResult {
        CheckResult {
            name: name.into(),
            from: "frontend".into(),
            via: None,
            instance: Some("fe-1".into()),
            answered_by: Some("fe-1".into()),
            action: "http".into(),
            target: "http://x/<&>".into(),
            verdict,
            code: (verdict == Verdict::Fail).then(|| "access_restricted".into()),
            diagnosis: (verdict == Verdict::Fail).then(|| "blocked \"here\" & <there>".into()),
            evidence: vec!["GET http://x → 403 ]]> tricky".into()],
            facts: Facts::default(),
            attempts: 1,
            duration_ms: 12.5,
        }
    }

    #[test]
    fn text_marks_each_result_and_totals() {
        let report = SuiteReport::new(
            vec![result("a", Verdict::Pass), result("b", Verdict::Fail)],
            40.0,
        );
        let text = report.render_text(false);
        assert!(text.contains("✓ a  (from frontend, instance fe-1)"));
        assert!(text.contains("✗ b"));
        assert!(text.contains("access_restricted: blocked"));
        assert!(text.contains("1 passed, 1 failed"));

        let mut unpinned = result("c", Verdict::Pass);
        unpinned.instance = None;
        unpinned.answered_by = Some("fe-0".into());
        unpinned.attempts = 3;
        let text = SuiteReport::new(vec![unpinned], 1.0).render_text(false);
        assert!(
            text.contains("✓ c  (from frontend, answered by fe-0, 3 attempts)"),
            "{text}"
        );
        assert!(text.contains("(1 check in 1 ms)"), "{text}");
    }

    #[test]
    fn remote_text_cannot_inject_terminal_escapes_or_break_xml() {
        let mut hostile = result("a", Verdict::Fail);
        hostile.diagnosis = Some("red \u{1b}[31m alert \u{7}".into());
        hostile.evidence = vec!["nul \u{0} here".into()];
        let report = SuiteReport::new(vec![hostile], 1.0);
        let text = report.render_text(false);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{0}'),
            "{text:?}"
        );
        let xml = report.render_junit();
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            if reader.read_event().expect("well-formed XML") == Event::Eof {
                break;
            }
        }
        assert!(!xml.contains('\u{0}'));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let report = SuiteReport::new(
            vec![result("a", Verdict::Pass), result("b <x>", Verdict::Fail)],
            40.0,
        );
        let xml = report.render_junit();
        assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
        assert!(xml.contains("b &lt;x&gt; [fe-1]"));
        assert!(xml.contains("&amp; &lt;there&gt;"));
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut cases = 0;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) if e.name().into_inner() == "testcase" => cases += 1,
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(cases, 2);
    }
}
