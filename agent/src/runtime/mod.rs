//! The task runtime's host side: the containerd connection and what the
//! agent does through it. [`containerd`] is the one place a containerd
//! channel is built; [`image`] pulls and unpacks images itself (containerd
//! 1.6 has no server-side pull) and collects unused ones.

pub mod containerd;
pub mod image;
