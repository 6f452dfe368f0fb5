//! Why a Service has no address: typed, with a reason for conditions and metrics and a
//! message a human understands.

use std::net::IpAddr;

use ferrolb_crds::annotations::LoadBalancerIpsError;
use ferrolb_crds::config::Family;

use super::request::{Families, Port, ServiceKey};

/// The Service's own request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Both `spec.loadBalancerIP` and the loadBalancerIPs annotation are set.
    #[error("both spec.loadBalancerIP and the {annotation} annotation are set; use only the annotation")]
    BothRequests {
        /// The annotation key found.
        annotation: String,
    },
    /// The loadBalancerIPs annotation does not parse.
    #[error("annotation {key}: {error}")]
    BadAnnotation {
        /// The annotation key found.
        key: String,
        /// What is wrong.
        error: LoadBalancerIpsError,
    },
    /// `spec.loadBalancerIP` does not parse.
    #[error("spec.loadBalancerIP: {error}")]
    BadLoadBalancerIp {
        /// What is wrong.
        error: LoadBalancerIpsError,
    },
    /// Requested addresses do not fit the Service's address families.
    #[error("requested addresses {} do not fit the Service's families ({})", list(ips), families_text(*families))]
    FamilyMismatch {
        /// The addresses requested.
        ips: Vec<IpAddr>,
        /// The Service's families.
        families: Families,
    },
    /// The Service has no ClusterIP and no ipFamilies.
    #[error("the Service has no ClusterIP, so its address family is unknown")]
    NoClusterIp,
    /// RequireDualStack with a single-family ClusterIP.
    #[error("ipFamilyPolicy is RequireDualStack but the Service has ClusterIPs of one family only")]
    NotEnoughClusterIps,
}

/// Why no address could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The Service's request is malformed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// There are no valid pools at all.
    #[error("there is no valid IPAddressPool")]
    NoPools,
    /// No pool may serve the Service (serviceAllocation restrictions, autoAssign).
    #[error("no IPAddressPool with autoAssign admits Service {0} (check the pools' serviceAllocation)")]
    NoPoolMatches(ServiceKey),
    /// Pools would admit the Service, but none assigns automatically.
    #[error("pools {} admit the Service but have autoAssign: false; name one with the address-pool annotation", pools.join(", "))]
    NotAutoAssign {
        /// Those pools.
        pools: Vec<String>,
    },
    /// The address-pool annotation names a pool that does not exist (or is invalid).
    #[error("the address-pool annotation names pool {0:?}, which does not exist or is invalid")]
    UnknownPool(String),
    /// The pool's serviceAllocation excludes the Service.
    #[error("pool {pool:?} does not admit Service {service} (its serviceAllocation excludes it)")]
    PoolRejects {
        /// The pool.
        pool: String,
        /// The Service.
        service: ServiceKey,
    },
    /// The eligible pools have no address of a needed family.
    #[error("no eligible pool ({}) has {family} addresses", pools.join(", "))]
    FamilyUnavailable {
        /// The pools tried.
        pools: Vec<String>,
        /// The family missing.
        family: Family,
    },
    /// Every eligible pool is full.
    #[error("no free address in pool{} {}", if pools.len() == 1 { "" } else { "s" }, pools.join(", "))]
    PoolExhausted {
        /// The pools tried.
        pools: Vec<String>,
    },
    /// A requested address lies in no pool.
    #[error(
        "requested address {0} is in no IPAddressPool (or is a .0/.255 address of a pool that avoids them)"
    )]
    OutsidePools(IpAddr),
    /// A requested address is outside the requested pool.
    #[error("requested address {ip} is not in the requested pool {pool:?}")]
    NotInRequestedPool {
        /// The address.
        ip: IpAddr,
        /// The requested pool.
        pool: String,
    },
    /// Requested addresses lie in different pools.
    #[error("requested addresses {} lie in different pools; they must come from one pool", list(.0))]
    DifferentPools(Vec<IpAddr>),
    /// The address is used by a Service it cannot be shared with.
    #[error(
        "address {ip} is in use by Service {owner}, and the two do not carry the same allow-shared-ip key"
    )]
    InUse {
        /// The address.
        ip: IpAddr,
        /// Its user.
        owner: ServiceKey,
    },
    /// Same sharing key, but a port is used twice.
    #[error("address {ip} is shared with Service {owner}, which already uses port {}/{}", port.1, port.0)]
    PortConflict {
        /// The address.
        ip: IpAddr,
        /// Its user.
        owner: ServiceKey,
        /// The port both want.
        port: Port,
    },
    /// Same sharing key, but with externalTrafficPolicy Local the two select different pods.
    #[error(
        "address {ip} is shared with Service {owner}, but with externalTrafficPolicy: Local both must select the same pods"
    )]
    BackendMismatch {
        /// The address.
        ip: IpAddr,
        /// Its user.
        owner: ServiceKey,
    },
}

