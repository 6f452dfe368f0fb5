//! Any frame from an ARP or IPv6 socket (see `ferrolb_speaker::packet::fuzzing`).

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferrolb_speaker::packet::fuzzing::check(bytes));
