//! `entangle-infer info ORG/NAME` through `HF_ENDPOINT` pointing at a local server that speaks
//! the hub's protocol (`entangle_checkpoint::test_hub`), with `HF_HUB_CACHE` naming the cache.
//! A test binary of its own, so that setting the environment races no other test.

use std::path::Path;

use clap::Parser;
use entangle_checkpoint::test_hub::{serve, HubRepo};

#[test]
fn entangle_infer_info_reads_a_hub_model_through_hf_endpoint() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../llama/fixtures/llama");
    let names = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"];
    let files = names.iter().map(|name| (*name, std::fs::read(fixture.join(name)).unwrap())).collect();
    let hub = serve(vec![HubRepo { id: "org/tiny", commit: "c0ffee", files, gated: false }]);
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("HF_ENDPOINT", &hub.endpoint);
    std::env::set_var("HF_HUB_CACHE", cache.path());
    std::env::remove_var("HF_HUB_OFFLINE");
    let cli = entangle_models::infer::Cli::parse_from(["entangle-infer", "info", "org/tiny"]);
    entangle_models::infer::run(&cli).unwrap();
    let dir = cache.path().join("models--org--tiny/snapshots/c0ffee");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), std::fs::read(fixture.join("model.safetensors")).unwrap());
    let text = entangle_models::infer::info(&dir, &entangle_models::registry(), false).unwrap();
    assert!(text.contains("llama"), "{text}");
    assert!(hub.requests.lock().unwrap().iter().any(|path| path == "/api/models/org/tiny/revision/main"));
}
