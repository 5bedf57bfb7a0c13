//! The region and profile tables every compute adapter carries: a built-in table, with the
//! operator's entries from config laid over it.
//!
//! - Region tables map a DAMM region to the provider's region, zone or location. In TOML
//!   they are a table; in the environment (one string) they are `damm=provider` pairs
//!   separated by commas. [`string_table`] reads both.
//! - Profile tables map a DAMM size profile to the provider's machine type and its price.
//!   Each adapter keeps its own profile type (its machine-type field is named as the
//!   provider names it); [`profile_table`] lays the config's profiles over the built-in
//!   `(name, machine type, monthly cents)` rows.
//! - Read back, a resource names the provider's place; [`damm_region`] finds the DAMM
//!   region it stands for.
//!
//! ```
//! use std::collections::BTreeMap;
//! use damm_provider::tables::{region_table, profile_table};
//!
//! let built_in = &[("eu-central", "fra1"), ("uk", "lon1")];
//! let configured = BTreeMap::from([("uk".to_owned(), "lon2".to_owned())]);
//! let regions = region_table(built_in, &configured);
//! assert_eq!(regions["uk"], "lon2");
//! assert_eq!(regions["eu-central"], "fra1");
//!
//! let profiles = profile_table(&[("small", "s-1", 600)], &BTreeMap::new(),
//!     |size, cents| (size.to_owned(), cents));
//! assert_eq!(profiles["small"], ("s-1".to_owned(), 600));
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::Region;

/// The region table in force: `built_in` with `configured` laid over it.
pub fn region_table(
    built_in: &[(&str, &str)],
    configured: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut table: BTreeMap<String, String> = built_in
        .iter()
        .map(|(damm, theirs)| ((*damm).to_owned(), (*theirs).to_owned()))
        .collect();
    table.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    table
}

/// The profile table in force: the `built_in` rows `(name, machine type, monthly cents)`,
/// each made into a `P` by `make`, with `configured` laid over them.
pub fn profile_table<P: Clone>(
    built_in: &[(&str, &str, u64)],
    configured: &BTreeMap<String, P>,
    make: impl Fn(&str, u64) -> P,
) -> BTreeMap<String, P> {
    let mut table: BTreeMap<String, P> = built_in
        .iter()
        .map(|(name, machine, cents)| ((*name).to_owned(), make(machine, *cents)))
        .collect();
    table.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    table
}

/// The DAMM region of a resource the provider places at `location`: the one its
/// `damm-region` label names (`label`), else the first region of the `table` whose
/// provider entry `is_at` the location, else the location itself when it is a valid
/// region name, else `unknown`.
///
/// ```
/// use std::collections::BTreeMap;
/// use damm_provider::tables::damm_region;
///
/// let table = BTreeMap::from([("eu-central".to_owned(), "fra1".to_owned())]);
/// let at = |location: &str| damm_region(&table, None, location, |theirs| theirs == location);
/// assert_eq!(at("fra1").as_str(), "eu-central");
/// assert_eq!(at("sgp1").as_str(), "sgp1");
/// assert_eq!(damm_region(&table, Some("uk"), "fra1", |_| true).as_str(), "uk");
/// ```
pub fn damm_region(
    table: &BTreeMap<String, String>,
    label: Option<&str>,
    location: &str,
    is_at: impl Fn(&str) -> bool,
) -> Region {
    label
        .and_then(|r| Region::new(r).ok())
        .or_else(|| {
            table
                .iter()
                .find(|(_, theirs)| is_at(theirs))
                .and_then(|(damm, _)| Region::new(damm.as_str()).ok())
        })
        .or_else(|| Region::new(location).ok())
        .unwrap_or_else(|| Region::new("unknown").expect("a valid region name"))
}

/// Reads a string → string table from a TOML table, or from `a=b,c=d` (the form an
/// environment variable carries). Use as `#[serde(default, deserialize_with = "string_table")]`.
pub fn string_table<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Table(BTreeMap<String, String>),
        Text(String),
    }
    match Form::deserialize(d)? {
        Form::Table(table) => Ok(table),
        Form::Text(text) => parse_pairs(&text).map_err(serde::de::Error::custom),
    }
}

/// `a=b,c=d` as a table; empty pairs are skipped, a pair without `=` or key is an error
/// naming it.
pub fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!(
                "`{pair}` is not of the form damm-region=provider-region"
            )),
        })
        .collect()
}

/// Checks that no entry of a region table maps to an empty name.
pub fn check_regions(table: &BTreeMap<String, String>) -> Result<(), String> {
    match table.iter().find(|(_, theirs)| theirs.trim().is_empty()) {
        Some((damm, _)) => Err(format!("regions: `{damm}` maps to an empty region")),
        None => Ok(()),
    }
}

