//! What changed since an earlier run (`--baseline`): per check and instance, newly failing,
//! newly passing, still failing, and facts that moved while the verdict did not (a name now
//! resolving elsewhere, egress from another source, another instance answering). Results are
//! matched by check name, instance and action, so a renamed check is one removed and one added.

use serde::{Deserialize, Serialize};

use crate::smoke::facts::{AddressFact, Facts};
use crate::smoke::report::{CheckResult, SuiteReport, Verdict, paint};

/// How one result moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Passed in the baseline, fails now.
    NewlyFailing,
    /// Failed in the baseline, passes now.
    NewlyPassing,
    /// Failed in both.
    StillFailing,
    /// Passed in both, but what it saw changed.
    FactsChanged,
    /// Not in the baseline (a new check, a renamed one, a new instance).
    Added,
    /// In the baseline only.
    Removed,
}

impl ChangeKind {
    fn phrase(self) -> &'static str {
        match self {
            Self::NewlyFailing => "newly failing",
            Self::NewlyPassing => "newly passing",
            Self::StillFailing => "still failing",
            Self::FactsChanged => "facts changed",
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }
}

/// One fact that differs between the runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactChange {
    /// `addresses`, `target_ip`, `source`, `caller`, `caller_instance`, `answered_by`, `status`,
    /// `app_service` or `code`.
    pub fact: String,
    /// Its value in the baseline.
    pub before: String,
    /// Its value now.
    pub after: String,
}

/// One result that moved (results that passed in both with the same facts are only counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The check's name.
    pub name: String,
    /// The instance, when fanned out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The action.
    pub action: String,
    /// How it moved.
    pub change: ChangeKind,
    /// The verdict in the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Verdict>,
    /// The verdict now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Verdict>,
    /// The diagnosis code in the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_before: Option<String>,
    /// The diagnosis code now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_after: Option<String>,
    /// Facts that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<FactChange>,
}

/// How many results moved each way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// Passed, now fail.
    pub newly_failing: usize,
    /// Failed, now pass.
    pub newly_passing: usize,
    /// Failed in both.
    pub still_failing: usize,
    /// Passed in both with different facts.
    pub facts_changed: usize,
    /// New results.
    pub added: usize,
    /// Gone results.
    pub removed: usize,
    /// Passed in both with the same facts.
    pub unchanged: usize,
}

/// This run against an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// When the baseline ran.
    pub baseline_started_at: String,
    /// The baseline's suite digest.
    pub baseline_suite_digest: String,
    /// True when the two runs judged different suites (checks may have changed meaning).
    pub suite_changed: bool,
    /// The counts.
    pub counts: ChangeCounts,
    /// Every result that moved: in this run's order, then the removed ones.
    pub changes: Vec<Change>,
}

type Key<'a> = (&'a str, Option<&'a str>, &'a str);

fn key(result: &CheckResult) -> Key<'_> {
    (
        result.name.as_str(),
        result.instance.as_deref(),
        result.action.as_str(),
    )
}

fn address(fact: &AddressFact) -> String {
    match fact.vnet_ip {
        Some(vnet) => format!("{} ({vnet})", fact.ip),
        None => fact.ip.to_string(),
    }
}

/// The facts that differ, compared only where both runs recorded the fact (an older report
/// without facts, or a check that stopped early, says nothing changed rather than everything).
fn fact_changes(before: &CheckResult, after: &CheckResult) -> Vec<FactChange> {
    fn both<T: PartialEq>(
        out: &mut Vec<FactChange>,
        fact: &str,
        before: Option<T>,
        after: Option<T>,
        show: impl Fn(&T) -> String,
    ) {
        if let (Some(b), Some(a)) = (before, after)
            && b != a
        {
            out.push(FactChange {
                fact: fact.into(),
                before: show(&b),
                after: show(&a),
            });
        }
    }
    let (b, a): (&Facts, &Facts) = (&before.facts, &after.facts);
    let mut out = Vec::new();
    let ips = |facts: &Facts| {
        let mut ips: Vec<String> = facts.addresses.iter().map(|r| r.ip.to_string()).collect();
        ips.sort();
        ips.dedup();
        (!ips.is_empty()).then(|| ips.join(", "))
    };
    both(&mut out, "addresses", ips(b), ips(a), String::clone);
    both(&mut out, "target_ip", b.target_ip, a.target_ip, |ip| {
        ip.to_string()
    });
    both(
        &mut out,
        "source",
        b.source.as_ref(),
        a.source.as_ref(),
        |f| address(f),
    );
    both(
        &mut out,
        "caller",
        b.caller.as_ref().map(|c| &c.address),
        a.caller.as_ref().map(|c| &c.address),
        |f| address(f),
    );
    both(
        &mut out,
        "caller_instance",
        b.caller.as_ref().and_then(|c| c.instance.as_ref()),
        a.caller.as_ref().and_then(|c| c.instance.as_ref()),
        |s| (*s).clone(),
    );
    both(
        &mut out,
        "answered_by",
        before.answered_by.as_ref(),
        after.answered_by.as_ref(),
        |s| (*s).clone(),
    );
    both(&mut out, "status", b.status, a.status, u16::to_string);
    both(
        &mut out,
        "app_service",
        b.app_service.as_ref().map(|p| &p.code),
        a.app_service.as_ref().map(|p| &p.code),
        |s| (*s).clone(),
    );
    both(
        &mut out,
        "code",
        before.code.as_ref(),
        after.code.as_ref(),
        |s| (*s).clone(),
    );
    out
}

