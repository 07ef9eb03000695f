//! [`fetch`] reads `HF_ENDPOINT`, `HF_HOME` and `HF_HUB_OFFLINE`: one test, alone in its test
//! binary (its own process), because it sets environment variables.

mod fake_hub;

use anyhow::Result;
use convnets_zoo::hub::{fetch, HubConfig, HubError, HubWeights};
use fake_hub::{golden_dir, FakeHub, Fault, COMMIT, REPO};

#[test]
fn hub_fetch_reads_hf_endpoint_hf_home_and_hf_hub_offline() -> Result<()> {
    let bytes = std::fs::read(golden_dir().join("model.safetensors"))?;
    let hub = FakeHub::start("model.safetensors", bytes.clone(), Fault::None)?;
    let home = tempfile::tempdir()?;
    // The only test in this process: nothing else reads the environment meanwhile.
    std::env::set_var("HF_ENDPOINT", format!("{}/", hub.url));
    std::env::set_var("HF_HOME", home.path());
    std::env::remove_var("HF_HUB_OFFLINE");
    assert_eq!(
        HubConfig::from_env(false)?,
        HubConfig {
            endpoint: hub.url.clone(),
            cache_dir: home.path().join("hub"),
            offline: false,
            progress: true,
        }
    );

    let w: HubWeights = format!("hub:{REPO}").parse()?;
    let path = fetch(&w, false)?;
    assert_eq!(
        path,
        home.path()
            .join("hub/models--convnets-test--mnist-net-hub/snapshots")
            .join(COMMIT)
            .join("model.safetensors")
    );
    assert_eq!(std::fs::read(&path)?, bytes);
    assert_eq!(hub.seen().len(), 2, "{:?}", hub.seen());
    hub.shutdown();

    // HF_HUB_OFFLINE=1 is offline even when the caller did not ask: the cache answers, and a
    // file not in it is a cache miss, not a download attempt.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert!(HubConfig::from_env(false)?.offline);
    assert_eq!(fetch(&w, false)?, path);
    let other: HubWeights = format!("hub:{REPO}:other.safetensors").parse()?;
    let err = fetch(&other, false).unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&home.path().join("hub").display().to_string()),
        "{err}"
    );
    std::env::set_var("HF_HUB_OFFLINE", "0");
    assert!(!HubConfig::from_env(false)?.offline);
    assert!(HubConfig::from_env(true)?.offline);
    Ok(())
}
