//! Synthetic fleets for the plan benchmark and the timing example: N nodes over 8
//! providers and 20 regions, converged but with churn (a few failed, draining and due
//! nodes, most holding their static address).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use damm_fleet::{AddressKind, Fleet, FleetAddress, FleetNode, Policy, ScoreBook, Status};
use damm_provider::{IdempotencyKey, NodeRole, NodeState, Region};

const PROVIDERS: usize = 8;
const REGIONS: usize = 20;

/// The policy for a fleet of `nodes`.
pub(crate) fn policy(nodes: usize) -> Policy {
    let regions: Vec<String> = (0..REGIONS).map(|r| format!("region-{r:02}")).collect();
    let list = regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let per_region = nodes / REGIONS;
    let mut text = String::from(
        "[fleet]\nid = \"bench\"\nmode = \"apply\"\n[limits]\ncreates_per_tick = 50\nretires_per_tick = 50\nmonthly_spend_cap = 10000000.0\n",
    );
    for p in 0..PROVIDERS {
        text += &format!(
            "[providers.p{p}]\nmax_nodes = {}\ncreates_per_tick = 10\nregions = [{list}]\nprices = {{ small = {}.5 }}\nfrontdoors = true\negress_ips = true\n",
            nodes,
            4 + p
        );
    }
    for r in &regions {
        text += &format!(
            "[regions.{r}]\ningress = {{ min = {}, max = {} }}\negress = {{ min = {}, max = {} }}\nwarm_spares = 3\nmin_providers = 4\nrotate_ingress_after = \"6h\"\nrotate_egress_after = \"7d\"\nfrontdoors = true\negress_ips = true\n",
            per_region * 7 / 10,
            per_region,
            per_region / 5,
            per_region / 4,
        );
    }
    Policy::parse(&text, "bench").unwrap()
}

/// The fleet and its scores.
pub(crate) fn fleet(nodes: usize, now: DateTime<Utc>) -> (Fleet, ScoreBook) {
    let scoring = damm_fleet::policy::Scoring::default();
    let mut book = ScoreBook::default();
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut fleet = Fleet::default();
    for i in 0..nodes {
        let role = if i % 5 == 0 {
            NodeRole::Egress
        } else {
            NodeRole::Ingress
        };
        let key = IdempotencyKey::new(format!("n{i}")).unwrap();
        // Created over the last ~6.5 hours: about a tenth are due for rotation (6 h).
        let age = TimeDelta::seconds((next() % 23_500) as i64);
        let status = match next() % 20 {
            0 => Status::Spare,
            1 => Status::Draining,
            _ => Status::Active,
        };
        fleet.nodes.push(FleetNode {
            key: key.clone(),
            provider: format!("p{}", next() as usize % PROVIDERS),
            id: Some(i.to_string()),
            region: Region::new(format!("region-{:02}", next() as usize % REGIONS)).unwrap(),
            role,
            owned: next() % 50 != 0,
            status,
            status_since: now - age,
            state: NodeState::Running,
            created_at: now - age,
        });
        // A converged fleet: most nodes hold their address already.
        if status != Status::Draining && next() % 20 != 0 {
            fleet.addresses.push(FleetAddress {
                key: IdempotencyKey::new(format!("a{i}")).unwrap(),
                provider: fleet.nodes[i].provider.clone(),
                id: Some(format!("a{i}")),
                region: fleet.nodes[i].region.clone(),
                kind: if role == NodeRole::Ingress {
                    AddressKind::Frontdoor
                } else {
                    AddressKind::EgressIp
                },
                node: Some(key.clone()),
                owned: true,
                endpoint: None,
            });
        }
        let ok = next() % 50 != 0;
        book.probe(
            key.as_str(),
            now,
            ok,
            Some(Duration::from_millis(10 + next() % 200)),
            &scoring,
        );
    }
    fleet.next_serial = nodes as u64;
    (fleet, book)
}