/// Compares `current` with `baseline`.
pub fn compare(baseline: &SuiteReport, current: &SuiteReport) -> Comparison {
    let mut counts = ChangeCounts::default();
    let mut changes = Vec::new();
    let change = |kind: ChangeKind, before: Option<&CheckResult>, after: Option<&CheckResult>| {
        let any = after.or(before).expect("one side exists");
        Change {
            name: any.name.clone(),
            instance: any.instance.clone(),
            action: any.action.clone(),
            change: kind,
            before: before.map(|r| r.verdict),
            after: after.map(|r| r.verdict),
            code_before: before.and_then(|r| r.code.clone()),
            code_after: after.and_then(|r| r.code.clone()),
            facts: match (before, after) {
                (Some(b), Some(a)) => fact_changes(b, a),
                _ => Vec::new(),
            },
        }
    };
    for now in &current.results {
        let then = baseline.results.iter().find(|r| key(r) == key(now));
        let kind = match (then.map(|r| r.verdict), now.verdict) {
            (None, _) => Some(ChangeKind::Added),
            (Some(Verdict::Pass), Verdict::Fail) => Some(ChangeKind::NewlyFailing),
            (Some(Verdict::Fail), Verdict::Pass) => Some(ChangeKind::NewlyPassing),
            (Some(Verdict::Fail), Verdict::Fail) => Some(ChangeKind::StillFailing),
            (Some(Verdict::Pass), Verdict::Pass) => (!fact_changes(then.expect("matched"), now)
                .is_empty())
            .then_some(ChangeKind::FactsChanged),
        };
        match kind {
            None => counts.unchanged += 1,
            Some(kind) => {
                *count_of(&mut counts, kind) += 1;
                changes.push(change(kind, then, Some(now)));
            }
        }
    }
    for then in &baseline.results {
        if !current.results.iter().any(|r| key(r) == key(then)) {
            counts.removed += 1;
            changes.push(change(ChangeKind::Removed, Some(then), None));
        }
    }
    Comparison {
        baseline_started_at: baseline.started_at.clone(),
        baseline_suite_digest: baseline.suite_digest.clone(),
        suite_changed: baseline.suite_digest != current.suite_digest,
        counts,
        changes,
    }
}

fn count_of(counts: &mut ChangeCounts, kind: ChangeKind) -> &mut usize {
    match kind {
        ChangeKind::NewlyFailing => &mut counts.newly_failing,
        ChangeKind::NewlyPassing => &mut counts.newly_passing,
        ChangeKind::StillFailing => &mut counts.still_failing,
        ChangeKind::FactsChanged => &mut counts.facts_changed,
        ChangeKind::Added => &mut counts.added,
        ChangeKind::Removed => &mut counts.removed,
    }
}

