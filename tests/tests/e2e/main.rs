//! End-to-end tests through the real host, the real plugins (built for
//! wasm32-wasip2 by the build scripts) and real SQLite files. One binary, so
//! the suite links once.

mod api_version;
mod approvers;
mod at_most_once;
mod cache;
mod change_times;
mod capabilities;
mod config;
mod dashboard;
mod dry_run;
mod engine;
mod escape;
mod hierarchy;
mod identity;
mod locks;
mod mapper;
mod plan_trust;
mod project_plan;
mod redmine;
mod redmine_deletes;
mod replicas;
mod sandbox;
mod sql_table;
mod timesheet_random;
