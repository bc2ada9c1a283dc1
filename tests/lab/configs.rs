//! The suites shipped for Azure (infra/smoke/) and the ones the config writer produces
//! (infra/checks/expected/) are valid for `probe smoke`: they parse and every check validates.

use std::path::Path;

use probe::smoke::SmokeConfig;

#[test]
fn every_shipped_suite_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["infra/smoke", "infra/checks/expected"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config =
                    SmokeConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let checks = config
                    .checks()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(checks.len() >= 3, "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 4,
        "expected the example suites and the writer's goldens, found {seen}"
    );
}
