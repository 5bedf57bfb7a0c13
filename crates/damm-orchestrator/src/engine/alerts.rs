//! What one tick says of a provider, from its typed errors: an outage, which the breaker
//! counts until the provider goes dark, or an alert for the operator: credentials that are
//! refused or a quota that is exhausted. Waiting fixes neither, so neither darkens a
//! provider whose machines still carry traffic; the operator is told what to fix instead.

use chrono::{DateTime, Utc};
use damm_fleet::ScoreBook;
use damm_fleet::policy::Breaker;
use damm_fleet::score::ProviderAlert;
use damm_provider::{Error, ErrorKind};

/// The kinds that raise an alert instead of counting as an outage. The provider API
/// answers 401 and 403 alike as `Unauthenticated`: expired, revoked or under-privileged
/// credentials.
pub fn is_alert(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unauthenticated | ErrorKind::QuotaExceeded)
}

/// One provider's probes in one tick.
#[derive(Debug, Default)]
pub struct ProbeTally {
    /// Probes that gave a verdict.
    pub probes: u64,
    /// Of which failed.
    pub failed: u64,
    /// The first probe refused for credentials or quota (it gave no verdict).
    pub alert: Option<Error>,
}

/// What one tick says of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its API answered and so did its nodes.
    Healthy,
    /// Its API answered (its credentials work), but every probe of its nodes failed.
    ProbesFailed(String),
    /// Unreachable, failing, rate limited or timed out: the breaker counts it.
    Outage(String),
    /// Its API refused DAMM's credentials or quota.
    Alert(ErrorKind, String),
}

impl Verdict {
    /// The verdict of a tick whose listing ended in `listing` and whose probes are
    /// `probes` (none when nothing was probed).
    pub fn of(listing: Result<(), &Error>, probes: Option<&ProbeTally>) -> Verdict {
        if let Err(e) = listing {
            return if is_alert(e.kind()) {
                Verdict::Alert(e.kind(), e.to_string())
            } else {
                Verdict::Outage(e.to_string())
            };
        }
        match probes {
            Some(ProbeTally { alert: Some(e), .. }) => Verdict::Alert(e.kind(), e.to_string()),
            Some(&ProbeTally { probes, failed, .. }) if probes >= 2 && failed == probes => {
                Verdict::ProbesFailed(format!("every probe failed ({probes} nodes)"))
            }
            _ => Verdict::Healthy,
        }
    }

    /// The verdict of a create, allocation or other change that `error` refused, when it
    /// needs the operator (credentials or quota). `None` for any other failure: it stays a
    /// failed action, since outages and timeouts are the listings' to count.
    pub fn of_refusal(error: &Error) -> Option<Verdict> {
        is_alert(error.kind()).then(|| Verdict::Alert(error.kind(), error.to_string()))
    }

    /// What the breaker records: `None` for an alert, which it does not count.
    pub fn breaker_outcome(&self) -> Option<Result<(), String>> {
        match self {
            Verdict::Healthy => Some(Ok(())),
            Verdict::ProbesFailed(e) | Verdict::Outage(e) => Some(Err(e.clone())),
            Verdict::Alert(..) => None,
        }
    }

    /// Whether a call of the provider succeeded, which clears its alert.
    pub fn answered(&self) -> bool {
        matches!(self, Verdict::Healthy | Verdict::ProbesFailed(_))
    }

    /// Feeds the verdict to `provider`'s breaker and alert in `book`; says what became of
    /// the alert, for the operator's log.
    pub fn record(
        &self,
        book: &mut ScoreBook,
        provider: &str,
        at: DateTime<Utc>,
        breaker: &Breaker,
    ) -> AlertChange {
        let cleared = if self.answered() {
            book.provider_answered(provider, at)
        } else {
            None
        };
        if let Some(outcome) = self.breaker_outcome() {
            book.provider_tick(provider, at, outcome, breaker);
        }
        match (self, cleared) {
            (Verdict::Alert(kind, e), _) => {
                if book.provider_alert(provider, at, kind.as_str(), e.clone()) {
                    AlertChange::Raised
                } else {
                    AlertChange::Persists
                }
            }
            (_, Some(alert)) => AlertChange::Cleared(alert),
            _ => AlertChange::None,
        }
    }
}

/// Keeps `provider`'s alert raised for the breaker's cooldown after a change was refused
/// at `at`: its listings go on answering, which says nothing of a quota or of the right to
/// create, and the planner sends it no create while the alert stands. Once the hold ends,
/// the next answer clears the alert, and a create may try again.
pub fn hold_after_refusal(
    book: &mut ScoreBook,
    provider: &str,
    at: DateTime<Utc>,
    breaker: &Breaker,
) {
    book.hold_alert(provider, at + breaker.cooldown.chrono());
}

