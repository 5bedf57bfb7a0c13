//! Adapter configuration: one TOML section per provider instance, overridable from
//! the environment, with errors that name the file, line and field.
//!
//! Every setting `field` of adapter `name` can be given
//! - in the section of the config file (`[providers.hetzner] token = "..."`),
//! - as the environment variable `DAMM_<NAME>_<FIELD>` (`DAMM_HETZNER_TOKEN`), which wins,
//! - or read from a file named by `DAMM_<NAME>_<FIELD>_FILE` (or `<field>_file = "path"`
//!   in the section), the way container secrets are mounted.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::{Error, ErrorKind, FleetId, Operation};

/// A configuration problem, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// Where the setting came from: `fleet.toml [providers.hetzner]`, an env var, ...
    pub origin: String,
    /// What is wrong, with line, column and field when known.
    pub message: String,
}

impl ConfigError {
    /// The error as a provider [`Error`] of kind `InvalidInput` for operation `configure`.
    pub fn into_provider_error(self, provider: &str) -> Error {
        Error::new(ErrorKind::InvalidInput, provider, Operation::Configure)
            .with_message(self.to_string())
    }
}

#[derive(Clone)]
enum Source {
    Defaults,
    Toml {
        path: PathBuf,
        text: Arc<str>,
        table: Vec<String>,
    },
}

/// The configuration one adapter instance is built from.
///
/// ```
/// use damm_provider::config::AdapterConfig;
/// use damm_provider::FleetId;
///
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings { port: u16 }
///
/// let text = "[providers.demo]\nport = \"high\"\n";
/// let cfg = AdapterConfig::from_toml(FleetId::new("f").unwrap(), "demo", "fleet.toml", text,
///     &["providers", "demo"]).without_env();
/// let err = cfg.load::<Settings>("demo").unwrap_err();
/// assert!(err.to_string().contains("line 2"), "{err}");
/// assert!(err.to_string().contains("port"), "{err}");
/// ```
#[derive(Clone)]
pub struct AdapterConfig {
    fleet: FleetId,
    instance: String,
    source: Source,
    env: Option<BTreeMap<String, String>>,
}

impl fmt::Debug for AdapterConfig {
    // The document and the environment may hold secrets: show only where they came from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterConfig")
            .field("fleet", &self.fleet)
            .field("instance", &self.instance)
            .field("origin", &self.origin())
            .finish_non_exhaustive()
    }
}

impl AdapterConfig {
    /// Defaults only (plus the environment): no config file.
    pub fn new(fleet: FleetId, instance: impl Into<String>) -> Self {
        AdapterConfig {
            fleet,
            instance: instance.into(),
            source: Source::Defaults,
            env: None,
        }
    }

    /// The settings live in `table` (a path of keys) of the TOML document `text`, read
    /// from `path`.
    pub fn from_toml(
        fleet: FleetId,
        instance: impl Into<String>,
        path: impl Into<PathBuf>,
        text: impl Into<Arc<str>>,
        table: &[&str],
    ) -> Self {
        AdapterConfig {
            fleet,
            instance: instance.into(),
            source: Source::Toml {
                path: path.into(),
                text: text.into(),
                table: table.iter().map(|s| (*s).to_owned()).collect(),
            },
            env: None,
        }
    }

    /// Uses these variables instead of the process environment (tests, embedding).
    #[must_use]
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Ignores the process environment: only the file's settings count.
    #[must_use]
    pub fn without_env(self) -> Self {
        self.with_env::<String, String>([])
    }

    /// The fleet this instance serves.
    pub fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    /// The instance id (the provider id it reports; often the adapter name).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Human description of where the settings come from.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::Defaults => "defaults".to_owned(),
            Source::Toml { path, table, .. } if table.is_empty() => path.display().to_string(),
            Source::Toml { path, table, .. } => {
                format!("{} [{}]", path.display(), table.join("."))
            }
        }
    }

    /// The directory relative paths in the settings are resolved against.
    pub fn base_dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Toml { path, .. } => path.parent(),
            Source::Defaults => None,
        }
    }

    /// Resolves `path` against [`base_dir`](Self::base_dir) when it is relative.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.base_dir() {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// Deserialises the settings of adapter `adapter` into `T`, applying environment
    /// overrides and `*_file` indirections.
    pub fn load<T: DeserializeOwned>(&self, adapter: &str) -> Result<T, ConfigError> {
        let (mut section, text) = match &self.source {
            Source::Defaults => (toml::Table::new(), None),
            Source::Toml { text, table, .. } => (self.section(text, table)?, Some(text)),
        };
        let file_keys = self.read_file_keys(&mut section)?;
        let overridden = self.apply_env(adapter, &mut section)?;
        match T::deserialize(toml::Value::Table(section)) {
            Ok(value) => Ok(value),
            Err(err) => {
                // Without overrides the section is exactly the file's: deserialise from
                // the text again to get the line and column of the culprit.
                if let (Some(text), Source::Toml { table, .. }, false) =
                    (text, &self.source, overridden || file_keys)
                    && let Err(located) = from_toml_at::<T>(text, table)
                {
                    return Err(self.error(located.to_string().trim_end()));
                }
                let via = if overridden {
                    format!(" (with DAMM_{}_* overrides)", env_name(adapter))
                } else {
                    String::new()
                };
                Err(self.error(format!("{}{via}", err.to_string().trim_end())))
            }
        }
    }

    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: self.origin(),
            message: message.into(),
        }
    }

    fn section(&self, text: &str, table: &[String]) -> Result<toml::Table, ConfigError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| self.error(e.to_string()))?;
        let mut current = doc;
        for key in table {
            current = match current.remove(key) {
                None => return Ok(toml::Table::new()),
                Some(toml::Value::Table(t)) => t,
                Some(other) => {
                    return Err(self.error(format!(
                        "`{key}` must be a table, found {}",
                        other.type_str()
                    )));
                }
            };
        }
        Ok(current)
    }

    /// Replaces every `<field>_file = "path"` by `<field> = <file contents>`.
    fn read_file_keys(&self, section: &mut toml::Table) -> Result<bool, ConfigError> {
        let keys: Vec<String> = section
            .keys()
            .filter(|k| k.ends_with("_file"))
            .cloned()
            .collect();
        for key in &keys {
            let Some(toml::Value::String(path)) = section.remove(key) else {
                return Err(self.error(format!("`{key}` must be a file path string")));
            };
            let path = self.resolve(Path::new(&path));
            let contents =
                read_secret_file(&path).map_err(|e| self.error(format!("`{key}`: {e}")))?;
            section.insert(
                key.trim_end_matches("_file").to_owned(),
                toml::Value::String(contents),
            );
        }
        Ok(!keys.is_empty())
    }

    fn apply_env(&self, adapter: &str, section: &mut toml::Table) -> Result<bool, ConfigError> {
        let prefix = format!("DAMM_{}_", env_name(adapter));
        let vars: Vec<(String, String)> = match &self.env {
            Some(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => std::env::vars().collect(),
        };
        let mut any = false;
        for (name, value) in vars {
            let Some(field) = name.strip_prefix(&prefix) else {
                continue;
            };
            let (field, value) = match field.strip_suffix("_FILE") {
                Some(field) => {
                    let contents =
                        read_secret_file(Path::new(&value)).map_err(|e| ConfigError {
                            origin: format!("environment variable {name}"),
                            message: e,
                        })?;
                    (field, toml::Value::String(contents))
                }
                None => (field, scalar(&value)),
            };
            section.insert(field.to_ascii_lowercase(), value);
            any = true;
        }
        Ok(any)
    }
}

