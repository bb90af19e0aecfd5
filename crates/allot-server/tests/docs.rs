//! The README's server config example is a valid server config.

use allot_server::config::ServerConfig;

#[test]
fn readme_server_config_example_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme.split("## Run a server").nth(1).expect("README has a `Run a server` section");
    let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
    let cfg = ServerConfig::from_toml(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert_eq!(cfg.listen, "127.0.0.1:7070");
    assert!(cfg.tls.is_some());
    // The cluster it names is the example the README starts the server with.
    assert!(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).join(&cfg.cluster).exists());
}
