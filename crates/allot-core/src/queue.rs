//! The pending queue, ordered by the policy.
//!
//! Jobs are kept in groups whose internal order never changes while they wait: for
//! the default multifactor policy a group is (tenant, class), ordered by submission;
//! within it the priority only falls with later submission (younger means less age),
//! while fair share and class are the same. A pass merges the groups with a heap of
//! their heads, so ordering 100,000 jobs costs a merge, not a sort. When one group's
//! next job still beats every other head, the heap is not touched at all.
//!
//! A group is a sorted vector (new jobs are appended: they are the youngest).
//! Removals are batched and applied in one merge before the next ordering, so a pass
//! that starts thousands of jobs does not shift vectors thousands of times.

use rustc_hash::FxHashMap;

use crate::config::OrderPolicy;
use crate::ids::{ClassIdx, JobIdx, TenantIdx, Time};

/// Sort key of a job inside its group, ascending on (`k1`, `k2`, `tiebreak`, `job`);
/// it also carries what a pass's hot loop reads of the job (shape, walltime, tenant,
/// class), so the pass orders and sorts out tens of thousands of jobs without
/// touching the job table, whose entries it would reach in random order (a cache
/// miss each). Its size is what a pass streams through per job (48 bytes): the
/// job's milli-GPU comes from its shape.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub k1: i64,
    pub k2: i64,
    pub tiebreak: u64,
    pub job: u32,
    pub shape: u32,
    pub tenant: u32,
    pub walltime: Time,
    pub class: u32,
}

// What a pass streams through per pending job; keep it from growing unnoticed.
const _: () = assert!(std::mem::size_of::<Key>() == 48);

impl Key {
    pub fn new(k1: i64, k2: i64, tiebreak: u64, job: u32) -> Key {
        Key { k1, k2, tiebreak, job, shape: 0, tenant: 0, walltime: 0, class: 0 }
    }

    pub fn idx(&self) -> JobIdx {
        JobIdx(self.job)
    }

    fn order(&self) -> (i64, i64, u64, u32) {
        (self.k1, self.k2, self.tiebreak, self.job)
    }

    const EXHAUSTED: Key =
        Key { k1: i64::MAX, k2: i64::MAX, tiebreak: u64::MAX, job: u32::MAX, shape: 0, tenant: 0, walltime: 0, class: 0 };
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub tenant: TenantIdx,
    pub class: ClassIdx,
    /// Sorted; may still hold keys listed in `removed`.
    jobs: Vec<Key>,
    /// Keys taken out since the last compaction.
    removed: Vec<Key>,
}

impl Group {
    fn compact(&mut self) {
        if self.removed.is_empty() {
            return;
        }
        self.removed.sort_unstable();
        let mut r = 0;
        let removed = &self.removed;
        self.jobs.retain(|k| {
            while r < removed.len() && removed[r] < *k {
                r += 1;
            }
            !(r < removed.len() && removed[r] == *k)
        });
        self.removed.clear();
    }

    /// Whether no job waits in it (removals not yet compacted count as gone).
    pub fn is_empty(&self) -> bool {
        self.jobs.len() == self.removed.len()
    }

    /// Live keys, in order (after `compact`).
    pub fn keys(&self) -> &[Key] {
        debug_assert!(self.removed.is_empty());
        &self.jobs
    }
}

