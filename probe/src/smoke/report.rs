//! The smoke report: one result per check (per instance when fanned out), rendered as text for
//! a terminal, JSON for scripts, or JUnit XML for CI systems.

use std::io::Cursor;

use quick_xml::Writer;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::Serialize;

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

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// At least one did not (or the check could not run).
    Fail,
}

/// One check's result (one per instance when fanned out).
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// `here` or the app's name.
    pub from: String,
    /// The instance it was pinned to (`ARRAffinity`), when fanned out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The instance that answered, as the app's `/diag` said (`X-Instance-Id`); when pinned, a
    /// different one fails the check with `instance_not_pinned`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// `resolve`, `tcpping` or `http`.
    pub action: &'static str,
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
    /// What was seen.
    pub evidence: Vec<String>,
    /// How many times it ran (more than one under `--wait`).
    pub attempts: u32,
    /// Time of the last run (the whole suite's time is the report's `duration_ms`).
    pub duration_ms: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// Every result, in the order of the suite.
    pub results: Vec<CheckResult>,
    /// Results that passed.
    pub passed: usize,
    /// Results that failed.
    pub failed: usize,
    /// Wall time of the whole run.
    pub duration_ms: f64,
}

impl SuiteReport {
    /// Builds the totals.
    pub fn new(results: Vec<CheckResult>, duration_ms: f64) -> Self {
        let passed = results
            .iter()
            .filter(|r| r.verdict == Verdict::Pass)
            .count();
        Self {
            failed: results.len() - passed,
            passed,
            results,
            duration_ms,
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
        let paint = |code: &str, text: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let mut out = String::new();
        for result in &self.results {
            let mark = match result.verdict {
                Verdict::Pass => paint("32", "✓"),
                Verdict::Fail => paint("31", "✗"),
            };
            let mut place = match (&result.instance, &result.answered_by) {
                (Some(instance), _) => format!("from {}, instance {instance}", result.from),
                (None, Some(answered)) => format!("from {}, answered by {answered}", result.from),
                (None, None) => format!("from {}", result.from),
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
        out
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
        write(&mut writer, Event::Start(suite));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, verdict: Verdict) -> CheckResult {
        CheckResult {
            name: name.into(),
            from: "frontend".into(),
            instance: Some("fe-1".into()),
            answered_by: Some("fe-1".into()),
            action: "http",
            target: "http://x/<&>".into(),
            verdict,
            code: (verdict == Verdict::Fail).then(|| "access_restricted".into()),
            diagnosis: (verdict == Verdict::Fail).then(|| "blocked \"here\" & <there>".into()),
            evidence: vec!["GET http://x → 403 ]]> tricky".into()],
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
