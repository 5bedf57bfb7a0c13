//! A toy world for planner tests: applies plans to a `Fleet` the way the shell would,
//! boots created nodes one tick later and probes them.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use damm_fleet::{Action, Fleet, FleetNode, Plan, Policy, ScoreBook, Status};
use damm_provider::{NodeState, Region};

pub fn t0() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + TimeDelta::days(20_000)
}

pub struct World {
    pub policy: Policy,
    pub fleet: Fleet,
    pub book: ScoreBook,
    pub now: DateTime<Utc>,
    /// Providers whose nodes fail their probes and whose API fails.
    pub dark: Vec<String>,
}

impl World {
    pub fn new(policy: Policy) -> Self {
        World {
            policy,
            fleet: Fleet::default(),
            book: ScoreBook::default(),
            now: t0(),
            dark: Vec::new(),
        }
    }

    /// One tick: boot, probe, plan, apply. Returns the plan.
    pub fn tick(&mut self) -> Plan {
        for n in &mut self.fleet.nodes {
            if n.state == NodeState::Provisioning && !self.dark.contains(&n.provider) {
                n.state = NodeState::Running;
            }
        }
        let scoring = self.policy.scoring.clone();
        for n in &self.fleet.nodes {
            if n.state == NodeState::Running {
                let ok = !self.dark.contains(&n.provider);
                self.book.probe(
                    n.key.as_str(),
                    self.now,
                    ok,
                    Some(Duration::from_millis(30)),
                    &scoring,
                );
            }
        }
        let names: Vec<String> = self.policy.adapters().map(|(n, _)| n.to_owned()).collect();
        for p in &names {
            let outcome = if self.dark.contains(p) {
                Err("dark".to_owned())
            } else {
                Ok(())
            };
            self.book
                .provider_tick(p, self.now, outcome, &scoring.breaker);
        }
        let scores = self.book.snapshot(self.now, &scoring);
        let plan = damm_fleet::plan(&self.fleet, &self.policy, &scores, self.now);
        apply(&mut self.fleet, &plan, self.now);
        self.now += self.policy.fleet.tick.chrono();
        plan
    }

    pub fn live(&self, region: &str, role: damm_provider::NodeRole) -> Vec<&FleetNode> {
        self.fleet
            .nodes
            .iter()
            .filter(|n| {
                n.region.as_str() == region
                    && n.role == role
                    && n.status == Status::Active
                    && n.state == NodeState::Running
                    && !self.dark.contains(&n.provider)
            })
            .collect()
    }
}

pub fn apply(fleet: &mut Fleet, plan: &Plan, now: DateTime<Utc>) {
    for action in &plan.actions {
        match action {
            Action::Create { .. } => {
                let created = action.created_node().expect("a create adds a node");
                fleet.nodes.push(FleetNode {
                    id: Some(format!("id-{}", created.key)),
                    key: created.key,
                    provider: created.provider,
                    region: created.region,
                    role: created.role,
                    owned: true,
                    status: created.status,
                    status_since: now,
                    state: NodeState::Provisioning,
                    created_at: now,
                });
            }
            Action::Promote { key, .. } => set_status(fleet, key, Status::Active, now),
            Action::Drain { key, .. } => set_status(fleet, key, Status::Draining, now),
            Action::Retire { key, .. } => fleet.nodes.retain(|n| &n.key != key),
            Action::Allocate { .. } => fleet.addresses.extend(action.allocated_address()),
            Action::Repoint { key, to, .. } => {
                if let Some(a) = fleet.addresses.iter_mut().find(|a| &a.key == key) {
                    a.node = Some(to.clone());
                }
            }
            Action::Release { key, .. } => fleet.addresses.retain(|a| &a.key != key),
        }
    }
    fleet.next_serial = plan.next_serial;
}

fn set_status(
    fleet: &mut Fleet,
    key: &damm_provider::IdempotencyKey,
    status: Status,
    now: DateTime<Utc>,
) {
    let node = fleet
        .nodes
        .iter_mut()
        .find(|n| &n.key == key)
        .expect("planned node exists");
    node.status = status;
    node.status_since = now;
}

pub fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}
