//! Any bytes from a BGP peer (see `ferrolb_bgp::wire::fuzzing`).

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferrolb_bgp::wire::fuzzing::check(bytes));
