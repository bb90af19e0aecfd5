//! The tenant tree: quotas with Kueue's cohort semantics, and Slurm-style fair share.
//!
//! Quantities are in milli-GPU per flavor. For each tenant `t` and flavor:
//!
//! - `own(t)`: what jobs submitted directly to `t` hold;
//! - `guaranteed(t) = nominal(t) - lending_limit(t)` (0 when lending is unlimited):
//!   the part of `t`'s nominal it never lends, reserved for it even when idle;
//! - `held(t) = own(t) + sum over children c of max(held(c), guaranteed(c))`:
//!   what `t`'s subtree takes out of its parent, counting the children's unlendable
//!   reserve as taken;
//! - limits: `held(t) <= nominal(t) + borrowing_limit(t)` for every tenant, and
//!   `held(root) <= nominal(root)` (the root's nominal defaults to the cluster's size).
//!
//! So a tenant uses its nominal, plus what its siblings (and the levels above) leave
//! unused and lendable, up to its borrowing limit. Children's nominals may not add up
//! to more than their parent's: a tenant below its nominal can always get back to it
//! by reclaiming what others borrowed.

use rustc_hash::FxHashMap;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{ConfigError, EventError};
use crate::ids::{FlavorIdx, TenantIdx, Time};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub nominal: u64,
    /// `u64::MAX` when unlimited.
    pub borrowing_limit: u64,
    /// `None` when unlimited (everything unused may be lent).
    pub lending_limit: Option<u64>,
}

impl Quota {
    pub const NONE: Quota = Quota { nominal: 0, borrowing_limit: u64::MAX, lending_limit: None };

    pub fn guaranteed(&self) -> u64 {
        self.lending_limit.map_or(0, |l| self.nominal.saturating_sub(l))
    }

    pub fn limit(&self) -> u64 {
        self.nominal.saturating_add(self.borrowing_limit)
    }
}

#[derive(Clone, Debug)]
pub struct Tenant {
    /// Full path, `nation/ai-centre/fm`; empty for the root.
    pub path: String,
    pub parent: Option<TenantIdx>,
    pub children: Vec<TenantIdx>,
    pub weight: f64,
    /// Share of the whole cluster implied by the weights down the tree.
    pub norm_share: f64,
    /// Removed at runtime. Its index stays taken (jobs, queues and budgets index
    /// tenants by position), but no path leads to it and it is in no children list.
    pub removed: bool,
}

/// Where admission was refused: the tenant whose limit would be exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaBlock {
    pub tenant: TenantIdx,
    pub flavor: FlavorIdx,
    /// Milli-GPU the job needs.
    pub need: u64,
    /// Milli-GPU still admissible at that tenant.
    pub room: u64,
}

#[derive(Clone, Debug)]
pub struct Tenants {
    pub tenants: Vec<Tenant>,
    by_path: FxHashMap<String, TenantIdx>,
    nf: usize,
    quota: Vec<Quota>,
    own: Vec<u64>,
    held: Vec<u64>,
    /// `held` plus what this round's backfill reservations booked (see `book`):
    /// what admission sees for jobs that would still run when a reservation starts.
    held_booked: Vec<u64>,
    /// What each tenant would hold with no job running: its children's unlendable
    /// reserves alone (see `root_admits_when_idle`).
    held_idle: Vec<u64>,
    /// This round's bookings in the order made; an entry of the root is a root
    /// booking, its third field an index in `root_bookings` (`book_root`: a job
    /// of the root itself books nothing).
    bookings: Vec<(TenantIdx, FlavorIdx, u64)>,
    /// This round's root bookings, taken back or not (see `book_root`).
    root_bookings: Vec<RootBooking>,
    /// Per flavor: what the root bookings in `bookings` book now.
    root_booked: Vec<u64>,
    /// Per flavor: milli-GPU used by all jobs.
    total: Vec<u64>,
    /// Quotas lowered at runtime may leave a tenant above its limit until work ends.
    lowered: Vec<bool>,
    // fair share
    half_life_ms: f64,
    decayed: Vec<f64>,
    rate: Vec<f64>,
    decayed_at: Time,
    factor: Vec<f64>,
}

/// A reservation's booking at the root (`Tenants::book_root`).
#[derive(Clone, Copy, Debug)]
struct RootBooking {
    f: FlavorIdx,
    /// The reservation's start.
    at: Time,
    /// What it books: what the root will hold then beyond what it holds now (may
    /// go below zero as jobs ending by then start; it books nothing then).
    raw: i64,
}

