//! Present so `gateway-userspace` can name this crate as a build dependency (cargo then rebuilds
//! it when the programs change); the programs themselves are the `gateway-ebpf` binary.
#![no_std]
