//! What an admin sees and does, shared by the command line and the admin
//! HTTP API, so both show the same thing and carry decisions out one way.
//!
//! - [`status`]: the host's status as one view.

pub mod status;
