//! The pending queue, ordered by the policy.
//!
//! Jobs are kept in groups whose internal order never changes while they wait: for
//! the default multifactor policy a group is (tenant, class, shape), ordered by
//! submission; within it the priority only falls with later submission (younger
//! means less age), while fair share and class are the same. A pass merges the
//! groups with a tree of their heads, so ordering 100,000 jobs costs a merge, not a
//! sort. Groups hold one shape so that a pass can take or leave a whole group at
//! once (whether a shape has room is the same for all its jobs) instead of reading
//! every waiting job: with the cluster full, most of them.
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
    /// The shape of every job in the group under the multifactor order; `None`
    /// under the other orders, whose one group holds every job.
    pub shape: Option<u32>,
    /// Sorted; may still hold keys listed in `removed`.
    jobs: Vec<Key>,
    /// Keys taken out since the last compaction.
    removed: Vec<Key>,
    /// The shortest walltime among `jobs` (`Time::MAX` when none): no job of the
    /// group ends sooner than this after it starts.
    pub min_walltime: Time,
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
        self.min_walltime = self.jobs.iter().map(|k| k.walltime).min().unwrap_or(Time::MAX);
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
    group_of: FxHashMap<(u32, u32, u32), u32>,
    len: usize,
    /// Groups holding a job (in no particular order), and per group its place
    /// there + 1 (0: not listed): groups are never dropped, and a pass over a short
    /// queue should not cost one step per group ever made.
    live: Vec<u32>,
    live_at: Vec<u32>,
    /// Groups with removals not yet applied.
    dirty: Vec<u32>,
}

impl Queue {
    pub fn new(policy: OrderPolicy) -> Queue {
        Queue { policy, groups: vec![], group_of: FxHashMap::default(), len: 0, live: vec![], live_at: vec![], dirty: vec![] }
    }

    /// Groups holding a job, in no particular order.
    pub fn live(&self) -> &[u32] {
        &self.live
    }

