//! After a run, what `probe smoke` and the lab both do with the report: compare it with a
//! baseline and write the evidence bundle, with the same options and the same messages.

use std::path::Path;

use crate::smoke::SmokeConfig;
use crate::smoke::compare::compare;
use crate::smoke::evidence::write_bundle;
use crate::smoke::report::SuiteReport;
use crate::smoke::run::{RunOptions, fetch_envs};

/// Reads `--baseline FILE` before the run, so a wrong path fails before anything is sent.
pub fn load_baseline(path: Option<&Path>) -> Result<Option<SuiteReport>, String> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
    SuiteReport::from_json(&text)
        .map(Some)
        .map_err(|e| format!("the baseline {}: {e}", path.display()))
}

/// Adds the comparison with `baseline` to `report`, and writes the evidence bundle into
/// `evidence` (fetching each app's `/diag/env` now, while the run's state is fresh).
pub async fn finish(
    report: &mut SuiteReport,
    baseline: Option<&SuiteReport>,
    evidence: Option<&Path>,
    config: &SmokeConfig,
    options: &RunOptions,
) -> Result<(), String> {
    if let Some(baseline) = baseline {
        report.baseline = Some(compare(baseline, report));
    }
    if let Some(dir) = evidence {
        let envs = fetch_envs(config, options, report)
            .await
            .map_err(|e| e.to_string())?;
        let manifest = write_bundle(dir, report, &envs)
            .map_err(|e| format!("cannot write the evidence bundle {}: {e}", dir.display()))?;
        eprintln!(
            "evidence: {} files and their SHA-256 digests in {} (check with: cd {} && sha256sum -c SHA256SUMS)",
            manifest.files.len(),
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
