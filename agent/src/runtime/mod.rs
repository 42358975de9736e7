//! Running tasks on this host: OCI specs, cgroups, and the per-task files containers mount.

pub mod cgroups;
pub mod spec;
