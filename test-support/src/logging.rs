//! Logs for tests: written through libtest's capture, so they show only for a failing test.

use tracing_subscriber::EnvFilter;

/// Installs the test subscriber once per test binary (later calls do nothing): `info` and up,
/// or what `RUST_LOG` says, through the test writer. The fixtures call it; a test that builds its
/// app by hand can too.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only when a subscriber is already set: by an earlier call, or by the test itself.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
