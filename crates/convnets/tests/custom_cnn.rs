//! The custom-CNN example, run as a test on a subset of MNIST: the reloaded model evaluates to
//! exactly the accuracy training printed.

#[path = "../examples/custom_cnn.rs"]
#[allow(dead_code)]
mod custom_cnn;

use std::path::PathBuf;

#[test]
fn custom_cnn_trains_saves_and_reloads_to_the_printed_accuracy() -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("CONVNETS_DATA").map(PathBuf::from) else {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP custom_cnn: needs CONVNETS_DATA pointing at a folder holding mnist/"
            );
        }
        return Ok(());
    };
    let out = tempfile::tempdir()?;
    let (printed, reloaded) = custom_cnn::run(Some(&dir.join("mnist")), Some(3000), out.path())?;
    assert_eq!(printed, reloaded);
    // One epoch on 3,000 images: well above chance (10 %).
    assert!(printed > 70.0, "accuracy {printed}");
    Ok(())
}
