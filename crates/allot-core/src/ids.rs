//! Dense indices used inside the core, and the rich ids used at its edges.
//!
//! Inside the core everything is addressed by small integer indices into vectors
//! (`NodeIdx`, `JobIdx`, ...). Drivers (server, simulator) speak in rich ids: node
//! names, tenant paths, `JobId`s. The core converts at its boundary.

use std::fmt;

/// Time in milliseconds since the driver's epoch. The core never reads a clock:
/// every event and pass is given `now` by its driver.
pub type Time = i64;

/// Milliseconds in one second, for converting specs given in seconds.
pub const MS_PER_S: i64 = 1_000;
/// Milliseconds in one hour.
pub const MS_PER_H: i64 = 3_600_000;

macro_rules! dense_index {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for indexing vectors.
            #[inline]
            pub fn ix(self) -> usize {
                self.0 as usize
            }
        }

        impl From<usize> for $name {
            #[inline]
            fn from(i: usize) -> Self {
                Self(u32::try_from(i).expect(concat!(stringify!($name), " overflow")))
            }
        }
    };
}

dense_index!(
    /// A GPU server, in topology order (nodes of one domain are contiguous).
    NodeIdx
);
dense_index!(
    /// A slot in the core's job table; slots of finished jobs are reused.
    JobIdx
);
dense_index!(
    /// A node of the tenant tree; 0 is the implicit root.
    TenantIdx
);
dense_index!(
    /// A node of the topology tree (site, block, leaf, ...); 0 is the implicit root.
    DomainIdx
);
dense_index!(
    /// A GPU flavor (model, memory, interconnect).
    FlavorIdx
);
dense_index!(
    /// A priority class.
    ClassIdx
);

impl FlavorIdx {
    /// The flavors whose bits are set in a flavor mask, lowest first.
    pub fn in_mask(mask: u64) -> impl Iterator<Item = FlavorIdx> {
        let mut m = mask;
        std::iter::from_fn(move || {
            (m != 0).then(|| {
                let f = m.trailing_zeros();
                m &= m - 1;
                FlavorIdx(f)
            })
        })
    }
}

/// The id by which drivers name a job. Assigned by the driver (the server's store or
/// the simulator's trace), unique over the life of a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
