//! Service annotations FerroLB reads and writes.
