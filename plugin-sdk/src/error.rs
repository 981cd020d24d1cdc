//! The error a plugin returns, and how it becomes a [`Problem`].

use crate::Problem;

/// An error a plugin returns from a call. The host shows it to the admin as a
/// problem with a code, a message, a hint (the fix) and whether a retry may help.
///
/// ```
/// use synchost_plugin_sdk::Error;
///
/// let error = Error::new("unknown-entity", "entity `orders` is not configured")
///     .with_hint("add it under [endpoints.NAME.settings.entities]");
/// assert_eq!(error.problem().code, "unknown-entity");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Error(Problem);

impl Error {
    /// A permanent error: retrying without a change will fail again.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error(Problem {
            code: code.into(),
            message: message.into(),
            hint: None,
            retryable: false,
        })
    }

    /// A transient error: the host retries the work later.
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(code, message);
        error.0.retryable = true;
        error
    }

    /// Settings that cannot work; the hint should say which setting to change.
    pub fn settings(message: impl Into<String>) -> Self {
        Self::new("bad-settings", message)
    }

    /// Adds the fix a person should apply.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// Says what was being done when it happened: `while` goes before the message.
    pub fn context(mut self, while_doing: impl std::fmt::Display) -> Self {
        self.0.message = format!("{while_doing}: {}", self.0.message);
        self
    }

    /// The problem as the host will see it.
    pub fn problem(&self) -> &Problem {
        &self.0
    }

    /// The problem as the host will see it.
    pub fn into_problem(self) -> Problem {
        self.0
    }
}

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Error(problem)
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        error.0
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::new("bad-json", error.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)?;
        if let Some(hint) = &self.0.hint {
            write!(f, " (fix: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
