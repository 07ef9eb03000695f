//! Ctrl-C for training programs: the first press asks the run to stop after the current batch
//! (it writes a checkpoint that `--resume` continues from); a second press exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Installs the process's Ctrl-C (SIGINT) handler once and returns the stop flag it raises;
/// pass it to [`crate::Trainer::stop_flag`] or [`crate::train_with_stop`]. Later calls return
/// the same flag. A second Ctrl-C exits the process with status 130.
pub fn ctrl_c() -> Result<Arc<AtomicBool>, ctrlc::Error> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: stopping after this batch and writing a checkpoint (Ctrl-C again to quit at once)"
        );
    })?;
    Ok(FLAG.get_or_init(|| flag).clone())
}
