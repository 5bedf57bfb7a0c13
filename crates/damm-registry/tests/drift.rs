//! The three hand-kept lists must agree: the adapters/ folders, the registry's cargo
//! features and `adapters!` lines, and the features the `damm` binary forwards.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

fn features(manifest: &Path) -> toml::Table {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc.get("features")
        .and_then(|f| f.as_table())
        .cloned()
        .unwrap_or_default()
}

fn folders() -> BTreeSet<String> {
    std::fs::read_dir(root().join("adapters"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn registry_lines_match_the_adapter_folders() {
    let known: BTreeSet<String> = damm_registry::known()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        known,
        folders(),
        "registry lines (left) vs adapters/ folders (right)"
    );
}

/// Every adapter folder `name` has a feature in `manifest` that enables `wanted(name)`;
/// returns the manifest's features.
fn assert_feature_per_adapter(manifest: &str, wanted: impl Fn(&str) -> String) -> toml::Table {
    let features = features(&root().join(manifest));
    for name in folders() {
        let enables = features
            .get(&name)
            .unwrap_or_else(|| panic!("{manifest} has no feature `{name}`"))
            .as_array()
            .unwrap();
        let wanted = wanted(&name);
        assert!(
            enables.iter().any(|v| v.as_str() == Some(&wanted)),
            "{manifest}: feature `{name}` must enable `{wanted}`"
        );
    }
    features
}

#[test]
fn registry_features_match_the_adapter_folders() {
    let registry = assert_feature_per_adapter("crates/damm-registry/Cargo.toml", |name| {
        format!("dep:damm-adapter-{name}")
    });
    let extra: Vec<_> = registry
        .keys()
        .filter(|k| *k != "default" && !folders().contains(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "registry features without an adapter: {extra:?}"
    );
}

#[test]
fn the_binary_forwards_every_adapter_feature() {
    assert_feature_per_adapter("crates/damm-orchestrator/Cargo.toml", |name| {
        format!("damm-registry/{name}")
    });
}

#[test]
fn every_adapter_has_the_standard_file_set() {
    for name in folders() {
        let dir = root().join("adapters").join(&name);
        for file in [
            "src/lib.rs",
            "src/config.rs",
            "src/backend.rs",
            "src/core.rs",
            "README.md",
        ] {
            assert!(dir.join(file).exists(), "adapters/{name} lacks {file}");
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("name = \"damm-adapter-{name}\"")),
            "adapters/{name} must be the crate damm-adapter-{name}"
        );
        let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        assert!(
            workspace.contains(&format!(
                "damm-adapter-{name} = {{ path = \"adapters/{name}\" }}"
            )),
            "the workspace lacks the dependency line for damm-adapter-{name}"
        );
    }
}
