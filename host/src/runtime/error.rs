//! Why a call into a plugin failed: said so that an admin knows what to do.

use std::time::Duration;

use crate::model::Problem;

/// Which call failed.
#[derive(Debug, Clone)]
pub struct CallSite {
    pub plugin: String,
    pub instance: String,
    pub function: &'static str,
}

impl std::fmt::Display for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` (plugin `{}`) in `{}`", self.instance, self.plugin, self.function)
    }
}

/// A failed call into a plugin. Only this call failed: the host and every
/// other plugin go on.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin ran and reported a problem.
    #[error("{site}: {}: {}", problem.code, problem.message)]
    Problem { site: CallSite, problem: Problem },
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access ...).
    #[error("{site} crashed: {message}")]
    Trap { site: CallSite, message: String },
    /// The plugin ran longer than its wall-clock limit and was stopped.
    #[error("{site} ran longer than its {} limit and was stopped", humantime::format_duration(*limit))]
    Timeout { site: CallSite, limit: Duration },
    /// The plugin tried to use more memory than its limit and was stopped.
    #[error("{site} tried to grow its memory to {attempted} bytes, over its limit of {limit} bytes, and was stopped")]
    MemoryLimit { site: CallSite, attempted: usize, limit: u64 },
    /// The plugin returned more data than its output limit.
    #[error("{site} returned about {size} bytes, more than its max_output limit of {limit} bytes")]
    OutputTooLarge { site: CallSite, size: u64, limit: u64 },
    /// The plugin went over one of its budgets (HTTP requests, SQL rows,
    /// a folder's quota ...) and the call was failed.
    #[error("{site} went over its {exceeded}")]
    OverBudget { site: CallSite, exceeded: crate::services::budget::BudgetExceeded },
    /// The host could not start the plugin for this call.
    #[error("{site} could not be started: {message}")]
    Instantiate { site: CallSite, message: String },
}

impl CallError {
    /// The kind of failure, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Problem { .. } => "problem",
            CallError::Trap { .. } => "trap",
            CallError::Timeout { .. } => "timeout",
            CallError::MemoryLimit { .. } => "memory",
            CallError::OutputTooLarge { .. } => "output-too-large",
            CallError::OverBudget { .. } => "over-budget",
            CallError::Instantiate { .. } => "instantiate",
        }
    }

    /// The fix to apply, for an admin.
    pub fn hint(&self) -> Option<String> {
        match self {
            CallError::Problem { problem, .. } => problem.hint.clone(),
            CallError::Trap { site, .. } => Some(format!(
                "this is a bug in plugin `{}`: report it to its vendor with the message above",
                site.plugin
            )),
            CallError::Timeout { site, .. } => Some(format!(
                "if the work is legitimately slow, raise limits.timeout of `{}`; otherwise report the hang to the plugin's vendor",
                site.instance
            )),
            CallError::MemoryLimit { site, .. } => Some(format!(
                "raise limits.memory of `{}` if the plugin needs more, or use smaller batches",
                site.instance
            )),
            CallError::OutputTooLarge { site, .. } => Some(format!(
                "use smaller batches (a lower --limit), or raise limits.max_output of `{}`",
                site.instance
            )),
            CallError::OverBudget { exceeded, .. } => Some(exceeded.fix()),
            CallError::Instantiate { .. } => Some("too many plugin calls at once, or a broken plugin; the work is retried".into()),
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Problem { problem, .. } => problem.retryable,
            CallError::Timeout { .. } | CallError::Instantiate { .. } => true,
            CallError::Trap { .. }
            | CallError::MemoryLimit { .. }
            | CallError::OutputTooLarge { .. }
            | CallError::OverBudget { .. } => false,
        }
    }

    /// The problem the plugin reported, if it reported one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            CallError::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }
}
