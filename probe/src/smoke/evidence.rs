//! The evidence bundle (`--evidence DIR`): the report in every format, each app's `/diag/env`
//! as seen during the run, and a manifest of SHA-256 digests of those files (`manifest.json`,
//! and `SHA256SUMS` that `sha256sum -c` reads), so what a team attaches to a change record can
//! be checked later.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::smoke::report::SuiteReport;
use crate::smoke::run::EnvSnapshot;

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Its path inside the bundle, with `/`.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The report's `started_at`.
    pub started_at: String,
    /// The report's `suite_digest`.
    pub suite_digest: String,
    /// Every file but the manifests themselves.
    pub files: Vec<ManifestEntry>,
}

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The digest list in `sha256sum` format.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// A file name from an app or instance name: only `[A-Za-z0-9._-]`, so a name from a remote
/// cookie cannot climb out of the bundle.
fn safe(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_owned()
}

/// Writes the bundle into `dir` (created if needed) and returns the manifest.
///
/// `report.txt`, `report.json`, `report.junit.xml`, `report.html`, `env/APP[@INSTANCE].json`
/// (what `/diag/env` answered, or `{"error": …}` when it could not be read), then
/// `manifest.json` and `SHA256SUMS` over all of them.
pub fn write_bundle(
    dir: &Path,
    report: &SuiteReport,
    envs: &[EnvSnapshot],
) -> std::io::Result<Manifest> {
    std::fs::create_dir_all(dir.join("env"))?;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("report.txt".into(), report.render_text(false).into_bytes()),
        ("report.json".into(), report.render_json().into_bytes()),
        (
            "report.junit.xml".into(),
            report.render_junit().into_bytes(),
        ),
        ("report.html".into(), report.render_html().into_bytes()),
    ];
    for env in envs {
        let name = match &env.instance {
            Some(instance) => format!("env/{}@{}.json", safe(&env.app), safe(instance)),
            None => format!("env/{}.json", safe(&env.app)),
        };
        let body = match &env.body {
            Ok(body) => body.clone(),
            Err(error) => serde_json::json!({ "error": error }),
        };
        let text = serde_json::to_string_pretty(&body).expect("JSON serializes") + "\n";
        files.push((name, text.into_bytes()));
    }
    let mut entries = Vec::new();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes)?;
        entries.push(ManifestEntry {
            path: name.clone(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
    }
    let manifest = Manifest {
        started_at: report.started_at.clone(),
        suite_digest: report.suite_digest.clone(),
        files: entries,
    };
    std::fs::write(
        dir.join(MANIFEST),
        serde_json::to_string_pretty(&manifest).expect("JSON serializes") + "\n",
    )?;
    let sums: String = manifest
        .files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    std::fs::write(dir.join(SHA256SUMS), sums)?;
    Ok(manifest)
}

/// Checks a bundle against its `manifest.json`: the files that are missing or whose digest
/// differs, by path (empty when everything matches).
pub fn verify_bundle(dir: &Path) -> std::io::Result<Vec<String>> {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join(MANIFEST))?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut bad = Vec::new();
    for entry in &manifest.files {
        let path: PathBuf = dir.join(&entry.path);
        match std::fs::read(&path) {
            Ok(bytes) if sha256_hex(&bytes) == entry.sha256 => {}
            _ => bad.push(entry.path.clone()),
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn names_from_the_network_stay_inside_the_bundle() {
        assert_eq!(safe("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe("fe-0"), "fe-0");
    }

    #[test]
    fn a_bundle_verifies_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let report = SuiteReport::new(Vec::new(), 1.0);
        let envs = vec![
            EnvSnapshot {
                app: "frontend".into(),
                instance: Some("fe-0".into()),
                body: Ok(serde_json::json!({"facts": {"instance_id": "fe-0"}})),
            },
            EnvSnapshot {
                app: "backend".into(),
                instance: None,
                body: Err("could not call /diag/env: refused".into()),
            },
        ];
        let manifest = write_bundle(dir.path(), &report, &envs).unwrap();
        let paths: Vec<_> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "report.txt",
                "report.json",
                "report.junit.xml",
                "report.html",
                "env/frontend@fe-0.json",
                "env/backend.json"
            ]
        );
        assert!(verify_bundle(dir.path()).unwrap().is_empty());
        let sums = std::fs::read_to_string(dir.path().join(SHA256SUMS)).unwrap();
        assert_eq!(sums.lines().count(), 6);
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        std::fs::remove_file(dir.path().join("env/backend.json")).unwrap();
        assert_eq!(
            verify_bundle(dir.path()).unwrap(),
            ["report.json", "env/backend.json"]
        );
    }
}
