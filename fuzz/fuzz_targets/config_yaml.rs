//! Arbitrary bytes as the config file: parsing, merging and validation must never panic, and
//! a config that loads must print (`Config::to_yaml`, what `check-config` shows) as YAML that
//! loads back to the same config.
//!
//! Touches nothing: the loader is given no environment and a made-up origin path.
#![no_main]

use chartd::config::{load_from_str, CliOverrides};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // The loader refuses non-UTF-8 files before parsing; there is nothing to fuzz there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The file alone: no environment variables, no command-line overrides. (Without a
    // `socket:` the default socket path is probed with access(2): cheap, and as root fixed.)
    let no_env = |_: &str| None;
    let cli = CliOverrides::default();
    let origin = Path::new("/fuzz/chartd.yaml");
    let Ok(config) = load_from_str(text, origin, &cli, &no_env) else {
        return;
    };
    let printed = config.to_yaml();
    let back = load_from_str(&printed, origin, &cli, &no_env)
        .unwrap_or_else(|e| panic!("printed config does not load: {e}\n{printed}"));
    assert_eq!(back, config, "printed config loads differently:\n{printed}");
});
