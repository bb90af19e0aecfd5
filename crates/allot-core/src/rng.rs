//! Seeded, stateless mixing for tie-breaks. Ties are broken by a hash of the policy
//! seed and the ids involved, never by map order or a clock, so a decision can be
//! replayed bit for bit.

/// SplitMix64 finaliser: a bijective, well-mixed hash of one 64-bit word.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a seed and one value.
#[inline]
pub fn mix(seed: u64, x: u64) -> u64 {
    splitmix64(seed ^ splitmix64(x))
}

/// Hash of a seed and two values.
#[inline]
pub fn mix2(seed: u64, a: u64, b: u64) -> u64 {
    splitmix64(mix(seed, a) ^ b.rotate_left(17))
}

/// A tiny seeded generator for drivers and tests that need a stream of numbers
/// (workload generators, random placement). Deterministic given its seed.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(splitmix64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi]` (inclusive).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SeededRng::new(7).next_u64(), SeededRng::new(8).next_u64());
    }

    #[test]
    fn range_stays_inside() {
        let mut r = SeededRng::new(1);
        for _ in 0..1000 {
            let v = r.range(3, 9);
            assert!((3..=9).contains(&v));
        }
    }
}
