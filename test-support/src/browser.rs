//! Finding the headless browser the page tests look through: Debian's `chromium`, installed by
//! `.ci/install-test-tools`. Required in CI; elsewhere its absence skips the test, saying so.

/// The Chromium binary on `PATH`, or `None` after saying the test is skipped. Panics in CI
/// (`CI` set), where the browser must be there.
pub fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|binary| on_path(binary));
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
    }
    found
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}
