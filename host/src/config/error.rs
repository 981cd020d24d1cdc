//! Config errors that say what is wrong, where, and how to fix it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub location: Option<(usize, usize)>,
    /// The offending line, for the excerpt.
    pub line_text: Option<String>,
    /// Width of the underline under the offending text.
    pub width: usize,
    pub message: String,
    pub fix: Option<String>,
}

impl ConfigError {
    /// An error at a byte range of `source`.
    pub fn at(file: &Path, source: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        let (location, line_text, width) = match span {
            Some(span) => {
                let start = span.start.min(source.len());
                let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
                let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
                let line = source[..start].matches('\n').count() + 1;
                let column = source[line_start..start].chars().count() + 1;
                let width = source[start..span.end.min(line_end).max(start)].chars().count().max(1);
                // The excerpt may hold a secret (`api_key = "..."`): masked like any output.
                (Some((line, column)), Some(crate::secrets::redacted(&source[line_start..line_end])), width)
            }
            None => (None, None, 1),
        };
        ConfigError { file: file.to_owned(), location, line_text, width, message: message.into(), fix: None }
    }

    /// Adds the fix to apply.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match self.location {
            Some((line, column)) => {
                writeln!(f, "  --> {}:{line}:{column}", self.file.display())?;
                if let Some(text) = &self.line_text {
                    let gutter = line.to_string().len();
                    writeln!(f, "{:gutter$} |", "")?;
                    writeln!(f, "{line} | {text}")?;
                    writeln!(f, "{:gutter$} | {:pad$}{}", "", "", "^".repeat(self.width), pad = column - 1)?;
                }
            }
            None => writeln!(f, "  --> {}", self.file.display())?,
        }
        if let Some(fix) = &self.fix {
            writeln!(f, "  = fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every problem found in a config file, reported together.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{} in the config", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for ConfigErrors {}
