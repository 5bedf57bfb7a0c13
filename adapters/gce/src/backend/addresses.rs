//! Static external addresses: Compute Engine's one regional resource behind both front
//! doors (`Ingress`) and egress addresses (`Egress`), told apart by the `damm-role`
//! label. An address on a node is the external IP of the instance's access config.

use damm_provider::addresses::{AddressBackend, AddressParts, AddressRole};
use damm_provider::api::{create_or_adopt, found, gone_is_fine};
use damm_provider::{
    AddressSpec, ErrorKind, HealthStatus, LABEL_KEY, LABEL_ROLE, NodeRef, Operation, Result,
    async_trait,
};
use google_cloud_compute_v1::model::{self, AccessConfig, Address, Instance};

use super::{
    EXTERNAL_NAT, Gce, Place, instance_of_link, labels_of, last_segment, new_labels, resource_name,
};
use crate::config::region_of_zone;
use crate::core::request;

/// The prefix of an address's resource name: front doors and egress addresses are the
/// same kind of resource at Google, told apart by name and by the `damm-role` label.
fn name_prefix(role: AddressRole) -> &'static str {
    match role {
        AddressRole::Frontdoor => "damm-fd",
        AddressRole::Egress => "damm-eg",
    }
}

impl Gce {
    async fn addresses_in(
        &self,
        region: &str,
        filter: String,
        operation: Operation,
    ) -> Result<Vec<Address>> {
        let list = |token| {
            request!(
                self,
                addresses.list().set_region(region).set_filter(&filter)
            )
            .set_max_results(self.page_size)
            .set_page_token(token)
            .send()
        };
        self.all_pages(operation, "addresses.list", list).await
    }

    /// An address of this fleet, or NotFound.
    async fn owned_address(&self, region: &str, name: &str, op: Operation) -> Result<Address> {
        let get = || {
            request!(self, addresses.get().set_region(region))
                .set_address(name)
                .send()
        };
        let address = self.call(op, true, get).await?;
        self.owned(address, ("address", region, name), op)
    }

    /// An address as DAMM sees it: reference, region, IP and the node holding it.
    fn address_parts(&self, a: &Address) -> Option<AddressParts> {
        let labels = labels_of(&a.labels);
        let region = last_segment(a.region.as_deref().unwrap_or_default()).to_owned();
        Some(AddressParts {
            id: format!("{region}/{}", a.name.as_deref().unwrap_or_default()),
            region: self.damm_region(&labels, &region),
            address: a.address.as_deref()?.parse().ok()?,
            node: a
                .users
                .iter()
                .find_map(|u| instance_of_link(u))
                .map(|(zone, name)| NodeRef::new(&self.id, format!("{zone}/{name}"))),
            labels,
        })
    }

    /// The running instance `node` names, checked to be in `region`.
    async fn attach_target(
        &self,
        node: &NodeRef,
        region: &str,
        operation: Operation,
    ) -> Result<(String, Instance)> {
        let (zone, name) = self.split_ref(&node.id, operation)?;
        if region_of_zone(zone) != region {
            return Err(self.error(
                ErrorKind::InvalidInput,
                operation,
                format!("node {node} is not in region {region}"),
            ));
        }
        let instance = self.owned_instance(zone, name, operation).await?;
        Ok((zone.to_owned(), instance))
    }

    /// Makes `address` the external IP of the instance: its current access config goes
    /// (when it is an ephemeral address; a static one of the fleet is a conflict), then
    /// an access config with the address is added. An instance has one external IPv4
    /// address, used both ways, so a node holds one front door *or* one egress address.
    async fn attach(
        &self,
        address: &Address,
        node: &NodeRef,
        region: &str,
        operation: Operation,
    ) -> Result<()> {
        let ip = address.address.clone().unwrap_or_default();
        let (zone, instance) = self.attach_target(node, region, operation).await?;
        let name = instance.name.clone().unwrap_or_default();
        let nic = instance.network_interfaces.first();
        let nic_name = nic
            .and_then(|n| n.name.clone())
            .unwrap_or_else(|| "nic0".to_owned());
        let current = nic.and_then(|n| n.access_configs.first());
        if let Some(held) = current.and_then(|c| c.nat_ip.as_deref()) {
            if held == ip {
                return Ok(());
            }
            let fleet_static = self
                .addresses_in(region, self.filter(&[]), operation)
                .await?
                .into_iter()
                .any(|a| a.address.as_deref() == Some(held));
            if fleet_static {
                return Err(self.error(
                    ErrorKind::Conflict,
                    operation,
                    format!("node {node} already holds the fleet's address {held}"),
                ));
            }
        }
        let nat = AccessConfig::new()
            .set_name(EXTERNAL_NAT)
            .set_type(model::access_config::Type::OneToOneNat)
            .set_nat_ip(ip);
        let current = current.map(|c| c.name.clone().unwrap_or_default());
        let at = (zone.as_str(), name.as_str(), nic_name.as_str());
        self.replace_access_config(at, current, nat, operation)
            .await
    }

    /// Removes the access config named `current` (when there is one) from the network
    /// interface `nic` of instance `name` in `zone`, then adds `config`.
    async fn replace_access_config(
        &self,
        (zone, name, nic): (&str, &str, &str),
        current: Option<String>,
        config: AccessConfig,
        operation: Operation,
    ) -> Result<()> {
        if let Some(current) = current {
            let delete = || {
                request!(self, instances.delete_access_config().set_zone(zone))
                    .set_instance(name)
                    .set_network_interface(nic)
                    .set_access_config(&current)
                    .send()
            };
            self.mutate(Place::Zone(zone), operation, true, delete)
                .await?;
        }
        let add = || {
            request!(self, instances.add_access_config().set_zone(zone))
                .set_instance(name)
                .set_network_interface(nic)
                .set_body(config.clone())
                .send()
        };
        self.mutate(Place::Zone(zone), operation, true, add).await
    }