impl Comparison {
    /// One line of counts.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "{} newly failing, {} newly passing, {} still failing, {} with changed facts, {} added, {} removed, {} unchanged",
            c.newly_failing,
            c.newly_passing,
            c.still_failing,
            c.facts_changed,
            c.added,
            c.removed,
            c.unchanged
        )
    }

    /// The comparison as text: a line of counts, then a line per change with its facts.
    pub fn render_text(&self, color: bool) -> String {
        let paint = |code: &str, text: &str| paint(color, code, text);
        let clean = |text: &str| -> String {
            text.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect()
        };
        let since = if self.baseline_started_at.is_empty() {
            "the baseline".to_owned()
        } else {
            format!("the baseline of {}", clean(&self.baseline_started_at))
        };
        let mut out = format!("\nSince {since}: {}\n", self.summary());
        if self.suite_changed {
            out += "  (the suite changed since the baseline: checks are matched by name, instance and action)\n";
        }
        for change in &self.changes {
            let mark = match change.change {
                ChangeKind::NewlyFailing => paint("1;31", "✗"),
                ChangeKind::NewlyPassing => paint("1;32", "✓"),
                ChangeKind::StillFailing => paint("31", "✗"),
                ChangeKind::FactsChanged => paint("33", "~"),
                ChangeKind::Added => "+".to_owned(),
                ChangeKind::Removed => "-".to_owned(),
            };
            let instance = change
                .instance
                .as_ref()
                .map(|i| format!(" [{}]", clean(i)))
                .unwrap_or_default();
            let code = match (&change.code_before, &change.code_after) {
                (Some(b), Some(a)) if b != a => format!(" ({} → {})", clean(b), clean(a)),
                (_, Some(a)) => format!(" ({})", clean(a)),
                (Some(b), None) => format!(" (was {})", clean(b)),
                (None, None) => String::new(),
            };
            out += &format!(
                "  {mark} {}: {}{instance}{code}\n",
                change.change.phrase(),
                clean(&change.name)
            );
            for fact in change.facts.iter().filter(|f| f.fact != "code") {
                out += &format!(
                    "      {}: {} → {}\n",
                    fact.fact,
                    clean(&fact.before),
                    clean(&fact.after)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::facts::ResolvedFact;
    use hosting::AddressClass;

    fn result(name: &str, instance: Option<&str>, verdict: Verdict) -> CheckResult {
        CheckResult {
            name: name.into(),
            from: "frontend".into(),
            via: None,
            instance: instance.map(str::to_owned),
            answered_by: instance.map(str::to_owned),
            action: "resolve".into(),
            target: "app-be".into(),
            verdict,
            code: (verdict == Verdict::Fail).then(|| "dns_failure".into()),
            diagnosis: None,
            evidence: Vec::new(),
            facts: Facts::default(),
            attempts: 1,
            duration_ms: 1.0,
        }
    }

    fn resolving_to(mut r: CheckResult, ip: &str) -> CheckResult {
        r.facts.addresses = vec![ResolvedFact {
            ip: ip.parse().unwrap(),
            class: AddressClass::Private,
            zone: None,
        }];
        r
    }

    #[test]
    fn each_way_a_result_can_move_is_named() {
        let before = SuiteReport::new(
            vec![
                result("a", None, Verdict::Pass),
                result("b", None, Verdict::Fail),
                result("c", None, Verdict::Fail),
                resolving_to(result("d", None, Verdict::Pass), "10.0.2.4"),
                result("e", Some("fe-0"), Verdict::Pass),
                result("old name", None, Verdict::Pass),
            ],
            1.0,
        );
        let after = SuiteReport::new(
            vec![
                result("a", None, Verdict::Fail),
                result("b", None, Verdict::Pass),
                result("c", None, Verdict::Fail),
                resolving_to(result("d", None, Verdict::Pass), "20.1.2.3"),
                result("e", Some("fe-0"), Verdict::Pass),
                result("e", Some("fe-1"), Verdict::Pass),
                result("new name", None, Verdict::Pass),
            ],
            1.0,
        );
        let comparison = compare(&before, &after);
        let kinds: Vec<_> = comparison
            .changes
            .iter()
            .map(|c| (c.name.as_str(), c.instance.as_deref(), c.change))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a", None, ChangeKind::NewlyFailing),
                ("b", None, ChangeKind::NewlyPassing),
                ("c", None, ChangeKind::StillFailing),
                ("d", None, ChangeKind::FactsChanged),
                ("e", Some("fe-1"), ChangeKind::Added),
                ("new name", None, ChangeKind::Added),
                ("old name", None, ChangeKind::Removed),
            ]
        );
        assert_eq!(comparison.counts.unchanged, 1);
        assert_eq!(
            comparison.changes[3].facts,
            vec![FactChange {
                fact: "addresses".into(),
                before: "10.0.2.4".into(),
                after: "20.1.2.3".into()
            }]
        );
        let text = comparison.render_text(false);
        assert!(text.contains("1 newly failing, 1 newly passing, 1 still failing, 1 with changed facts, 2 added, 1 removed, 1 unchanged"), "{text}");
        assert!(text.contains("addresses: 10.0.2.4 → 20.1.2.3"), "{text}");
        assert!(text.contains("+ added: e [fe-1]"), "{text}");
    }

    #[test]
    fn an_unchanged_run_has_no_changes_and_missing_facts_are_not_changes() {
        let before = SuiteReport::new(vec![result("a", None, Verdict::Pass)], 1.0);
        let after = SuiteReport::new(
            vec![resolving_to(result("a", None, Verdict::Pass), "10.0.2.4")],
            1.0,
        );
        let comparison = compare(&before, &after);
        assert!(comparison.changes.is_empty(), "{comparison:?}");
        assert_eq!(comparison.counts.unchanged, 1);
        assert!(!comparison.suite_changed);
    }
}
