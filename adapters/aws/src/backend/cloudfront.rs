//! `cdn_front` on CloudFront: a front is a web distribution with one custom origin, the
//! gateway's T3 listener (plain HTTP), reached by a DNS name that resolves to the ingress
//! address, since CloudFront takes no IP address as an origin. Its hostname is the
//! distribution's own `dXXXX.cloudfront.net`.
//!
//! - **Ownership.** Every distribution is created with its tags (CreateDistributionWithTags:
//!   `damm-fleet`, `damm-key`, `damm-role=front`), so none exists untagged even for a
//!   moment. Its comment says `damm-fleet=<fleet>`: a listing asks for the tags
//!   (ListTagsForResource, one call each) only of distributions with that comment, and
//!   keeps only those whose tags name the fleet. The tag decides, the comment only spares
//!   calls. Nothing is changed or deleted before its tags were read.
//! - **Retiring takes two calls.** CloudFront deletes only a disabled distribution whose
//!   disabling has deployed. A retire of an enabled distribution disables it and answers a
//!   temporary `conflict` ("pending"); one of a disabled distribution still deploying
//!   answers the same; one of a disabled, deployed distribution deletes it. The
//!   orchestrator's release fails until then, so its next ticks call again, and the
//!   distribution, still listed, stays in its state meanwhile.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aws_sdk_cloudfront::types::{
    AllowedMethods, CachedMethods, CustomOriginConfig, DefaultCacheBehavior, Distribution,
    DistributionConfig, DistributionConfigWithTags, DistributionSummary, Method, Origin,
    OriginProtocolPolicy, Origins, PriceClass, Tag as CfTag, Tags, ViewerProtocolPolicy,
};
use damm_provider::api::found;
use damm_provider::{CdnFront, Front, FrontRef, FrontSpec};

use super::*;
use crate::config::valid_dns_name;
use crate::core::{cloudfront_client, parse_cloudfront_error};

/// The one origin of a DAMM distribution.
const ORIGIN_ID: &str = "damm-gateway";
/// AWS's managed cache policy `CachingDisabled`: every request goes to the gateway.
const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
/// AWS's managed origin request policy `AllViewer`: every viewer header goes to the
/// gateway, the WebSocket upgrade's (`Upgrade`, `Sec-WebSocket-Key`, ...) among them.
const ALL_VIEWER: &str = "216adef6-5c7f-47e4-b989-5492eafa07d3";
/// A distribution's status once its last change reached every edge.
const DEPLOYED: &str = "Deployed";
/// `damm-role` of distributions.
const ROLE_FRONT: &str = "front";
/// Distributions per ListDistributions page at most (CloudFront's default); `page_size`
/// makes it smaller.
const LIST_PAGE: i32 = 100;
/// Caller references are kept as short as EC2's client tokens.
const CALLER_REFERENCE_MAX: usize = 64;

/// A distribution as DAMM reads it: id, ARN, hostname, status, enabled, origin domain.
#[derive(Debug, Clone)]
struct Dist {
    id: String,
    arn: String,
    domain_name: String,
    status: String,
    enabled: bool,
    origin: Option<String>,
}

impl Dist {
    fn of_summary(s: &DistributionSummary) -> Dist {
        Dist {
            id: s.id.clone(),
            arn: s.arn.clone(),
            domain_name: s.domain_name.clone(),
            status: s.status.clone(),
            enabled: s.enabled,
            origin: origin_domain(s.origins.as_ref()),
        }
    }

    fn of_distribution(d: &Distribution) -> Dist {
        let config = d.distribution_config.as_ref();
        Dist {
            id: d.id.clone(),
            arn: d.arn.clone(),
            domain_name: d.domain_name.clone(),
            status: d.status.clone(),
            enabled: config.is_some_and(|c| c.enabled),
            origin: origin_domain(config.and_then(|c| c.origins.as_ref())),
        }
    }

    fn deployed(&self) -> bool {
        self.status == DEPLOYED
    }
}

