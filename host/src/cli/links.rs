//! `synchost links`: the pairs of records a pipeline keeps in sync, and an
//! admin's hand on them (unlink a pair, link two records that are one).

use std::path::Path;

use super::admin::{open_engine, open_state_only, run_error, state_error, writer_lease};
use super::CommandError;
use crate::cli::output::say;

/// `synchost links list PIPELINE`
pub fn list(config: &Path, pipeline: &str, limit: u32) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    for link in state.links(pipeline, limit).map_err(state_error)? {
        say!("left {:<12} <-> right {:<12} {:<14} {}", link.left_id, link.right_id, link.state, link.updated_at);
    }
    Ok(())
}

/// `synchost links unlink PIPELINE ID`
pub fn unlink(config: &Path, pipeline: &str, id: &str) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    match state.unlink(pipeline, id).map_err(state_error)? {
        Some((left, right, true)) => {
            say!("unlinked left {left} and right {right}; the kept record is made anew on the other side by the next sync");
            Ok(())
        }
        Some((left, right, false)) => {
            say!("unlinked left {left} and right {right}; the next change of either is synced as a new record");
            Ok(())
        }
        None => Err(CommandError::Reported(format!("pipeline {pipeline} has no link with record {id}"))),
    }
}

/// `synchost links link PIPELINE LEFT_ID RIGHT_ID`
pub async fn link(config: &Path, pipeline: &str, left_id: &str, right_id: &str) -> Result<(), CommandError> {
    let engine = open_engine(config)?;
    let _lease = writer_lease(&engine, "links link", "stop the running host, link, and start it again")?;
    engine.link_by_hand(pipeline, left_id, right_id).await.map_err(run_error)?;
    say!("linked left {left_id} and right {right_id}; the next sync compares them and settles each difference by the pipeline's policy");
    Ok(())
}