impl Tenants {
    pub fn from_config(config: &Config, cluster: &Cluster) -> Result<Tenants, ConfigError> {
        let nf = cluster.flavors.len();
        let root = Tenant { path: String::new(), parent: None, children: vec![], weight: 1.0, norm_share: 1.0, removed: false };
        let mut t = Tenants {
            tenants: vec![root],
            by_path: FxHashMap::default(),
            nf,
            quota: vec![Quota::NONE; nf],
            own: vec![],
            held: vec![],
            held_booked: vec![],
            held_idle: vec![],
            bookings: vec![],
            root_bookings: vec![],
            root_booked: vec![0; nf],
            total: vec![0; nf],
            lowered: vec![],
            half_life_ms: config.fair_share.half_life_hours * 3.6e6,
            decayed: vec![],
            rate: vec![],
            decayed_at: 0,
            factor: vec![],
        };
        if config.fair_share.half_life_hours.is_nan() || config.fair_share.half_life_hours <= 0.0 {
            return Err(ConfigError::new("fair_share.half_life_hours", "must be positive"));
        }
        for f in 0..nf {
            t.quota[f].nominal = cluster.capacity_gpus(FlavorIdx::from(f)) * 1000;
            t.quota[f].borrowing_limit = 0;
        }
        t.by_path.insert(String::new(), TenantIdx(0));
        let mut configured = vec![false; 1];
        // Per tenant, the flavors its config sets a quota for.
        let mut explicit: Vec<Vec<usize>> = vec![vec![]];
        for (i, tc) in config.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            let path = tc.path.trim_matches('/');
            if path.is_empty() || path.split('/').any(|s| s.trim().is_empty()) {
                return Err(ConfigError::new(format!("{at}.path"), format!("`{}` is not a tenant path", tc.path)));
            }
            let idx = t.ensure(path);
            configured.resize(t.tenants.len(), false);
            explicit.resize(t.tenants.len(), vec![]);
            if configured[idx.ix()] {
                return Err(ConfigError::new(format!("{at}.path"), format!("tenant `{path}` is configured twice")));
            }
            configured[idx.ix()] = true;
            if let Some(w) = tc.weight {
                if !(w > 0.0 && w.is_finite()) {
                    return Err(ConfigError::new(format!("{at}.weight"), "must be a positive number"));
                }
                t.tenants[idx.ix()].weight = w;
            }
            for (j, q) in tc.quota.iter().enumerate() {
                let qat = format!("{at}.quota[{j}]");
                let f = cluster
                    .flavor_index(&q.flavor)
                    .ok_or_else(|| ConfigError::new(format!("{qat}.flavor"), format!("unknown flavor `{}`", q.flavor)))?;
                let milli = |v: f64, field: &str| -> Result<u64, ConfigError> {
                    if !(v >= 0.0 && v.is_finite()) {
                        return Err(ConfigError::new(format!("{qat}.{field}"), "must be a non-negative number of GPUs"));
                    }
                    Ok((v * 1000.0).round() as u64)
                };
                let quota = Quota {
                    nominal: milli(q.nominal, "nominal")?,
                    borrowing_limit: match q.borrowing_limit {
                        Some(b) => milli(b, "borrowing_limit")?,
                        None => u64::MAX,
                    },
                    lending_limit: q.lending_limit.map(|l| milli(l, "lending_limit")).transpose()?,
                };
                if quota.lending_limit.is_some_and(|l| l > quota.nominal) {
                    return Err(ConfigError::new(format!("{qat}.lending_limit"), "cannot exceed nominal"));
                }
                t.quota[idx.ix() * nf + f.ix()] = quota;
                explicit[idx.ix()].push(f.ix());
            }
        }
        if t.tenants.len() == 1 {
            t.ensure("default");
        }
        explicit.resize(t.tenants.len(), vec![]);
        // A tenant that sets no quota for a flavor guarantees what its children are
        // guaranteed (so listing only the leaves is enough); deepest first.
        for p in (1..t.tenants.len()).rev() {
            for f in 0..nf {
                if !explicit[p].contains(&f) {
                    let sum: u64 = t.tenants[p].children.iter().map(|c| t.quota[c.ix() * nf + f].nominal).sum();
                    t.quota[p * nf + f].nominal = sum;
                }
            }
        }
        // Children's nominals must fit in their parent's.
        for p in 0..t.tenants.len() {
            for f in 0..nf {
                let sum: u64 = t.tenants[p].children.iter().map(|c| t.quota[c.ix() * nf + f].nominal).sum();
                let pn = t.quota[p * nf + f].nominal;
                if sum > pn {
                    let name = if p == 0 { "the cluster".to_string() } else { format!("tenant `{}`", t.tenants[p].path) };
                    return Err(ConfigError::new(
                        "tenants",
                        format!(
                            "children of {name} have {} {} GPUs of nominal quota, more than its {}",
                            sum as f64 / 1000.0,
                            cluster.flavors[f].name,
                            pn as f64 / 1000.0
                        ),
                    ));
                }
            }
        }
        let n = t.tenants.len();
        t.own = vec![0; n * nf];
        t.held = vec![0; n * nf];
        t.lowered = vec![false; n];
        t.decayed = vec![0.0; n];
        t.rate = vec![0.0; n];
        t.factor = vec![1.0; n];
        t.compute_shares();
        // Unlendable reserves count as held from the start.
        t.recompute_held();
        Ok(t)
    }

    /// Creates `path` and its missing ancestors.
    fn ensure(&mut self, path: &str) -> TenantIdx {
        if let Some(&i) = self.by_path.get(path) {
            return i;
        }
        let parent = match path.rfind('/') {
            Some(p) => self.ensure(&path[..p]),
            None => TenantIdx(0),
        };
        let idx = TenantIdx::from(self.tenants.len());
        self.tenants.push(Tenant {
            path: path.into(),
            parent: Some(parent),
            children: vec![],
            weight: 1.0,
            norm_share: 0.0,
            removed: false,
        });
        self.tenants[parent.ix()].children.push(idx);
        self.quota.extend(std::iter::repeat_n(Quota::NONE, self.nf));
        self.by_path.insert(path.into(), idx);
        idx
    }

    /// Adds a tenant at runtime under an existing parent, with no quota (nominal 0,
    /// borrowing unlimited: it borrows what others leave) and no usage.
    pub fn add(&mut self, path: &str, weight: f64) -> Result<TenantIdx, EventError> {
        let path = path.trim_matches('/');
        if path.is_empty() || path.split('/').any(|s| s.trim().is_empty()) {
            return Err(EventError::InvalidTenant(format!("`{path}` is not a tenant path")));
        }
        check_weight(weight)?;
        if self.by_path.contains_key(path) {
            return Err(EventError::TenantConflict(format!("tenant `{path}` already exists")));
        }
        let parent = match path.rfind('/') {
            Some(p) => self.index(&path[..p]).ok_or_else(|| EventError::UnknownTenant(path[..p].to_string()))?,
            None => TenantIdx(0),
        };
        let idx = self.ensure(path);
        debug_assert_eq!(self.tenants[idx.ix()].parent, Some(parent));
        self.tenants[idx.ix()].weight = weight;
        self.own.extend(std::iter::repeat_n(0, self.nf));
        self.held.extend(std::iter::repeat_n(0, self.nf));
        self.held_booked.extend(std::iter::repeat_n(0, self.nf));
        self.held_idle.extend(std::iter::repeat_n(0, self.nf));
        self.lowered.push(false);
        self.decayed.push(0.0);
        self.rate.push(0.0);
        self.factor.push(1.0);
        self.compute_shares();
        Ok(idx)
    }

    /// Changes a tenant's fair-share weight (the root has none to change).
    pub fn set_weight(&mut self, t: TenantIdx, weight: f64) -> Result<(), EventError> {
        if t == TenantIdx(0) {
            return Err(EventError::InvalidTenant("the root has no weight to change".into()));
        }
        check_weight(weight)?;
        self.tenants[t.ix()].weight = weight;
        self.compute_shares();
        Ok(())
    }

    /// Removes a tenant that has no children; the caller checks it has no live jobs.
    /// Its decayed usage goes with it.
    pub(crate) fn remove(&mut self, t: TenantIdx) -> Result<(), EventError> {
        let path = self.tenants[t.ix()].path.clone();
        if t == TenantIdx(0) {
            return Err(EventError::InvalidTenant("the root cannot be removed".into()));
        }
        if !self.tenants[t.ix()].children.is_empty() {
            return Err(EventError::TenantConflict(format!(
                "tenant `{path}` has {} child tenant(s): remove them first",
                self.tenants[t.ix()].children.len()
            )));
        }
        let nf = self.nf;
        debug_assert!(self.own[t.ix() * nf..(t.ix() + 1) * nf].iter().all(|&o| o == 0), "a removed tenant holds nothing");
        if let Some(p) = self.tenants[t.ix()].parent {
            self.tenants[p.ix()].children.retain(|&c| c != t);
        }
        self.by_path.remove(&path);
        let tenant = &mut self.tenants[t.ix()];
        tenant.removed = true;
        tenant.norm_share = 0.0;
        for f in 0..nf {
            self.quota[t.ix() * nf + f] = Quota::NONE;
        }
        self.lowered[t.ix()] = false;
        self.decayed[t.ix()] = 0.0;
        self.rate[t.ix()] = 0.0;
        self.factor[t.ix()] = 1.0;
        self.compute_shares();
        self.recompute_held();
        Ok(())
    }

    fn compute_shares(&mut self) {
        self.tenants[0].norm_share = 1.0;
        for p in 0..self.tenants.len() {
            let total: f64 = self.tenants[p].children.iter().map(|c| self.tenants[c.ix()].weight).sum();
            let ps = self.tenants[p].norm_share;
            for c in self.tenants[p].children.clone() {
                self.tenants[c.ix()].norm_share = ps * self.tenants[c.ix()].weight / total;
            }
        }
    }

    pub fn index(&self, path: &str) -> Option<TenantIdx> {
        self.by_path.get(path.trim_matches('/')).copied()
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    pub fn quota(&self, t: TenantIdx, f: FlavorIdx) -> Quota {
        self.quota[t.ix() * self.nf + f.ix()]
    }

    /// Milli-GPU held by `t`'s subtree (with children's unlendable reserves).
    pub fn held(&self, t: TenantIdx, f: FlavorIdx) -> u64 {
        self.held[t.ix() * self.nf + f.ix()]
    }

    /// Milli-GPU actually used by jobs in `t`'s subtree.
    pub fn usage(&self, t: TenantIdx, f: FlavorIdx) -> u64 {
        let mut sum = self.own[t.ix() * self.nf + f.ix()];
        for &c in &self.tenants[t.ix()].children {
            sum += self.usage(c, f);
        }
        sum
    }

    /// Milli-GPU of flavor `f` used by all jobs.
    pub fn total_usage(&self, f: FlavorIdx) -> u64 {
        self.total[f.ix()]
    }

    /// Whether `a` is `b` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, a: TenantIdx, b: TenantIdx) -> bool {
        let mut x = Some(b);
        while let Some(t) = x {
            if t == a {
                return true;
            }
            x = self.tenants[t.ix()].parent;
        }
        false
    }

    /// Checks that `need` more milli-GPU of flavor `f` for tenant `t` stays within every
    /// limit up to the root.
    pub fn can_admit(&self, t: TenantIdx, f: FlavorIdx, need: u64) -> Result<(), QuotaBlock> {
        self.admit_on(&self.held, t, f, need)
    }

    /// `can_admit` with this round's bookings counted as held: for a job that
    /// would still run when a booked reservation starts.
    pub fn can_admit_booked(&self, t: TenantIdx, f: FlavorIdx, need: u64) -> Result<(), QuotaBlock> {
        self.admit_on(&self.held_booked, t, f, need)
    }

    /// Whether, were no job running, the root would admit `need` more milli-GPU of
    /// flavor `f` for tenant `t` or refuse it only for being larger than the cluster:
    /// a refusal at the root that other tenants' unlendable reserves make even on an
    /// idle cluster is for those reserves, never for want of GPUs, however full the
    /// cluster is now. (Limits below the root refuse it now whenever they would then.)
    pub fn root_admits_when_idle(&self, t: TenantIdx, f: FlavorIdx, need: u64) -> bool {
        let mut d = need;
        let mut x = t;
        loop {
            let i = x.ix() * self.nf + f.ix();
            let q = self.quota[i];
            let held = self.held_idle[i];
            let Some(p) = self.tenants[x.ix()].parent else { return d > q.limit() || held + d <= q.limit() };
            let g = q.guaranteed();
            d = (held + d).max(g) - held.max(g);
            if d == 0 {
                return true;
            }
            x = p;
        }
    }

    /// `can_admit_booked` with the root's own bookings left out: whether the
    /// bookings below the root alone would admit the job.
    pub fn admits_but_for_root_bookings(&self, t: TenantIdx, f: FlavorIdx, need: u64) -> bool {
        self.admit_on_less_root(&self.held_booked, t, f, need, self.root_booked[f.ix()]).is_ok()
    }

    fn admit_on(&self, held: &[u64], t: TenantIdx, f: FlavorIdx, need: u64) -> Result<(), QuotaBlock> {
        self.admit_on_less_root(held, t, f, need, 0)
    }

    fn admit_on_less_root(&self, held: &[u64], t: TenantIdx, f: FlavorIdx, need: u64, less_root: u64) -> Result<(), QuotaBlock> {
        admit_within(held, &self.quota, &self.tenants, self.nf, t, f, need, less_root)
    }

    /// When `need` more milli-GPU of flavor `f` for tenant `t`, refused now, is first
    /// admitted (with this round's bookings if `booked`) as the running jobs in
    /// `ends` (expected end, tenant, milli; in order of end) give back what they
    /// hold: the first end after which, with every job ending then given back, it
    /// is; `None` if not after the last. Works on copies of `f`'s column, so a walk
    /// over thousands of ends touches a few cache lines and undoes nothing.
    pub(crate) fn first_admitted_as_ends_pass(
        &self,
        t: TenantIdx,
        f: FlavorIdx,
        need: u64,
        booked: bool,
        ends: impl Iterator<Item = (Time, TenantIdx, u64)>,
    ) -> Option<Time> {
        let (nf, fi) = (self.nf, f.ix());
        let column = |v: &[u64]| -> Vec<u64> { (0..self.tenants.len()).map(|x| v[x * nf + fi]).collect() };
        let quota: Vec<Quota> = (0..self.tenants.len()).map(|x| self.quota[x * nf + fi]).collect();
        let mut held = column(&self.held);
        let mut held_booked = if booked { column(&self.held_booked) } else { Vec::new() };
        let root_booked = self.root_booked[fi];
        let admits = |held: &[u64], held_booked: &[u64]| {
            let on = if booked { held_booked } else { held };
            admit_within(on, &quota, &self.tenants, 1, t, FlavorIdx(0), need, 0).is_ok()
        };
        let mut last_end = None;
        for (end, owner, milli) in ends {
            // All jobs ending at one instant are given back before asking.
            if last_end.is_some_and(|e| e != end) && admits(&held, &held_booked) {
                return last_end;
            }
            last_end = Some(end);
            // As `charge` does, on the column.
            Self::propagate(&mut held, &quota, &self.tenants, 1, owner, FlavorIdx(0), milli, false, false);
            if booked {
                Self::propagate(&mut held_booked, &quota, &self.tenants, 1, owner, FlavorIdx(0), milli, false, true);
                held_booked[0] = held[0] + root_booked;
            }
        }
        last_end.filter(|_| admits(&held, &held_booked))
    }

    /// Whether `need` more milli-GPU of flavor `f` for tenant `t` would be admitted
    /// (with this round's bookings if `booked`) were the milli in `out` (tenant,
    /// milli of its own jobs) given back. On copies of `f`'s column, as
    /// `first_admitted_as_ends_pass`; nothing to undo.
    pub(crate) fn admits_with_out(
        &self,
        t: TenantIdx,
        f: FlavorIdx,
        need: u64,
        booked: bool,
        out: impl Iterator<Item = (TenantIdx, u64)>,
    ) -> bool {
        let (nf, fi) = (self.nf, f.ix());
        let column = |v: &[u64]| -> Vec<u64> { (0..self.tenants.len()).map(|x| v[x * nf + fi]).collect() };
        let quota: Vec<Quota> = (0..self.tenants.len()).map(|x| self.quota[x * nf + fi]).collect();
        let mut held = column(&self.held);
        let mut held_booked = if booked { column(&self.held_booked) } else { Vec::new() };
        for (owner, milli) in out {
            // A tenant's own jobs never hold more than it does.
            let milli = milli.min(held[owner.ix()]);
            if milli == 0 {
                continue;
            }
            Self::propagate(&mut held, &quota, &self.tenants, 1, owner, FlavorIdx(0), milli, false, false);
            if booked {
                Self::propagate(&mut held_booked, &quota, &self.tenants, 1, owner, FlavorIdx(0), milli, false, true);
            }
        }
        if booked {
            held_booked[0] = held[0] + self.root_booked[fi];
        }
        let on = if booked { &held_booked } else { &held };
        admit_within(on, &quota, &self.tenants, 1, t, FlavorIdx(0), need, 0).is_ok()
    }

    /// Books `milli` of flavor `f` for a reserved job of `t` until `clear_bookings`:
    /// a backfill reservation holds the job's quota as well as its nodes, so that
    /// lower-priority jobs do not take the quota it needs when it starts. The root
    /// is booked apart (`book_root`): its limit is the cluster's size, and the
    /// reservation's nodes hold most of what it needs there.
    pub fn book(&mut self, t: TenantIdx, f: FlavorIdx, milli: u64) {
        if t == TenantIdx(0) {
            return;
        }
        self.bookings.push((t, f, milli));
        Self::propagate(&mut self.held_booked, &self.quota, &self.tenants, self.nf, t, f, milli, true, true);
    }

    /// Books at the root, until `clear_bookings`, what the root will hold of flavor
    /// `f` at a reservation's start `at`, with its job, beyond what it holds now
    /// (`milli`, see `Core::root_booking`): other tenants' unlendable reserves count
    /// at the root, so the reservation's nodes alone do not hold the quota its job
    /// needs. The booking follows the round (`root_bookings_follow`): a job started
    /// later that ends by `at` adds to what the root holds now but not then, and
    /// books that much less. Returns the booking's index for `unbook_root`.
    pub fn book_root(&mut self, f: FlavorIdx, at: Time, milli: u64) -> usize {
        let id = self.root_bookings.len();
        self.root_bookings.push(RootBooking { f, at, raw: milli as i64 });
        self.bookings.push((TenantIdx(0), f, id as u64));
        self.refresh_root_booked(f);
        id
    }

    /// Takes back root booking `id` (for a second look of its job, see `rebook_root`).
    pub fn unbook_root(&mut self, id: usize) {
        let Some(b) = self.root_bookings.get(id).copied() else { return };
        if let Some(i) = self.bookings.iter().rposition(|&e| e == (TenantIdx(0), b.f, id as u64)) {
            self.bookings.remove(i);
            self.refresh_root_booked(b.f);
        }
    }

    /// Books again root booking `id`, taken back by `unbook_root`.
    pub fn rebook_root(&mut self, id: usize) {
        let Some(b) = self.root_bookings.get(id).copied() else { return };
        self.bookings.push((TenantIdx(0), b.f, id as u64));
        self.refresh_root_booked(b.f);
    }

    /// `charge` for a job that starts (`add`) or stops and would end at `end`: the
    /// root bookings follow what the root's holding moved (`root_bookings_follow`).
    pub fn charge_job(&mut self, t: TenantIdx, f: FlavorIdx, milli: u64, add: bool, end: Time) {
        if self.root_bookings.is_empty() {
            return self.charge(t, f, milli, add);
        }
        let before = self.held(TenantIdx(0), f);
        self.charge(t, f, milli, add);
        let delta = self.held(TenantIdx(0), f) as i64 - before as i64;
        self.root_bookings_follow(f, end, delta);
    }

    /// A job ending at `end` started (`delta` > 0: what the root holds of `f` rose by
    /// it) or stopped: the root bookings of reservations that start at or after
    /// `end` book that much less (more), since the root holds it now but not then.
    fn root_bookings_follow(&mut self, f: FlavorIdx, end: Time, delta: i64) {
        if delta == 0 {
            return;
        }
        let mut moved = false;
        for &(t, bf, id) in &self.bookings {
            if t == TenantIdx(0) && bf == f && end <= self.root_bookings[id as usize].at {
                self.root_bookings[id as usize].raw -= delta;
                moved = true;
            }
        }
        if moved {
            self.refresh_root_booked(f);
        }
    }

    fn root_booking_sum(&self, f: FlavorIdx) -> u64 {
        self.bookings
            .iter()
            .filter(|&&(t, bf, _)| t == TenantIdx(0) && bf == f)
            .map(|&(_, _, id)| self.root_bookings[id as usize].raw.max(0) as u64)
            .sum()
    }

    fn refresh_root_booked(&mut self, f: FlavorIdx) {
        self.root_booked[f.ix()] = self.root_booking_sum(f);
        self.held_booked[f.ix()] = self.held[f.ix()] + self.root_booked[f.ix()];
    }

    /// Takes back a booking made with `book` or `book_root` (the last one of
    /// `milli` for `t`, `f`).
    pub fn unbook(&mut self, t: TenantIdx, f: FlavorIdx, milli: u64) {
        if let Some(i) = self.bookings.iter().rposition(|&b| b == (t, f, milli)) {
            self.bookings.remove(i);
            self.take_back(t, f, milli);
        }
    }

    fn take_back(&mut self, t: TenantIdx, f: FlavorIdx, milli: u64) {
        if t == TenantIdx(0) {
            self.refresh_root_booked(f);
        } else {
            Self::propagate(&mut self.held_booked, &self.quota, &self.tenants, self.nf, t, f, milli, false, true);
        }
    }

    /// How many bookings this round holds (see `take_bookings_after`).
    pub fn bookings_len(&self) -> usize {
        self.bookings.len()
    }

    /// Takes back every booking after the first `n`, returning them for `rebook`.
    pub fn take_bookings_after(&mut self, n: usize) -> Vec<(TenantIdx, FlavorIdx, u64)> {
        let later = self.bookings.split_off(n.min(self.bookings.len()));
        for &(t, f, milli) in &later {
            self.take_back(t, f, milli);
        }
        later
    }

    /// Books again what `take_bookings_after` took back.
    pub fn rebook(&mut self, later: Vec<(TenantIdx, FlavorIdx, u64)>) {
        for (t, f, milli) in later {
            if t == TenantIdx(0) {
                self.rebook_root(milli as usize);
            } else {
                self.book(t, f, milli);
            }
        }
    }

    pub fn has_bookings(&self) -> bool {
        !self.bookings.is_empty()
    }

    pub fn clear_bookings(&mut self) {
        self.bookings.clear();
        self.root_bookings.clear();
        self.root_booked.iter_mut().for_each(|b| *b = 0);
        self.held_booked.clone_from(&self.held);
    }

    /// `held_booked` worked out anew from `held` and the bookings (what `charge`
    /// keeps up to date change by change).
    fn recount_booked(&self) -> Vec<u64> {
        let mut booked = self.held.clone();
        for &(t, f, milli) in &self.bookings {
            if t == TenantIdx(0) {
                booked[f.ix()] += self.root_bookings[milli as usize].raw.max(0) as u64;
            } else {
                Self::propagate(&mut booked, &self.quota, &self.tenants, self.nf, t, f, milli, true, true);
            }
        }
        booked
    }

    /// Adds or removes `milli` held by `t` in `held`, carried up the tree as far as
    /// it changes what a parent holds (a child's unlendable reserve absorbs it);
    /// with `skip_root`, not into the root.
    #[allow(clippy::too_many_arguments)]
    fn propagate(
        held: &mut [u64],
        quota: &[Quota],
        tenants: &[Tenant],
        nf: usize,
        t: TenantIdx,
        f: FlavorIdx,
        milli: u64,
        add: bool,
        skip_root: bool,
    ) {
        let mut x = t;
        let mut d_add = milli;
        loop {
            if skip_root && x == TenantIdx(0) {
                return;
            }
            let i = x.ix() * nf + f.ix();
            let before = held[i];
            let after = if add { before + d_add } else { before - d_add };
            held[i] = after;
            let Some(p) = tenants[x.ix()].parent else { return };
            let g = quota[i].guaranteed();
            let (b, a) = (before.max(g), after.max(g));
            d_add = b.abs_diff(a);
            if d_add == 0 {
                return;
            }
            x = p;
        }
    }

    /// Adds (`sign > 0`) or removes usage of tenant `t`.
    pub fn charge(&mut self, t: TenantIdx, f: FlavorIdx, milli: u64, add: bool) {
        let nf = self.nf;
        let oi = t.ix() * nf + f.ix();
        if add {
            self.own[oi] += milli;
            self.total[f.ix()] += milli;
        } else {
            self.own[oi] -= milli;
            self.total[f.ix()] -= milli;
        }
        Self::propagate(&mut self.held, &self.quota, &self.tenants, nf, t, f, milli, add, false);
        // Below the root, what each tenant holds with bookings is the same sum of
        // children's holdings (each at least its unlendable reserve), with the booked
        // milli counted as usage, so the change carries up as it does in `held`; the
        // root holds what it holds without them, plus its own bookings.
        Self::propagate(&mut self.held_booked, &self.quota, &self.tenants, nf, t, f, milli, add, true);
        self.held_booked[f.ix()] = self.held[f.ix()] + self.root_booked[f.ix()];
    }

    /// Sets a quota at runtime. Lowering it never stops running work; the tenant may
    /// stay above its new limit until its jobs end (or are reclaimed).
    pub fn set_quota(&mut self, t: TenantIdx, f: FlavorIdx, q: Quota) -> Result<(), String> {
        if q.lending_limit.is_some_and(|l| l > q.nominal) {
            return Err("lending_limit cannot exceed nominal".into());
        }
        let nf = self.nf;
        if let Some(p) = self.tenants[t.ix()].parent {
            let siblings: u64 =
                self.tenants[p.ix()].children.iter().filter(|&&c| c != t).map(|c| self.quota[c.ix() * nf + f.ix()].nominal).sum();
            if siblings + q.nominal > self.quota[p.ix() * nf + f.ix()].nominal {
                return Err(format!("nominal {} GPUs would overcommit the parent's nominal", q.nominal as f64 / 1000.0));
            }
        } else {
            return Err("the root's quota is the cluster's capacity".into());
        }
        let kids: u64 = self.tenants[t.ix()].children.iter().map(|c| self.quota[c.ix() * nf + f.ix()].nominal).sum();
        if kids > q.nominal {
            return Err("nominal below the sum of the children's nominal".into());
        }
        let old = self.quota[t.ix() * nf + f.ix()];
        if q.limit() < old.limit() || q.guaranteed() != old.guaranteed() {
            // A changed unlendable reserve changes what every ancestor holds too.
            let mut x = Some(t);
            while let Some(a) = x {
                self.lowered[a.ix()] = true;
                x = self.tenants[a.ix()].parent;
            }
        }
        self.quota[t.ix() * nf + f.ix()] = q;
        self.recompute_held();
        Ok(())
    }

    fn recompute_held(&mut self) {
        for f in 0..self.nf {
            self.held_rec(TenantIdx(0), FlavorIdx::from(f));
        }
        let mut idle = vec![0; self.held.len()];
        for f in 0..self.nf {
            self.idle_rec(TenantIdx(0), FlavorIdx::from(f), &mut idle);
        }
        self.held_idle = idle;
        // Bookings last one round; a recount starts without them.
        self.clear_bookings();
    }

    fn held_rec(&mut self, t: TenantIdx, f: FlavorIdx) -> u64 {
        let nf = self.nf;
        let mut h = self.own[t.ix() * nf + f.ix()];
        for c in self.tenants[t.ix()].children.clone() {
            let hc = self.held_rec(c, f);
            h += hc.max(self.quota[c.ix() * nf + f.ix()].guaranteed());
        }
        self.held[t.ix() * nf + f.ix()] = h;
        h
    }

    fn idle_rec(&self, t: TenantIdx, f: FlavorIdx, idle: &mut [u64]) -> u64 {
        let nf = self.nf;
        let mut h = 0;
        for &c in &self.tenants[t.ix()].children {
            h += self.idle_rec(c, f, idle).max(self.quota[c.ix() * nf + f.ix()].guaranteed());
        }
        idle[t.ix() * nf + f.ix()] = h;
        h
    }

    /// Recounts `held` from `own` and checks every limit.
    pub fn check(&self) -> Result<(), String> {
        let mut copy = self.clone();
        copy.recompute_held();
        if copy.held != self.held {
            let i = (0..self.held.len()).find(|&i| copy.held[i] != self.held[i]).unwrap_or(0);
            return Err(format!(
                "tenant `{}` flavor {} holds {} milli-GPU, a recount gives {}",
                self.tenants[i / self.nf].path,
                i % self.nf,
                self.held[i],
                copy.held[i]
            ));
        }
        let booked = self.recount_booked();
        if booked != self.held_booked {
            let i = (0..booked.len()).find(|&i| booked[i] != self.held_booked[i]).unwrap_or(0);
            return Err(format!(
                "tenant `{}` flavor {} holds {} milli-GPU with this round's bookings, a recount gives {}",
                self.tenants[i / self.nf].path,
                i % self.nf,
                self.held_booked[i],
                booked[i]
            ));
        }
        for t in 0..self.tenants.len() {
            if self.lowered[t] {
                continue;
            }
            for f in 0..self.nf {
                let i = t * self.nf + f;
                if self.held[i] > self.quota[i].limit() {
                    return Err(format!(
                        "tenant `{}` holds {} milli-GPU of flavor {f}, above its limit {}",
                        self.tenants[t].path,
                        self.held[i],
                        self.quota[i].limit()
                    ));
                }
            }
        }
        Ok(())
    }

    // ----- fair share -----

    /// Decays usage to `now` at the rates that held since the last call.
    pub fn decay_to(&mut self, now: Time) {
        let dt = (now - self.decayed_at) as f64;
        if dt <= 0.0 {
            return;
        }
        let lambda = std::f64::consts::LN_2 / self.half_life_ms;
        let e = (-lambda * dt).exp();
        for i in 0..self.decayed.len() {
            // dU/dt = r - lambda U  =>  U(t) = r/lambda + (U0 - r/lambda) e^{-lambda t}
            let r = self.rate[i];
            let steady = r / lambda;
            self.decayed[i] = steady + (self.decayed[i] - steady) * e;
        }
        self.decayed_at = now;
    }

    /// Changes the GPU rate at which tenant `t` accrues usage (call `decay_to` first).
    pub fn add_rate(&mut self, t: TenantIdx, gpus: f64) {
        self.rate[t.ix()] += gpus;
        if self.rate[t.ix()].abs() < 1e-9 {
            self.rate[t.ix()] = 0.0;
        }
    }

    /// Recomputes every tenant's fair-share factor, Slurm's classic
    /// `F = 2^(-(U/U_total)/S)` with `U` the subtree's decayed usage and `S` its
    /// normalised share.
    pub fn update_factors(&mut self) {
        let n = self.tenants.len();
        let mut sub = self.decayed.clone();
        for t in (1..n).rev() {
            if let Some(p) = self.tenants[t].parent {
                sub[p.ix()] += sub[t];
            }
        }
        let total = sub[0];
        for ((factor, tenant), used) in self.factor.iter_mut().zip(&self.tenants).zip(&sub) {
            let s = tenant.norm_share;
            *factor = if total <= 0.0 || s <= 0.0 { 1.0 } else { (-(used / total) / s).exp2() };
        }
    }

    pub fn fair_share_factor(&self, t: TenantIdx) -> f64 {
        self.factor[t.ix()]
    }

    /// Decayed GPU-milliseconds of tenant `t`'s own jobs.
    pub fn decayed_usage(&self, t: TenantIdx) -> f64 {
        self.decayed[t.ix()]
    }
}

