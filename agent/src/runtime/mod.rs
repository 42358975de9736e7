//! Running tasks on this host: networking (CNI), and, in other modules, containers and cgroups.
pub mod network;
