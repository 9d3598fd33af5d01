#![no_std]
// This file exists so that reaper-trace can build-depend on this crate (aya-build needs it);
// the programs are in the binary target (main.rs and its modules).
