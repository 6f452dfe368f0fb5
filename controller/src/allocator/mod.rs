//! Address allocation, as plain functions over plain data (no Kubernetes client).
//!
//! The [`Allocator`] holds who uses which address. The reconciler feeds it the valid
//! pools ([`Allocator::set_pools`]), the addresses Services already show in their
//! status when it starts ([`Allocator::restore`]), and each Service's request
//! ([`Allocator::ensure`]); it answers with addresses or a typed [`AllocError`].
//!
//! Rules (MetalLB's, where it has one):
//! - an address a Service holds is kept while it stays valid: in a pool, in the
//!   requested pool if one is named, equal to the requested addresses if any, admitted
//!   by the pool's serviceAllocation, of a wanted family, and still sharable;
//! - new addresses come from, in order: the pool named by the address-pool annotation
//!   (even without autoAssign), else the autoAssign pools whose serviceAllocation
//!   admits the Service by priority (lower first, 0 last, then name), else the other
//!   autoAssign pools without serviceAllocation by name;
//! - within a pool, an address already used under the same allow-shared-ip key that
//!   the Service can share comes first (sharing is what the key asks for), else the
//!   lowest free address in the order the pool lists its ranges.

mod error;
mod free;
mod request;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_crds::config::{Family, Pool};

pub use error::{AllocError, HoldingError, RequestError};
pub use ferrolb_crds::service::ClassPolicy;
pub use free::FreeSet;
pub use request::{Families, Port, Request, ServiceKey, Sharing, other, read};

/// A pool and its free addresses.
#[derive(Clone, Debug)]
struct Slot {
    pool: Pool,
    free: FreeSet,
}

/// One address in use: its pool and every Service using it.
#[derive(Clone, Debug)]
struct InUse {
    pool: String,
    users: Users,
}

/// The Services using one address, almost always a single one; a list, because a map
/// per address would cost a kilobyte each at 10,000 Services.
#[derive(Clone, Debug, Default)]
struct Users(Vec<(ServiceKey, Sharing)>);

impl Users {
    /// Sets `key`'s sharing data; returns the previous data.
    fn insert(&mut self, key: &ServiceKey, sharing: &Sharing) -> Option<Sharing> {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => Some(std::mem::replace(old, sharing.clone())),
            None => {
                self.0.push((key.clone(), sharing.clone()));
                None
            }
        }
    }

    fn remove(&mut self, key: &ServiceKey) -> Option<Sharing> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }

    fn contains(&self, key: &ServiceKey) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &(ServiceKey, Sharing)> {
        self.0.iter()
    }
}

/// Addresses a Service holds, and the pools they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The addresses, in status order.
    pub ips: Vec<IpAddr>,
    /// The distinct pools of those addresses, in the same order.
    pub pools: Vec<String>,
}

/// Addresses taken away from a Service, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleared {
    /// The addresses.
    pub ips: Vec<IpAddr>,
    /// Why they were no longer valid.
    pub why: HoldingError,
}

/// What [`Allocator::ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ensured {
    /// The Service's addresses now, or why it has none.
    pub result: Result<Assignment, AllocError>,
    /// Addresses it held before that were no longer valid.
    pub cleared: Option<Cleared>,
}

/// Usage of one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Distinct addresses in use, IPv4 and IPv6 (a shared address counts once).
    pub assigned: [u128; 2],
    /// Addresses still free, IPv4 and IPv6 (saturating).
    pub available: [u128; 2],
}

