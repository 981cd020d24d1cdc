//! The rules every statement a plugin sends must pass: pure decisions,
//! the same for every grant, consulted by the connection's authorizer.

use rusqlite::hooks::{AuthAction, TransactionOperation};

/// PRAGMAs a plugin may run: each reads the shape of one table or index of
/// the granted database, named by its argument, and changes nothing. Every
/// other PRAGMA either names a file (`database_list`), changes a setting of
/// the shared connection (`journal_mode`, `foreign_keys`, `query_only` ...),
/// or changes the file (`user_version`, `writable_schema` ...).
const SCHEMA_PRAGMAS: &[&str] = &["table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"];

/// SQL functions no plugin may call: they reach outside the database,
/// change how the connection parses what other instances send, or (the
/// JSON merge patch) take time growing with the square of their input in one
/// step, where no deadline reaches.
const DENIED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer", "json_patch", "jsonb_patch"];

/// Why [`authorize`] refused a statement, said so a plugin author knows what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the statement tried, e.g. "ATTACH".
    pub what: String,
    pub why: &'static str,
}

/// Decides whether a plugin's statement may do `action` on `database`.
/// Pure: the same rules for every grant; read-only grants are held to
/// statements that do not write by the caller.
pub fn authorize(action: &AuthAction<'_>, database: Option<&str>) -> Result<(), Refusal> {
    let refuse = |what: String, why: &'static str| Err(Refusal { what, why });
    const OWN_DATABASE: &str = "a grant reaches only its own database file";
    const SHARED: &str = "the connection is shared with other instances; the host opens and ends each call's transaction";
    const TEMPORARY: &str = "temporary objects would live on the connection other instances share";
    let temporary = matches!(
        action,
        AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. }
            | AuthAction::DropTempIndex { .. }
            | AuthAction::DropTempTable { .. }
            | AuthAction::DropTempTrigger { .. }
            | AuthAction::DropTempView { .. }
    );
    if temporary {
        return refuse("a TEMP object".into(), TEMPORARY);
    }
    match database {
        None | Some("main") => {}
        Some("temp") => return refuse("a TEMP object".into(), TEMPORARY),
        Some(other) => return refuse(format!("database `{other}`"), OWN_DATABASE),
    }
    match action {
        AuthAction::Attach { .. } => refuse("ATTACH".into(), OWN_DATABASE),
        AuthAction::Detach { .. } => refuse("DETACH".into(), OWN_DATABASE),
        AuthAction::Pragma { pragma_name, pragma_value } => {
            let name = pragma_name.to_ascii_lowercase();
            if SCHEMA_PRAGMAS.contains(&name.as_str()) {
                Ok(())
            } else if pragma_value.is_some() {
                refuse(format!("PRAGMA {name}(…)"), "only the PRAGMAs that read a table's shape are allowed")
            } else {
                refuse(format!("PRAGMA {name}"), "only the PRAGMAs that read a table's shape are allowed")
            }
        }
        AuthAction::Transaction { operation } => {
            // SQLite reports COMMIT (and END) as an operation rusqlite does not name.
            let what = match operation {
                TransactionOperation::Begin => "BEGIN",
                TransactionOperation::Rollback => "ROLLBACK",
                TransactionOperation::Release => "RELEASE",
                _ => "COMMIT",
            };
            refuse(what.into(), SHARED)
        }
        AuthAction::Savepoint { operation, .. } => {
            let what = match operation {
                TransactionOperation::Release => "RELEASE (of a SAVEPOINT)",
                TransactionOperation::Rollback => "ROLLBACK TO (a SAVEPOINT)",
                _ => "SAVEPOINT",
            };
            refuse(what.into(), SHARED)
        }
        AuthAction::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            if DENIED_FUNCTIONS.contains(&name.as_str()) {
                refuse(format!("{name}()"), "it reaches outside the database or runs unbounded in one step")
            } else {
                Ok(())
            }
        }
        AuthAction::Unknown { code, .. } => refuse(format!("SQLite action {code}"), "the host allows only what it knows"),
        _ => Ok(()),
    }
}

/// Refuses VACUUM, which SQLite's authorizer does not report: `VACUUM INTO`
/// writes a copy of the database to any path, and a plain VACUUM rewrites
/// the user's whole file. Pure.
pub fn refuse_vacuum(sql: &str) -> Result<(), Refusal> {
    let mut rest = sql.trim_start();
    // Skip leading comments and empty statements, where a VACUUM could hide
    // from a plain prefix test.
    loop {
        if let Some(after) = rest.strip_prefix(';') {
            rest = after.trim_start();
        } else if let Some(line) = rest.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else {
            break;
        }
    }
    let keyword: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if keyword.eq_ignore_ascii_case("vacuum") {
        return Err(Refusal { what: "VACUUM".into(), why: "it copies or rewrites the whole database file" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_settings_are_refused() {
        assert!(authorize(&AuthAction::Attach { filename: "/x.sqlite" }, None).is_err());
        assert!(authorize(&AuthAction::Detach { database_name: "s" }, None).is_err());
        assert!(authorize(&AuthAction::Pragma { pragma_name: "database_list", pragma_value: None }, None).is_err());
        assert!(authorize(&AuthAction::Pragma { pragma_name: "journal_mode", pragma_value: Some("delete") }, None).is_err());
        assert!(authorize(&AuthAction::Function { function_name: "LOAD_EXTENSION" }, None).is_err());
        assert!(authorize(&AuthAction::Read { table_name: "t", column_name: "c" }, Some("temp")).is_err());
    }

    #[test]
    fn vacuum_is_refused_even_behind_comments() {
        assert!(refuse_vacuum("VACUUM INTO '/tmp/copy.sqlite'").is_err());
        assert!(refuse_vacuum("  -- tidy up\n /* now */ vacuum").is_err());
        assert!(refuse_vacuum(" ; ;VACUUM INTO '/tmp/x'").is_err());
        assert!(refuse_vacuum("SELECT 'vacuum'").is_ok());
    }

    #[test]
    fn transactions_are_the_hosts() {
        for operation in [TransactionOperation::Begin, TransactionOperation::Release, TransactionOperation::Rollback] {
            assert!(authorize(&AuthAction::Transaction { operation }, None).is_err());
            assert!(authorize(&AuthAction::Savepoint { operation, savepoint_name: "s" }, None).is_err());
        }
    }

    #[test]
    fn ordinary_statements_and_schema_reads_pass() {
        assert!(authorize(&AuthAction::Select, None).is_ok());
        assert!(authorize(&AuthAction::Read { table_name: "t", column_name: "c" }, Some("main")).is_ok());
        assert!(authorize(&AuthAction::Insert { table_name: "t" }, Some("main")).is_ok());
        assert!(authorize(&AuthAction::Pragma { pragma_name: "table_info", pragma_value: Some("t") }, None).is_ok());
        assert!(authorize(&AuthAction::Function { function_name: "lower" }, None).is_ok());
        assert!(authorize(&AuthAction::Recursive, None).is_ok());
        assert!(authorize(&AuthAction::CreateTempTable { table_name: "x" }, Some("temp")).is_err());
    }
}
