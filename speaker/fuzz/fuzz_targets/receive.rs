//! Any frame from an ARP or IPv6 socket (see `ferrolb_speaker::l2::packet::fuzzing`).

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferrolb_speaker::l2::packet::fuzzing::check(bytes));
