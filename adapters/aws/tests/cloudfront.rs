//! CloudFront fronts (`cdn_front`) on the real `aws-sdk-cloudfront` against moto's
//! CloudFront emulator on 127.0.0.1: what a front is made of, ownership, repointing, the
//! two-call retire, errors. A second CloudFront client of the test's own plants foreign
//! distributions and reads what the adapter made.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_cloudfront::types::{
    CustomOriginConfig, DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags,
    Origin, OriginProtocolPolicy, Origins, Tag, Tags, ViewerProtocolPolicy,
};
use common::{FRONT_ORIGIN_DOMAIN, Moto, SECRET_ACCESS_KEY, adapter, config};
use damm_adapter_aws::Aws;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks::{self, fleet};
use damm_provider::{
    CdnFront, ErrorKind, Front, FrontRef, FrontSpec, HealthStatus, IdempotencyKey, Labels,
    Provider, Target,
};

const ORIGIN: &str = "192.0.2.10";
const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const ALL_VIEWER: &str = "216adef6-5c7f-47e4-b989-5492eafa07d3";

fn cdn(provider: &Aws) -> &dyn CdnFront {
    provider.cdn_front().expect("the aws adapter has cdn_front")
}

fn spec(fleet_name: &str, key: &str, origin: &str) -> FrontSpec {
    let key = IdempotencyKey::new(key).unwrap();
    FrontSpec {
        name: format!("w{key}"),
        origin: origin.parse().unwrap(),
        labels: Labels::owned(&fleet(fleet_name), &key),
        key,
    }
}

/// The distribution as moto holds it: its configuration (from GetDistributionConfig, as
/// an update would read it) and its tags.
async fn distribution(moto: &Moto, id: &str) -> (DistributionConfig, Vec<(String, String)>) {
    let client = moto.cloudfront();
    let got = client.get_distribution().id(id).send().await.unwrap();
    let arn = got.distribution.unwrap().arn;
    let config = client
        .get_distribution_config()
        .id(id)
        .send()
        .await
        .unwrap()
        .distribution_config
        .unwrap();
    let tags = client
        .list_tags_for_resource()
        .resource(arn)
        .send()
        .await
        .unwrap()
        .tags
        .and_then(|t| t.items)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value.unwrap_or_default()))
        .collect();
    (config, tags)
}

async fn exists(moto: &Moto, id: &str) -> bool {
    match moto.cloudfront().get_distribution().id(id).send().await {
        Ok(_) => true,
        Err(e) => {
            let text = format!("{e:?}");
            assert!(text.contains("NoSuchDistribution"), "{text}");
            false
        }
    }
}

fn origin_of(config: &DistributionConfig) -> &Origin {
    &config.origins.as_ref().expect("origins").items[0]
}

/// Plants a distribution behind the adapter's back: `comment`, and `tags` when given.
async fn plant(moto: &Moto, reference: &str, comment: &str, tags: &[(&str, &str)]) -> String {
    let custom = CustomOriginConfig::builder()
        .http_port(80)
        .https_port(443)
        .origin_protocol_policy(OriginProtocolPolicy::HttpOnly)
        .build()
        .unwrap();
    let origin = Origin::builder()
        .id("site")
        .domain_name("www.example.org")
        .custom_origin_config(custom)
        .build()
        .unwrap();
    let behavior = DefaultCacheBehavior::builder()
        .target_origin_id("site")
        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
        .cache_policy_id(CACHING_DISABLED)
        .build()
        .unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(reference)
        .comment(comment)
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .unwrap(),
        )
        .default_cache_behavior(behavior)
        .build()
        .unwrap();
    let client = moto.cloudfront();
    let distribution = if tags.is_empty() {
        client
            .create_distribution()
            .distribution_config(config)
            .send()
            .await
            .unwrap()
            .distribution
    } else {
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
            .collect();
        let with_tags = DistributionConfigWithTags::builder()
            .distribution_config(config)
            .tags(Tags::builder().set_items(Some(tags)).build())
            .build();
        client
            .create_distribution_with_tags()
            .distribution_config_with_tags(with_tags)
            .send()
            .await
            .unwrap()
            .distribution
    };
    distribution.unwrap().id
}

