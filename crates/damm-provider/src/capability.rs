//! Capabilities: what a provider can give DAMM, as a closed set.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One thing a provider can give DAMM. Serialised in snake_case, as in the design notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// VMs DAMM runs software on.
    Compute,
    /// A public surface clients connect to (addresses, "front doors").
    Ingress,
    /// The outbound NAT face traffic leaves through.
    Egress,
    /// A private network DAMM rides on.
    Overlay,
    /// An HTTPS-shaped front hiding the real ingress.
    CdnFront,
    /// The provider's managed tunnel DAMM redirects through.
    TunnelTerm,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Capability; 6] = [
        Capability::Compute,
        Capability::Ingress,
        Capability::Egress,
        Capability::Overlay,
        Capability::CdnFront,
        Capability::TunnelTerm,
    ];

    /// The snake_case name used in config files, JSON and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Capability::Compute => "compute",
            Capability::Ingress => "ingress",
            Capability::Egress => "egress",
            Capability::Overlay => "overlay",
            Capability::CdnFront => "cdn_front",
            Capability::TunnelTerm => "tunnel_term",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability name that is not one of [`Capability::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown capability `{0}` (expected one of: compute, ingress, egress, overlay, cdn_front, tunnel_term)"
)]
pub struct ParseCapabilityError(pub String);

impl FromStr for Capability {
    type Err = ParseCapabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_");
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == wanted)
            .ok_or_else(|| ParseCapabilityError(s.to_owned()))
    }
}

/// A set of [`Capability`] values, usable in `const` context.
///
/// ```
/// use damm_provider::{Capabilities, Capability};
///
/// const CAPS: Capabilities = Capabilities::of(&[Capability::Ingress, Capability::Egress]);
/// assert!(CAPS.contains(Capability::Egress));
/// assert!(!CAPS.contains(Capability::Compute));
/// assert_eq!(CAPS.to_string(), "ingress,egress");
/// assert_eq!("egress, ingress".parse::<Capabilities>().unwrap(), CAPS);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// The empty set.
    pub const EMPTY: Capabilities = Capabilities(0);

    /// The set holding exactly `caps`.
    pub const fn of(caps: &[Capability]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < caps.len() {
            bits |= caps[i].bit();
            i += 1;
        }
        Capabilities(bits)
    }

    /// Whether `cap` is in the set.
    pub const fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// The set with `cap` added.
    #[must_use]
    pub const fn with(self, cap: Capability) -> Self {
        Capabilities(self.0 | cap.bit())
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of capabilities in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The capabilities in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Capabilities in `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: Capabilities) -> Self {
        Capabilities(self.0 & !other.0)
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Capabilities::EMPTY, Capabilities::with)
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cap) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(cap.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromStr for Capabilities {
    type Err = ParseCapabilityError;

    /// Parses a comma-separated list such as `compute,ingress`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse::<Capability>)
            .collect()
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Capability>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_snake_case() {
        let caps = Capabilities::of(&[Capability::CdnFront, Capability::TunnelTerm]);
        assert_eq!(
            serde_json::to_string(&caps).unwrap(),
            r#"["cdn_front","tunnel_term"]"#
        );
        let back: Capabilities = serde_json::from_str(r#"["tunnel_term","cdn_front"]"#).unwrap();
        assert_eq!(back, caps);
    }

    #[test]
    fn parses_lists_and_rejects_unknown_names() {
        let caps: Capabilities = "compute, ingress,cdn-front".parse().unwrap();
        assert_eq!(caps.len(), 3);
        assert!(caps.contains(Capability::CdnFront));
        let err = "compute,teleport".parse::<Capabilities>().unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
    }

    #[test]
    fn difference_lists_what_is_missing() {
        let declared = Capabilities::of(&[Capability::Compute, Capability::Ingress]);
        let handed_out = Capabilities::of(&[Capability::Ingress]);
        assert_eq!(
            declared.difference(handed_out),
            Capabilities::of(&[Capability::Compute])
        );
        assert!(handed_out.difference(declared).is_empty());
    }
}
