//! Addresses that serve as either capability: providers whose front doors and egress
//! IPs are the same kind of resource (an Elastic IP, a static address, a reserved IP)
//! implement [`AddressBackend`] once, by role, and get [`Ingress`] and [`Egress`] from it.

use std::net::IpAddr;

use crate::{
    Egress, EgressIp, EgressIpRef, Error, ErrorKind, Frontdoor, FrontdoorRef, Ingress, Labels,
    NodeRef, Operation, Provider, Region, Result, async_trait, types::AddressSpec,
};

/// Which capability an address serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressRole {
    /// An ingress front door.
    Frontdoor,
    /// An egress address.
    Egress,
}

impl AddressRole {
    /// The `damm-role` label value: `frontdoor` or `egress`.
    pub const fn label(self) -> &'static str {
        match self {
            AddressRole::Frontdoor => "frontdoor",
            AddressRole::Egress => "egress",
        }
    }

    /// The role in prose, for error messages: `front door` or `egress IP`.
    pub const fn noun(self) -> &'static str {
        match self {
            AddressRole::Frontdoor => "front door",
            AddressRole::Egress => "egress IP",
        }
    }

    /// The role a `damm-role` label value names.
    pub fn from_label(label: &str) -> Option<AddressRole> {
        [AddressRole::Frontdoor, AddressRole::Egress]
            .into_iter()
            .find(|role| role.label() == label)
    }

    /// The operation that allocates an address of this role.
    pub const fn allocate_operation(self) -> Operation {
        match self {
            AddressRole::Frontdoor => Operation::AllocateIngressFrontdoor,
            AddressRole::Egress => Operation::AllocateEgressIp,
        }
    }

    /// The operation that releases an address of this role.
    pub const fn release_operation(self) -> Operation {
        match self {
            AddressRole::Frontdoor => Operation::ReleaseIngressFrontdoor,
            AddressRole::Egress => Operation::ReleaseEgressIp,
        }
    }

    /// The operation that lists the addresses of this role.
    pub const fn list_operation(self) -> Operation {
        match self {
            AddressRole::Frontdoor => Operation::ListFrontdoors,
            AddressRole::Egress => Operation::ListEgressIps,
        }
    }
}

/// One provider address as DAMM sees it, whichever capability hands it out: providers
/// that serve front doors and egress IPs from the same kind of resource read it once and
/// hand it out as either.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressParts {
    /// The provider's id of the address (the reference's id).
    pub id: String,
    /// DAMM region.
    pub region: Region,
    /// The public address.
    pub address: IpAddr,
    /// The node it is attached to.
    pub node: Option<NodeRef>,
    /// Labels, including the ownership labels.
    pub labels: Labels,
}

impl AddressParts {
    /// The address as a front door of `provider` (port unknown).
    pub fn frontdoor(self, provider: &str) -> Frontdoor {
        Frontdoor {
            reference: FrontdoorRef::new(provider, self.id),
            region: self.region,
            address: self.address,
            port: None,
            node: self.node,
            labels: self.labels,
        }
    }

    /// The address as an egress IP of `provider`.
    pub fn egress_ip(self, provider: &str) -> EgressIp {
        EgressIp {
            reference: EgressIpRef::new(provider, self.id),
            region: self.region,
            address: self.address,
            node: self.node,
            labels: self.labels,
        }
    }
}

/// A provider's addresses, by role. Implementing it gives the provider [`Ingress`] and
/// [`Egress`]: each capability's three methods call these with its role (the role's
/// [`Operation`]s name the capability's calls in errors). A release of a reference that
/// names another provider is refused before [`AddressBackend::release_address`] runs.
#[async_trait]
pub trait AddressBackend: Provider {
    /// Allocates (or adopts, on a replay) the address `spec` asks for, in `role`.
    async fn allocate_address(&self, spec: &AddressSpec, role: AddressRole)
    -> Result<AddressParts>;

    /// Releases the fleet's address `id` of `role`; an address already gone is no error.
    async fn release_address(&self, id: &str, role: AddressRole) -> Result<()>;

