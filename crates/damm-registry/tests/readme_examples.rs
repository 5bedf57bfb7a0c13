//! Every adapter README's ```toml settings examples, loaded the way `damm serve --config`
//! loads the adapters' settings (`damm_orchestrator::providers::build`: section `[NAME]`, through
//! `damm_registry::get_adapter` and the adapter's own loader), so a wrong section name or an unknown key fails here. Blocks that are not
//! adapter settings (static-host's inventory) are left to that adapter's tests.
//!
//! Adapters not compiled in are named and skipped: run with
//! `cargo nextest run -p damm-registry --all-features --test readme_examples` to check all.

use std::path::Path;

/// The ```toml blocks of a Markdown text.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn readme_settings_examples_load_through_the_real_loader() {
    let adapters = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../adapters");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // `*_file` keys point at a real file, so the loader goes on to check the other keys.
    let dir = std::env::temp_dir().join(format!("damm-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "not-a-real-credential\n").unwrap();
    let mut checked = 0;
    for adapter in damm_registry::known() {
        let readme = adapters.join(adapter).join("README.md");
        let text = std::fs::read_to_string(&readme).unwrap();
        for block in toml_blocks(&text) {
            let mut doc: toml::Table = toml::from_str(&block).unwrap_or_else(|e| {
                panic!("{}: a toml block does not parse: {e}", readme.display())
            });
            assert!(
                !doc.contains_key("providers"),
                "{}: settings live in `[{adapter}]`, not `[providers.{adapter}]`",
                readme.display()
            );
            if !doc
                .keys()
                .all(|k| damm_registry::known().contains(&k.as_str()))
            {
                continue;
            }
            for table in doc.iter_mut().filter_map(|(_, v)| v.as_table_mut()) {
                for (key, value) in table.iter_mut() {
                    if key.ends_with("_file") {
                        *value = toml::Value::String(secret.display().to_string());
                    }
                }
            }
            let text = toml::to_string(&doc).unwrap();
            for section in doc.keys() {
                if !damm_registry::compiled().iter().any(|d| d.name == section) {
                    eprintln!(
                        "note: adapter `{section}` is not compiled in: its example is not checked"
                    );
                    continue;
                }
                let config = damm_provider::config::AdapterConfig::from_toml(
                    damm_provider::FleetId::new("readme").unwrap(),
                    section.as_str(),
                    &readme,
                    text.as_str(),
                    &[section.as_str()],
                )
                .without_env();
                // Missing credentials or files are fine; the keys themselves must be known.
                if let Err(err) = runtime.block_on(damm_registry::get_adapter(section, &config)) {
                    let err = err.to_string();
                    assert!(
                        !err.contains("unknown field") && !err.contains("invalid type"),
                        "{}: [{section}] example: {err}",
                        readme.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no README settings example was checked");
}
