//! The plugin API versions this host runs, one module each: the current
//! one ([`v0_4`], `schemas/wit/plugin.wit`) and each frozen earlier one
//! ([`v0_3`], `schemas/wit/since_v0.3.0`). Each module holds its
//! version's generated bindings and the conversions between its types and
//! the host's model (`crate::model`), so the engine sees none of them.
//!
//! The host services are implemented once, for the current version (see
//! `services`); an earlier version's imports convert and delegate to them.

/// `From` both ways between enums whose variants have the same names and payloads.
macro_rules! same_variants {
    ($a:ident :: $ty_a:ident, $b:ident :: $ty_b:ident; tuple: $($tuple:ident),*; unit: $($unit:ident),*) => {
        impl From<$a::$ty_a> for $b::$ty_b {
            fn from(value: $a::$ty_a) -> Self {
                match value {
                    $($a::$ty_a::$tuple(inner) => $b::$ty_b::$tuple(inner),)*
                    $($a::$ty_a::$unit => $b::$ty_b::$unit,)*
                }
            }
        }
        impl From<$b::$ty_b> for $a::$ty_a {
            fn from(value: $b::$ty_b) -> Self {
                match value {
                    $($b::$ty_b::$tuple(inner) => $a::$ty_a::$tuple(inner),)*
                    $($b::$ty_b::$unit => $a::$ty_a::$unit,)*
                }
            }
        }
    };
}

/// `From` both ways between structs with the same fields, each converted with `into`.
macro_rules! same_fields {
    ($a:ident :: $ty_a:ident, $b:ident :: $ty_b:ident; $($field:ident),*) => {
        impl From<$a::$ty_a> for $b::$ty_b {
            fn from(value: $a::$ty_a) -> Self {
                $b::$ty_b { $($field: value.$field.into(),)* }
            }
        }
        impl From<$b::$ty_b> for $a::$ty_a {
            fn from(value: $b::$ty_b) -> Self {
                $a::$ty_a { $($field: value.$field.into(),)* }
            }
        }
    };
}

/// A list converted element by element (a blanket `Into` cannot cover it).
pub fn list<A: Into<B>, B>(values: Vec<A>) -> Vec<B> {
    values.into_iter().map(Into::into).collect()
}

/// The conversions every version has, between its types and the model's.
macro_rules! model_conversions {
    ($v:ident) => {
        same_variants!($v::Value, model::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
        same_variants!($v::FieldType, model::FieldType; tuple: ; unit: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json);
        same_variants!($v::ChangeKind, model::ChangeKind; tuple: ; unit: Upsert, Delete);
        same_variants!($v::Direction, model::Direction; tuple: ; unit: LeftToRight, RightToLeft);
        same_fields!($v::Problem, model::Problem; code, message, hint, retryable);
        same_fields!($v::Field, model::Field; name, value);
        same_fields!($v::Applied, model::Applied; id, version);
        same_fields!($v::EntityNeed, model::EntityNeed; entity, read, write);

        impl From<$v::Record> for model::Record {
            fn from(r: $v::Record) -> Self {
                model::Record { id: r.id, version: r.version, deleted: r.deleted, fields: list(r.fields), born: r.born }
            }
        }
        impl From<model::Record> for $v::Record {
            fn from(r: model::Record) -> Self {
                $v::Record { id: r.id, version: r.version, deleted: r.deleted, fields: list(r.fields), born: r.born }
            }
        }
        impl From<$v::FieldDef> for model::FieldDef {
            fn from(f: $v::FieldDef) -> Self {
                model::FieldDef { name: f.name, type_: f.type_.into(), nullable: f.nullable, read_only: f.read_only }
            }
        }
        impl From<$v::EntityDef> for model::EntityDef {
            fn from(e: $v::EntityDef) -> Self {
                model::EntityDef {
                    name: e.name,
                    key: e.key,
                    fields: list(e.fields),
                    change_feed: e.change_feed,
                    soft_delete: e.soft_delete,
                    writable: e.writable,
                    finds_by_origin: e.finds_by_origin,
                }
            }
        }
        impl From<$v::Violation> for model::Violation {
            fn from(v: $v::Violation) -> Self {
                model::Violation { field: v.field, message: v.message, hint: v.hint }
            }
        }
        impl From<$v::Mapped> for model::Mapped {
            fn from(m: $v::Mapped) -> Self {
                match m {
                    $v::Mapped::Ok(record) => model::Mapped::Ok(record.into()),
                    $v::Mapped::Invalid(violations) => model::Mapped::Invalid(list(violations)),
                }
            }
        }
        impl From<$v::Outcome> for model::Outcome {
            fn from(o: $v::Outcome) -> Self {
                match o {
                    $v::Outcome::Applied(applied) => model::Outcome::Applied(applied.into()),
                    $v::Outcome::Rejected(problem) => model::Outcome::Rejected(problem.into()),
                    $v::Outcome::Conflict(record) => model::Outcome::Conflict(record.into()),
                }
            }
        }
    };
}

pub mod v0_3;
pub mod v0_4;

/// The host services' side of the current API: what plugins send and get back.
pub use v0_4::connector::synchost::plugin::http as wit_http;
pub use v0_4::connector::synchost::plugin::sql as wit_sql;
pub use v0_4::connector::synchost::plugin::types::{Problem, Value};