fn check_weight(weight: f64) -> Result<(), EventError> {
    if weight > 0.0 && weight.is_finite() { Ok(()) } else { Err(EventError::InvalidTenant("weight must be a positive number".into())) }
}

/// Whether `need` more milli-GPU of flavor `f` for tenant `t` stays within every
/// limit up to the root, on holdings `held` (the root's less `less_root`).
#[allow(clippy::too_many_arguments)]
fn admit_within(
    held: &[u64],
    quota: &[Quota],
    tenants: &[Tenant],
    nf: usize,
    t: TenantIdx,
    f: FlavorIdx,
    need: u64,
    less_root: u64,
) -> Result<(), QuotaBlock> {
    let mut d = need;
    let mut x = t;
    loop {
        let i = x.ix() * nf + f.ix();
        let q = quota[i];
        let held = if x == TenantIdx(0) { held[i] - less_root } else { held[i] };
        let limit = q.limit();
        if held + d > limit {
            return Err(QuotaBlock { tenant: x, flavor: f, need, room: limit.saturating_sub(held) });
        }
        let Some(p) = tenants[x.ix()].parent else { return Ok(()) };
        let g = q.guaranteed();
        d = (held + d).max(g) - held.max(g);
        if d == 0 {
            return Ok(());
        }
        x = p;
    }
}