/// Checks a config's region and profile tables, naming the entry at fault and its value:
/// every region is a DAMM region name mapped to a non-empty provider name (as
/// [`check_regions`]), and every profile names a machine type (its field is
/// `machine_field`: `size`, `plan`, ...) priced in an ISO 4217 currency. `parts` gives a
/// profile's machine type and currency.
///
/// ```
/// use std::collections::BTreeMap;
/// use damm_provider::tables::check_tables;
///
/// let regions = BTreeMap::from([("uk".to_owned(), "lon1".to_owned())]);
/// let profiles = BTreeMap::from([("tiny".to_owned(), ("s-1".to_owned(), "usd".to_owned()))]);
/// let err = check_tables(&regions, &profiles, "size", |(size, currency)| (size.as_str(), currency.as_str()));
/// assert_eq!(err.unwrap_err(), "profiles.tiny: currency `usd` is not an ISO 4217 code (such as USD)");
/// ```
pub fn check_tables<P>(
    regions: &BTreeMap<String, String>,
    profiles: &BTreeMap<String, P>,
    machine_field: &str,
    parts: impl Fn(&P) -> (&str, &str),
) -> Result<(), String> {
    for damm in regions.keys() {
        Region::new(damm.as_str())
            .map_err(|e| format!("regions: `{damm}` is not a DAMM region name: {e}"))?;
    }
    check_regions(regions)?;
    for (name, profile) in profiles {
        let (machine_type, currency) = parts(profile);
        if machine_type.trim().is_empty() {
            return Err(format!(
                "profiles.{name}: {machine_field} must not be empty"
            ));
        }
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "profiles.{name}: currency `{currency}` is not an ISO 4217 code (such as USD)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(default, deserialize_with = "string_table")]
        regions: BTreeMap<String, String>,
    }

    #[test]
    fn tables_and_pair_strings_both_read() {
        let s: S = toml::from_str("regions = { uk = \"lon1\" }").unwrap();
        assert_eq!(s.regions["uk"], "lon1");
        let s: S = toml::from_str("regions = \"uk=lon1, eu-central = fra1,\"").unwrap();
        assert_eq!(s.regions.len(), 2);
        assert_eq!(s.regions["eu-central"], "fra1");
        let err = toml::from_str::<S>("regions = \"uk\"").unwrap_err();
        assert!(err.to_string().contains("`uk` is not of the form"), "{err}");
        let s: S = toml::from_str("").unwrap();
        assert!(s.regions.is_empty());
    }

    #[test]
    fn regions_read_back_from_labels_then_the_table_then_the_location() {
        let table = BTreeMap::from([
            ("eu-central".to_owned(), "europe-west3-a".to_owned()),
            ("uk".to_owned(), "europe-west2-a".to_owned()),
        ]);
        let exact = |location: &str| damm_region(&table, None, location, |t| t == location);
        assert_eq!(exact("europe-west2-a").as_str(), "uk");
        assert_eq!(exact("mars-1").as_str(), "mars-1");
        assert_eq!(exact("Not A Region!").as_str(), "unknown");
        // A label wins; an invalid one is passed over.
        assert_eq!(
            damm_region(&table, Some("us-east"), "europe-west2-a", |_| true).as_str(),
            "us-east"
        );
        assert_eq!(
            damm_region(&table, Some("Bad Label"), "x", |t| t == "europe-west3-a").as_str(),
            "eu-central"
        );
    }

    #[test]
    fn tables_are_checked_entry_by_entry() {
        let regions = BTreeMap::from([("uk".to_owned(), "lon1".to_owned())]);
        let profile = |size: &str, currency: &str| {
            BTreeMap::from([("tiny".to_owned(), (size.to_owned(), currency.to_owned()))])
        };
        let check = |regions: &BTreeMap<String, String>,
                     profiles: &BTreeMap<_, (String, String)>| {
            check_tables(regions, profiles, "plan", |(plan, currency)| {
                (plan, currency)
            })
        };
        assert_eq!(check(&regions, &profile("vc2", "EUR")), Ok(()));
        let err = check(&regions, &profile(" ", "USD")).unwrap_err();
        assert_eq!(err, "profiles.tiny: plan must not be empty");
        let err = check(&regions, &profile("vc2", "dollars")).unwrap_err();
        assert!(err.contains("profiles.tiny: currency `dollars`"), "{err}");
        let bad_name = BTreeMap::from([("EU".to_owned(), "fra".to_owned())]);
        let err = check(&bad_name, &BTreeMap::new()).unwrap_err();
        assert!(
            err.starts_with("regions: `EU` is not a DAMM region name"),
            "{err}"
        );
        let empty = BTreeMap::from([("uk".to_owned(), String::new())]);
        let err = check(&empty, &BTreeMap::new()).unwrap_err();
        assert_eq!(err, "regions: `uk` maps to an empty region");
    }

    #[test]
    fn empty_names_are_refused() {
        let bad = BTreeMap::from([("uk".to_owned(), " ".to_owned())]);
        assert!(check_regions(&bad).unwrap_err().contains("`uk`"));
        assert!(check_regions(&region_table(&[("a", "b")], &BTreeMap::new())).is_ok());
    }
}