#[tokio::test]
async fn a_front_is_a_tagged_distribution_listed_with_its_hostname() {
    let moto = Moto::start();
    let provider = adapter(&moto, "cf", &[]);
    let fronts = cdn(&provider);
    let spec = spec("cf", "gw-1-cdn", ORIGIN);
    let front = fronts.publish_front(&spec).await.unwrap();
    // The distribution's own name (CloudFront's are `d` and 13 characters; moto's are
    // random letters).
    let label = front.hostname.strip_suffix(".cloudfront.net");
    assert!(
        label.is_some_and(|l| !l.is_empty() && !l.contains('.')),
        "the distribution's own name: {}",
        front.hostname
    );
    assert_eq!(front.origin, spec.origin);
    assert_eq!(front.reference.provider, "aws");
    assert!(front.labels.is_owned_by(&fleet("cf")));
    assert_eq!(front.labels.key(), Some(spec.key.clone()));
    assert_eq!(front.labels.get("damm-role"), Some("front"));

    // Listed as the fleet's, with the same hostname and origin.
    assert_eq!(fronts.list_fronts().await.unwrap(), vec![front.clone()]);

    // A replayed publish finds it.
    let again = fronts.publish_front(&spec).await.unwrap();
    assert_eq!(again, front);
    assert_eq!(fronts.list_fronts().await.unwrap().len(), 1);

    // What CloudFront holds: one custom origin by DNS name, plain HTTP to the T3 port,
    // HTTPS to viewers, every method, nothing cached, every viewer header forwarded.
    let (config, tags) = distribution(&moto, &front.reference.id).await;
    assert!(config.enabled);
    assert_eq!(config.comment, "damm-fleet=cf");
    let origin = origin_of(&config);
    assert_eq!(
        origin.domain_name,
        format!("192-0-2-10.{FRONT_ORIGIN_DOMAIN}")
    );
    let custom = origin
        .custom_origin_config
        .as_ref()
        .expect("a custom origin");
    assert_eq!(
        custom.origin_protocol_policy,
        OriginProtocolPolicy::HttpOnly
    );
    assert_eq!(custom.http_port, 80);
    assert_eq!(custom.origin_read_timeout, Some(60));
    let behavior = config.default_cache_behavior.as_ref().unwrap();
    assert_eq!(behavior.target_origin_id, origin.id);
    assert_eq!(
        behavior.viewer_protocol_policy,
        ViewerProtocolPolicy::HttpsOnly
    );
    assert_eq!(behavior.cache_policy_id.as_deref(), Some(CACHING_DISABLED));
    assert_eq!(
        behavior.origin_request_policy_id.as_deref(),
        Some(ALL_VIEWER)
    );
    let methods = &behavior.allowed_methods.as_ref().unwrap().items;
    assert_eq!(methods.len(), 7, "{methods:?}");
    for (k, v) in [
        ("damm-fleet", "cf"),
        ("damm-key", "gw-1-cdn"),
        ("damm-role", "front"),
    ] {
        assert!(
            tags.contains(&(k.to_owned(), v.to_owned())),
            "tag {k}={v} set at creation: {tags:?}"
        );
    }

    // Deployed and enabled: healthy.
    let signal = provider
        .probe_health(&Target::Front(front.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Healthy, "{}", signal.detail);

    // Another fleet in the same account sees none of it.
    let other = adapter(&moto, "other", &[]);
    assert!(cdn(&other).list_fronts().await.unwrap().is_empty());
}

#[tokio::test]
async fn distributions_without_the_fleet_tag_are_never_listed_or_touched() {
    let moto = Moto::start();
    let provider = adapter(&moto, "mine", &[]);
    let fronts = cdn(&provider);
    let ours = fronts
        .publish_front(&spec("mine", "ours", ORIGIN))
        .await
        .unwrap();
    // Someone's website; one that copies DAMM's comment but has no tags; one of another
    // fleet with DAMM's comment and tags.
    let site = plant(&moto, "site-1", "the company website", &[]).await;
    let comment_only = plant(&moto, "forged-1", "damm-fleet=mine", &[]).await;
    let other_fleet = plant(
        &moto,
        "other-1",
        "damm-fleet=mine",
        &[("damm-fleet", "theirs"), ("damm-key", "x")],
    )
    .await;
    let listed = fronts.list_fronts().await.unwrap();
    assert_eq!(listed, vec![ours], "only the fleet's tagged distribution");

    for id in [&site, &comment_only, &other_fleet] {
        let foreign = FrontRef::new("aws", id.as_str());
        let before = distribution(&moto, id).await;
        checks::expect_err(
            fronts
                .repoint_front(&foreign, "198.51.100.7".parse().unwrap())
                .await,
            ErrorKind::NotFound,
        );
        fronts
            .retire_front(&foreign)
            .await
            .expect("not ours: nothing of ours to retire");
        checks::expect_err(
            provider.probe_health(&Target::Front(foreign.clone())).await,
            ErrorKind::NotFound,
        );
        let after = distribution(&moto, id).await;
        assert_eq!(before.0, after.0, "{id} untouched");
        assert_eq!(before.1, after.1, "{id}'s tags untouched");
        assert!(after.0.enabled, "{id} still enabled");
    }
    // A front of another provider instance is refused outright.
    let elsewhere = FrontRef::new("cloudflare", site.as_str());
    checks::expect_err(
        fronts.retire_front(&elsewhere).await,
        ErrorKind::InvalidInput,
    );
}

#[tokio::test]
async fn repoint_keeps_the_id_and_hostname_and_moves_the_origin() {
    let moto = Moto::start();
    let provider = adapter(&moto, "move", &[]);
    let fronts = cdn(&provider);
    let front = fronts
        .publish_front(&spec("move", "moving", ORIGIN))
        .await
        .unwrap();
    let to: IpAddr = "198.51.100.7".parse().unwrap();
    let moved = fronts.repoint_front(&front.reference, to).await.unwrap();
    assert_eq!(moved.reference, front.reference);
    assert_eq!(moved.hostname, front.hostname);
    assert_eq!(moved.origin, to);
    assert_eq!(moved.labels, front.labels);
    let (config, _) = distribution(&moto, &front.reference.id).await;
    assert_eq!(
        origin_of(&config).domain_name,
        format!("198-51-100-7.{FRONT_ORIGIN_DOMAIN}")
    );
    assert_eq!(config.origins.as_ref().unwrap().items.len(), 1);
    assert!(config.enabled);
    assert_eq!(fronts.list_fronts().await.unwrap(), vec![moved.clone()]);

    // Idempotent: the same move again changes nothing.
    let again = fronts.repoint_front(&front.reference, to).await.unwrap();
    assert_eq!(again, moved);

    // An IPv6 ingress.
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    let moved = fronts.repoint_front(&front.reference, v6).await.unwrap();
    assert_eq!((moved.origin, &moved.hostname), (v6, &front.hostname));
    let (config, _) = distribution(&moto, &front.reference.id).await;
    assert_eq!(
        origin_of(&config).domain_name,
        format!("2001-db8--7.{FRONT_ORIGIN_DOMAIN}")
    );
}

#[tokio::test]
async fn retire_disables_then_deletes() {
    let moto = Moto::start();
    let provider = adapter(&moto, "bye", &[]);
    let fronts = cdn(&provider);
    let front = fronts
        .publish_front(&spec("bye", "going", ORIGIN))
        .await
        .unwrap();
    let id = front.reference.id.clone();

    // First call: disabled, not deleted (CloudFront refuses to delete an enabled
    // distribution), and said to be pending.
    let err = checks::expect_failure(
        fronts.retire_front(&front.reference).await,
        ErrorKind::Conflict,
        true,
    );
    assert!(err.to_string().contains("disabled"), "{err}");
    assert!(exists(&moto, &id).await);
    let (config, _) = distribution(&moto, &id).await;
    assert!(!config.enabled, "disabled by the first call");
    // Still the fleet's and still listed, so the next tick retires it again.
    assert_eq!(fronts.list_fronts().await.unwrap().len(), 1);
    let signal = provider
        .probe_health(&Target::Front(front.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Down, "{}", signal.detail);

    // Second call: disabled and deployed (moto deploys at the first read), so deleted.
    fronts.retire_front(&front.reference).await.unwrap();
    assert!(!exists(&moto, &id).await);
    assert!(fronts.list_fronts().await.unwrap().is_empty());
    // Gone already: fine.
    fronts.retire_front(&front.reference).await.unwrap();
}

#[tokio::test]
async fn retire_waits_while_the_disabling_deploys() {
    let moto = Moto::start();
    // Distributions stay InProgress for a long while, as CloudFront's do for minutes.
    moto.distributions_deploy_after(Some(1_000));
    let provider = adapter(&moto, "slow", &[]);
    let fronts = cdn(&provider);
    let front = fronts
        .publish_front(&spec("slow", "slow", ORIGIN))
        .await
        .unwrap();
    let signal = provider
        .probe_health(&Target::Front(front.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Unknown, "{}", signal.detail);

    let err = checks::expect_failure(
        fronts.retire_front(&front.reference).await,
        ErrorKind::Conflict,
        true,
    );
    assert!(err.to_string().contains("disabled now"), "{err}");
    // Disabled but not deployed: not deleted yet, however often it is asked.
    for _ in 0..2 {
        let err = checks::expect_failure(
            fronts.retire_front(&front.reference).await,
            ErrorKind::Conflict,
            true,
        );
        assert!(err.to_string().contains("still deploying"), "{err}");
    }
    assert!(exists(&moto, &front.reference.id).await);

    // A repoint meanwhile brings it back into service, hostname kept.
    let back = fronts
        .repoint_front(&front.reference, "198.51.100.9".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(back.hostname, front.hostname);
    assert!(distribution(&moto, &front.reference.id).await.0.enabled);
    let err = checks::expect_failure(
        fronts.retire_front(&front.reference).await,
        ErrorKind::Conflict,
        true,
    );
    assert!(err.to_string().contains("disabled now"), "{err}");

    // Deployed at last: the next call deletes it.
    moto.distributions_deploy_after(None);
    fronts.retire_front(&front.reference).await.unwrap();
    assert!(!exists(&moto, &front.reference.id).await);
}

#[tokio::test]
async fn a_publish_brings_back_a_front_being_retired() {
    let moto = Moto::start();
    moto.distributions_deploy_after(Some(1_000));
    let provider = adapter(&moto, "again", &[]);
    let fronts = cdn(&provider);
    let spec = spec("again", "again", ORIGIN);
    let front = fronts.publish_front(&spec).await.unwrap();
    let _ = fronts.retire_front(&front.reference).await.unwrap_err();
    assert!(!distribution(&moto, &front.reference.id).await.0.enabled);
    // The same key published again (a replay after the release was abandoned): the same
    // distribution, enabled again, rather than a second one.
    let again = fronts.publish_front(&spec).await.unwrap();
    assert_eq!(again.reference, front.reference);
    assert!(distribution(&moto, &front.reference.id).await.0.enabled);
    assert_eq!(fronts.list_fronts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn lists_beyond_one_page() {
    let moto = Moto::start();
    // ListDistributions pages of five: seven fronts, and foreign distributions between.
    let provider = adapter(&moto, "pages", &[("DAMM_AWS_PAGE_SIZE", "5")]);
    let fronts = cdn(&provider);
    let mut published: Vec<Front> = Vec::new();
    for n in 0..7 {
        if n % 2 == 0 {
            plant(&moto, &format!("site-{n}"), "a website", &[]).await;
        }
        let origin = format!("192.0.2.{}", 10 + n);
        published.push(
            fronts
                .publish_front(&spec("pages", &format!("front-{n}"), &origin))
                .await
                .unwrap(),
        );
    }
    // moto does page ListDistributions at five.
    let first = moto
        .cloudfront()
        .list_distributions()
        .max_items(5)
        .send()
        .await
        .unwrap()
        .distribution_list
        .unwrap();
    assert!(first.is_truncated && first.items.unwrap_or_default().len() == 5);
    let mut listed = fronts.list_fronts().await.unwrap();
    listed.sort_by_key(|a| a.labels.key());
    assert_eq!(listed, published, "every page was read");
}

#[tokio::test]
async fn failures_map_to_typed_errors() {
    let moto = Moto::start();
    let provider = adapter(&moto, "errs", &[]);
    let fronts = cdn(&provider);
    let missing = FrontRef::new("aws", "E0123456789ABC");

    // A 404 NoSuchDistribution: not_found, permanent, naming provider and operation.
    let err = checks::expect_failure(
        fronts
            .repoint_front(&missing, ORIGIN.parse().unwrap())
            .await,
        ErrorKind::NotFound,
        false,
    );
    let text = err.to_string();
    assert!(text.contains("NoSuchDistribution"), "{text}");
    assert!(text.starts_with("aws: repoint_front failed"), "{text}");
    let err = checks::expect_err(
        provider.probe_health(&Target::Front(missing.clone())).await,
        ErrorKind::NotFound,
    );
    assert!(err.to_string().contains("NoSuchDistribution"), "{err}");
    fronts
        .retire_front(&missing)
        .await
        .expect("retiring what is gone is fine");

    // A spec without the fleet's labels, and an adapter without an origin domain.
    let mut unlabelled = spec("errs", "no-labels", ORIGIN);
    unlabelled.labels = Labels::new();
    checks::expect_err(
        fronts.publish_front(&unlabelled).await,
        ErrorKind::InvalidInput,
    );
    let env = [
        ("DAMM_AWS_ENDPOINT_URL", moto.url()),
        ("DAMM_AWS_ACCESS_KEY_ID", "AKIDX".to_owned()),
        ("DAMM_AWS_SECRET_ACCESS_KEY", "x".to_owned()),
    ];
    let bare = Aws::from_config(&AdapterConfig::new(fleet("errs"), "aws").with_env(env)).unwrap();
    let err = checks::expect_err(
        cdn(&bare)
            .publish_front(&spec("errs", "no-domain", ORIGIN))
            .await,
        ErrorKind::InvalidInput,
    );
    assert!(
        err.to_string().contains("DAMM_AWS_FRONT_ORIGIN_DOMAIN"),
        "{err}"
    );
    assert!(cdn(&bare).list_fronts().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated_and_never_shown() {
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let config = config(&moto, "auth", &[]);
    let provider = Aws::from_config(&config).unwrap();
    let fronts = cdn(&provider);
    let listed = fronts.list_fronts().await;
    let published = fronts.publish_front(&spec("auth", "k", ORIGIN)).await;
    match (&listed, &published) {
        (Ok(_), Ok(_)) => {
            println!(
                "skipped: this moto does not check credentials on CloudFront calls \
                 (INITIAL_NO_AUTH_ACTION_COUNT=0 had no effect)"
            );
        }
        _ => {
            for result in [listed.map(drop), published.map(drop)] {
                let err = checks::expect_failure(result, ErrorKind::Unauthenticated, false);
                for shown in [format!("{err}"), format!("{err:?}")] {
                    assert!(!shown.contains(SECRET_ACCESS_KEY), "secret shown: {shown}");
                }
            }
        }
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_temporary_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        ("DAMM_AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("DAMM_AWS_ACCESS_KEY_ID", "AKIDX".to_owned()),
        ("DAMM_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ("DAMM_AWS_REQUEST_TIMEOUT_MS", "2000".to_owned()),
    ];
    let provider =
        Aws::from_config(&AdapterConfig::new(fleet("dark"), "aws").with_env(env)).unwrap();
    let started = std::time::Instant::now();
    let err = checks::expect_failure(
        cdn(&provider).list_fronts().await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(!format!("{err:?}").contains(SECRET_ACCESS_KEY));
    assert!(started.elapsed() < Duration::from_secs(60));
}
