//! allot-server: the control plane around `allot_core::Core`.

pub mod store;