/// The domain of DAMM's origin (else of the first one).
fn origin_domain(origins: Option<&Origins>) -> Option<String> {
    let items = &origins?.items;
    items
        .iter()
        .find(|o| o.id == ORIGIN_ID)
        .or_else(|| items.first())
        .map(|o| o.domain_name.to_ascii_lowercase())
}

/// The first DNS label of an origin name: the address `<a-b-c-d>.<domain>` stands for
/// (IPv6: the compressed form, `:` as `-`).
pub(crate) fn address_label(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address an origin name stands for, read from its first label.
pub(crate) fn address_of_origin(name: &str) -> Option<IpAddr> {
    let label = name.split('.').next()?;
    if label.bytes().filter(|&b| b == b'-').count() == 3
        && label.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    {
        return label
            .replace('-', ".")
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4);
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

impl Aws {
    /// The CloudFront client, made on first use from the shared SDK configuration.
    async fn cloudfront(&self) -> aws_sdk_cloudfront::Client {
        let shared = self
            .sdk
            .get_or_init(|| load_sdk_config(&self.settings))
            .await;
        self.cloudfront
            .get_or_init(|| async { cloudfront_client(shared) })
            .await
            .clone()
    }

    /// One CloudFront call under its own rate limit and the shared retry policy.
    async fn cf_call<T, E, F, Fut>(
        &self,
        operation: Operation,
        idempotent: bool,
        call: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.front_calls
            .run_mapped(operation, idempotent, parse_cloudfront_error, call)
            .await
    }

    /// The comment of this fleet's distributions: where a listing looks for them.
    fn fleet_comment(&self) -> String {
        format!("{LABEL_FLEET}={}", self.fleet)
    }

    /// The origin name of `address`: `<address label>.<front_origin_domain>`.
    fn origin_name(&self, address: IpAddr, operation: Operation) -> Result<String> {
        let domain = self.settings.front_origin_domain().ok_or_else(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                "a CloudFront origin must be a DNS name: set front_origin_domain \
                 (DAMM_AWS_FRONT_ORIGIN_DOMAIN) to a domain where <a-b-c-d>.<domain> resolves \
                 to a.b.c.d",
            )
        })?;
        let name = format!("{}.{domain}", address_label(address));
        if !valid_dns_name(&name) {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("origin {address} gives `{name}`, which is not a DNS name"),
            ));
        }
        Ok(name)
    }

    /// A caller reference for one create: the fleet, the key and the time, at most
    /// [`CALLER_REFERENCE_MAX`] characters. One publish's retries send the same one (so
    /// CloudFront makes one distribution of them); a later publish first finds what an
    /// earlier one made by its key tag, and a key used again after its distribution was
    /// deleted is not refused for an old reference.
    fn caller_reference(&self, key: &IdempotencyKey) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let reference = format!("{}/{key}/{now}", self.fleet);
        if reference.len() <= CALLER_REFERENCE_MAX {
            return reference;
        }
        format!(
            "{}-{:016x}",
            &reference[..CALLER_REFERENCE_MAX - 17],
            fnv1a(&reference)
        )
    }

    /// The tags of a distribution, as labels.
    async fn distribution_labels(&self, arn: &str, operation: Operation) -> Result<Labels> {
        let client = self.cloudfront().await;
        let request = client.list_tags_for_resource().resource(arn);
        let answer = self
            .cf_call(operation, true, || request.clone().send())
            .await?;
        let tags = answer.tags.map(|t| t.items.unwrap_or_default());
        Ok(Labels::from_provider(
            tags.unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value.unwrap_or_default()))
                .collect::<BTreeMap<_, _>>(),
        ))
    }

    /// Every distribution of the account, page by page.
    async fn distributions(&self, operation: Operation) -> Result<Vec<DistributionSummary>> {
        let client = self.cloudfront().await;
        let page = LIST_PAGE.min(self.settings.page_size as i32);
        let request = client.list_distributions().max_items(page);
        let request = &request;
        collect_pages(
            &self.id,
            operation,
            "ListDistributions",
            Paging::default(),
            |at| async move {
                let marker = match at {
                    NextPage::Token(marker) => Some(marker),
                    NextPage::First | NextPage::Number(_) => None,
                };
                let send = || request.clone().set_marker(marker.clone()).send();
                let list = self.cf_call(operation, true, send).await?.distribution_list;
                let Some(list) = list else {
                    return Ok(Page {
                        next: None,
                        items: Vec::new(),
                        total: None,
                    });
                };
                Ok(Page {
                    next: list
                        .next_marker
                        .filter(|m| list.is_truncated && !m.is_empty())
                        .map(NextPage::Token),
                    items: list.items.unwrap_or_default(),
                    total: None,
                })
            },
        )
        .await
    }

    /// The fleet's distributions: those whose comment marks them as the fleet's and whose
    /// tags say so.
    async fn fleet_distributions(&self, operation: Operation) -> Result<Vec<(Dist, Labels)>> {
        let comment = self.fleet_comment();
        let candidates: Vec<Dist> = self
            .distributions(operation)
            .await?
            .iter()
            .filter(|s| s.comment == comment)
            .map(Dist::of_summary)
            .collect();
        let labelled = candidates.into_iter().map(|dist| async move {
            // Deleted between the listing and this call: not listed.
            match self.distribution_labels(&dist.arn, operation).await {
                Ok(labels) => Ok(Some((dist, labels))),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        });
        let labelled = futures::future::try_join_all(labelled).await?;
        Ok(labelled
            .into_iter()
            .flatten()
            .filter(|(_, labels)| labels.is_owned_by(&self.fleet) && labels.key().is_some())
            .collect())
    }

    /// A distribution with its ETag, when it is this fleet's; `None` when it is not (it is
    /// then never changed). A distribution that does not exist is CloudFront's own
    /// `not_found` (NoSuchDistribution).
    async fn owned_distribution(
        &self,
        id: &str,
        operation: Operation,
    ) -> Result<Option<(Distribution, String, Labels)>> {
        let client = self.cloudfront().await;
        let request = client.get_distribution().id(id);
        let answer = self
            .cf_call(operation, true, || request.clone().send())
            .await?;
        let (Some(distribution), Some(etag)) = (answer.distribution, answer.e_tag) else {
            return Err(self.error(
                ErrorKind::Unexpected,
                operation,
                format!("GetDistribution {id} answered without the distribution or its ETag"),
            ));
        };
        let labels = self
            .distribution_labels(&distribution.arn, operation)
            .await?;
        if !labels.is_owned_by(&self.fleet) {
            tracing::debug!(provider = %self.id, distribution = %id, "not this fleet's distribution; left alone");
            return Ok(None);
        }
        Ok(Some((distribution, etag, labels)))
    }

    /// The front a distribution of the fleet stands for. An origin DAMM cannot read an
    /// address from (changed by hand) is reported as 0.0.0.0, which leads to no ingress:
    /// the planner then moves or retires the front.
    fn front(&self, dist: &Dist, labels: Labels) -> Front {
        let origin = dist.origin.as_deref().and_then(address_of_origin);
        if origin.is_none() {
            tracing::warn!(provider = %self.id, distribution = %dist.id, origin = ?dist.origin, "front origin names no address");
        }
        Front {
            reference: FrontRef::new(&self.id, &dist.id),
            hostname: dist.domain_name.clone(),
            origin: origin.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            labels,
        }
    }

    fn build_failed(&self, operation: Operation, e: impl std::fmt::Display) -> Error {
        self.error(
            ErrorKind::Unexpected,
            operation,
            format!("the distribution configuration could not be built: {e}"),
        )
    }

    /// The origins of a distribution pointing at `origin_name`: the gateway's T3 port over
    /// plain HTTP (the gateway's T3 listener is HTTP behind the CDN's TLS).
    fn origins(&self, origin_name: &str, operation: Operation) -> Result<Origins> {
        let fail = |e| self.build_failed(operation, e);
        let custom = CustomOriginConfig::builder()
            .http_port(i32::from(self.settings.front_origin_port))
            .https_port(443)
            .origin_protocol_policy(OriginProtocolPolicy::HttpOnly)
            .origin_read_timeout(self.settings.front_read_timeout_s as i32)
            .build()
            .map_err(fail)?;
        let origin = Origin::builder()
            .id(ORIGIN_ID)
            .domain_name(origin_name)
            .custom_origin_config(custom)
            .build()
            .map_err(fail)?;
        Origins::builder()
            .quantity(1)
            .items(origin)
            .build()
            .map_err(fail)
    }

    /// The default cache behaviour: HTTPS only to viewers, every method, nothing cached,
    /// every viewer header forwarded (the WebSocket upgrade needs its own), no compression.
    fn cache_behavior(&self, operation: Operation) -> Result<DefaultCacheBehavior> {
        let fail = |e| self.build_failed(operation, e);
        let methods = [
            Method::Get,
            Method::Head,
            Method::Options,
            Method::Put,
            Method::Post,
            Method::Patch,
            Method::Delete,
        ];
        let cached = CachedMethods::builder()
            .quantity(2)
            .items(Method::Get)
            .items(Method::Head)
            .build()
            .map_err(fail)?;
        let allowed = AllowedMethods::builder()
            .quantity(methods.len() as i32)
            .set_items(Some(methods.to_vec()))
            .cached_methods(cached)
            .build()
            .map_err(fail)?;
        DefaultCacheBehavior::builder()
            .target_origin_id(ORIGIN_ID)
            .viewer_protocol_policy(ViewerProtocolPolicy::HttpsOnly)
            .allowed_methods(allowed)
            .cache_policy_id(CACHING_DISABLED)
            .origin_request_policy_id(ALL_VIEWER)
            .compress(false)
            .build()
            .map_err(fail)
    }

    /// A new distribution's configuration.
    fn new_config(
        &self,
        key: &IdempotencyKey,
        origin_name: &str,
        operation: Operation,
    ) -> Result<DistributionConfig> {
        DistributionConfig::builder()
            .caller_reference(self.caller_reference(key))
            .comment(self.fleet_comment())
            .enabled(true)
            .origins(self.origins(origin_name, operation)?)
            .default_cache_behavior(self.cache_behavior(operation)?)
            .price_class(PriceClass::from(self.settings.front_price_class.as_str()))
            .is_ipv6_enabled(true)
            .build()
            .map_err(|e| self.build_failed(operation, e))
    }

    /// The fleet's front of `key`, with whether it is enabled.
    async fn front_by_key(
        &self,
        key: &IdempotencyKey,
        operation: Operation,
    ) -> Result<Option<(Front, bool)>> {
        let found = self.fleet_distributions(operation).await?;
        Ok(found
            .into_iter()
            .find(|(_, labels)| labels.key().as_ref() == Some(key))
            .map(|(dist, labels)| (self.front(&dist, labels), dist.enabled)))
    }

    /// Points distribution `id` at `origin` and enables it (a front being retired comes
    /// back into service this way). Unchanged when it already is so.
    async fn point(&self, id: &str, origin: IpAddr, operation: Operation) -> Result<Front> {
        let origin_name = self.origin_name(origin, operation)?;
        let Some((distribution, etag, labels)) = self.owned_distribution(id, operation).await?
        else {
            return Err(self.error(
                ErrorKind::NotFound,
                operation,
                format!("no distribution {id} of fleet {}", self.fleet),
            ));
        };
        let current = Dist::of_distribution(&distribution);
        if current.enabled && current.origin.as_deref() == Some(origin_name.as_str()) {
            return Ok(self.front(&current, labels));
        }
        let Some(mut config) = distribution.distribution_config else {
            return Err(self.error(
                ErrorKind::Unexpected,
                operation,
                format!("GetDistribution {id} answered without its configuration"),
            ));
        };
        // DAMM's own shape, whatever was there: one origin, its behaviour, enabled.
        config.origins = Some(self.origins(&origin_name, operation)?);
        config.default_cache_behavior = Some(self.cache_behavior(operation)?);
        config.enabled = true;
        let client = self.cloudfront().await;
        let request = client
            .update_distribution()
            .id(id)
            .if_match(etag)
            .distribution_config(config);
        // Not retried blindly: after a lost answer the ETag has moved (PreconditionFailed).
        let updated = self
            .cf_call(operation, false, || request.clone().send())
            .await?;
        let dist = updated
            .distribution
            .as_ref()
            .map(Dist::of_distribution)
            .unwrap_or_else(|| Dist {
                enabled: true,
                origin: Some(origin_name.clone()),
                ..current
            });
        tracing::info!(provider = %self.id, distribution = %id, hostname = %dist.domain_name, %origin, "pointed front");
        Ok(self.front(&dist, labels))
    }

    /// A retire that cannot finish yet: temporary, so that it is called again.
    fn pending(&self, id: &str, why: &str) -> Error {
        self.error(
            ErrorKind::Conflict,
            Operation::RetireFront,
            format!(
                "distribution {id} {why}; CloudFront deletes a distribution only once its \
                 disabling has deployed: retire it again later"
            ),
        )
        .set_temporary(true)
    }

    fn foreign_front(&self, front: &FrontRef, operation: Operation) -> Option<Error> {
        (front.provider != self.id).then(|| {
            self.error(
                ErrorKind::InvalidInput,
                operation,
                format!(
                    "front {front} belongs to provider instance other than `{}`",
                    self.id
                ),
            )
        })
    }

    /// Health of a front: enabled and deployed → healthy; enabled and deploying → unknown;
    /// disabled (being retired) → down.
    pub(super) async fn probe_front(&self, front: &FrontRef) -> Result<(HealthStatus, String)> {
        let operation = Operation::ProbeHealth;
        if let Some(e) = self.foreign_front(front, operation) {
            return Err(e);
        }
        let Some((distribution, _, _)) = self.owned_distribution(&front.id, operation).await?
        else {
            return Err(self.error(
                ErrorKind::NotFound,
                operation,
                format!("no distribution {} of fleet {}", front.id, self.fleet),
            ));
        };
        let dist = Dist::of_distribution(&distribution);
        Ok(match (dist.enabled, dist.deployed()) {
            (true, true) => (
                HealthStatus::Healthy,
                format!("{} enabled and deployed", dist.domain_name),
            ),
            (true, false) => (
                HealthStatus::Unknown,
                format!("{} deploying ({})", dist.domain_name, dist.status),
            ),
            (false, _) => (HealthStatus::Down, format!("{} disabled", dist.domain_name)),
        })
    }
}