/// Who holds which address.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<String, Slot>,
    ips: HashMap<IpAddr, InUse>,
    services: HashMap<ServiceKey, Vec<IpAddr>>,
    /// allow-shared-ip key → addresses with at least one user of that key.
    shared: HashMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator without pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the pools. Addresses still inside a pool are kept (re-attributed when
    /// they moved to another pool); the others are taken from their Services, which
    /// are returned with the addresses they lost.
    pub fn set_pools(&mut self, pools: &BTreeMap<String, Pool>) -> Vec<(ServiceKey, Vec<IpAddr>)> {
        self.pools = pools
            .iter()
            .map(|(name, pool)| {
                let free = FreeSet::new(&pool.ranges, pool.avoid_buggy_ips);
                (
                    name.clone(),
                    Slot {
                        pool: pool.clone(),
                        free,
                    },
                )
            })
            .collect();
        let mut lost: BTreeMap<ServiceKey, Vec<IpAddr>> = BTreeMap::new();
        let addresses: Vec<IpAddr> = self.ips.keys().copied().collect();
        for ip in addresses {
            match self.pool_of(ip) {
                Some(name) => {
                    let name = name.to_string();
                    self.pools.get_mut(&name).expect("pool_of found it").free.take(ip);
                    self.ips.get_mut(&ip).expect("listed above").pool = name;
                }
                None => {
                    let use_ = self.ips.remove(&ip).expect("listed above");
                    for (user, sharing) in use_.users.0 {
                        self.unindex_shared(ip, &sharing);
                        if let Some(held) = self.services.get_mut(&user) {
                            held.retain(|a| *a != ip);
                            if held.is_empty() {
                                self.services.remove(&user);
                            }
                        }
                        lost.entry(user).or_default().push(ip);
                    }
                }
            }
        }
        lost.into_iter().collect()
    }

    /// The addresses a Service holds.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Assignment> {
        self.services.get(key).map(|ips| self.describe(ips))
    }

    /// Takes the addresses a Service shows in its status (after a restart or a
    /// leadership change) if they are all still valid for its request; claims nothing
    /// otherwise. Call for every Service with addresses before any [`Self::ensure`], so
    /// that no new assignment can take an address somebody already holds.
    pub fn restore(&mut self, req: &Request, ips: &[IpAddr]) -> Result<Assignment, HoldingError> {
        if let Some(held) = self.services.get(&req.key) {
            return Ok(self.describe(&held.clone()));
        }
        if ips.is_empty() {
            return Err(HoldingError::NothingToRestore);
        }
        let mut pools = Vec::new();
        for ip in ips {
            let pool = self
                .pool_of(*ip)
                .ok_or(AllocError::OutsidePools(*ip))?
                .to_string();
            pools.push(pool);
        }
        self.check_valid(req, ips, &pools)?;
        for (ip, pool) in ips.iter().zip(pools) {
            self.claim(*ip, &pool, req);
        }
        self.services.insert(req.key.clone(), ips.to_vec());
        Ok(self.describe(ips))
    }

    /// Makes sure the Service holds valid addresses for its request: keeps what it
    /// holds when still valid (adding a missing family when it can), else gives new ones.
    pub fn ensure(&mut self, req: &Request) -> Ensured {
        let mut cleared = None;
        if let Some(held) = self.services.get(&req.key).cloned() {
            let pools: Vec<String> = held.iter().map(|ip| self.ips[ip].pool.clone()).collect();
            match self.check_valid(req, &held, &pools) {
                Ok(()) => {
                    for (ip, pool) in held.iter().zip(&pools) {
                        self.claim(*ip, pool, req);
                    }
                    match self.complete(req, held, &pools[0]) {
                        Some(ips) => {
                            return Ensured {
                                result: Ok(self.describe(&ips)),
                                cleared: None,
                            };
                        }
                        None => {
                            let ips = self.release(&req.key);
                            let why = HoldingError::DualStackUnavailable;
                            cleared = Some(Cleared { ips, why });
                        }
                    }
                }
                Err(why) => {
                    let ips = self.release(&req.key);
                    cleared = Some(Cleared { ips, why });
                }
            }
        }
        let result = self.allocate(req).map(|ips| {
            self.services.insert(req.key.clone(), ips.clone());
            self.describe(&ips)
        });
        Ensured { result, cleared }
    }

    /// Frees every address of the Service; returns them.
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let Some(held) = self.services.remove(key) else {
            return Vec::new();
        };
        for ip in &held {
            let Some(use_) = self.ips.get_mut(ip) else {
                continue;
            };
            if let Some(sharing) = use_.users.remove(key) {
                let empty = use_.users.is_empty();
                let pool = use_.pool.clone();
                self.unindex_shared(*ip, &sharing);
                if empty {
                    self.ips.remove(ip);
                    if let Some(slot) = self.pools.get_mut(&pool) {
                        slot.free.release(*ip);
                    }
                }
            }
        }
        held
    }

    /// Usage of a pool, if it exists.
    pub fn usage(&self, pool: &str) -> Option<Usage> {
        let slot = self.pools.get(pool)?;
        let per = |f: fn(&FreeSet, Family) -> u128| [f(&slot.free, Family::V4), f(&slot.free, Family::V6)];
        let capacity = per(FreeSet::capacity);
        let available = per(FreeSet::free_count);
        Some(Usage {
            assigned: [capacity[0] - available[0], capacity[1] - available[1]],
            available,
        })
    }

    /// Every Service holding addresses and the addresses, for invariant checks.
    pub fn holdings(&self) -> impl Iterator<Item = (&ServiceKey, &Vec<IpAddr>)> {
        self.services.iter()
    }

    /// The first pool (by name) that may hand out `ip`.
    fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, slot)| slot.free.allows(ip))
            .map(|(name, _)| name.as_str())
    }

    fn admits(&self, pool: &str, req: &Request) -> bool {
        self.pools.get(pool).is_some_and(|slot| {
            slot.pool
                .allocation
                .as_ref()
                .is_none_or(|a| a.admits(&req.key.namespace, &req.namespace_labels, &req.labels))
        })
    }

    /// Whether `ips` (from `pools`) may serve `req`; the error says why not.
    fn check_valid(&self, req: &Request, ips: &[IpAddr], pools: &[String]) -> Result<(), HoldingError> {
        let mut families = BTreeSet::new();
        for ip in ips {
            let family = Family::of(*ip);
            if !req.families.allows(family) || !families.insert(family) {
                return Err(HoldingError::FamilyChanged(*ip));
            }
        }
        if !req.ips.is_empty() && BTreeSet::from_iter(&req.ips) != BTreeSet::from_iter(ips) {
            return Err(HoldingError::AddressesChanged(req.ips.clone()));
        }
        for (ip, pool) in ips.iter().zip(pools) {
            if let Some(wanted) = &req.pool
                && wanted != pool
            {
                return Err(HoldingError::PoolChanged {
                    ip: *ip,
                    pool: pool.clone(),
                    wanted: wanted.clone(),
                });
            }
            if !self.admits(pool, req) {
                return Err(AllocError::PoolRejects {
                    pool: pool.clone(),
                    service: req.key.clone(),
                }
                .into());
            }
            self.check_sharing(*ip, req)?;
        }
        Ok(())
    }

    /// Adds the missing family to a valid holding when the Service wants it, from the
    /// same pool; `None` when dual stack is required and the pool has none free.
    fn complete(&mut self, req: &Request, mut held: Vec<IpAddr>, pool: &str) -> Option<Vec<IpAddr>> {
        let families: BTreeSet<Family> = held.iter().map(|ip| Family::of(*ip)).collect();
        if req.families.complete(&families) || !req.ips.is_empty() {
            return Some(held);
        }
        for family in req.families.wanted() {
            if families.contains(&family) {
                continue;
            }
            match self.best_in_pool(req, pool, family) {
                Some(ip) => {
                    self.claim(ip, pool, req);
                    held.push(ip);
                }
                None if matches!(req.families, Families::RequireDual(_)) => return None,
                None => {}
            }
        }
        let order = req.families.wanted();
        held.sort_by_key(|ip| order.iter().position(|f| *f == Family::of(*ip)));
        self.services.insert(req.key.clone(), held.clone());
        Some(held)
    }

    fn allocate(&mut self, req: &Request) -> Result<Vec<IpAddr>, AllocError> {
        if self.pools.is_empty() {
            return Err(AllocError::NoPools);
        }
        if !req.ips.is_empty() {
            return self.allocate_requested(req);
        }
        let candidates = match &req.pool {
            Some(pool) if !self.pools.contains_key(pool) => {
                return Err(AllocError::UnknownPool(pool.clone()));
            }
            Some(pool) if !self.admits(pool, req) => {
                return Err(AllocError::PoolRejects {
                    pool: pool.clone(),
                    service: req.key.clone(),
                });
            }
            Some(pool) => vec![pool.clone()],
            None => self.candidate_pools(req)?,
        };
        let best: Vec<[Option<IpAddr>; 2]> = candidates
            .iter()
            .map(|pool| [Family::V4, Family::V6].map(|f| self.best_in_pool(req, pool, f)))
            .collect();
        let slot = |f: Family| match f {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        let first_with = |families: &[Family]| {
            best.iter()
                .position(|b| families.iter().all(|f| b[slot(*f)].is_some()))
                .map(|i| {
                    families
                        .iter()
                        .map(|f| (i, best[i][slot(*f)].expect("checked")))
                        .collect()
                })
        };
        let chosen: Option<Vec<(usize, IpAddr)>> = match req.families {
            Families::Single(f) => first_with(&[f]),
            Families::RequireDual(p) => first_with(&[p, other(p)]),
            Families::PreferDual(p) => first_with(&[p, other(p)])
                .or_else(|| first_with(&[p]))
                .or_else(|| first_with(&[other(p)])),
        };
        let Some(chosen) = chosen else {
            return Err(self.why_nothing(req, &candidates));
        };
        let ips: Vec<IpAddr> = chosen.iter().map(|(_, ip)| *ip).collect();
        for (i, ip) in chosen {
            self.claim(ip, &candidates[i].clone(), req);
        }
        Ok(ips)
    }

    fn allocate_requested(&mut self, req: &Request) -> Result<Vec<IpAddr>, AllocError> {
        let mut pool: Option<String> = None;
        for ip in &req.ips {
            let found = self
                .pool_of(*ip)
                .ok_or(AllocError::OutsidePools(*ip))?
                .to_string();
            if let Some(wanted) = &req.pool
                && *wanted != found
            {
                return Err(AllocError::NotInRequestedPool {
                    ip: *ip,
                    pool: wanted.clone(),
                });
            }
            if pool.as_ref().is_some_and(|p| *p != found) {
                return Err(AllocError::DifferentPools(req.ips.clone()));
            }
            pool = Some(found);
        }
        let pool = pool.expect("at least one address");
        if !self.admits(&pool, req) {
            return Err(AllocError::PoolRejects {
                pool,
                service: req.key.clone(),
            });
        }
        for ip in &req.ips {
            self.check_sharing(*ip, req)?;
        }
        for ip in &req.ips {
            self.claim(*ip, &pool, req);
        }
        Ok(req.ips.clone())
    }

    /// The pools automatic allocation tries for `req`, in order.
    fn candidate_pools(&self, req: &Request) -> Result<Vec<String>, AllocError> {
        let mut pinned = Vec::new();
        let mut open = Vec::new();
        let mut manual = Vec::new();
        for (name, slot) in &self.pools {
            if !self.admits(name, req) {
                continue;
            }
            if !slot.pool.auto_assign {
                manual.push(name.clone());
                continue;
            }
            match &slot.pool.allocation {
                Some(a) => pinned.push(((a.priority == 0, a.priority), name.clone())),
                None => open.push(name.clone()),
            }
        }
        pinned.sort();
        let candidates: Vec<String> = pinned.into_iter().map(|(_, n)| n).chain(open).collect();
        match (candidates.is_empty(), manual.is_empty()) {
            (false, _) => Ok(candidates),
            (true, false) => Err(AllocError::NotAutoAssign { pools: manual }),
            (true, true) => Err(AllocError::NoPoolMatches(req.key.clone())),
        }
    }

    /// Why none of `candidates` could serve `req`.
    fn why_nothing(&self, req: &Request, candidates: &[String]) -> AllocError {
        let has = |f: Family| candidates.iter().any(|p| self.pools[p].pool.has_family(f));
        let has_both = candidates.iter().any(|p| {
            let pool = &self.pools[p].pool;
            pool.has_family(Family::V4) && pool.has_family(Family::V6)
        });
        let missing = match req.families {
            Families::Single(f) => (!has(f)).then_some(f),
            Families::PreferDual(p) => (!has(p) && !has(other(p))).then_some(p),
            Families::RequireDual(p) if !has_both => Some(if has(p) { other(p) } else { p }),
            Families::RequireDual(_) => None,
        };
        match missing {
            Some(family) => AllocError::FamilyUnavailable {
                pools: candidates.to_vec(),
                family,
            },
            None => AllocError::PoolExhausted {
                pools: candidates.to_vec(),
            },
        }
    }

    /// The address `req` should get from `pool` in `family`: a sharable address under
    /// its key first, else the lowest free one.
    fn best_in_pool(&self, req: &Request, pool: &str, family: Family) -> Option<IpAddr> {
        let slot = self.pools.get(pool)?;
        let shared = req
            .sharing
            .key
            .as_ref()
            .and_then(|key| self.shared.get(key))
            .into_iter()
            .flatten()
            .filter(|ip| Family::of(**ip) == family && self.ips[*ip].pool == pool)
            .filter(|ip| !self.ips[*ip].users.contains(&req.key))
            .filter(|ip| self.check_sharing(**ip, req).is_ok())
            .min_by_key(|ip| slot.free.position(**ip));
        shared.copied().or_else(|| slot.free.lowest_free(family))
    }

    /// Whether `req` may use `ip` next to its current users.
    fn check_sharing(&self, ip: IpAddr, req: &Request) -> Result<(), AllocError> {
        let Some(use_) = self.ips.get(&ip) else {
            return Ok(());
        };
        for (owner, theirs) in use_.users.iter().filter(|(owner, _)| *owner != req.key) {
            let mine = &req.sharing;
            if mine.key.is_none() || theirs.key != mine.key {
                return Err(AllocError::InUse {
                    ip,
                    owner: owner.clone(),
                });
            }
            if theirs.backend != mine.backend {
                return Err(AllocError::BackendMismatch {
                    ip,
                    owner: owner.clone(),
                });
            }
            if let Some(port) = theirs.ports.iter().find(|p| mine.ports.contains(p)) {
                return Err(AllocError::PortConflict {
                    ip,
                    owner: owner.clone(),
                    port: port.clone(),
                });
            }
        }
        Ok(())
    }

    /// Records `req`'s use of `ip` (idempotent; refreshes its sharing data).
    fn claim(&mut self, ip: IpAddr, pool: &str, req: &Request) {
        let use_ = self.ips.entry(ip).or_insert_with(|| InUse {
            pool: pool.to_string(),
            users: Users::default(),
        });
        if use_.users.is_empty()
            && let Some(slot) = self.pools.get_mut(pool)
        {
            slot.free.take(ip);
        }
        let previous = use_.users.insert(&req.key, &req.sharing);
        if let Some(previous) = previous {
            self.unindex_shared(ip, &previous);
        }
        if let Some(key) = &req.sharing.key {
            self.shared.entry(key.clone()).or_default().insert(ip);
        }
    }

    /// Drops `ip` from the sharing index of `sharing`'s key unless another user of the
    /// address still carries that key.
    fn unindex_shared(&mut self, ip: IpAddr, sharing: &Sharing) {
        let Some(key) = &sharing.key else { return };
        let still = self
            .ips
            .get(&ip)
            .is_some_and(|u| u.users.iter().any(|(_, s)| s.key.as_ref() == Some(key)));
        if !still && let Some(set) = self.shared.get_mut(key) {
            set.remove(&ip);
            if set.is_empty() {
                self.shared.remove(key);
            }
        }
    }

    fn describe(&self, ips: &[IpAddr]) -> Assignment {
        let mut pools: Vec<String> = Vec::new();
        for ip in ips {
            if let Some(use_) = self.ips.get(ip)
                && !pools.contains(&use_.pool)
            {
                pools.push(use_.pool.clone());
            }
        }
        Assignment {
            ips: ips.to_vec(),
            pools,
        }
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod scenarios;
