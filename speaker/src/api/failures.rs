//! Repeated failures of one activity (a watch, a writer), logged without flooding:
//! while the API is away every watch retries every few seconds, forever, and a line per
//! retry buries everything else in the log.

use std::time::{Duration, Instant};

/// How often a failing activity says it still fails.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(30);

const RETRY_FIRST: Duration = Duration::from_millis(800);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Longer than the longest retry delay, with its jitter.
const QUIET_RESET: Duration = Duration::from_secs(120);

/// What to log for a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// The first failure after a success (or ever): log it.
    First,
    /// Failures go on: log that `count` more happened since the last line.
    Again { count: u64 },
    /// Counted; nothing to log yet.
    Quiet,
}

/// The failures of one activity since its last success.
#[derive(Clone, Debug)]
pub struct Failures {
    period: Duration,
    /// When the last line was logged, while failing.
    logged_at: Option<Instant>,
    /// Failures since that line.
    unlogged: u64,
    /// Failures since the last success.
    total: u64,
    /// When the last failure was.
    last: Option<Instant>,
}

impl Failures {
    /// Logs at most one line per `period` while failures go on.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            logged_at: None,
            unlogged: 0,
            total: 0,
            last: None,
        }
    }

    /// A failure at `now`.
    pub fn failed(&mut self, now: Instant) -> Report {
        // Some activities show no success (a watch that runs quietly): a failure long
        // after the previous one starts afresh.
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= QUIET_RESET)
        {
            self.succeeded();
        }
        self.last = Some(now);
        self.total += 1;
        match self.logged_at {
            None => {
                self.logged_at = Some(now);
                Report::First
            }
            Some(at) if now.saturating_duration_since(at) >= self.period => {
                self.logged_at = Some(now);
                Report::Again {
                    count: std::mem::take(&mut self.unlogged) + 1,
                }
            }
            Some(_) => {
                self.unlogged += 1;
                Report::Quiet
            }
        }
    }

    /// How long to wait before the next attempt: 0.8 s after the first failure,
    /// doubling up to 30 s (kube's default watcher backoff, which in practice never
    /// grows: see [`crate::api::watch`]). Jitter is the caller's.
    pub fn retry_delay(&self) -> Duration {
        let doublings = self.total.saturating_sub(1).min(6) as u32;
        (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_MAX)
    }

    /// A success: the number of failures it ends, if any.
    pub fn succeeded(&mut self) -> Option<u64> {
        self.logged_at = None;
        self.unlogged = 0;
        self.last = None;
        let total = std::mem::take(&mut self.total);
        (total > 0).then_some(total)
    }
}

impl Default for Failures {
    fn default() -> Self {
        Self::new(SUMMARY_PERIOD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_then_one_summary_per_period() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut failures = Failures::new(Duration::from_secs(30));
        assert_eq!(failures.failed(at(0)), Report::First);
        // Six a second for half a minute: nothing more until the period is over.
        for ms in (166..30_000).step_by(166) {
            assert_eq!(failures.failed(at(ms)), Report::Quiet, "at {ms} ms");
        }
        assert_eq!(failures.failed(at(30_000)), Report::Again { count: 181 });
        assert_eq!(failures.failed(at(31_000)), Report::Quiet);
        assert_eq!(failures.failed(at(60_000)), Report::Again { count: 2 });
        assert_eq!(failures.succeeded(), Some(184));
        // Nothing to report on a success without failures; a new failure is first again.
        assert_eq!(failures.succeeded(), None);
        assert_eq!(failures.failed(at(61_000)), Report::First);
    }

    #[test]
    fn retries_back_off_until_a_success() {
        let now = Instant::now();
        let mut failures = Failures::default();
        let mut delays = Vec::new();
        for _ in 0..8 {
            failures.failed(now);
            delays.push(failures.retry_delay().as_millis());
        }
        assert_eq!(delays, [800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
        failures.succeeded();
        failures.failed(now);
        assert_eq!(failures.retry_delay(), Duration::from_millis(800));
        // Two minutes without a failure count as a success nobody reported.
        failures.failed(now + Duration::from_secs(1));
        assert_eq!(failures.retry_delay(), Duration::from_millis(1600));
        let later = now + Duration::from_secs(121);
        assert_eq!(failures.failed(later), Report::First);
        assert_eq!(failures.retry_delay(), Duration::from_millis(800));
    }
}