#[async_trait]
impl CdnFront for Aws {
    /// Finds the front of `spec.key` (moving it to `spec.origin` and enabling it when it
    /// is elsewhere or being retired), else creates a distribution with its tags.
    async fn publish_front(&self, spec: &FrontSpec) -> Result<Front> {
        let operation = Operation::PublishFront;
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let origin_name = self.origin_name(spec.origin, operation)?;
        if let Some((front, enabled)) = self.front_by_key(&spec.key, operation).await? {
            if enabled && front.origin == spec.origin {
                return Ok(front);
            }
            return self
                .point(&front.reference.id, spec.origin, operation)
                .await;
        }
        let mut labels = spec.labels.clone();
        let _ = labels.insert(LABEL_ROLE, ROLE_FRONT);
        let tags = labels
            .iter()
            .map(|(k, v)| CfTag::builder().key(k).value(v).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.build_failed(operation, e))?;
        let with_tags = DistributionConfigWithTags::builder()
            .distribution_config(self.new_config(&spec.key, &origin_name, operation)?)
            .tags(Tags::builder().set_items(Some(tags)).build())
            .build();
        let client = self.cloudfront().await;
        let request = client
            .create_distribution_with_tags()
            .distribution_config_with_tags(with_tags);
        // The caller reference makes a repeat of this request the same distribution.
        let created = self
            .cf_call(operation, true, || request.clone().send())
            .await
            .and_then(|answer| {
                answer.distribution.ok_or_else(|| {
                    self.error(
                        ErrorKind::Unexpected,
                        operation,
                        "CreateDistributionWithTags answered without the distribution",
                    )
                })
            });
        let created = created.map(|d| self.front(&Dist::of_distribution(&d), labels.clone()));
        let front = create_or_adopt(created, || async {
            Ok(self
                .front_by_key(&spec.key, operation)
                .await?
                .map(|(front, _)| front))
        })
        .await?;
        tracing::info!(provider = %self.id, distribution = %front.reference.id, hostname = %front.hostname, "published front");
        Ok(front)
    }

