//! `synchost package new NAME --kind mapper|connector [--http|--sql]`: a
//! vendor's first plugin crate, complete: it builds for wasm32-wasip2, its
//! unit tests run natively with the SDK's harness, and `synchost package
//! pack` packs it. The templates are in `host/templates/`.

use std::path::{Path, PathBuf};

use super::output::say;
use super::CommandError;

/// The kind of plugin to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A mapper: rules applied to records between two systems.
    Mapper,
    /// A connector to one system.
    Connector,
}

/// What a connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaches {
    /// A table in a SQLite database the admin grants.
    Sql,
    /// A JSON API over HTTP (the `tickets-service` of the docs).
    Http,
}

/// A crate to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Mapper,
    Connector(Reaches),
}

impl Template {
    /// The template `--kind` and `--http` / `--sql` name; connectors reach SQL unless told.
    pub fn of(kind: Kind, reaches: Option<Reaches>) -> Result<Self, CommandError> {
        match (kind, reaches) {
            (Kind::Mapper, None) => Ok(Template::Mapper),
            (Kind::Mapper, Some(_)) => Err(CommandError::Reported(
                "--http and --sql choose what a connector talks to; a mapper talks to no system\n  = fix: leave them out, or use --kind connector".into(),
            )),
            (Kind::Connector, reaches) => Ok(Template::Connector(reaches.unwrap_or(Reaches::Sql))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Template::Mapper => "mapper",
            Template::Connector(Reaches::Sql) => "connector to a SQLite table",
            Template::Connector(Reaches::Http) => "connector to a JSON API over HTTP",
        }
    }
}

/// Where the SDK is: given, or the one this binary was built beside.
fn sdk_path(sdk: Option<&Path>) -> Result<PathBuf, CommandError> {
    let path = match sdk {
        Some(path) => path.to_owned(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"),
    };
    std::fs::canonicalize(&path).map_err(|_| {
        CommandError::Reported(format!(
            "the plugin SDK is not at {}\n  = fix: pass --sdk PATH/TO/synchost/plugin-sdk",
            path.display()
        ))
    })
}

fn cargo_toml(name: &str, template: Template, sdk: &Path) -> String {
    // The HTTP connector builds JSON bodies; the others use JSON in their tests only.
    let json = match template {
        Template::Connector(Reaches::Http) => "serde_json = \"1\"\n",
        _ => "\n[dev-dependencies]\nserde_json = \"1\"\n",
    };
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]   # cdylib: the plugin; rlib: native unit tests

[dependencies]
synchost-plugin-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
{json}
# A crate of its own, not a member of an enclosing workspace.
[workspace]
"#,
        sdk = sdk.display()
    )
}

fn manifest(name: &str, template: Template, publisher: &str) -> String {
    let (kind, description, capabilities) = match template {
        Template::Mapper => ("mapper", "Upper-cases the fields its settings name", ""),
        Template::Connector(Reaches::Sql) => ("connector", "Notes in a SQLite table", "sql = [\"sqlite\"]\n"),
        // The walk-through's service; a real one is `https://tickets.example.com` or `https://*.example.com`.
        Template::Connector(Reaches::Http) => ("connector", "Tickets of a tracker's JSON API", "http = [\"http://127.0.0.1:8765\"]\n"),
    };
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
kind = "{kind}"
api = "^{api}"
description = "{description}"
publisher = "{publisher}"
component = "plugin.wasm"

# The most an endpoint may grant an instance of this package. An admin's
# grants beyond these are refused; an upgrade that asks for more waits for
# the admin's `synchost package accept`.
[capabilities]
{capabilities}"#,
        api = crate::runtime::metadata::HOST_API_VERSION.rsplit_once('.').map_or("0.4", |(minor, _)| minor),
    )
}

const MAPPER: &str = include_str!("../../templates/mapper.rs");
const SQL_CONNECTOR: &str = include_str!("../../templates/sql_connector.rs");
const HTTP_CONNECTOR: &str = include_str!("../../templates/http_connector.rs");

/// `synchost package new NAME --kind mapper|connector [--dir DIR] [--publisher NAME] [--sdk PATH]`
pub fn new(name: &str, template: Template, dir: Option<&Path>, publisher: &str, sdk: Option<&Path>) -> Result<(), CommandError> {
    crate::packages::manifest::PackageName::try_from(name.to_owned()).map_err(CommandError::Reported)?;
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CommandError::Reported(format!("{} exists and is not empty\n  = fix: choose another --dir, or another name", dir.display())));
    }
    let sdk = sdk_path(sdk)?;
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CommandError::Reported(format!("cannot create {} ({e})", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| CommandError::Reported(format!("cannot write {} ({e})", path.display())))
    };
    write("Cargo.toml", &cargo_toml(name, template, &sdk))?;
    write(crate::packages::MANIFEST_FILE, &manifest(name, template, publisher))?;
    write("src/lib.rs", match template {
        Template::Mapper => MAPPER,
        Template::Connector(Reaches::Sql) => SQL_CONNECTOR,
        Template::Connector(Reaches::Http) => HTTP_CONNECTOR,
    })?;
    write(".gitignore", "/target\n*.synchost-package\n*.secret-key\n")?;
    say!("created {} ({}), using the SDK at {}", dir.display(), template.name(), sdk.display());
    say!("next:");
    say!("  cd {}", dir.display());
    say!("  cargo test                              # unit tests, natively");
    say!("  synchost package pack                   # builds for wasm32-wasip2, writes {name}-0.1.0.synchost-package");
    say!("  synchost package keygen --publisher {publisher}");
    say!("  synchost package sign {name}-0.1.0.synchost-package --key {publisher}.secret-key");
    Ok(())
}