    /// The fleet's addresses of `role`.
    async fn list_addresses(&self, role: AddressRole) -> Result<Vec<AddressParts>>;
}

#[async_trait]
impl<T: AddressBackend> Ingress for T {
    async fn allocate_ingress_frontdoor(&self, spec: &AddressSpec) -> Result<Frontdoor> {
        let parts = self.allocate_address(spec, AddressRole::Frontdoor).await?;
        Ok(parts.frontdoor(self.id()))
    }

    async fn release_ingress_frontdoor(&self, frontdoor: &FrontdoorRef) -> Result<()> {
        let role = AddressRole::Frontdoor;
        check_provider(self.id(), &frontdoor.provider, role)?;
        self.release_address(&frontdoor.id, role).await
    }

    async fn list_frontdoors(&self) -> Result<Vec<Frontdoor>> {
        let parts = self.list_addresses(AddressRole::Frontdoor).await?;
        Ok(parts.into_iter().map(|p| p.frontdoor(self.id())).collect())
    }
}

#[async_trait]
impl<T: AddressBackend> Egress for T {
    async fn allocate_egress_ip(&self, spec: &AddressSpec) -> Result<EgressIp> {
        let parts = self.allocate_address(spec, AddressRole::Egress).await?;
        Ok(parts.egress_ip(self.id()))
    }

    async fn release_egress_ip(&self, ip: &EgressIpRef) -> Result<()> {
        let role = AddressRole::Egress;
        check_provider(self.id(), &ip.provider, role)?;
        self.release_address(&ip.id, role).await
    }

    async fn list_egress_ips(&self) -> Result<Vec<EgressIp>> {
        let parts = self.list_addresses(AddressRole::Egress).await?;
        Ok(parts.into_iter().map(|p| p.egress_ip(self.id())).collect())
    }
}

/// Refuses a reference that names another provider than `id`.
fn check_provider(id: &str, provider: &str, role: AddressRole) -> Result<()> {
    if provider == id {
        return Ok(());
    }
    Err(
        Error::new(ErrorKind::InvalidInput, id, role.release_operation()).with_message(format!(
            "the {} reference names provider `{provider}`, not `{id}`",
            role.noun()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_to_another_provider_is_refused() {
        assert!(check_provider("vultr", "vultr", AddressRole::Egress).is_ok());
        let err = check_provider("vultr", "hetzner", AddressRole::Frontdoor).unwrap_err();
        assert_eq!(
            (err.kind(), err.operation()),
            (ErrorKind::InvalidInput, Operation::ReleaseIngressFrontdoor)
        );
        assert!(
            err.to_string()
                .contains("names provider `hetzner`, not `vultr`")
        );
    }

    #[test]
    fn roles_round_trip_their_labels_and_name_their_operations() {
        for role in [AddressRole::Frontdoor, AddressRole::Egress] {
            assert_eq!(AddressRole::from_label(role.label()), Some(role));
        }
        assert_eq!(AddressRole::from_label("ingress"), None);
        assert_eq!(
            AddressRole::Egress.release_operation(),
            Operation::ReleaseEgressIp
        );
        assert_eq!(
            AddressRole::Frontdoor.list_operation(),
            Operation::ListFrontdoors
        );
    }

    #[test]
    fn one_address_reads_as_a_front_door_or_an_egress_ip() {
        let parts = AddressParts {
            id: "eu/a1".to_owned(),
            region: Region::new("eu-central").unwrap(),
            address: "203.0.113.7".parse().unwrap(),
            node: Some(NodeRef::new("p", "n1")),
            labels: Labels::new(),
        };
        let door = parts.clone().frontdoor("p");
        assert_eq!(door.reference, FrontdoorRef::new("p", "eu/a1"));
        assert_eq!((door.port, door.node.as_ref()), (None, parts.node.as_ref()));
        let ip = parts.clone().egress_ip("p");
        assert_eq!(ip.reference, EgressIpRef::new("p", "eu/a1"));
        assert_eq!((ip.address, ip.region), (parts.address, parts.region));
    }
}
