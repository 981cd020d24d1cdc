//! Resolves an entity's settings against the table's real columns.

use synchost_plugin_sdk::host::{Dialect, Sql};
use synchost_plugin_sdk::{EntityDef, Error, FieldDef, FieldType, Value};

use crate::settings::{EntitySettings, SoftDelete, StampFormat, TypeName};

/// A column with its type.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: FieldType,
}

/// One entity as a table, checked against the database.
#[derive(Debug)]
pub struct Table<'s> {
    pub entity: String,
    pub table: String,
    pub key: Column,
    pub updated_at: Option<(Column, StampFormat)>,
    pub soft_delete: Option<&'s SoftDelete>,
    pub origin: Option<String>,
    /// How far behind its cursor a change-feed read looks again (see `feed`).
    pub overlap_ms: u64,
    /// The synced fields: every column but key, updated_at, status and origin.
    pub fields: Vec<FieldDef>,
    pub writable: bool,
}

impl Table<'_> {
    pub fn definition(&self) -> EntityDef {
        EntityDef {
            name: self.entity.clone(),
            key: self.key.name.clone(),
            fields: self.fields.clone(),
            change_feed: self.updated_at.is_some(),
            soft_delete: self.soft_delete.is_some(),
            writable: self.writable,
            finds_by_origin: self.writable && self.origin.is_some(),
        }
    }

    /// The columns a `SELECT` reads, in the order `record_from_row` expects:
    /// key, updated_at (if any), status (if any), then the fields.
    pub fn select_columns(&self) -> Vec<&str> {
        let mut columns = vec![self.key.name.as_str()];
        columns.extend(self.updated_at.as_ref().map(|(c, _)| c.name.as_str()));
        columns.extend(self.soft_delete.map(|s| s.column.as_str()));
        columns.extend(self.fields.iter().map(|f| f.name.as_str()));
        columns
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The table's columns as the database declares them.
struct DeclaredColumn {
    name: String,
    declared_type: String,
    not_null: bool,
}

fn introspect(sql: &Sql, dialect: Dialect, table: &str) -> Result<Vec<DeclaredColumn>, Error> {
    let query = match dialect {
        Dialect::Sqlite => r#"SELECT name, type, "notnull" FROM pragma_table_info(?1) ORDER BY cid"#,
        Dialect::Postgres => {
            "SELECT column_name, data_type, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END \
             FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position"
        }
    };
    let rows = sql.query(query, &[Value::Text(table.to_owned())])?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Value::Text(name), declared, not_null] => Some(DeclaredColumn {
                name: name.clone(),
                declared_type: declared.as_str().unwrap_or("").to_owned(),
                not_null: not_null.as_integer() == Some(1),
            }),
            _ => None,
        })
        .collect())
}

/// The field type for a column's declared SQL type (SQLite affinity rules, then
/// the common names of other databases).
pub fn type_from_declared(declared: &str) -> FieldType {
    let t = declared.to_ascii_uppercase();
    if t.contains("BOOL") {
        FieldType::Boolean
    } else if t.contains("INT") {
        FieldType::Integer
    } else if t.contains("DEC") || t.contains("NUMERIC") || t.contains("MONEY") {
        FieldType::Decimal
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        FieldType::Float
    } else if t.contains("TIMESTAMP") || t.contains("DATETIME") {
        FieldType::Timestamp
    } else if t.contains("DATE") {
        FieldType::Date
    } else if t.contains("BLOB") || t.contains("BYTEA") {
        FieldType::Bytes
    } else if t.contains("JSON") {
        FieldType::Json
    } else {
        FieldType::Text
    }
}

fn field_type(name: TypeName) -> FieldType {
    match name {
        TypeName::Boolean => FieldType::Boolean,
        TypeName::Integer => FieldType::Integer,
        TypeName::Float => FieldType::Float,
        TypeName::Decimal => FieldType::Decimal,
        TypeName::Text => FieldType::Text,
        TypeName::Date => FieldType::Date,
        TypeName::Timestamp => FieldType::Timestamp,
        TypeName::Bytes => FieldType::Bytes,
        TypeName::Json => FieldType::Json,
    }
}

/// Identifiers are quoted, never bound; refuse ones that could break out of quotes.
pub fn check_identifier(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('"') || name.contains('\0') {
        return Err(Error::settings(format!("{what} `{name}` is not a usable SQL identifier"))
            .with_hint("use a plain table or column name without double quotes"));
    }
    Ok(())
}

/// Checks an entity's settings against its table and returns the resolved table.
pub fn resolve<'s>(
    sql: &Sql,
    dialect: Dialect,
    entity: &str,
    settings: &'s EntitySettings,
) -> Result<Table<'s>, Error> {
    let table = settings.table.clone().unwrap_or_else(|| entity.to_owned());
    check_identifier("table", &table)?;
    let declared = introspect(sql, dialect, &table)?;
    if declared.is_empty() {
        return Err(Error::new(
            "table-not-found",
            format!("entity `{entity}`: table `{table}` does not exist on connection `{}`", sql.name()),
        )
        .with_hint("create the table, or set `table` in the entity's settings to an existing one"));
    }
    let column_names = || declared.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let find = |what: &str, name: &str| -> Result<&DeclaredColumn, Error> {
        check_identifier(what, name)?;
        declared.iter().find(|c| c.name == name).ok_or_else(|| {
            Error::settings(format!("entity `{entity}`: {what} column `{name}` is not in table `{table}`"))
                .with_hint(format!("the table's columns are: {}", column_names()))
        })
    };

    let key_column = find("key", &settings.key)?;
    let key = Column { name: key_column.name.clone(), kind: type_from_declared(&key_column.declared_type) };
    let updated_at = match &settings.updated_at {
        Some(name) => {
            let column = find("updated_at", name)?;
            let column = Column { name: column.name.clone(), kind: type_from_declared(&column.declared_type) };
            Some((column, settings.updated_at_format))
        }
        None => None,
    };
    if let Some(soft) = &settings.soft_delete {
        find("soft_delete", &soft.column)?;
    }
    if let Some(origin) = &settings.origin {
        find("origin", origin)?;
    }

    let system: Vec<&str> = [Some(settings.key.as_str()), settings.updated_at.as_deref()]
        .into_iter()
        .chain([settings.soft_delete.as_ref().map(|s| s.column.as_str()), settings.origin.as_deref()])
        .flatten()
        .collect();
    let fields = match &settings.fields {
        Some(configured) => configured
            .iter()
            .map(|(name, type_name)| {
                let column = find("field", name)?;
                if system.contains(&name.as_str()) {
                    return Err(Error::settings(format!(
                        "entity `{entity}`: `{name}` is managed by the connector (key, updated_at, status or origin) and cannot be a synced field"
                    ))
                    .with_hint(format!("remove `{name}` from the entity's `fields`")));
                }
                Ok(FieldDef {
                    name: name.clone(),
                    type_: field_type(*type_name),
                    nullable: !column.not_null,
                    read_only: false,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
        None => declared
            .iter()
            .filter(|c| !system.contains(&c.name.as_str()) && !settings.exclude.contains(&c.name))
            .map(|c| {
                check_identifier("field", &c.name)?;
                Ok(FieldDef {
                    name: c.name.clone(),
                    type_: type_from_declared(&c.declared_type),
                    nullable: !c.not_null,
                    read_only: false,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
    };

    Ok(Table {
        entity: entity.to_owned(),
        table,
        key,
        updated_at,
        soft_delete: settings.soft_delete.as_ref(),
        origin: settings.origin.clone(),
        overlap_ms: settings.overlap_ms,
        fields,
        writable: settings.writable,
    })
}
