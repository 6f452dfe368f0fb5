//! Any bytes from a BFD peer (see `ferrolb_bfd::packet::fuzzing`).

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferrolb_bfd::packet::fuzzing::check(bytes));
