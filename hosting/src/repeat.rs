//! Logging a repeated failure once: the first of a kind is logged in full, the next ones in the
//! same window are only counted, and one summary line says how many more there were.
//!
//! Why: a back end that is down fails every relayed request the same way, and a flood of `/diag`
//! calls is refused the same way each time; one line per request buried the cause under
//! megabytes of identical lines (issue 18: 12 MB per 10 s of back-end outage).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// The window used when none is configured: a kind of failure is logged at most once per 10 s,
/// plus its summary.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// What makes two failures "the same": the code, the status and the route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailureKind {
    /// The envelope's error code (`connect_refused`, `rate_limited`, …).
    pub code: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The matched route (`/api/items/{id}`), or `unmatched`.
    pub route: String,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    suppressed: u64,
}

/// Counts failures by kind; see the module docs. Cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct RepeatedFailures {
    window: Duration,
    open: Mutex<HashMap<FailureKind, Window>>,
    flusher: Mutex<bool>,
}

impl RepeatedFailures {
    /// A counter whose windows last `window`.
    pub fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            window: window.max(Duration::from_millis(1)),
            open: Mutex::new(HashMap::new()),
            flusher: Mutex::new(false),
        })
    }

    /// Records one failure of `kind`: true when it is the first in its window and must be
    /// logged in full, false when it is only counted (the summary will say it).
    pub fn first_in_window(self: &Arc<Self>, kind: &FailureKind) -> bool {
        self.start_flusher();
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        match open.get_mut(kind) {
            Some(window) if now.duration_since(window.opened) < self.window => {
                window.suppressed += 1;
                false
            }
            _ => {
                let expired = open.insert(
                    kind.clone(),
                    Window {
                        opened: now,
                        suppressed: 0,
                    },
                );
                drop(open);
                if let Some(expired) = expired {
                    self.summarise(kind, &expired);
                }
                true
            }
        }
    }

    /// Closes the windows that are over, logging a summary for each that counted repeats.
    /// Returns how many summaries it logged.
    pub fn flush_expired(&self) -> usize {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.retain(|kind, window| {
                let over = now.duration_since(window.opened) >= self.window;
                if over {
                    expired.push((
                        kind.clone(),
                        Window {
                            opened: window.opened,
                            suppressed: window.suppressed,
                        },
                    ));
                }
                !over
            });
        }
        expired
            .iter()
            .filter(|(kind, window)| self.summarise(kind, window))
            .count()
    }

    fn summarise(&self, kind: &FailureKind, window: &Window) -> bool {
        if window.suppressed == 0 {
            return false;
        }
        let window_s = self.window.as_secs_f64();
        tracing::warn!(
            error.code = %kind.code,
            http.status = kind.status,
            http.route = %kind.route,
            repeat.count = window.suppressed,
            repeat.window_s = window_s,
            "{} more like this in the last {window_s}s",
            window.suppressed
        );
        true
    }

    /// One background task per counter closes the windows on time, so the summary of the
    /// last burst is written even when no failure follows it. It stops with the counter.
    fn start_flusher(self: &Arc<Self>) {
        let mut started = self.flusher.lock().unwrap_or_else(PoisonError::into_inner);
        if *started {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *started = true;
        let weak: Weak<Self> = Arc::downgrade(self);
        let period = self.window / 2;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(counter) = weak.upgrade() else { break };
                counter.flush_expired();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str) -> FailureKind {
        FailureKind {
            code: code.into(),
            status: 502,
            route: "/api/items".into(),
        }
    }

    #[tokio::test]
    async fn the_first_of_a_kind_is_logged_and_the_rest_counted() {
        let counter = RepeatedFailures::new(Duration::from_secs(60));
        assert!(counter.first_in_window(&kind("connect_refused")));
        assert!(!counter.first_in_window(&kind("connect_refused")));
        assert!(!counter.first_in_window(&kind("connect_refused")));
        // Another kind has its own window.
        assert!(counter.first_in_window(&kind("dns_nxdomain")));
        // Nothing is over yet: no summary.
        assert_eq!(counter.flush_expired(), 0);
    }

    // Outside a runtime no flusher runs, so the test decides when windows are closed.
    #[test]
    fn a_window_that_ends_writes_one_summary_and_the_next_failure_is_logged_again() {
        let counter = RepeatedFailures::new(Duration::from_millis(20));
        assert!(counter.first_in_window(&kind("connect_refused")));
        assert!(!counter.first_in_window(&kind("connect_refused")));
        assert!(counter.first_in_window(&kind("connect_timeout")));
        std::thread::sleep(Duration::from_millis(30));
        // Only the kind with repeats has a summary; both windows are closed.
        assert_eq!(counter.flush_expired(), 1);
        assert!(counter.first_in_window(&kind("connect_refused")));
        assert!(counter.first_in_window(&kind("connect_timeout")));
    }
}
