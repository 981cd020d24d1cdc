//! The plugins built into the host binary (compiled by `build.rs`).

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