impl AllocError {
    /// A CamelCase reason, for the Service's condition and the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::Request(_) => "InvalidRequest",
            AllocError::NoPools => "NoPools",
            AllocError::NoPoolMatches(_) => "NoPoolMatches",
            AllocError::NotAutoAssign { .. } => "PoolNotAutoAssign",
            AllocError::UnknownPool(_) => "UnknownPool",
            AllocError::PoolRejects { .. } => "PoolRejectsService",
            AllocError::FamilyUnavailable { .. } => "FamilyUnavailable",
            AllocError::PoolExhausted { .. } => "PoolExhausted",
            AllocError::OutsidePools(_) => "OutsidePools",
            AllocError::NotInRequestedPool { .. } => "NotInRequestedPool",
            AllocError::DifferentPools(_) => "DifferentPools",
            AllocError::InUse { .. } => "IPInUse",
            AllocError::PortConflict { .. } => "SharingPortConflict",
            AllocError::BackendMismatch { .. } => "SharingBackendMismatch",
        }
    }
}

/// Why addresses a Service holds, or shows in its status, are not (or no longer) its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldingError {
    /// The status shows no address.
    #[error("no address to restore")]
    NothingToRestore,
    /// An address no longer fits the Service's families (or two share a family).
    #[error("{0} does not fit the Service's address families any more")]
    FamilyChanged(IpAddr),
    /// The Service now requests other addresses.
    #[error("the Service now asks for {}", list(.0))]
    AddressesChanged(Vec<IpAddr>),
    /// The Service now requests another pool.
    #[error("{ip} is in pool {pool:?}, but the Service now asks for pool {wanted:?}")]
    PoolChanged {
        /// The address held.
        ip: IpAddr,
        /// Its pool.
        pool: String,
        /// The pool requested.
        wanted: String,
    },
    /// RequireDualStack, and the pool has no free address of the other family.
    #[error("RequireDualStack needs an address of the other family, and the pool has none free")]
    DualStackUnavailable,
    /// The pool was removed or shrunk.
    #[error("no pool contains it any more")]
    PoolRemoved,
    /// The Service is no longer ours (type or class changed).
    #[error("the Service is no longer a LoadBalancer that FerroLB serves")]
    NotServed,
    /// An allocation rule refuses it (outside the pools, excluded, sharing conflict).
    #[error(transparent)]
    Refused(#[from] AllocError),
}

impl HoldingError {
    /// A short CamelCase reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HoldingError::NothingToRestore => "NothingToRestore",
            HoldingError::FamilyChanged(_) => "FamilyChanged",
            HoldingError::AddressesChanged(_) => "RequestedAddressesChanged",
            HoldingError::PoolChanged { .. } => "RequestedPoolChanged",
            HoldingError::DualStackUnavailable => "DualStackUnavailable",
            HoldingError::PoolRemoved => "PoolRemoved",
            HoldingError::NotServed => "NotServed",
            HoldingError::Refused(e) => e.reason(),
        }
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

fn families_text(families: Families) -> String {
    match families {
        Families::Single(f) => format!("{f} only"),
        Families::PreferDual(f) => format!("PreferDualStack, {f} first"),
        Families::RequireDual(f) => format!("RequireDualStack, {f} first"),
    }
}
