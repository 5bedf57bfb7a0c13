//! `wg-quick` rendering: a golden file and the refusals.

use damm_catalog::{ClientConfig, Role, WgConfigError, render_wg_quick};

use crate::common::path;

const CLIENT_PRIVATE: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const GATEWAY_PUBLIC: &str = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";

fn client(dns: Option<&str>) -> ClientConfig {
    ClientConfig {
        private_key: CLIENT_PRIVATE.parse().unwrap(),
        address: "10.77.0.2/32".to_owned(),
        dns: dns.map(str::to_owned),
    }
}

fn gateway_path(endpoint: &str) -> damm_catalog::Path {
    let mut p = path(
        "eu-central/hetzner-fsn1-a",
        0.93,
        &[(Role::Ingress, "hetzner")],
        endpoint,
    );
    p.gateway_public_key = GATEWAY_PUBLIC.parse().unwrap();
    p
}

#[test]
fn golden_conf() {
    let conf = render_wg_quick(
        &client(Some("10.77.0.1")),
        &gateway_path("203.0.113.10:51820"),
        &["0.0.0.0/0", "::/0"],
        Some(25),
    )
    .unwrap();
    let expected = "\
[Interface]
PrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
Address = 10.77.0.2/32
DNS = 10.77.0.1

[Peer]
# DAMM path eu-central/hetzner-fsn1-a (catalog score 0.93)
PublicKey = q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=
Endpoint = 203.0.113.10:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
";
    assert_eq!(conf, expected);
}

#[test]
fn optional_lines_and_other_endpoints() {
    let conf = render_wg_quick(
        &ClientConfig {
            address: "10.77.0.2/32, fd77::2/128".to_owned(),
            ..client(None)
        },
        &gateway_path("[2001:DB8::10]:51820"),
        &["10.77.0.0/16"],
        None,
    )
    .unwrap();
    assert!(!conf.contains("DNS"), "{conf}");
    assert!(!conf.contains("PersistentKeepalive"), "{conf}");
    assert!(
        conf.contains("Address = 10.77.0.2/32, fd77::2/128\n"),
        "{conf}"
    );
    assert!(conf.contains("Endpoint = [2001:db8::10]:51820\n"), "{conf}");
    let conf = render_wg_quick(
        &client(None),
        &gateway_path("Front.Example.org:443"),
        &["0.0.0.0/0"],
        None,
    )
    .unwrap();
    assert!(
        conf.contains("Endpoint = front.example.org:443\n"),
        "{conf}"
    );
}

#[test]
fn nothing_can_inject_a_line() {
    let good_path = gateway_path("203.0.113.10:51820");
    let bad_address = ClientConfig {
        address: "10.77.0.2/32\nPostUp = touch /tmp/owned".to_owned(),
        ..client(None)
    };
    assert!(matches!(
        render_wg_quick(&bad_address, &good_path, &["0.0.0.0/0"], None),
        Err(WgConfigError::Cidr {
            field: "Address",
            ..
        })
    ));
    assert!(matches!(
        render_wg_quick(
            &client(Some("1.1.1.1\nPostUp = x")),
            &good_path,
            &["0.0.0.0/0"],
            None
        ),
        Err(WgConfigError::Dns(_))
    ));
    assert!(matches!(
        render_wg_quick(&client(None), &good_path, &["0.0.0.0/0\nPostUp = x"], None),
        Err(WgConfigError::Cidr {
            field: "AllowedIPs",
            ..
        })
    ));
    assert!(matches!(
        render_wg_quick(&client(None), &good_path, &[], None),
        Err(WgConfigError::NoAllowedIps)
    ));
    assert!(matches!(
        render_wg_quick(
            &client(None),
            &gateway_path("203.0.113.10:1\nPostUp = x"),
            &["0.0.0.0/0"],
            None
        ),
        Err(WgConfigError::Endpoint { .. })
    ));
    let mut odd_id = good_path.clone();
    odd_id.path_id = "a\nPostUp = x".to_owned();
    let conf = render_wg_quick(&client(None), &odd_id, &["0.0.0.0/0"], None).unwrap();
    assert!(!conf.lines().any(|l| l.starts_with("PostUp")), "{conf}");
}

#[test]
fn the_client_public_key_is_derived() {
    let private: damm_catalog::PrivateKey = CLIENT_PRIVATE.parse().unwrap();
    let pair = damm_catalog::KeyPair::from_private(private);
    assert_eq!(pair.public_key(), pair.private_key().public_key());
    assert!(!format!("{pair:?}").contains(CLIENT_PRIVATE));
}
