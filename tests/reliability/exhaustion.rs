//! The app's own file-descriptor exhaustion is diagnosed as what it is: a child process with a
//! lowered open-file limit (`ulimit -n`) runs out of files, then pings and calls a loopback
//! listener. Both the `/diag/tcpping` report and the relay's diagnosis must say
//! `local_resource_exhausted`, not a network fault.

use std::process::Command;
use std::time::Duration;

use diag::diagnosis::Code;
use diag::failure::FailureKind;
use diag::tcpping::{PingVerdict, TcpPingRequest, tcp_ping};

/// Set in the child: run the exhausted half instead of spawning.
const CHILD: &str = "LOCKDOWN_RELIABILITY_FD_CHILD";
const TEST_NAME: &str = "exhaustion::out_of_file_descriptors_is_diagnosed_as_the_apps_own_limit";

#[test]
fn out_of_file_descriptors_is_diagnosed_as_the_apps_own_limit() {
    if std::env::var_os(CHILD).is_some() {
        return exhausted_child();
    }
    let exe = std::env::current_exe().unwrap();
    // `ulimit` in a shell, not setrlimit here: the workspace forbids `unsafe`.
    let output = Command::new("sh")
        .args(["-c", r#"ulimit -n 64 && exec "$0" "$@""#])
        .arg(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("fd child: checked"), "{stdout}\n{stderr}");
}

fn exhausted_child() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dns = test_support::spawn_dns().await;
        let resolver = dns.resolver();
        let request = TcpPingRequest::parse(
            "127.0.0.1",
            Some(&port.to_string()),
            Some("1"),
            Some("1000"),
            Some("0"),
        )
        .unwrap();

        // Take every file descriptor left.
        let mut held = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => held.push(file),
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(24), "{error}");
                    break;
                }
            }
            assert!(held.len() < 10_000, "the open-file limit was not lowered");
        }

        let report = tcp_ping(&resolver, &request, None, None).await;
        assert_eq!(
            report.attempts[0].error,
            Some(FailureKind::ResourceExhausted),
            "{report:?}"
        );
        assert_eq!(report.verdict, PingVerdict::LocalResourceExhausted);
        assert!(report.hint.contains("ulimit -n"), "{}", report.hint);
        assert!(
            !report.hint.contains("VNet integration,"),
            "{}",
            report.hint
        );

        // The relay's connect, as its origin client makes it, with no descriptor left.
        let error = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        .expect("bounded")
        .expect_err("no file descriptor is left for the call");
        let error = frontend::origin::OriginError::Connect(error);
        let diagnosis = frontend::diagnosis::from_transport(&error, "the back end");
        assert_eq!(diagnosis.code, Code::LocalResourceExhausted, "{error:?}");
        assert_eq!(diagnosis.status, 503);
        drop(held);
        println!("fd child: checked");
    });
}