    /// The list of groups holding a job is right (for `Core::check_invariants`).
    pub fn check(&self) -> Result<(), String> {
        let mut want: Vec<u32> = (0..self.groups.len() as u32).filter(|&g| !self.groups[g as usize].is_empty()).collect();
        let mut have = self.live.clone();
        have.sort_unstable();
        want.sort_unstable();
        if have != want {
            return Err(format!("queue groups holding jobs: listed {have:?}, found {want:?}"));
        }
        for (i, &g) in self.live.iter().enumerate() {
            if self.live_at[g as usize] as usize != i + 1 {
                return Err(format!("queue group {g} listed at {i}, its place says {}", self.live_at[g as usize]));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn group_key(&self, tenant: TenantIdx, class: ClassIdx, shape: u32) -> (u32, u32, u32) {
        match self.policy {
            OrderPolicy::Default => (tenant.0, class.0, shape),
            _ => (0, 0, u32::MAX),
        }
    }

    fn group_for(&mut self, tenant: TenantIdx, class: ClassIdx, shape: u32) -> usize {
        let k = self.group_key(tenant, class, shape);
        if let Some(&g) = self.group_of.get(&k) {
            return g as usize;
        }
        let g = self.groups.len();
        let shape = (k.2 != u32::MAX).then_some(k.2);
        self.groups.push(Group {
            tenant: TenantIdx(k.0),
            class: ClassIdx(k.1),
            shape,
            jobs: Vec::new(),
            removed: Vec::new(),
            min_walltime: Time::MAX,
        });
        self.group_of.insert(k, g as u32);
        self.live_at.push(0);
        g
    }

    /// The group a job of this tenant, class and shape waits in, if there is one.
    pub fn group_of(&self, tenant: TenantIdx, class: ClassIdx, shape: u32) -> Option<usize> {
        self.group_of.get(&self.group_key(tenant, class, shape)).map(|&g| g as usize)
    }

    /// Adds a key; the caller guarantees it is not queued already.
    pub fn insert(&mut self, tenant: TenantIdx, class: ClassIdx, key: Key) {
        let gi = self.group_for(tenant, class, key.shape);
        let g = &mut self.groups[gi];
        g.compact();
        g.min_walltime = g.min_walltime.min(key.walltime);
        match g.jobs.last() {
            Some(last) if *last > key => {
                let at = g.jobs.partition_point(|k| *k < key);
                g.jobs.insert(at, key);
            }
            _ => g.jobs.push(key),
        }
        if self.live_at[gi] == 0 {
            self.live.push(gi as u32);
            self.live_at[gi] = self.live.len() as u32;
        }
        self.len += 1;
    }

    /// Takes a queued key out; the caller guarantees it is queued.
    pub fn remove(&mut self, tenant: TenantIdx, class: ClassIdx, key: Key) {
        let gi = self.group_for(tenant, class, key.shape);
        // Batched, never popped at once: a pass reads groups it took whole from the
        // queue itself, by index, while it starts their jobs.
        let g = &mut self.groups[gi];
        if g.removed.is_empty() {
            self.dirty.push(gi as u32);
        }
        g.removed.push(key);
        if g.is_empty() {
            let at = self.live_at[gi] as usize - 1;
            self.live.swap_remove(at);
            if let Some(&moved) = self.live.get(at) {
                self.live_at[moved as usize] = at as u32 + 1;
            }
            self.live_at[gi] = 0;
        }
        self.len -= 1;
    }

    /// Applies batched removals.
    pub fn compact(&mut self) {
        for g in self.dirty.drain(..) {
            self.groups[g as usize].compact();
        }
    }

    /// Appends the queued jobs of the groups `group_in` admits that `include(group
    /// index, key)` admits to `out`, in policy order; returns how many were left out.
    /// A job's priority is `base[group] + key_score(key)`; `key_score` must not rise
    /// along a group's keys.
    pub fn ordered(
        &mut self,
        out: &mut Vec<Key>,
        base: &[f64],
        key_score: impl Fn(&Key) -> f64,
        include: impl FnMut(usize, &Key) -> bool,
        group_in: impl Fn(usize) -> bool,
    ) -> usize {
        let mut picked = Picked::default();
        let left_out = self.pick(&mut picked, include, group_in);
        let src = Src { picked: &picked, groups: &self.groups };
        let mut merge = Merge::new(src, base, &key_score, |_| true, |_, _, _| Admit::Take);
        out.reserve(picked.keys.len());
        while let Some((_, _, k)) = merge.next(src, base, &key_score, |_, _, _| Admit::Take) {
            out.push(k);
        }
        left_out
    }

    /// Step one of ordering: the queued jobs of the groups `group_in` admits that
    /// `include(group index, key)` admits, copied group by group into `picked` (each
    /// group's keys stay in their order); returns how many were left out. Groups are
    /// visited in index order, so `include` sees each group's keys in order.
    pub fn pick(&mut self, picked: &mut Picked, mut include: impl FnMut(usize, &Key) -> bool, group_in: impl Fn(usize) -> bool) -> usize {
        self.compact();
        picked.reset(self.groups.len());
        let mut left_out = 0;
        for (g, group) in self.groups.iter().enumerate() {
            let from = picked.keys.len();
            if group_in(g) {
                for k in group.keys() {
                    if include(g, k) {
                        picked.keys.push(*k);
                    } else {
                        left_out += 1;
                    }
                }
            }
            picked.set_range(g, from);
        }
        left_out
    }
}

/// Picked jobs, group by group: a group taken whole is read from the queue itself
/// (`whole[g]`; `ranges[g]` is then `(0, its length)`), else group `g`'s keys are
/// `keys[ranges[g].0..ranges[g].1]`. Copying the groups taken whole would be most
/// of a pass's memory traffic.
#[derive(Clone, Debug, Default)]
pub struct Picked {
    pub keys: Vec<Key>,
    pub ranges: Vec<(usize, usize)>,
    pub whole: Vec<bool>,
    /// The groups with picked keys.
    pub groups: Vec<usize>,
}

impl Picked {
    /// Empties the picks for `ngroups` groups, each with nothing picked yet.
    pub fn reset(&mut self, ngroups: usize) {
        self.keys.clear();
        self.ranges.clear();
        self.ranges.resize(ngroups, (0, 0));
        self.whole.clear();
        self.whole.resize(ngroups, false);
        self.groups.clear();
    }

    /// Group `g`'s picks are `keys[from..]` (the keys pushed since `from`).
    pub fn set_range(&mut self, g: usize, from: usize) {
        self.ranges[g] = (from, self.keys.len());
        if self.keys.len() > from {
            self.groups.push(g);
        }
    }

    /// Queue group `g` is taken whole.
    pub fn set_whole(&mut self, groups: &[Group], g: usize) {
        debug_assert!(groups[g].removed.is_empty());
        self.ranges[g] = (0, groups[g].jobs.len());
        self.whole[g] = true;
        if !groups[g].jobs.is_empty() {
            self.groups.push(g);
        }
    }

    /// Where a merge reads these picks, from `queue`.
    pub fn src<'a>(&'a self, queue: &'a Queue) -> Src<'a> {
        Src { picked: self, groups: &queue.groups }
    }

    /// Keys picked in all.
    pub fn count(&self) -> usize {
        self.groups.iter().map(|&g| self.ranges[g].1 - self.ranges[g].0).sum()
    }
}

/// Where a merge reads picked keys: the picked copies, and the queue's groups for
/// those taken whole (the queue only batches removals while a pass runs, so indices
/// hold).
#[derive(Clone, Copy)]
pub struct Src<'a> {
    pub picked: &'a Picked,
    pub groups: &'a [Group],
}

impl Src<'_> {
    /// Key `i` of picked group `g` (`i` within `ranges[g]`).
    #[inline]
    pub fn key(&self, g: usize, i: usize) -> &Key {
        if self.picked.whole[g] { &self.groups[g].jobs[i] } else { &self.picked.keys[i] }
    }
}

/// What a merge does with the key at a group's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// It is the group's next key.
    Take,
    /// It is skipped.
    Skip,
    /// It and every later key of the group's picked range are skipped.
    SkipRest,
}