    /// Takes `address` off every instance using it and gives each an ephemeral
    /// external IP again, so the node stays reachable.
    async fn detach(&self, address: &Address, operation: Operation) -> Result<()> {
        let ip = address.address.clone().unwrap_or_default();
        for (zone, name) in address.users.iter().filter_map(|u| instance_of_link(u)) {
            let Some(instance) = found(self.get_instance(&zone, &name, operation).await)? else {
                continue;
            };
            for nic in &instance.network_interfaces {
                let nic_name = nic.name.clone().unwrap_or_else(|| "nic0".to_owned());
                let Some(held) = nic
                    .access_configs
                    .iter()
                    .find(|ac| ac.nat_ip.as_deref() == Some(ip.as_str()))
                else {
                    continue;
                };
                let ephemeral = AccessConfig::new()
                    .set_name(EXTERNAL_NAT)
                    .set_type(model::access_config::Type::OneToOneNat);
                let at = (zone.as_str(), name.as_str(), nic_name.as_str());
                let current = Some(held.name.clone().unwrap_or_default());
                self.replace_access_config(at, current, ephemeral, operation)
                    .await?;
            }
        }
        Ok(())
    }

    /// Health of an address: in use → healthy, reserved but unattached → degraded.
    pub(super) async fn probe_address(&self, id: &str) -> Result<(HealthStatus, String)> {
        let operation = Operation::ProbeHealth;
        let (region, name) = self.split_ref(id, operation)?;
        let address = self.owned_address(region, name, operation).await?;
        Ok(match address.users.first() {
            Some(user) => (
                HealthStatus::Healthy,
                format!("in use by {}", last_segment(user)),
            ),
            None => (HealthStatus::Degraded, "reserved, not attached".to_owned()),
        })
    }
}

#[async_trait]
impl AddressBackend for Gce {
    /// Allocates (or adopts, by key) a static external address, attached to the spec's
    /// node when it names one.
    async fn allocate_address(
        &self,
        spec: &AddressSpec,
        role: AddressRole,
    ) -> Result<AddressParts> {
        let operation = role.allocate_operation();
        self.require_owned(&spec.labels, &spec.key, operation)?;
        let zone = self.zone(&spec.region, operation)?;
        let region = region_of_zone(zone);
        let by_key = self.filter(&[(LABEL_KEY, spec.key.as_str()), (LABEL_ROLE, role.label())]);
        let name = resource_name(name_prefix(role), &spec.key);
        let existing = self.addresses_in(region, by_key, operation).await?;
        let mut address = match existing.into_iter().next() {
            Some(address) => address,
            None => {
                let body = Address::new()
                    .set_name(&name)
                    .set_address_type(model::address::AddressType::External)
                    .set_network_tier(model::address::NetworkTier::Premium)
                    .set_description(format!("DAMM {} of fleet {}", role.label(), self.fleet))
                    .set_labels(new_labels(
                        &spec.labels,
                        &spec.region,
                        &[(LABEL_ROLE, role.label())],
                    ));
                // Never retried blindly: a lost answer is found by its name.
                let insert = || {
                    request!(self, addresses.insert().set_region(region))
                        .set_body(body.clone())
                        .send()
                };
                match self.call(operation, false, insert).await {
                    Ok(op) => self.wait(Place::Region(region), op, operation).await?,
                    Err(e) => {
                        let adopt =
                            || async { found(self.owned_address(region, &name, operation).await) };
                        create_or_adopt(Err(e), adopt).await?;
                    }
                }
                self.owned_address(region, &name, operation).await?
            }
        };
        if let Some(node) = &spec.node {
            let (zone, instance_name) = self.split_ref(&node.id, operation)?;
            let held = address
                .users
                .iter()
                .filter_map(|u| instance_of_link(u))
                .any(|(z, n)| z == zone && n == instance_name);
            if !held {
                self.attach(&address, node, region, operation).await?;
                let current_name = address.name.clone().unwrap_or_default();
                address = self.owned_address(region, &current_name, operation).await?;
            }
        }
        self.address_parts(&address).ok_or_else(|| {
            self.error(
                ErrorKind::Unexpected,
                operation,
                "the address has no parsable IP",
            )
        })
    }

    /// Releases an address: off its node, then deleted. Gone already is fine.
    async fn release_address(&self, id: &str, role: AddressRole) -> Result<()> {
        let operation = role.release_operation();
        let (region, name) = self.split_ref(id, operation)?;
        gone_is_fine(
            async {
                let address = self.owned_address(region, name, operation).await?;
                if !address.users.is_empty() {
                    self.detach(&address, operation).await?;
                }
                let delete = || {
                    request!(self, addresses.delete().set_region(region))
                        .set_address(name)
                        .send()
                };
                self.mutate(Place::Region(region), operation, true, delete)
                    .await
            }
            .await,
        )
        .map(drop)
    }

    /// The fleet's addresses of `role`, in every region of the table.
    async fn list_addresses(&self, role: AddressRole) -> Result<Vec<AddressParts>> {
        let operation = role.list_operation();
        let filter = self.filter(&[(LABEL_ROLE, role.label())]);
        let mut all = Vec::new();
        for region in self.all_regions() {
            let addresses = self.addresses_in(region, filter.clone(), operation).await?;
            all.extend(addresses.iter().filter_map(|a| self.address_parts(a)));
        }
        Ok(all)
    }
}
