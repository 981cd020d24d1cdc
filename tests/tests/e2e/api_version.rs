//! The host reads a plugin's declared API version before it compiles or
//! instantiates anything, and refuses incompatible ones with a clear message.

use synchost::runtime::metadata::MetadataError;
use synchost::runtime::{LoadError, Runtime};
use synchost_tests::{guests, toml_path, Scene};

// Covers: H2
#[test]
fn an_incompatible_api_version_is_refused_before_instantiation() {
    let runtime = Runtime::new(None).unwrap();
    let bytes = std::fs::read(guests::FUTURE_API).unwrap();
    let error = match runtime.load_plugin("future-api", &bytes) {
        Ok(_) => panic!("a plugin for API 0.9.0 must be refused"),
        Err(error) => error,
    };
    // Refused while reading metadata: nothing was compiled, linked or instantiated.
    let LoadError::Metadata { plugin, source: MetadataError::Incompatible { found, accepts } } = &error else {
        panic!("expected an API version refusal, got {error:?}")
    };
    assert_eq!(plugin, "future-api");
    assert_eq!(found.to_string(), "0.9.0");
    assert_eq!(accepts.to_string(), "^0.3.0");
    let message = error.to_string();
    assert!(message.contains("it was built for plugin API 0.9.0, but this host accepts ^0.3.0"), "{message}");
    assert!(message.contains("rebuild it against synchost-plugin-sdk 0.3.0"), "{message}");
}

// Covers: H2
#[test]
fn compatible_plugins_load_and_incompatible_ones_fail_only_their_instances() {
    let scene = Scene::new();
    let catalog = scene.load(&format!(
        r#"
[plugins.future]
path = {}

[mappers.from-the-future]
plugin = "future"

[mappers.crm]
plugin = "crm-mapper"
"#,
        toml_path(std::path::Path::new(guests::FUTURE_API))
    ));
    let failure = catalog.instance("from-the-future").err().expect("refused");
    assert!(failure.message.contains("built for plugin API 0.9.0"), "{failure}");
    let crm = catalog.instance("crm").expect("a compatible plugin still loads");
    assert_eq!(crm.plugin().metadata.api_version.to_string(), "0.3.0");
}

// Covers: H2
#[test]
fn files_that_are_not_sdk_components_are_refused_with_the_reason() {
    let runtime = Runtime::new(None).unwrap();
    let refuse = |bytes: &[u8]| match runtime.load_plugin("odd", bytes) {
        Ok(_) => panic!("must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(refuse(b"not wasm at all").contains("not a valid WebAssembly file"));
    // A core module header (version 1) and an empty component (version 0x0d, layer 1).
    assert!(refuse(b"\0asm\x01\0\0\0").contains("core WebAssembly module, not a component"));
    assert!(refuse(b"\0asm\x0d\0\x01\0").contains("no `synchost:api-version` section"));
}