/// A merge of picked groups in priority order (`base[group] + key_score(key)`, best
/// first, then key order), taken one job at a time, so that the caller may change
/// what it admits as it goes: `admit(group, index in picked, key)` is asked of each
/// key as its group's cursor reaches it (before the key's turn), and a key it
/// refuses is skipped (with the rest of its group, if it says so). `rewind` puts every cursor back behind the last key taken
/// from its group and asks again.
///
/// A loser tree over the groups' heads: each job taken costs log2(groups)
/// comparisons and no moves.
#[derive(Clone, Debug, Default)]
pub struct Merge {
    size: usize,
    /// Per tree slot: its group (only groups with picked keys get a slot), the
    /// group's cursor, end, and one past the last key taken.
    group: Vec<usize>,
    pos: Vec<usize>,
    end: Vec<usize>,
    taken_to: Vec<usize>,
    heads: Vec<(f64, Key)>,
    losers: Vec<usize>,
    /// Scratch for `build`.
    winners: Vec<usize>,
    top: usize,
    /// Keys taken so far.
    pub taken: usize,
}

const EXHAUSTED: (f64, Key) = (f64::NEG_INFINITY, Key::EXHAUSTED);

/// Whether priority and key `a` come before `b` in the merged order.
pub fn better(a: &(f64, Key), b: &(f64, Key)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl Merge {
    /// A merge over the groups of `picked` that `group_in` admits.
    pub fn new(
        src: Src<'_>,
        base: &[f64],
        key_score: impl Fn(&Key) -> f64,
        group_in: impl Fn(usize) -> bool,
        admit: impl FnMut(usize, usize, &Key) -> Admit,
    ) -> Merge {
        Merge::default().renew(src, base, key_score, group_in, admit)
    }

    /// The same as `new`, in this merge's buffers (a pass makes one per class tier
    /// and round; a short queue's passes would spend their time allocating).
    pub fn renew(
        mut self,
        src: Src<'_>,
        base: &[f64],
        key_score: impl Fn(&Key) -> f64,
        group_in: impl Fn(usize) -> bool,
        admit: impl FnMut(usize, usize, &Key) -> Admit,
    ) -> Merge {
        self.group.clear();
        self.pos.clear();
        self.end.clear();
        for &g in &src.picked.groups {
            let (a, b) = src.picked.ranges[g];
            if b > a && group_in(g) {
                self.group.push(g);
                self.pos.push(a);
                self.end.push(b);
            }
        }
        let size = self.group.len().max(1).next_power_of_two();
        self.group.resize(size, 0);
        self.pos.resize(size, 0);
        self.end.resize(size, 0);
        self.taken_to.clear();
        self.taken_to.extend_from_slice(&self.pos);
        self.heads.clear();
        self.heads.resize(size, EXHAUSTED);
        self.losers.clear();
        self.losers.resize(size, 0);
        (self.size, self.top, self.taken) = (size, 0, 0);
        self.build(src, base, key_score, admit);
        self
    }

    /// Slot `leaf`'s next admitted key from its cursor on.
    fn head(
        &mut self,
        leaf: usize,
        src: Src<'_>,
        base: &[f64],
        key_score: &impl Fn(&Key) -> f64,
        admit: &mut impl FnMut(usize, usize, &Key) -> Admit,
    ) -> (f64, Key) {
        let g = self.group[leaf];
        while self.pos[leaf] < self.end[leaf] {
            let k = src.key(g, self.pos[leaf]);
            match admit(g, self.pos[leaf], k) {
                Admit::Take => return (base[g] + key_score(k), *k),
                Admit::Skip => self.pos[leaf] += 1,
                Admit::SkipRest => self.pos[leaf] = self.end[leaf],
            }
        }
        EXHAUSTED
    }

    fn build(&mut self, src: Src<'_>, base: &[f64], key_score: impl Fn(&Key) -> f64, mut admit: impl FnMut(usize, usize, &Key) -> Admit) {
        for g in 0..self.size {
            self.heads[g] = self.head(g, src, base, &key_score, &mut admit);
        }
        // `winners[node]` is the winner of the match at that node; `losers` keeps the loser.
        let size = self.size;
        let mut winners = std::mem::take(&mut self.winners);
        winners.clear();
        winners.resize(2 * size, 0);
        for (i, w) in winners[size..].iter_mut().enumerate() {
            *w = i;
        }
        for node in (1..size).rev() {
            let (l, r) = (winners[2 * node], winners[2 * node + 1]);
            let (w, lo) = if better(&self.heads[l], &self.heads[r]) { (l, r) } else { (r, l) };
            winners[node] = w;
            self.losers[node] = lo;
        }
        self.top = winners[1];
        self.winners = winners;
    }

    /// The best admitted key not yet taken, with its group and priority.
    pub fn next(
        &mut self,
        src: Src<'_>,
        base: &[f64],
        key_score: impl Fn(&Key) -> f64,
        mut admit: impl FnMut(usize, usize, &Key) -> Admit,
    ) -> Option<(usize, f64, Key)> {
        let top = self.top;
        let (score, key) = self.heads[top];
        if score == f64::NEG_INFINITY {
            return None;
        }
        self.pos[top] += 1;
        self.taken_to[top] = self.pos[top];
        self.taken += 1;
        self.heads[top] = self.head(top, src, base, &key_score, &mut admit);
        let mut cur = top;
        let mut node = (top + self.size) / 2;
        while node >= 1 {
            if better(&self.heads[self.losers[node]], &self.heads[cur]) {
                std::mem::swap(&mut self.losers[node], &mut cur);
            }
            node /= 2;
        }
        self.top = cur;
        Some((self.group[top], score, key))
    }

    /// Puts every cursor back behind the last key taken from its group and asks
    /// `admit` again of the keys after it.
    pub fn rewind(&mut self, src: Src<'_>, base: &[f64], key_score: impl Fn(&Key) -> f64, admit: impl FnMut(usize, usize, &Key) -> Admit) {
        self.pos.copy_from_slice(&self.taken_to);
        self.build(src, base, key_score, admit);
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
