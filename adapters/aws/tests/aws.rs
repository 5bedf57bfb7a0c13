//! The AWS adapter on the real `aws-sdk-ec2` and `aws-sdk-cloudfront` against moto's
//! emulator on 127.0.0.1, and (ignored) against real AWS with `DAMM_LIVE_AWS=1`. The
//! CloudFront fronts' own cases are in `cloudfront.rs`.

mod common;

use std::time::Duration;

use common::{Moto, SECRET_ACCESS_KEY, Ticking, adapter, config};
use damm_adapter_aws::{Aws, CAPABILITIES};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks::{self, fleet, node_spec};
use damm_provider::testkit::{self, Fixture};
use damm_provider::{
    AddressSpec, EgressIpRef, ErrorKind, FrontdoorRef, HealthStatus, IdempotencyKey, Labels,
    NodeFilter, NodeRef, NodeRole, NodeState, Provider, Target,
};

fn fixture(fleet_name: &str) -> Fixture {
    let mut fixture = Fixture::new(
        CAPABILITIES,
        fleet(fleet_name),
        "eu-central".parse().unwrap(),
    );
    fixture.timeout = Duration::from_secs(20);
    fixture
}

#[tokio::test]
async fn passes_the_conformance_suite_against_moto() {
    let moto = Moto::start();
    // The suite retires a front once; CloudFront's takes two calls (see `Ticking`).
    let provider = Ticking::new(adapter(&moto, "conformance", &[]));
    let report = testkit::run(&provider, &fixture("conformance")).await;
    println!("{report}");
    report.assert_passed();
}

#[tokio::test]
async fn passes_the_conformance_suite_with_addresses_on_nodes() {
    let moto = Moto::start();
    let provider = Ticking::new(adapter(&moto, "conformance", &[]));
    let mut fixture = fixture("conformance");
    // Front doors and egress IPs associated with an instance, then released from it.
    fixture.addresses_need_node = true;
    testkit::run(&provider, &fixture).await.assert_passed();
}

