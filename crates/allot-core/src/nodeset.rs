//! A set of node indices kept as a two-level bitset: insert and remove cost a few
//! bit operations (the cluster's free-GPU buckets move a node on every start, stop
//! and preemption trial), and walking the set in ascending order skips empty
//! stretches 4,096 nodes at a time.

/// Node indices below a fixed bound, in ascending order.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeSet {
    words: Vec<u64>,
    /// Bit `i` set: `words[i]` is not zero.
    summary: Vec<u64>,
}

impl NodeSet {
    /// An empty set for indices below `n`.
    pub(crate) fn with_bound(n: usize) -> NodeSet {
        let words = n.div_ceil(64);
        NodeSet { words: vec![0; words], summary: vec![0; words.div_ceil(64)] }
    }

    pub(crate) fn insert(&mut self, i: u32) {
        let w = i as usize / 64;
        self.words[w] |= 1 << (i % 64);
        self.summary[w / 64] |= 1 << (w % 64);
    }

    pub(crate) fn remove(&mut self, i: u32) {
        let w = i as usize / 64;
        self.words[w] &= !(1 << (i % 64));
        if self.words[w] == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
    }

    pub(crate) fn contains(&self, i: u32) -> bool {
        self.words.get(i as usize / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The members in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.summary.iter().enumerate().flat_map(move |(si, &s)| {
            bits(s).flat_map(move |b| {
                let w = si * 64 + b as usize;
                bits(self.words[w]).map(move |i| (w * 64) as u32 + i)
            })
        })
    }
}

/// The set bits of `x`, lowest first.
fn bits(mut x: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        if x == 0 {
            return None;
        }
        let b = x.trailing_zeros();
        x &= x - 1;
        Some(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn walks_members_in_order_as_a_btreeset_would() {
        let mut set = NodeSet::with_bound(10_000);
        let mut want = BTreeSet::new();
        let mut x = 12345u64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % 10_000) as u32;
            if step % 3 == 0 {
                set.remove(i);
                want.remove(&i);
            } else {
                set.insert(i);
                want.insert(i);
            }
            assert_eq!(set.contains(i), want.contains(&i));
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), want.iter().copied().collect::<Vec<_>>());
        for i in want.clone() {
            set.remove(i);
        }
        assert_eq!(set.iter().next(), None);
        assert!(set.summary.iter().all(|&s| s == 0), "emptied words leave no mark in the summary");
    }

    #[test]
    fn the_last_index_below_the_bound_is_kept() {
        let mut set = NodeSet::with_bound(4097);
        set.insert(4096);
        set.insert(0);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 4096]);
    }
}
