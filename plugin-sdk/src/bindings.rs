//! Bindings generated from `schemas/wit` for both plugin worlds.
//!
//! The mapper world reuses the connector world's shared interfaces, so a
//! [`Record`](crate::Record) is one Rust type whichever kind of plugin uses it.

#![allow(missing_docs, clippy::all)]

/// Bindings of the `connector-plugin` world.
pub mod connector {
    wit_bindgen::generate!({
        world: "connector-plugin",
        path: "../schemas/wit",
        pub_export_macro: true,
        export_macro_name: "__export_connector_world",
        default_bindings_module: "::synchost_plugin_sdk::bindings::connector",
        additional_derives: [PartialEq, Clone],
        runtime_path: "::synchost_plugin_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings of the `mapper-plugin` world.
pub mod mapper {
    wit_bindgen::generate!({
        world: "mapper-plugin",
        path: "../schemas/wit",
        pub_export_macro: true,
        export_macro_name: "__export_mapper_world",
        default_bindings_module: "::synchost_plugin_sdk::bindings::mapper",
        additional_derives: [PartialEq, Clone],
        runtime_path: "::synchost_plugin_sdk::__private::wit_bindgen::rt",
        with: {
            "synchost:plugin/types@0.5.0": crate::bindings::connector::synchost::plugin::types,
            "synchost:plugin/log@0.5.0": crate::bindings::connector::synchost::plugin::log,
            "synchost:plugin/context@0.5.0": crate::bindings::connector::synchost::plugin::context,
        },
    });
}