#[tokio::test]
async fn lists_beyond_one_page() {
    let moto = Moto::start();
    // moto pages DescribeInstances by reservation: seven creates, five per page.
    let provider = adapter(&moto, "pages", &[("DAMM_AWS_PAGE_SIZE", "5")]);
    let compute = provider.compute().unwrap();
    checks::create_nodes(compute, "pages", NodeRole::Egress, 7).await;
    let nodes = checks::nodes(&provider).await;
    assert_eq!(nodes.len(), 7, "every page was read: {nodes:#?}");
    assert!(nodes.iter().all(|n| n.labels.is_owned_by(&fleet("pages"))));
    assert!(nodes.iter().all(|n| n.roles == [NodeRole::Egress]));
    assert!(
        nodes
            .iter()
            .all(|n| n.provider_region == "eu-central-1" && n.region.as_str() == "eu-central")
    );
    let mut by_region = NodeFilter::all();
    by_region.region = Some("eu-central".parse().unwrap());
    assert_eq!(provider.list_nodes(&by_region).await.unwrap().len(), 7);
    by_region.region = Some("us-east".parse().unwrap());
    assert!(provider.list_nodes(&by_region).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_repeated_create_adopts_the_first_instance() {
    let moto = Moto::start();
    let provider = adapter(&moto, "idem", &[]);
    let compute = provider.compute().unwrap();
    let mut spec = node_spec("idem", "same-key", NodeRole::Ingress);
    spec.user_data = Some(damm_provider::UserData::new("#cloud-config\n"));
    let first = compute.create_node(&spec).await.unwrap();
    let second = compute.create_node(&spec).await.unwrap();
    assert_eq!(first.reference, second.reference);
    assert!(
        first.reference.id.starts_with("eu-central-1/i-"),
        "{}",
        first.reference
    );
    assert_eq!(first.key().unwrap().as_str(), "same-key");
    let mut by_key = NodeFilter::all();
    by_key.labels = Labels::owned(&fleet("idem"), &IdempotencyKey::new("same-key").unwrap());
    assert_eq!(provider.list_nodes(&by_key).await.unwrap().len(), 1);

    // Another fleet in the same account does not see it, and gets its own.
    let other = adapter(&moto, "other", &[]);
    assert!(checks::nodes(&other).await.is_empty());
    let theirs = other
        .compute()
        .unwrap()
        .create_node(&node_spec("other", "same-key", NodeRole::Ingress))
        .await
        .unwrap();
    assert_ne!(theirs.reference, first.reference);
    checks::expect_err(
        other.compute().unwrap().drain_node(&first.reference).await,
        ErrorKind::NotFound,
    );
}

#[tokio::test]
async fn drain_tags_and_retire_terminates() {
    let moto = Moto::start();
    let provider = adapter(&moto, "life", &[]);
    let compute = provider.compute().unwrap();
    let node = compute
        .create_node(&node_spec("life", "drain-me", NodeRole::Ingress))
        .await
        .unwrap();
    compute.drain_node(&node.reference).await.unwrap();
    let listed = checks::nodes(&provider).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, NodeState::Draining);
    assert_eq!(listed[0].labels.get("damm-draining"), Some("true"));
    compute.retire_node(&node.reference).await.unwrap();
    assert!(checks::nodes(&provider).await.is_empty());
    compute
        .retire_node(&node.reference)
        .await
        .expect("retiring twice is fine");
    let signal = provider
        .probe_health(&Target::Node(node.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Down, "{}", signal.detail);
}

#[tokio::test]
async fn unknown_resources_map_to_not_found() {
    let moto = Moto::start();
    let provider = adapter(&moto, "unknown", &[]);
    let compute = provider.compute().unwrap();
    let missing = NodeRef::new("aws", "eu-central-1/i-0123456789abcdef0");

    // InvalidInstanceID.NotFound from DescribeInstances.
    let err = checks::expect_failure(
        provider.probe_health(&Target::Node(missing.clone())).await,
        ErrorKind::NotFound,
        false,
    );
    assert!(
        err.to_string().contains("InvalidInstanceID.NotFound"),
        "{err}"
    );
    checks::expect_err(compute.drain_node(&missing).await, ErrorKind::NotFound);
    compute
        .retire_node(&missing)
        .await
        .expect("retiring what is gone is fine");
    compute
        .retire_node(&NodeRef::new("aws", "not-one-of-ours"))
        .await
        .expect("an id this adapter never handed out names nothing");

    // InvalidAllocationID.NotFound from DescribeAddresses.
    let door = FrontdoorRef::new("aws", "eu-central-1/eipalloc-0123456789abcdef0");
    let err = checks::expect_err(
        provider
            .probe_health(&Target::Frontdoor(door.clone()))
            .await,
        ErrorKind::NotFound,
    );
    assert!(
        err.to_string().contains("InvalidAllocationID.NotFound"),
        "{err}"
    );
    provider
        .ingress()
        .unwrap()
        .release_ingress_frontdoor(&door)
        .await
        .unwrap();
    provider
        .egress()
        .unwrap()
        .release_egress_ip(&EgressIpRef::new("aws", "eu-central-1/eipalloc-00000000"))
        .await
        .unwrap();
}

#[tokio::test]
async fn addresses_attach_to_nodes_and_detach_on_release() {
    let moto = Moto::start();
    let provider = adapter(&moto, "eip", &[]);
    let node = provider
        .compute()
        .unwrap()
        .create_node(&node_spec("eip", "eip-host", NodeRole::Egress))
        .await
        .unwrap();
    let key = IdempotencyKey::new("eip-1").unwrap();
    let address = AddressSpec {
        labels: Labels::owned(&fleet("eip"), &key),
        key,
        region: "eu-central".parse().unwrap(),
        node: Some(node.reference.clone()),
    };
    let egress = provider.egress().unwrap();
    let ip = egress.allocate_egress_ip(&address).await.unwrap();
    assert_eq!(ip.node.as_ref(), Some(&node.reference));
    assert_eq!(ip.labels.get("damm-role"), Some("egress"));
    let again = egress.allocate_egress_ip(&address).await.unwrap();
    assert_eq!(again.reference, ip.reference, "allocated once per key");
    assert_eq!(checks::egress_ips(&provider).await.len(), 1);
    assert!(
        checks::frontdoors(&provider).await.is_empty(),
        "egress IPs are not front doors"
    );
    let signal = provider
        .probe_health(&Target::EgressIp(ip.reference.clone()))
        .await
        .unwrap();
    assert_eq!(signal.status, HealthStatus::Healthy, "{}", signal.detail);
    egress.release_egress_ip(&ip.reference).await.unwrap();
    assert!(checks::egress_ips(&provider).await.is_empty());
    egress.release_egress_ip(&ip.reference).await.unwrap();
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated_and_never_shown() {
    // With INITIAL_NO_AUTH_ACTION_COUNT=0 moto checks every request's access key.
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let config = config(&moto, "auth", &[]);
    let provider = Aws::from_config(&config).unwrap();
    let err = checks::expect_failure(
        provider.list_nodes(&NodeFilter::all()).await,
        ErrorKind::Unauthenticated,
        false,
    );
    assert!(err.to_string().contains("AuthFailure"), "{err}");
    let err = checks::expect_err(
        provider.probe_health(&Target::Api).await,
        ErrorKind::Unauthenticated,
    );
    for shown in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{:?}", std::error::Error::source(&err)),
        format!("{provider:?}"),
        format!("{config:?}"),
    ] {
        assert!(!shown.contains(SECRET_ACCESS_KEY), "secret shown: {shown}");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_temporary_unavailable() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        ("DAMM_AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("DAMM_AWS_ACCESS_KEY_ID", "AKIDX".to_owned()),
        ("DAMM_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
    ];
    let provider =
        Aws::from_config(&AdapterConfig::new(fleet("dark"), "aws").with_env(env)).unwrap();
    let err = checks::expect_failure(
        provider.probe_health(&Target::Api).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(!format!("{err:?}").contains(SECRET_ACCESS_KEY));
}

#[tokio::test]
async fn configuration_is_checked() {
    let moto = Moto::start();
    let no_ami = {
        let env = [
            ("DAMM_AWS_ENDPOINT_URL", moto.url()),
            ("DAMM_AWS_ACCESS_KEY_ID", "AKIDX".to_owned()),
            ("DAMM_AWS_SECRET_ACCESS_KEY", "x".to_owned()),
        ];
        Aws::from_config(&AdapterConfig::new(fleet("cfg"), "aws").with_env(env)).unwrap()
    };
    let compute = no_ami.compute().unwrap();
    let err = checks::expect_err(
        compute
            .create_node(&node_spec("cfg", "no-ami", NodeRole::Ingress))
            .await,
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("DAMM_AWS_AMI"), "{err}");

    let provider = adapter(&moto, "cfg", &[]);
    let compute = provider.compute().unwrap();
    checks::check_unplaceable_creates(compute, "cfg").await;
    assert_eq!(
        compute
            .price("medium", &"eu-central".parse().unwrap())
            .map(|p| (p.monthly_cents, p.currency)),
        Some((1518, "USD".to_owned()))
    );

    let err = checks::expect_err(
        Aws::from_config(
            &AdapterConfig::new(fleet("cfg"), "aws")
                .with_env([("DAMM_AWS_ACCESS_KEY_ID", "AKIDX")]),
        ),
        ErrorKind::InvalidInput,
    );
    assert!(err.to_string().contains("secret_access_key"), "{err}");
}

/// Runs the conformance suite against real AWS: it creates (and removes) instances, Elastic
/// IPs and a CloudFront distribution in the account of the standard credential chain
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` or `AWS_PROFILE`).
/// `DAMM_AWS_AMI` (or `DAMM_AWS_AMIS`) names the image, `DAMM_AWS_FRONT_ORIGIN_DOMAIN` the
/// front origins' domain; `DAMM_LIVE_AWS_REGION` the DAMM region (eu-central). Retiring
/// the front waits for CloudFront to deploy its disabling (minutes).
#[tokio::test]
#[ignore = "needs DAMM_LIVE_AWS=1, AWS credentials, DAMM_AWS_AMI and DAMM_AWS_FRONT_ORIGIN_DOMAIN; creates billable resources"]
async fn live_conformance() {
    assert_eq!(
        std::env::var("DAMM_LIVE_AWS").as_deref(),
        Ok("1"),
        "set DAMM_LIVE_AWS=1 to run against real AWS"
    );
    let region = std::env::var("DAMM_LIVE_AWS_REGION").unwrap_or_else(|_| "eu-central".to_owned());
    let fleet = fleet("damm-live-conformance");
    // The process environment: DAMM_AWS_* settings, AWS_* credentials for the chain.
    let config = AdapterConfig::new(fleet.clone(), "aws");
    let provider = Ticking {
        inner: Aws::from_config(&config).expect("configured from DAMM_AWS_*"),
        every: Duration::from_secs(30),
        patience: Duration::from_secs(30 * 60),
    };
    let mut fixture = Fixture::new(CAPABILITIES, fleet, region.parse().unwrap());
    fixture.timeout = Duration::from_secs(300);
    fixture.poll = Duration::from_secs(5);
    fixture.addresses_need_node = true;
    testkit::run(&provider, &fixture).await.assert_passed();
}
