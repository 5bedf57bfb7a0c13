//! Step 8 of a tick: allocate and release front doors and egress addresses.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn addresses(&mut self) {
        // Per node index: holds a front door (bit 0) / an egress address (bit 1).
        let mut has: Vec<u8> = vec![0; self.fleet.nodes.len()];
        let bit = |kind: AddressKind| match kind {
            AddressKind::Frontdoor => 1u8,
            AddressKind::EgressIp => 2u8,
            AddressKind::Front => 4u8,
            AddressKind::Overlay => 8u8,
        };
        // Node index per key, for the nodes addresses name (built only when there are any).
        let by_key: FastMap<&str, usize> = if self.fleet.addresses.is_empty() {
            FastMap::default()
        } else {
            self.nodes
                .iter()
                .map(|&i| (self.node(i).key.as_str(), i))
                .collect()
        };
        for a in &self.fleet.addresses {
            // Fronts and overlay memberships are planned with their own providers' caps.
            if !a.owned || a.kind.is_entry() {
                continue;
            }
            let Some(px) = self.providers.index(&a.provider) else {
                continue;
            };
            let serving = a.node.as_ref().and_then(|k| {
                by_key
                    .get(k.as_str())
                    .copied()
                    .filter(|&i| matches!(self.status[i], Some(Status::Active | Status::Spare)))
            });
            match serving {
                Some(i) => has[i] |= bit(a.kind),
                None if self.providers.dark(px) => {}
                None => self.actions.push(Action::Release {
                    key: a.key.clone(),
                    kind: a.kind,
                    provider: a.provider.clone(),
                    region: a.region.clone(),
                    reason: "its node is draining or gone".into(),
                }),
            }
        }
        for k in 0..self.nodes.len() {
            let i = self.nodes[k];
            let n = self.node(i);
            if !matches!(self.status[i], Some(Status::Active | Status::Spare))
                || self.health[i] != Health::Healthy
            {
                continue;
            }
            let Some(r) = self.region_policy[i] else {
                continue;
            };
            let p = self.providers.policy(self.provider_of[i]);
            let kind = match n.role {
                NodeRole::Ingress if r.frontdoors && p.frontdoors => AddressKind::Frontdoor,
                NodeRole::Egress if r.egress_ips && p.egress_ips => AddressKind::EgressIp,
                _ => continue,
            };
            if has[i] & bit(kind) != 0 {
                continue;
            }
            let suffix = match kind {
                AddressKind::Frontdoor => "fd",
                AddressKind::EgressIp => "ip",
                AddressKind::Front => "cdn",
                AddressKind::Overlay => "ov",
            };
            let mut key = format!("{}-{suffix}", n.key);
            if key.len() > 63 {
                key = format!("{suffix}{}", self.serial);
                self.serial += 1;
            }
            let Ok(key) = IdempotencyKey::new(key) else {
                continue;
            };
            self.actions.push(Action::Allocate {
                key,
                kind,
                node: n.key.clone(),
                provider: n.provider.clone(),
                region: n.region.clone(),
            });
        }
    }
}
