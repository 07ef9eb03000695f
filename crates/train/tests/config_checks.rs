//! Configuration checks that run before anything is allocated or written: a batch too large
//! for the machine's memory is refused with the numbers, not aborted by the allocator.

use convnets_train::run::{check_batch_memory, train_bytes_per_image};

#[test]
fn batch_memory_estimate_and_refusal() -> anyhow::Result<()> {
    let lenet = convnets_zoo::find("lenet5").unwrap();
    // Activations per image: input 784, conv1 3456, pool1 864, conv2 1024, pool2 256, fc 320 +
    // 80 + 10 = 6,794 values, four f32 copies each.
    assert_eq!(train_bytes_per_image(lenet)?, 6_794 * 16);
    check_batch_memory(lenet, 60_000, None)?;
    check_batch_memory(lenet, 256, Some(1 << 30))?;
    let err = check_batch_memory(lenet, 60_000, Some(1 << 30))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--batch-size 60000")
            && err.contains("`lenet5` on 60000 images needs about 6.1 GiB")
            && err.contains("1.0 GiB of memory available"),
        "{err}"
    );
    Ok(())
}