/// What a verdict did to a provider's alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    /// No alert before or after.
    None,
    /// A new alert (or one of a new kind): the operator must hear of it.
    Raised,
    /// The alert was already raised.
    Persists,
    /// The provider answered: its alert is gone.
    Cleared(ProviderAlert),
}

/// Where the credential of provider `instance` (served by adapter `adapter`) is set, for
/// the operator who must renew it. Names settings, never their values.
pub fn credential_hint(instance: &str, adapter: &str) -> String {
    let env = damm_provider::config::env_name(adapter);
    let settings = format!("or in the `[{instance}]` section of the adapter settings (--config)");
    match adapter {
        "aws" => format!(
            "DAMM_AWS_ACCESS_KEY_ID and DAMM_AWS_SECRET_ACCESS_KEY \
             (or DAMM_AWS_SECRET_ACCESS_KEY_FILE), {settings}, or the standard AWS credential chain"
        ),
        "gce" => format!(
            "DAMM_GCE_TOKEN (or DAMM_GCE_TOKEN_FILE) {settings}, or the Application Default \
             Credentials"
        ),
        _ => format!("DAMM_{env}_TOKEN (or DAMM_{env}_TOKEN_FILE) {settings}"),
    }
}

/// What the account behind provider `instance` needs, by alert kind.
pub fn remedy(kind: ErrorKind, instance: &str, adapter: &str) -> String {
    match kind {
        ErrorKind::QuotaExceeded => format!(
            "raise the account's quota or limit at the provider, or lower max_nodes of \
             [providers.{instance}] in the policy"
        ),
        _ => format!(
            "renew or fix the credential, with the permissions DAMM needs: {}",
            credential_hint(instance, adapter)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damm_provider::Operation;

    fn error(kind: ErrorKind) -> Error {
        Error::new(kind, "hetzner", Operation::ListNodes).with_message("HTTP answer")
    }

    fn tally(probes: u64, failed: u64, alert: Option<ErrorKind>) -> ProbeTally {
        ProbeTally {
            probes,
            failed,
            alert: alert.map(error),
        }
    }

    #[test]
    fn credential_and_quota_errors_alert_and_the_rest_are_outages() {
        let rate_limited = ErrorKind::RateLimited { retry_after: None };
        for (kind, alert) in [
            (ErrorKind::Unauthenticated, true),
            (ErrorKind::QuotaExceeded, true),
            (ErrorKind::Unavailable, false),
            (rate_limited, false),
            (ErrorKind::Unexpected, false),
            (ErrorKind::InvalidInput, false),
        ] {
            let e = error(kind);
            let verdict = Verdict::of(Err(&e), None);
            assert_eq!(is_alert(kind), alert, "{kind}");
            if alert {
                assert_eq!(verdict, Verdict::Alert(kind, e.to_string()));
                assert_eq!(verdict.breaker_outcome(), None, "{kind}: not counted");
            } else {
                assert_eq!(verdict, Verdict::Outage(e.to_string()));
                assert_eq!(verdict.breaker_outcome(), Some(Err(e.to_string())));
            }
            assert!(
                !verdict.answered(),
                "{kind}: a failed listing clears nothing"
            );
        }
    }

    #[test]
    fn probes_decide_once_the_listing_answered() {
        let healthy = [
            None,
            Some(tally(0, 0, None)),
            Some(tally(1, 1, None)),
            Some(tally(3, 2, None)),
        ];
        for probes in &healthy {
            let verdict = Verdict::of(Ok(()), probes.as_ref());
            assert_eq!(verdict, Verdict::Healthy, "{probes:?}");
            assert_eq!(verdict.breaker_outcome(), Some(Ok(())));
            assert!(verdict.answered());
        }
        let all_failed = Verdict::of(Ok(()), Some(&tally(2, 2, None)));
        assert_eq!(
            all_failed,
            Verdict::ProbesFailed("every probe failed (2 nodes)".into())
        );
        assert!(all_failed.breaker_outcome().unwrap().is_err());
        assert!(
            all_failed.answered(),
            "the listing answered: credentials work"
        );
        let refused = Verdict::of(Ok(()), Some(&tally(2, 2, Some(ErrorKind::Unauthenticated))));
        assert!(
            matches!(refused, Verdict::Alert(ErrorKind::Unauthenticated, _)),
            "{refused:?}"
        );
        assert_eq!(refused.breaker_outcome(), None);
        assert!(!refused.answered());
    }

    #[test]
    fn recording_raises_once_keeps_the_breaker_and_clears_on_an_answer() {
        let breaker = Breaker::default();
        let mut book = ScoreBook::default();
        let at = DateTime::UNIX_EPOCH;
        let refused = Verdict::of(Err(&error(ErrorKind::Unauthenticated)), None);
        let down = Verdict::of(Err(&error(ErrorKind::Unavailable)), None);
        assert_eq!(down.record(&mut book, "p", at, &breaker), AlertChange::None);
        assert_eq!(book.breakers["p"].failures, 1);
        for change in [
            AlertChange::Raised,
            AlertChange::Persists,
            AlertChange::Persists,
        ] {
            assert_eq!(refused.record(&mut book, "p", at, &breaker), change);
        }
        assert_eq!(book.breakers["p"].failures, 1, "alerts are not counted");
        assert!(!book.is_dark("p"));
        // An outage while alerted keeps the alert: nothing answered.
        assert_eq!(down.record(&mut book, "p", at, &breaker), AlertChange::None);
        assert!(book.is_dark("p") && book.alert("p").is_some());
        let probes_failed = Verdict::of(Ok(()), Some(&tally(2, 2, None)));
        let AlertChange::Cleared(alert) = probes_failed.record(&mut book, "p", at, &breaker) else {
            panic!("the listing answered: the alert clears");
        };
        assert_eq!(alert.kind, "unauthenticated");
        assert_eq!(book.alert("p"), None);
        assert_eq!(
            Verdict::Healthy.record(&mut book, "p", at, &breaker),
            AlertChange::None
        );
    }

    #[test]
    fn a_refused_create_alerts_and_holds_the_alert_through_the_cooldown() {
        let breaker = Breaker::default();
        let mut book = ScoreBook::default();
        let at = DateTime::UNIX_EPOCH;
        let limit = Error::new(
            ErrorKind::QuotaExceeded,
            "hetzner",
            Operation::CreateIngressNode,
        )
        .with_message("HTTP 403 resource_limit_exceeded: server limit exceeded");
        for kind in [ErrorKind::Unavailable, ErrorKind::InvalidInput] {
            let failed = Error::new(kind, "hetzner", Operation::CreateIngressNode);
            assert_eq!(
                Verdict::of_refusal(&failed),
                None,
                "{kind}: a failed action"
            );
        }
        let refused = Verdict::of_refusal(&limit).expect("quota is an alert");
        assert_eq!(
            refused,
            Verdict::Alert(ErrorKind::QuotaExceeded, limit.to_string())
        );
        assert_eq!(
            Verdict::Healthy.record(&mut book, "p", at, &breaker),
            AlertChange::None
        );
        assert_eq!(
            refused.record(&mut book, "p", at, &breaker),
            AlertChange::Raised
        );
        hold_after_refusal(&mut book, "p", at, &breaker);
        let cooldown = breaker.cooldown.chrono();
        // The listings answer all through the cooldown; the alert stands, nothing is counted.
        for later in [
            at + cooldown / 2,
            at + cooldown - chrono::TimeDelta::seconds(1),
        ] {
            assert_eq!(
                Verdict::Healthy.record(&mut book, "p", later, &breaker),
                AlertChange::None
            );
            assert_eq!(
                book.alert("p").map(|a| a.kind.as_str()),
                Some("quota_exceeded")
            );
        }
        assert_eq!(book.breakers["p"].failures, 0);
        assert!(!book.is_dark("p"));
        let AlertChange::Cleared(alert) =
            Verdict::Healthy.record(&mut book, "p", at + cooldown, &breaker)
        else {
            panic!("the hold is over: the answer clears the alert");
        };
        assert_eq!(alert.kind, "quota_exceeded");
    }

    #[test]
    fn hints_name_the_settings_never_a_value() {
        let hint = credential_hint("hetzner-eu", "hetzner");
        assert!(
            hint.contains("DAMM_HETZNER_TOKEN (or DAMM_HETZNER_TOKEN_FILE)"),
            "{hint}"
        );
        assert!(hint.contains("`[hetzner-eu]`"), "{hint}");
        assert!(credential_hint("x", "aws").contains("DAMM_AWS_SECRET_ACCESS_KEY"));
        assert!(credential_hint("x", "gce").contains("Application Default Credentials"));
        let quota = remedy(ErrorKind::QuotaExceeded, "vultr", "vultr");
        assert!(
            quota.contains("quota") && quota.contains("[providers.vultr]"),
            "{quota}"
        );
        let auth = remedy(ErrorKind::Unauthenticated, "vultr", "vultr");
        assert!(auth.contains("DAMM_VULTR_TOKEN"), "{auth}");
    }
}
