//! The libFuzzer binary of every target: `TIDEGATE_FUZZ_TARGET=NAME` chooses one
//! (`scripts/fuzz` runs each in turn).
#![no_main]

use std::sync::OnceLock;

fn chosen() -> tidegate_fuzz::Target {
    static TARGET: OnceLock<tidegate_fuzz::Target> = OnceLock::new();
    *TARGET.get_or_init(|| {
        let name = std::env::var("TIDEGATE_FUZZ_TARGET").unwrap_or_default();
        tidegate_fuzz::target(&name).unwrap_or_else(|| {
            let names: Vec<&str> = tidegate_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "set TIDEGATE_FUZZ_TARGET to one of: {} (got {name:?})",
                names.join(", ")
            );
            std::process::exit(2)
        })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| chosen()(data));
