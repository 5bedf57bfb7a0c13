//! Human durations in policy files: `90s`, `10m`, `6h`, `7d`, `1h30m`, `250ms`.
//!
//! A hand parser on purpose, not `humantime` (which damm-sim's `--boot-delay` flag uses): a
//! policy is written by hand, checked once at load, and a [`Span`] is serialised into state
//! and read back, so the grammar must be exactly what [`Span`]'s `Display` writes. humantime
//! reads a wider one, and each extra form is a trap here (see the test
//! `humantime_reads_what_a_policy_must_refuse`):
//!
//! - `1M` is a month (30.44 days) to humantime, one shift key away from `1m`, a minute;
//! - sub-millisecond units (`1500us`, `1.5ms`) parse, but a span is written at millisecond
//!   precision, so such a value would change on a save and load;
//! - spelled-out and spaced units (`10 minutes`, `1h 30m`), weeks, months and years: more
//!   than one way to write a value, none of which `Display` writes back.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way operators write them (`60s`, `6h`, `1h30m`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

impl Span {
    /// From whole seconds.
    pub const fn secs(secs: u64) -> Self {
        Span(Duration::from_secs(secs))
    }

    /// The span as a chrono duration, for arithmetic on timestamps.
    pub fn chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {reason} (write e.g. `90s`, `10m`, `6h`, `7d`, `1h30m`)")]
pub struct BadSpan {
    text: String,
    reason: &'static str,
}

impl FromStr for Span {
    type Err = BadSpan;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason| BadSpan {
            text: text.to_owned(),
            reason,
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("it is empty"));
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("expected a number"));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = match &rest[..unit_len] {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                "d" => Duration::from_secs(86_400),
                "" => return Err(bad("a number needs a unit")),
                _ => return Err(bad("unknown unit")),
            };
            rest = &rest[unit_len..];
            let part = u32::try_from(number)
                .ok()
                .and_then(|n| unit.checked_mul(n))
                .ok_or_else(|| bad("too long"))?;
            total = total.checked_add(part).ok_or_else(|| bad("too long"))?;
        }
        Ok(Span(total))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs) in [("90s", 90), ("10m", 600), ("6h", 21_600), ("7d", 604_800)] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0, Duration::from_secs(secs));
            assert_eq!(span.to_string(), text.replace("90s", "1m30s"));
        }
        assert_eq!("1h30m".parse::<Span>().unwrap(), Span::secs(5400));
        assert_eq!(
            "250ms".parse::<Span>().unwrap().0,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn what_parses_prints_back_to_the_same_span() {
        for text in [
            "0s",
            "250ms",
            "1s",
            "59s",
            "90s",
            "1h30m",
            "7d",
            "1d1h1m1s1ms",
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span, "{text}");
        }
    }

    /// Why the parser is ours (see the module doc): the inputs humantime takes and a policy
    /// must refuse.
    #[test]
    fn humantime_reads_what_a_policy_must_refuse() {
        let month = humantime::parse_duration("1M").unwrap();
        assert_eq!(month, Duration::from_secs(2_630_016), "30.44 days");
        assert!("1M".parse::<Span>().is_err());

        let micros = humantime::parse_duration("1500us").unwrap();
        let written_back: Span = Span(micros).to_string().parse().unwrap();
        assert_ne!(written_back.0, micros, "a save and load would change it");
        assert!("1500us".parse::<Span>().is_err());

        for wider in ["10 minutes", "1h 30m", "2w", "1y", "1.5h"] {
            assert!(humantime::parse_duration(wider).is_ok(), "{wider}");
            assert!(wider.parse::<Span>().is_err(), "{wider}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for text in ["", "10", "m", "10x", "1h-", "99999999999d"] {
            assert!(text.parse::<Span>().is_err(), "{text}");
        }
    }
}
