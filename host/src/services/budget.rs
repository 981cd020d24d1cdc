//! Budgets: how much of each host service a plugin may use.
//!
//! Per call: HTTP requests and body sizes, SQL rows, bytes, and time, folder
//! bytes (the grant's quota). A call over one of these fails, with a message
//! naming the budget and the setting that raises it. Per instance: log lines
//! and bytes per minute; what is over is dropped and counted, so a plugin
//! can neither flood the log nor be stopped by its own chatter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A budget a call went over: what, its limit, and the setting that raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// What ran out, e.g. "HTTP requests per call".
    pub budget: String,
    /// The limit, as the admin would write it.
    pub limit: String,
    /// Where to raise it, e.g. `limits.http_requests of `redmine``; empty
    /// for a budget of the host's own that no setting raises.
    pub setting: String,
}

impl BudgetExceeded {
    /// What the admin can do about it.
    pub fn fix(&self) -> String {
        if self.setting.is_empty() {
            "this budget is the host's own and no setting raises it: make the plugin do less per call".into()
        } else {
            format!("raise {} if the plugin legitimately needs more; otherwise report it to the plugin's vendor", self.setting)
        }
    }
}

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} budget of {}", self.budget, self.limit)
    }
}

/// What one call has used of the budgets counted per call.
#[derive(Debug, Default)]
pub struct CallUsage {
    pub http_requests: u32,
    pub sql_rows: u64,
    /// The first budget the call went over; the call fails with it.
    pub exceeded: Option<BudgetExceeded>,
}

impl CallUsage {
    /// Notes a budget the call went over; the first one is what the call reports.
    pub fn exceed(&mut self, exceeded: BudgetExceeded) {
        self.exceeded.get_or_insert(exceeded);
    }
}

/// Whether a log line may be written, and how much was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum LogVerdict {
    Write,
    Drop,
}

/// The log lines and bytes an instance may write per minute. Shared by
/// every call into the instance.
#[derive(Debug)]
pub struct LogBudget {
    lines_per_minute: u32,
    bytes_per_minute: u64,
    window: Mutex<LogWindow>,
}

#[derive(Debug)]
struct LogWindow {
    started: Instant,
    lines: u32,
    bytes: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// Log lines and bytes dropped, in all, since the instance was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub lines: u64,
    pub bytes: u64,
}

const LOG_WINDOW: Duration = Duration::from_secs(60);

impl LogBudget {
    pub fn new(lines_per_minute: u32, bytes_per_minute: u64) -> Self {
        let window = LogWindow { started: Instant::now(), lines: 0, bytes: 0, dropped_lines: 0, dropped_bytes: 0 };
        LogBudget { lines_per_minute, bytes_per_minute, window: Mutex::new(window) }
    }

    /// Counts a line of `bytes` at `now`: written if the minute's budget has room.
    pub fn admit(&self, bytes: usize, now: Instant) -> LogVerdict {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(window.started) >= LOG_WINDOW {
            window.started = now;
            window.lines = 0;
            window.bytes = 0;
        }
        let bytes = bytes as u64;
        if window.lines < self.lines_per_minute && window.bytes + bytes <= self.bytes_per_minute {
            window.lines += 1;
            window.bytes += bytes;
            LogVerdict::Write
        } else {
            window.dropped_lines += 1;
            window.dropped_bytes += bytes;
            LogVerdict::Drop
        }
    }

    /// Everything dropped so far.
    pub fn dropped(&self) -> Dropped {
        let window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Dropped { lines: window.dropped_lines, bytes: window.dropped_bytes }
    }

    pub fn lines_per_minute(&self) -> u32 {
        self.lines_per_minute
    }

    pub fn bytes_per_minute(&self) -> u64 {
        self.bytes_per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_minute_budget_are_dropped_and_counted() {
        let budget = LogBudget::new(3, 1000);
        let start = Instant::now();
        let verdicts: Vec<LogVerdict> = (0..5).map(|_| budget.admit(10, start)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == LogVerdict::Write).count(), 3);
        assert_eq!(budget.dropped(), Dropped { lines: 2, bytes: 20 });
        // A new minute has room again; the count of dropped lines stays.
        assert_eq!(budget.admit(10, start + LOG_WINDOW), LogVerdict::Write);
        assert_eq!(budget.dropped().lines, 2);
    }

    #[test]
    fn bytes_over_the_minute_budget_are_dropped() {
        let budget = LogBudget::new(100, 25);
        let start = Instant::now();
        assert_eq!(budget.admit(20, start), LogVerdict::Write);
        assert_eq!(budget.admit(20, start), LogVerdict::Drop);
        assert_eq!(budget.admit(5, start), LogVerdict::Write);
    }
}
