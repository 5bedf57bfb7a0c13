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

#[test]
fn registry_features_match_the_adapter_folders() {
    let registry = features(&root().join("crates/damm-registry/Cargo.toml"));
    for name in folders() {
        let enables = registry
            .get(&name)
            .unwrap_or_else(|| panic!("damm-registry has no feature `{name}`"))
            .as_array()
            .unwrap();
        let wanted = format!("dep:damm-adapter-{name}");
        assert!(
            enables.iter().any(|v| v.as_str() == Some(&wanted)),
            "feature `{name}` must enable `{wanted}`"
        );
    }
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
    let binary = features(&root().join("crates/damm-orchestrator/Cargo.toml"));
    for name in folders() {
        let enables = binary
            .get(&name)
            .unwrap_or_else(|| panic!("damm-orchestrator has no feature `{name}`"))
            .as_array()
            .unwrap();
        let wanted = format!("damm-registry/{name}");
        assert!(
            enables.iter().any(|v| v.as_str() == Some(&wanted)),
            "damm-orchestrator feature `{name}` must enable `{wanted}`"
        );
    }
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
