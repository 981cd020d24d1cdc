//! Host-side bindings generated from `schemas/wit`: the current plugin API
//! ([`v0_4`]) and each frozen earlier one ([`v0_3`], from
//! `schemas/wit/since_v0.3.0`). The host services are implemented once, for
//! the current version; an earlier version's imports convert and delegate
//! (see `convert`). The engine sees none of these types: the runtime turns
//! them into the host's model (`crate::model`).
//!
//! Within a version, the mapper world reuses the connector world's shared
//! interfaces, so one `Record` type and one implementation of each host
//! service serve both.

/// Plugin API 0.4: records cross the boundary as pages that name their fields once.
pub mod v0_4 {
    /// The `connector-plugin` world.
    pub mod connector {
        wasmtime::component::bindgen!({
            world: "connector-plugin",
            path: "../schemas/wit/plugin.wit",
            imports: { default: async | trappable },
            exports: { default: async },
            additional_derives: [PartialEq],
        });
    }

    /// The `mapper-plugin` world.
    pub mod mapper {
        wasmtime::component::bindgen!({
            world: "mapper-plugin",
            path: "../schemas/wit/plugin.wit",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "synchost:plugin/types": super::connector::synchost::plugin::types,
                "synchost:plugin/log": super::connector::synchost::plugin::log,
                "synchost:plugin/context": super::connector::synchost::plugin::context,
            },
        });
    }
}

/// Plugin API 0.3, frozen: records carry their field names, mapping and
/// validation are two calls.
pub mod v0_3 {
    /// The `connector-plugin` world.
    pub mod connector {
        wasmtime::component::bindgen!({
            world: "connector-plugin",
            path: "../schemas/wit/since_v0.3.0/plugin.wit",
            imports: { default: async | trappable },
            exports: { default: async },
        });
    }

    /// The `mapper-plugin` world.
    pub mod mapper {
        wasmtime::component::bindgen!({
            world: "mapper-plugin",
            path: "../schemas/wit/since_v0.3.0/plugin.wit",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "synchost:plugin/types": super::connector::synchost::plugin::types,
                "synchost:plugin/log": super::connector::synchost::plugin::log,
                "synchost:plugin/context": super::connector::synchost::plugin::context,
            },
        });
    }
}

/// The host services' side of the current API: what plugins send and get back.
pub use v0_4::connector::synchost::plugin::http as wit_http;
pub use v0_4::connector::synchost::plugin::sql as wit_sql;
pub use v0_4::connector::synchost::plugin::types::{Problem, Value};