/// `static-host` → `STATIC_HOST`.
pub fn env_name(adapter: &str) -> String {
    adapter.to_ascii_uppercase().replace('-', "_")
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// An environment value as TOML: numbers and booleans typed, anything else a string.
fn scalar(value: &str) -> toml::Value {
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

/// Deserialises the table at `path` of the document `text`, keeping spans so errors
/// carry line and column.
fn from_toml_at<T: DeserializeOwned>(text: &str, path: &[String]) -> Result<T, toml::de::Error> {
    let de = toml::Deserializer::parse(text)?;
    let found = AtPath::<T> {
        path,
        _t: PhantomData,
    }
    .deserialize(de)?;
    match found {
        Some(value) => Ok(value),
        None => T::deserialize(toml::Value::Table(toml::Table::new())),
    }
}

struct AtPath<'p, T> {
    path: &'p [String],
    _t: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for AtPath<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<T>, D::Error> {
        match self.path.split_first() {
            None => T::deserialize(de).map(Some),
            Some(_) => de.deserialize_map(self),
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AtPath<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let (head, rest) = self.path.split_first().expect("non-empty path");
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == *head {
                found = map.next_value_seed(AtPath::<T> {
                    path: rest,
                    _t: PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        token: String,
        #[serde(default)]
        port: u16,
    }

    fn fleet() -> FleetId {
        FleetId::new("test").unwrap()
    }

    const DOC: &str = "[fleet]\nid = \"x\"\n\n[providers.demo]\ntoken = \"abc\"\nport = 7\n";

    #[test]
    fn reads_the_section() {
        let cfg = AdapterConfig::from_toml(fleet(), "demo", "f.toml", DOC, &["providers", "demo"])
            .with_env([("DAMM_OTHER_TOKEN", "ignored")]);
        let s: Settings = cfg.load("demo").unwrap();
        assert_eq!(
            s,
            Settings {
                token: "abc".into(),
                port: 7
            }
        );
    }

    #[test]
    fn env_wins_and_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "from-file\n").unwrap();
        let cfg = AdapterConfig::from_toml(fleet(), "demo", "f.toml", DOC, &["providers", "demo"])
            .with_env([
                ("DAMM_DEMO_PORT", "9".to_owned()),
                ("DAMM_DEMO_TOKEN_FILE", secret.display().to_string()),
            ]);
        let s: Settings = cfg.load("demo").unwrap();
        assert_eq!(
            s,
            Settings {
                token: "from-file".into(),
                port: 9
            }
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let doc = "[providers.demo]\ntoken = \"abc\"\nprot = 7\n";
        let cfg =
            AdapterConfig::from_toml(fleet(), "demo", "fleet.toml", doc, &["providers", "demo"])
                .without_env();
        let err = cfg.load::<Settings>("demo").unwrap_err().to_string();
        assert!(err.starts_with("fleet.toml [providers.demo]"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn missing_section_means_defaults_and_names_missing_fields() {
        let cfg = AdapterConfig::from_toml(
            fleet(),
            "demo",
            "fleet.toml",
            "[fleet]\n",
            &["providers", "demo"],
        )
        .without_env();
        let err = cfg.load::<Settings>("demo").unwrap_err().to_string();
        assert!(err.contains("token"), "{err}");
    }

    #[test]
    fn debug_hides_the_document() {
        let cfg = AdapterConfig::from_toml(fleet(), "demo", "f.toml", DOC, &["providers", "demo"]);
        assert!(!format!("{cfg:?}").contains("abc"));
    }
}
