//! Placement: choosing container instances for tasks. Pure functions, no I/O.
//!
//! - [`cql`]: ECS's Cluster Query Language (`memberOf` constraints): parse once, evaluate
//!   against an instance's [`cql::Facts`].
//! - [`spec`]: constraints and strategies parsed from ECS's JSON shapes.
//! - [`engine`]: the placement core over a [`engine::ClusterView`]: resources, then
//!   constraints, then strategies, with candidate sampling and indexes for large fleets.

pub mod cql;
pub mod engine;
pub mod spec;
