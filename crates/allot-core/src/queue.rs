//! The pending queue, ordered by the policy.
//!
//! Jobs are kept in groups whose internal order never changes while they wait: for
//! the default multifactor policy a group is (tenant, class), ordered by submission;
//! within it the priority only falls with later submission (younger means less age),
//! while fair share and class are the same. A pass merges the groups with a heap of
//! their heads, so ordering 100,000 jobs costs a merge, not a sort. When one group's
//! next job still beats every other head, the heap is not touched at all.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use rustc_hash::FxHashMap;

use crate::config::OrderPolicy;
use crate::ids::{ClassIdx, JobIdx, TenantIdx};

/// Sort key of a job inside its group: ascending.
pub type Key = (i64, i64, u64, u32);

#[derive(Clone, Debug)]
pub struct Group {
    pub tenant: TenantIdx,
    pub class: ClassIdx,
    pub jobs: BTreeSet<Key>,
}

#[derive(Clone, Debug)]
pub struct Queue {
    pub policy: OrderPolicy,
    pub groups: Vec<Group>,
    group_of: FxHashMap<(u32, u32), u32>,
    len: usize,
}

/// A group head during the merge: higher score first, then lower key.
#[derive(Clone, Copy, Debug)]
struct Head {
    score: f64,
    key: Key,
    group: u32,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.key.cmp(&self.key))
    }
}

impl Queue {
    pub fn new(policy: OrderPolicy) -> Queue {
        Queue { policy, groups: vec![], group_of: FxHashMap::default(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn group_for(&mut self, tenant: TenantIdx, class: ClassIdx) -> usize {
        let k = match self.policy {
            OrderPolicy::Default => (tenant.0, class.0),
            _ => (0, 0),
        };
        if let Some(&g) = self.group_of.get(&k) {
            return g as usize;
        }
        let g = self.groups.len();
        self.groups.push(Group { tenant: TenantIdx(k.0), class: ClassIdx(k.1), jobs: BTreeSet::new() });
        self.group_of.insert(k, g as u32);
        g
    }

    pub fn insert(&mut self, tenant: TenantIdx, class: ClassIdx, key: Key) {
        let g = self.group_for(tenant, class);
        if self.groups[g].jobs.insert(key) {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, tenant: TenantIdx, class: ClassIdx, key: Key) {
        let g = self.group_for(tenant, class);
        if self.groups[g].jobs.remove(&key) {
            self.len -= 1;
        }
    }

    /// Writes all queued jobs into `out` in policy order. `score(group, key)` is the
    /// priority of a group's job with that key; it must not rise along a group's keys.
    pub fn ordered(&self, out: &mut Vec<JobIdx>, score: impl Fn(&Group, &Key) -> f64) {
        out.clear();
        out.reserve(self.len);
        let mut iters: Vec<_> = self.groups.iter().map(|g| g.jobs.iter()).collect();
        let mut heap = BinaryHeap::with_capacity(self.groups.len());
        for (gi, it) in iters.iter_mut().enumerate() {
            if let Some(k) = it.next() {
                heap.push(Head { score: score(&self.groups[gi], k), key: *k, group: gi as u32 });
            }
        }
        let Some(mut top) = heap.pop() else { return };
        loop {
            out.push(JobIdx(top.key.3));
            let gi = top.group as usize;
            let next = iters[gi].next().map(|k| Head { score: score(&self.groups[gi], k), key: *k, group: top.group });
            top = match (next, heap.peek()) {
                (Some(n), Some(p)) if n >= *p => n,
                (Some(n), Some(_)) => {
                    heap.push(n);
                    heap.pop().expect("heap is not empty")
                }
                (Some(n), None) => n,
                (None, _) => match heap.pop() {
                    Some(h) => h,
                    None => return,
                },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_interleaves_groups_by_score() {
        let mut q = Queue::new(OrderPolicy::Default);
        // tenant 1: jobs submitted at 0, 10, 20; tenant 2: at 5, 15.
        for (t, sub, id) in [(1, 0, 1), (1, 10, 2), (1, 20, 3), (2, 5, 4), (2, 15, 5)] {
            q.insert(TenantIdx(t), ClassIdx(0), (sub, 0, 0, id));
        }
        let mut out = vec![];
        // Score: older first (pure age), equal tenants.
        q.ordered(&mut out, |_, k| -(k.0 as f64));
        assert_eq!(out, vec![JobIdx(1), JobIdx(4), JobIdx(2), JobIdx(5), JobIdx(3)]);
        // Tenant 2 has a far better base score: all of its jobs come first.
        q.ordered(&mut out, |g, k| if g.tenant == TenantIdx(2) { 1000.0 } else { 0.0 } - k.0 as f64);
        assert_eq!(out, vec![JobIdx(4), JobIdx(5), JobIdx(1), JobIdx(2), JobIdx(3)]);
    }

    #[test]
    fn equal_scores_fall_back_to_key_order() {
        let mut q = Queue::new(OrderPolicy::Default);
        q.insert(TenantIdx(1), ClassIdx(0), (7, 0, 9, 1));
        q.insert(TenantIdx(2), ClassIdx(0), (7, 0, 3, 2));
        let mut out = vec![];
        q.ordered(&mut out, |_, _| 1.0);
        assert_eq!(out, vec![JobIdx(2), JobIdx(1)]);
    }

    #[test]
    fn remove_takes_a_job_out() {
        let mut q = Queue::new(OrderPolicy::Fifo);
        q.insert(TenantIdx(1), ClassIdx(0), (1, 0, 0, 1));
        q.insert(TenantIdx(2), ClassIdx(1), (2, 0, 0, 2));
        q.remove(TenantIdx(1), ClassIdx(0), (1, 0, 0, 1));
        let mut out = vec![];
        q.ordered(&mut out, |_, _| 0.0);
        assert_eq!(out, vec![JobIdx(2)]);
        assert_eq!(q.len(), 1);
    }
}