    async fn repoint_front(&self, front: &FrontRef, origin: IpAddr) -> Result<Front> {
        let operation = Operation::RepointFront;
        if let Some(e) = self.foreign_front(front, operation) {
            return Err(e);
        }
        self.point(&front.id, origin, operation).await
    }

    /// Disables, then (on a later call, once that deployed) deletes; see the module docs.
    async fn retire_front(&self, front: &FrontRef) -> Result<()> {
        let operation = Operation::RetireFront;
        if let Some(e) = self.foreign_front(front, operation) {
            return Err(e);
        }
        // Gone, or not this fleet's: nothing of ours to retire.
        let Some((distribution, etag, _)) =
            found(self.owned_distribution(&front.id, operation).await)?.flatten()
        else {
            return Ok(());
        };
        let dist = Dist::of_distribution(&distribution);
        let client = self.cloudfront().await;
        if dist.enabled {
            let Some(mut config) = distribution.distribution_config else {
                return Err(self.error(
                    ErrorKind::Unexpected,
                    operation,
                    format!(
                        "GetDistribution {} answered without its configuration",
                        dist.id
                    ),
                ));
            };
            config.enabled = false;
            let request = client
                .update_distribution()
                .id(&dist.id)
                .if_match(etag)
                .distribution_config(config);
            self.cf_call(operation, false, || request.clone().send())
                .await?;
            tracing::info!(provider = %self.id, distribution = %dist.id, "disabled front; it is deleted once that deployed");
            return Err(self.pending(&dist.id, "was disabled now"));
        }
        if !dist.deployed() {
            return Err(self.pending(
                &dist.id,
                &format!("is disabled and still deploying ({})", dist.status),
            ));
        }
        let request = client.delete_distribution().id(&dist.id).if_match(etag);
        if gone_is_fine(
            self.cf_call(operation, true, || request.clone().send())
                .await,
        )? {
            tracing::info!(provider = %self.id, distribution = %dist.id, "deleted front");
        }
        Ok(())
    }

    async fn list_fronts(&self) -> Result<Vec<Front>> {
        let operation = Operation::ListFronts;
        Ok(self
            .fleet_distributions(operation)
            .await?
            .into_iter()
            .map(|(dist, labels)| self.front(&dist, labels))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_names_carry_the_address_both_ways() {
        for (address, label) in [
            ("192.0.2.10", "192-0-2-10"),
            ("2001:db8::1", "2001-db8--1"),
            ("2001:db8:1:2:3:4:5:6", "2001-db8-1-2-3-4-5-6"),
        ] {
            let address: IpAddr = address.parse().unwrap();
            assert_eq!(address_label(address), label);
            let name = format!("{label}.origin.example.net");
            assert!(valid_dns_name(&name), "{name}");
            assert_eq!(address_of_origin(&name), Some(address));
        }
        assert_eq!(address_of_origin("www.example.net"), None);
        assert_eq!(address_of_origin("1-2-3.example.net"), None);
        assert_eq!(address_of_origin("300-2-3-4.example.net"), None);
    }
}
