//! Human output: the fleet table (`damm status`) and the plan diff (`damm plan`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use damm_fleet::{Action, AddressKind, Plan, Policy, Scores, Status};
use damm_provider::{NodeRole, Region};
use serde::Serialize;

use crate::state::State;

/// One row of the fleet table.
#[derive(Debug, Clone, Serialize)]
pub struct FleetRow {
    /// Region.
    pub region: String,
    /// Role.
    pub role: NodeRole,
    /// Key.
    pub key: String,
    /// Provider.
    pub provider: String,
    /// DAMM status.
    pub status: Status,
    /// Provider state.
    pub state: String,
    /// Score, when probed.
    pub score: Option<f64>,
    /// Healthy by the policy's threshold.
    pub healthy: bool,
    /// Median RTT, ms.
    pub rtt_ms: Option<f64>,
    /// First public address.
    pub address: Option<String>,
    /// Front door or egress address, if any.
    pub static_address: Option<String>,
}

/// The fleet, one row per node, sorted by region, role and key.
pub fn fleet_rows(state: &State, scores: &Scores) -> Vec<FleetRow> {
    let mut statics: BTreeMap<&str, String> = BTreeMap::new();
    // A front's origin and an overlay member's 100.x address are not the node's static
    // address: only front doors and egress addresses are.
    let static_kinds = [AddressKind::Frontdoor, AddressKind::EgressIp];
    for a in state.addresses.values() {
        if !static_kinds.contains(&a.kind) {
            continue;
        }
        if let (Some(node), Some(addr)) = (&a.node, a.address) {
            statics.insert(node.as_str(), addr.to_string());
        }
    }
    let mut rows: Vec<FleetRow> = state
        .nodes
        .iter()
        .map(|(key, n)| {
            let score = scores.get(key.as_str());
            FleetRow {
                region: n.region.to_string(),
                role: n.role,
                key: key.to_string(),
                provider: n.provider.clone(),
                status: n.status,
                state: format!("{:?}", n.state).to_lowercase(),
                score: score.map(|s| s.value),
                healthy: score.is_some_and(|s| s.healthy) && !scores.dark.contains(&n.provider),
                rtt_ms: score.and_then(|s| s.rtt_p50_ms),
                address: n.addresses.first().map(ToString::to_string),
                static_address: statics.get(key.as_str()).cloned(),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.region, a.role, &a.key).cmp(&(&b.region, b.role, &b.key)));
    rows
}

/// The fleet table.
pub fn fleet_table(rows: &[FleetRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:<8} {:<18} {:<13} {:<9} {:<13} {:>5} {:>6}  ADDRESS",
        "REGION", "ROLE", "KEY", "PROVIDER", "STATUS", "STATE", "SCORE", "RTT"
    );
    for r in rows {
        let score = r.score.map_or("-".to_owned(), |s| format!("{s:.2}"));
        let rtt = r.rtt_ms.map_or("-".to_owned(), |ms| format!("{ms:.0}ms"));
        let state = if r.healthy {
            r.state.clone()
        } else {
            format!("{} !", r.state)
        };
        let mut address = r.address.clone().unwrap_or_else(|| "-".into());
        if let Some(s) = &r.static_address {
            address = format!("{address} (static {s})");
        }
        let _ = writeln!(
            out,
            "{:<13} {:<8} {:<18} {:<13} {:<9} {:<13} {:>5} {:>6}  {address}",
            r.region,
            r.role.as_str(),
            r.key,
            r.provider,
            r.status.as_str(),
            state,
            score,
            rtt
        );
    }
    out
}

/// How many `role` nodes of `region` are live and healthy: active, at a provider that is not
/// dark, and healthy by their score.
pub fn live_healthy(state: &State, scores: &Scores, region: &Region, role: NodeRole) -> usize {
    state
        .nodes
        .iter()
        .filter(|(k, n)| {
            &n.region == region
                && n.role == role
                && n.status == Status::Active
                && !scores.dark.contains(&n.provider)
                && scores.get(k.as_str()).is_some_and(|s| s.healthy)
        })
        .count()
}

/// Per region: live healthy ingress and egress against the policy's minimums.
pub fn capacity_line(state: &State, scores: &Scores, policy: &Policy) -> String {
    let mut parts = Vec::new();
    for (region, r) in &policy.regions {
        let live = |role: NodeRole| live_healthy(state, scores, region, role);
        let spares = state
            .nodes
            .values()
            .filter(|n| &n.region == region && n.status == Status::Spare)
            .count();
        parts.push(format!(
            "{region} ingress {}/{} egress {}/{} spares {}/{}",
            live(NodeRole::Ingress),
            r.ingress.min,
            live(NodeRole::Egress),
            r.egress.min,
            spares,
            r.warm_spares
        ));
    }
    parts.join(" · ")
}

/// The terraform-like plan diff.
pub fn plan_diff(plan: &Plan) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &plan.actions {
        let kind = match a {
            Action::Create { .. } => "create",
            Action::Promote { .. } => "promote",
            Action::Drain { .. } => "drain",
            Action::Retire { .. } => "retire",
            Action::Allocate { .. } => "allocate",
            Action::Repoint { .. } => "move",
            Action::Release { .. } => "release",
        };
        *counts.entry(kind).or_default() += 1;
    }
    let mut out = String::new();
    if plan.actions.is_empty() {
        let _ = writeln!(out, "No changes: the fleet matches the policy.");
    } else {
        let mut summary: Vec<String> = [
            "create", "promote", "drain", "retire", "allocate", "release",
        ]
        .iter()
        .map(|k| format!("{} to {k}", counts.get(k).copied().unwrap_or(0)))
        .collect();
        // Moves (fronts keeping their hostname) only show when there are any.
        if let Some(moves) = counts.get("move") {
            summary.push(format!("{moves} to move"));
        }
        let _ = writeln!(out, "Plan: {}.", summary.join(", "));
        for a in &plan.actions {
            let _ = writeln!(out, "  {}", a.describe());
        }
    }
    if !plan.refused.is_empty() {
        let _ = writeln!(out, "Refused by policy:");
        for r in &plan.refused {
            let _ = writeln!(out, "  ! {} — {}: {}", r.wanted, r.rule, r.detail);
        }
    }
    out
}
