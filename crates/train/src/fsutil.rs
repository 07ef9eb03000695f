//! Atomic file writes for the run folder.
//!
//! Every file of a run folder is written to a temporary file beside it (`.NAME.tmp-PID`),
//! flushed to disk and renamed over the real name, so a crash at any point leaves either the
//! old file or the new one, never a torn one. Temporary files left by a crash are removed by
//! [`clean_temp_files`] when the run folder is next opened.

use crate::{Result, TrainError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary path `write_atomic` uses for `path`.
fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{file}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically. The file gets the permissions a newly created file
/// gets (0666 less the umask), like every other file of the run folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(TrainError::io(tmp))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(TrainError::io(tmp))
    })
}

/// Runs `write` on a temporary path beside `path` and renames the result over `path`; on
/// failure the temporary file is removed and `path` is untouched.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrainError::io(path)(e)
    })
}

/// Removes the temporary files (`.NAME.tmp-PID`) a crashed writer left in `dir`; returns how
/// many it removed.
pub fn clean_temp_files(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
        let entry = entry.map_err(TrainError::io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(TrainError::io(entry.path()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_cleans() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read_to_string(&p)?, "two");
        let failed = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"half").map_err(TrainError::io(tmp))?;
            Err(TrainError::Config("boom".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&p)?, "two");
        std::fs::write(dir.path().join(".a.txt.tmp-999"), b"left by a crash")?;
        assert_eq!(clean_temp_files(dir.path())?, 1);
        let names: Vec<_> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        assert_eq!(names, ["a.txt"]);
        Ok(())
    }
}