#[derive(Clone, Debug)]
pub struct Queue {
    pub policy: OrderPolicy,
    pub groups: Vec<Group>,
    group_of: FxHashMap<(u32, u32), u32>,
    len: usize,
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
        self.groups.push(Group { tenant: TenantIdx(k.0), class: ClassIdx(k.1), jobs: Vec::new(), removed: Vec::new() });
        self.group_of.insert(k, g as u32);
        g
    }

    /// Adds a key; the caller guarantees it is not queued already.
    pub fn insert(&mut self, tenant: TenantIdx, class: ClassIdx, key: Key) {
        let gi = self.group_for(tenant, class);
        let g = &mut self.groups[gi];
        g.compact();
        match g.jobs.last() {
            Some(last) if *last > key => {
                let at = g.jobs.partition_point(|k| *k < key);
                g.jobs.insert(at, key);
            }
            _ => g.jobs.push(key),
        }
        self.len += 1;
    }

    /// Takes a queued key out; the caller guarantees it is queued.
    pub fn remove(&mut self, tenant: TenantIdx, class: ClassIdx, key: Key) {
        let gi = self.group_for(tenant, class);
        let g = &mut self.groups[gi];
        if g.jobs.last() == Some(&key) {
            g.jobs.pop();
        } else {
            g.removed.push(key);
        }
        self.len -= 1;
    }

    /// Applies batched removals.
    pub fn compact(&mut self) {
        for g in &mut self.groups {
            g.compact();
        }
    }

    /// Appends the queued jobs of the groups `group_in` admits that `include(group
    /// index, key)` admits to `out`, in policy order; returns how many were left out.
    /// A job's priority is `base[group] + key_score(key)`; `key_score` must not rise
    /// along a group's keys.
    ///
    /// The merge is a loser tree over the groups' heads: each job costs exactly
    /// log2(groups) comparisons and no moves. Jobs left out cost one call of `include`;
    /// groups left out cost nothing.
    pub fn ordered(
        &mut self,
        out: &mut Vec<Key>,
        base: &[f64],
        key_score: impl Fn(&Key) -> f64,
        mut include: impl FnMut(usize, &Key) -> bool,
        group_in: impl Fn(usize) -> bool,
    ) -> usize {
        self.compact();
        out.reserve(self.len);
        let n = self.groups.len();
        if n == 0 {
            return 0;
        }
        let size = n.next_power_of_two();
        let exhausted = (f64::NEG_INFINITY, Key::EXHAUSTED);
        let mut pos = vec![0usize; size];
        let mut left_out = 0usize;
        // Moves group g's cursor to its next included key.
        let mut next_head = |g: usize, pos: &mut usize, groups: &[Group], left_out: &mut usize| -> (f64, Key) {
            let Some(group) = groups.get(g).filter(|_| group_in(g)) else { return exhausted };
            debug_assert_eq!(base.len(), groups.len());
            let keys = group.keys();
            while let Some(k) = keys.get(*pos) {
                if include(g, k) {
                    return (base[g] + key_score(k), *k);
                }
                *left_out += 1;
                *pos += 1;
            }
            exhausted
        };
        let mut heads: Vec<(f64, Key)> = Vec::with_capacity(size);
        for (g, p) in pos.iter_mut().enumerate() {
            heads.push(next_head(g, p, &self.groups, &mut left_out));
        }
        let better = |a: &(f64, Key), b: &(f64, Key)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
        // Build: `losers[node]` is the loser of the match at that node.
        let mut winners = vec![0usize; 2 * size];
        let mut losers = vec![0usize; size];
        for (i, w) in winners[size..].iter_mut().enumerate() {
            *w = i;
        }
        for node in (1..size).rev() {
            let (l, r) = (winners[2 * node], winners[2 * node + 1]);
            let (w, lo) = if better(&heads[l], &heads[r]) { (l, r) } else { (r, l) };
            winners[node] = w;
            losers[node] = lo;
        }
        let mut top = winners[1];
        while heads[top].0 != f64::NEG_INFINITY {
            out.push(heads[top].1);
            pos[top] += 1;
            heads[top] = next_head(top, &mut pos[top], &self.groups, &mut left_out);
            let mut cur = top;
            let mut node = (top + size) / 2;
            while node >= 1 {
                if better(&heads[losers[node]], &heads[cur]) {
                    std::mem::swap(&mut losers[node], &mut cur);
                }
                node /= 2;
            }
            top = cur;
        }
        left_out
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
            q.insert(TenantIdx(t), ClassIdx(0), Key::new(sub, 0, 0, id));
        }
        let mut out = vec![];
        // Score: older first (pure age), equal tenants.
        out.clear();
        q.ordered(&mut out, &[0.0, 0.0], |k| -(k.k1 as f64), |_, _| true, |_| true);
        assert_eq!(out.iter().map(Key::idx).collect::<Vec<_>>(), vec![JobIdx(1), JobIdx(4), JobIdx(2), JobIdx(5), JobIdx(3)]);
        // Tenant 2 has a far better base score: all of its jobs come first.
        // Group 1 is tenant 2.
        out.clear();
        q.ordered(&mut out, &[0.0, 1000.0], |k| -(k.k1 as f64), |_, _| true, |_| true);
        assert_eq!(out.iter().map(Key::idx).collect::<Vec<_>>(), vec![JobIdx(4), JobIdx(5), JobIdx(1), JobIdx(2), JobIdx(3)]);
    }

    #[test]
    fn equal_scores_fall_back_to_key_order() {
        let mut q = Queue::new(OrderPolicy::Default);
        q.insert(TenantIdx(1), ClassIdx(0), Key::new(7, 0, 9, 1));
        q.insert(TenantIdx(2), ClassIdx(0), Key::new(7, 0, 3, 2));
        let mut out = vec![];
        out.clear();
        q.ordered(&mut out, &[1.0, 1.0], |_| 0.0, |_, _| true, |_| true);
        assert_eq!(out.iter().map(Key::idx).collect::<Vec<_>>(), vec![JobIdx(2), JobIdx(1)]);
    }

    #[test]
    fn remove_takes_a_job_out() {
        let mut q = Queue::new(OrderPolicy::Fifo);
        q.insert(TenantIdx(1), ClassIdx(0), Key::new(1, 0, 0, 1));
        q.insert(TenantIdx(2), ClassIdx(1), Key::new(2, 0, 0, 2));
        q.remove(TenantIdx(1), ClassIdx(0), Key::new(1, 0, 0, 1));
        let mut out = vec![];
        out.clear();
        q.ordered(&mut out, &[0.0], |_| 0.0, |_, _| true, |_| true);
        assert_eq!(out.iter().map(Key::idx).collect::<Vec<_>>(), vec![JobIdx(2)]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn left_out_jobs_are_counted_not_ordered() {
        let mut q = Queue::new(OrderPolicy::Fifo);
        for id in 1..=5 {
            q.insert(TenantIdx(1), ClassIdx(0), Key::new(i64::from(id), 0, 0, id));
        }
        let mut out = vec![];
        out.clear();
        let left = q.ordered(&mut out, &[0.0], |_| 0.0, |_, k| k.job % 2 == 1, |_| true);
        assert_eq!(out.iter().map(Key::idx).collect::<Vec<_>>(), vec![JobIdx(1), JobIdx(3), JobIdx(5)]);
        assert_eq!(left, 2);
    }
}
