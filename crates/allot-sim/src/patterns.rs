//! Packing patterns for a workload's GPU fractions: how its expected fractions fill
//! GPUs with the least left over, from the linear programme of the cutting-stock
//! problem (Gilmore and Gomory). The default placement policy keeps partly used GPUs
//! on these patterns (`allot_core::WorkloadProfile::fraction_patterns`).
//!
//! Each pattern is a multiset of fraction sizes (milli-GPU) summing to at most one
//! GPU. The programme covers each size's expected count (its share of the mix, over
//! a thousand fractions) with as few GPUs as possible; the patterns it uses are the
//! ones an optimal packing of the mix is made of.

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem};

const GPU: u32 = 1000;

/// Most patterns the programme is built over. A mix of many small sizes has
/// combinatorially many; then the rarest sizes are left out (they fill few GPUs
/// either way) until the maximal patterns of the rest number at most this.
pub const MAX_PATTERNS: usize = 20_000;

/// Patterns an optimal fractional packing of `fractions` (milli-GPU, weight) uses.
/// Sizes outside 1..=999 and non-positive weights are ignored; an empty result
/// means there is nothing to pack (or the solver failed: the policy then goes
/// without patterns).
pub fn fraction_patterns(fractions: &[(u16, f64)]) -> Vec<Vec<u16>> {
    let mut by_size: std::collections::BTreeMap<u16, f64> = Default::default();
    for &(m, w) in fractions {
        if (1..GPU as u16).contains(&m) && w > 0.0 && w.is_finite() {
            *by_size.entry(m).or_default() += w;
        }
    }
    // Most frequent first, so that the rarest are the ones dropped.
    let mut sizes: Vec<(u16, f64)> = by_size.into_iter().collect();
    sizes.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    while !sizes.is_empty() {
        let mut kept: Vec<u16> = sizes.iter().map(|s| s.0).collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(patterns) = maximal_patterns(&kept, MAX_PATTERNS) {
            return solve(&sizes, &kept, &patterns);
        }
        sizes.pop();
    }
    Vec::new()
}

/// Every multiset of `sizes` (largest first) that fits one GPU and has no room for
/// one more of any size; `None` when there are more than `limit`.
fn maximal_patterns(sizes: &[u16], limit: usize) -> Option<Vec<Vec<u16>>> {
    fn walk(sizes: &[u16], i: usize, left: u32, cur: &mut Vec<u16>, out: &mut Vec<Vec<u16>>, limit: usize) -> bool {
        if i == sizes.len() {
            let smallest = sizes.iter().map(|&s| u32::from(s)).min().unwrap_or(GPU);
            if !cur.is_empty() && left < smallest {
                if out.len() == limit {
                    return false;
                }
                out.push(cur.clone());
            }
            return true;
        }
        let s = u32::from(sizes[i]);
        let most = left / s;
        for k in (0..=most).rev() {
            cur.extend(std::iter::repeat_n(sizes[i], k as usize));
            let ok = walk(sizes, i + 1, left - k * s, cur, out, limit);
            cur.truncate(cur.len() - k as usize);
            if !ok {
                return false;
            }
        }
        true
    }
    let mut out = Vec::new();
    walk(sizes, 0, GPU, &mut Vec::new(), &mut out, limit).then_some(out)
}

/// The programme: min sum x_p subject to, per size, sum_p count(size, p) x_p >=
/// demand(size), x >= 0. Returns the patterns with a positive x.
fn solve(sizes: &[(u16, f64)], kept: &[u16], patterns: &[Vec<u16>]) -> Vec<Vec<u16>> {
    let total: f64 = sizes.iter().map(|s| s.1).sum();
    if total <= 0.0 || patterns.is_empty() {
        return Vec::new();
    }
    let mut lp = Problem::new(OptimizationDirection::Minimize);
    let vars: Vec<_> = patterns.iter().map(|_| lp.add_var(1.0, (0.0, f64::INFINITY))).collect();
    for &size in kept {
        let demand = 1000.0 * sizes.iter().find(|s| s.0 == size).map_or(0.0, |s| s.1) / total;
        let mut row = LinearExpr::empty();
        for (p, &v) in patterns.iter().zip(&vars) {
            let n = p.iter().filter(|&&m| m == size).count();
            if n > 0 {
                row.add(v, n as f64);
            }
        }
        lp.add_constraint(row, ComparisonOp::Ge, demand);
    }
    let Ok(solution) = lp.solve() else { return Vec::new() };
    patterns.iter().zip(&vars).filter(|(_, v)| solution.var_value(**v) > 1e-9).map(|(p, _)| p.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<Vec<u16>>) -> Vec<Vec<u16>> {
        v.sort();
        v
    }

    #[test]
    fn complementary_sizes_pair_up() {
        // As many 600s as 400s: every GPU holds one of each, nothing else is needed.
        let got = sorted(fraction_patterns(&[(600, 1.0), (400, 1.0)]));
        assert_eq!(got, vec![vec![600, 400]]);
    }

    #[test]
    fn a_lone_size_packs_as_many_as_fit() {
        assert_eq!(fraction_patterns(&[(300, 1.0)]), vec![vec![300, 300, 300]]);
    }

    #[test]
    fn leftovers_go_to_the_best_partner() {
        // Twice as many 700s as 300s: half the 700s pair with a 300 (no waste),
        // the rest go alone; 300s are never packed three to a GPU while 700s need partners.
        let got = sorted(fraction_patterns(&[(700, 2.0), (300, 1.0)]));
        assert!(got.contains(&vec![700, 300]), "{got:?}");
        assert!(!got.contains(&vec![300, 300, 300]), "{got:?}");
    }

    #[test]
    fn bad_sizes_and_weights_are_ignored() {
        assert!(fraction_patterns(&[(0, 1.0), (1000, 1.0), (500, 0.0), (400, f64::NAN)]).is_empty());
        assert!(fraction_patterns(&[]).is_empty());
    }

    #[test]
    fn too_many_patterns_drop_the_rarest_sizes() {
        // Sizes 10..=990 by tens: far more than MAX_PATTERNS maximal multisets, so
        // rare sizes go until the rest can be enumerated; the common 500 stays.
        let mut mix: Vec<(u16, f64)> = (1..100).map(|i| (i * 10, 0.001)).collect();
        mix.push((500, 10.0));
        let got = fraction_patterns(&mix);
        assert!(!got.is_empty());
        assert!(got.iter().any(|p| p.contains(&500)), "{got:?}");
        assert!(got.iter().all(|p| p.iter().map(|&m| u32::from(m)).sum::<u32>() <= 1000));
    }
}
