//! Weights from the Hugging Face hub, with hf-hub's offline cache (cargo feature `hub`, on by
//! default).
//!
//! A [`HubWeights`] names one file of a model repository, written
//! `hub:OWNER/REPO[@REVISION][:FILE]` (`FILE` defaults to `model.safetensors`, `REVISION` to
//! `main`). [`fetch`] returns the file's path in the local Hugging Face cache, downloading it
//! first when it is not there:
//!
//! - online, through hf-hub's blocking API with the endpoint of `HF_ENDPOINT` (default
//!   `https://huggingface.co`) into the cache of `HF_HOME` (default `~/.cache/huggingface`),
//!   in hf-hub's layout (`hub/models--OWNER--REPO/{blobs,refs,snapshots}`, the one Python's
//!   `huggingface_hub` uses). A file already in the cache is used as it is, without asking the
//!   server.
//! - offline (`offline = true`, or `HF_HUB_OFFLINE=1` in the environment), only the cache is
//!   read, and a miss is a [`HubError::NotCached`] naming the repository, revision, file and
//!   cache folder.
//!
//! hf-hub downloads into `blobs/ETAG.part` and only renames a complete file into the cache,
//! so a connection dropped mid-file leaves no file behind (the `.part` is resumed by the next
//! download). A `.safetensors` file is also checked to be whole (its header's tensors end
//! where the file ends) before its path is returned; a short one is removed from the cache.
//!
//! [`fetch_with`] takes the endpoint, cache folder and offline switch explicitly
//! ([`HubConfig`]); [`fetch`] builds them from the environment.
//!
//! ```
//! use convnets_zoo::hub::HubWeights;
//! let w: HubWeights = "hub:convnets/mnist-net@v1".parse()?;
//! assert_eq!((w.repo.as_str(), w.revision(), w.file.as_str()), ("convnets/mnist-net", "v1", "model.safetensors"));
//! assert_eq!(w.to_string(), "hub:convnets/mnist-net@v1:model.safetensors");
//! assert!("hub:no-owner".parse::<HubWeights>().is_err());
//! # Ok::<(), convnets_zoo::hub::HubError>(())
//! ```

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What a hub weights spec starts with: `hub:OWNER/REPO[@REVISION][:FILE]`.
pub const SPEC_PREFIX: &str = "hub:";
/// The file of the repository taken when a spec names none.
pub const DEFAULT_FILE: &str = "model.safetensors";
/// The revision taken when a spec names none.
pub const DEFAULT_REVISION: &str = "main";
/// The hub used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The spec's grammar, quoted by parse errors.
const GRAMMAR: &str =
    "hub:OWNER/REPO[@REVISION][:FILE], e.g. hub:convnets/mnist-net@main:model.safetensors";
/// The largest safetensors header [`fetch`] reads when it checks a file (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Why hub weights could not be named or fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A `hub:` spec that does not parse.
    #[error("`{spec}`: {reason}; expected {GRAMMAR}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither `HF_HOME` nor a home folder says where the cache is.
    #[error("no Hugging Face cache folder: HF_HOME is not set and there is no home folder (HOME); set HF_HOME")]
    NoCacheDir,
    /// Offline, and the file is not in the cache.
    #[error(
        "offline (--offline or HF_HUB_OFFLINE=1): `{}` of the model repository `{}` at revision `{}` is not in the Hugging Face cache {cache} (looked in {repo_dir}); fetch it once online, or set HF_HOME to the cache that holds it", .weights.file, .weights.repo, .weights.revision()
    )]
    NotCached {
        /// The repository, revision and file.
        weights: Box<HubWeights>,
        /// The cache folder (`$HF_HOME/hub`).
        cache: PathBuf,
        /// The repository's folder in it.
        repo_dir: PathBuf,
    },
    /// The download failed: network, HTTP status, missing headers, I/O.
    #[error("downloading `{}` of the model repository `{}` at revision `{}` from {url} (hub endpoint {endpoint}) failed: {source}{hint}", .weights.file, .weights.repo, .weights.revision())]
    Download {
        /// The repository, revision and file.
        weights: Box<HubWeights>,
        /// The URL fetched.
        url: String,
        /// The hub endpoint (`HF_ENDPOINT`).
        endpoint: String,
        /// hf-hub's error.
        #[source]
        source: ApiError,
        /// What an HTTP status usually means here (empty when there is nothing to add).
        hint: &'static str,
    },
    /// hf-hub stopped on a reply it did not expect (it panicked); nothing was returned.
    #[error("downloading `{}` of the model repository `{}` at revision `{}` from {url} (hub endpoint {endpoint}) failed: the server's reply broke hf-hub ({message})", .weights.file, .weights.repo, .weights.revision())]
    Broken {
        /// The repository, revision and file.
        weights: Box<HubWeights>,
        /// The URL fetched.
        url: String,
        /// The hub endpoint (`HF_ENDPOINT`).
        endpoint: String,
        /// The panic's message.
        message: String,
    },
    /// A cached `.safetensors` file shorter or longer than its header says.
    #[error("{path}: `{}` of `{}` at revision `{}` is not a whole safetensors file: {reason}; {action}", .weights.file, .weights.repo, .weights.revision())]
    Incomplete {
        /// The file in the cache.
        path: PathBuf,
        /// The repository, revision and file.
        weights: Box<HubWeights>,
        /// What was expected and what was found.
        reason: String,
        /// What became of it.
        action: &'static str,
    },
    /// Reading the cache failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// One file of a model repository on the Hugging Face hub:
/// `hub:OWNER/REPO[@REVISION][:FILE]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HubWeights {
    /// `OWNER/REPO`.
    pub repo: String,
    /// A branch, tag or commit; `None` is [`DEFAULT_REVISION`] (`main`).
    pub revision: Option<String>,
    /// The file's path in the repository ([`DEFAULT_FILE`] when the spec names none).
    pub file: String,
}

impl HubWeights {
    /// Whether `s` is meant as a hub spec (starts with `hub:`), well formed or not.
    pub fn is_spec(s: &str) -> bool {
        s.starts_with(SPEC_PREFIX)
    }

    /// The file `name` in the same repository, revision and folder (e.g. the `config.json`
    /// beside `model.safetensors`).
    ///
    /// ```
    /// use convnets_zoo::HubWeights;
    /// let w: HubWeights = "hub:timm/resnet50.a1_in1k@main:sub/model.safetensors".parse()?;
    /// assert_eq!(w.sibling("config.json").file, "sub/config.json");
    /// # Ok::<(), convnets_zoo::HubError>(())
    /// ```
    pub fn sibling(&self, name: &str) -> HubWeights {
        let file = match self.file.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name.to_string(),
        };
        HubWeights {
            file,
            ..self.clone()
        }
    }

    /// The revision fetched: the given one, else `main`.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }

    fn hf_repo(&self) -> Repo {
        Repo::with_revision(
            self.repo.clone(),
            RepoType::Model,
            self.revision().to_string(),
        )
    }
}

impl fmt::Display for HubWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SPEC_PREFIX}{}", self.repo)?;
        if let Some(r) = &self.revision {
            write!(f, "@{r}")?;
        }
        write!(f, ":{}", self.file)
    }
}

/// Checks one part of `OWNER/REPO` (the hub's rules: letters, digits, `-`, `_`, `.`; no `--`
/// or `..`; no `-` or `.` at either end; at most 96 characters).
fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if s.len() > 96 {
        return Err(format!("the {what} `{s}` is longer than 96 characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the {what} `{s}` holds `{c}` (letters, digits, `-`, `_` and `.` only)"
        ));
    }
    if s.contains("--") || s.contains("..") {
        return Err(format!("the {what} `{s}` holds `--` or `..`"));
    }
    if s.starts_with(['-', '.']) || s.ends_with(['-', '.']) {
        return Err(format!("the {what} `{s}` starts or ends with `-` or `.`"));
    }
    Ok(())
}

/// A revision or file path: `/`-separated parts, none empty, `.` or `..` (the cache is a
/// folder tree: these would leave it), no `\`, no control characters or spaces.
fn check_path(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || *c == '\\')
    {
        return Err(format!("the {what} `{s}` holds {c:?}"));
    }
    if s.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(format!(
            "the {what} `{s}` has an empty, `.` or `..` path component"
        ));
    }
    Ok(())
}

impl FromStr for HubWeights {
    type Err = HubError;

    fn from_str(spec: &str) -> Result<Self, HubError> {
        let bad = |reason: String| HubError::Spec {
            spec: spec.to_string(),
            reason,
        };
        let Some(rest) = spec.strip_prefix(SPEC_PREFIX) else {
            return Err(bad(format!("does not start with `{SPEC_PREFIX}`")));
        };
        // Git refs cannot hold `:`, so the first one starts the file.
        let (repo_rev, file) = match rest.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, v)) => (r, Some(v)),
            None => (repo_rev, None),
        };
        let Some((owner, name)) = repo.split_once('/') else {
            return Err(bad(format!(
                "the repository `{repo}` is not OWNER/REPO (no `/`)"
            )));
        };
        check_name("owner", owner).map_err(&bad)?;
        check_name("repository name", name).map_err(&bad)?;
        if let Some(r) = revision {
            check_path("revision", r).map_err(&bad)?;
        }
        if let Some(f) = file {
            check_path("file", f).map_err(&bad)?;
        }
        Ok(HubWeights {
            repo: repo.to_string(),
            revision: revision.map(str::to_string),
            file: file.unwrap_or(DEFAULT_FILE).to_string(),
        })
    }
}

/// Where and how [`fetch_with`] looks for hub files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// The hub's base URL, e.g. `https://huggingface.co` (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The cache folder: `$HF_HOME/hub`, by default `~/.cache/huggingface/hub`.
    pub cache_dir: PathBuf,
    /// Read only the cache, never the network.
    pub offline: bool,
    /// Draw a progress bar on the terminal while downloading.
    pub progress: bool,
}

impl HubConfig {
    /// The environment's configuration, as hf-hub's `ApiBuilder::from_env` and Python's
    /// `huggingface_hub` read it: `HF_ENDPOINT` (default [`DEFAULT_ENDPOINT`]), `HF_HOME`
    /// (default `~/.cache/huggingface`; the cache is its `hub` folder), offline when `offline`
    /// or `HF_HUB_OFFLINE` is `1`/`true`/`yes`/`on`; with a progress bar.
    pub fn from_env(offline: bool) -> Result<Self, HubError> {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let home = match std::env::var_os("HF_HOME").filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h),
            None => std::env::home_dir()
                .filter(|h| !h.as_os_str().is_empty())
                .ok_or(HubError::NoCacheDir)?
                .join(".cache")
                .join("huggingface"),
        };
        Ok(HubConfig {
            endpoint,
            cache_dir: home.join("hub"),
            offline: offline || offline_from_env(),
            progress: true,
        })
    }
}

/// Whether `HF_HUB_OFFLINE` asks for offline mode (`1`, `true`, `yes` or `on`, any case).
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The path of `w` in the cache `cache_dir` (`$HF_HOME/hub`), if it is there: the snapshot of
/// the commit its revision points to (`refs/REVISION`), or for a full commit hash, that
/// commit's snapshot (as Python's `huggingface_hub` stores them).
pub fn cached(w: &HubWeights, cache_dir: &Path) -> Option<PathBuf> {
    let repo = w.hf_repo();
    if let Some(p) = Cache::new(cache_dir.to_path_buf())
        .repo(repo.clone())
        .get(&w.file)
    {
        return Some(p);
    }
    let rev = w.revision();
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let p = cache_dir
            .join(repo.folder_name())
            .join("snapshots")
            .join(rev)
            .join(&w.file);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// The path of `w`'s file in the cache of the environment (`HF_HOME`), downloading it from
/// `HF_ENDPOINT` first unless `offline` or `HF_HUB_OFFLINE=1`: [`fetch_with`] with
/// [`HubConfig::from_env`].
pub fn fetch(w: &HubWeights, offline: bool) -> Result<PathBuf, HubError> {
    fetch_with(w, &HubConfig::from_env(offline)?)
}

/// The path of `w`'s file in the cache `cfg.cache_dir`: the cached file, else (online) the
/// file downloaded from `cfg.endpoint` into it; offline, a miss is [`HubError::NotCached`].
/// A `.safetensors` file must be whole: online a short one is removed from the cache and
/// reported as [`HubError::Incomplete`].
pub fn fetch_with(w: &HubWeights, cfg: &HubConfig) -> Result<PathBuf, HubError> {
    if cfg.offline {
        let path = cached(w, &cfg.cache_dir).ok_or_else(|| HubError::NotCached {
            weights: Box::new(w.clone()),
            cache: cfg.cache_dir.clone(),
            repo_dir: cfg.cache_dir.join(w.hf_repo().folder_name()),
        })?;
        check_whole(w, &path, false)?;
        return Ok(path);
    }
    let endpoint = cfg.endpoint.trim_end_matches('/').to_string();
    let api = ApiBuilder::from_cache(Cache::new(cfg.cache_dir.clone()))
        .with_endpoint(endpoint.clone())
        .with_progress(cfg.progress)
        .build();
    let repo = w.hf_repo();
    let url = format!(
        "{endpoint}/{}/resolve/{}/{}",
        repo.url(),
        repo.url_revision(),
        w.file
    );
    let download_error = |source| HubError::Download {
        weights: Box::new(w.clone()),
        url: url.clone(),
        endpoint: endpoint.clone(),
        hint: hint(&source),
        source,
    };
    let api = api.map_err(download_error)?;
    // hf-hub unwraps a few things a server controls (a redirect without `Location`): a panic
    // there is a failed download, not a crash.
    let got =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| api.repo(repo).get(&w.file)));
    let path = match got {
        Ok(r) => r.map_err(download_error)?,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            return Err(HubError::Broken {
                weights: Box::new(w.clone()),
                url,
                endpoint,
                message,
            });
        }
    };
    check_whole(w, &path, true)?;
    Ok(path)
}

/// What the hub means by an HTTP error status.
fn hint(e: &ApiError) -> &'static str {
    let ApiError::RequestError(e) = e else {
        return "";
    };
    match **e {
        ureq::Error::Status(401 | 403, _) => {
            " (the repository is private, gated or does not exist: a token goes in $HF_HOME/token, see `huggingface-cli login`)"
        }
        ureq::Error::Status(404, _) => " (no such repository, revision or file on this hub)",
        _ => "",
    }
}

/// For a `.safetensors` file: its length must be 8 + header + the end of its last tensor.
/// When `remove`, a file that is not whole is taken out of the cache (the snapshot's link and
/// the blob it points to) so the next fetch downloads it again.
fn check_whole(w: &HubWeights, path: &Path, remove: bool) -> Result<(), HubError> {
    if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Ok(());
    }
    let Some(reason) = safetensors_defect(path)? else {
        return Ok(());
    };
    let action = if remove {
        let blob = std::fs::canonicalize(path).ok();
        let _ = std::fs::remove_file(path);
        if let Some(b) = blob.filter(|b| b != path) {
            let _ = std::fs::remove_file(b);
        }
        "removed it from the cache: the server sent a broken file, try again"
    } else {
        "delete it from the cache and fetch it again online"
    };
    Err(HubError::Incomplete {
        path: path.to_path_buf(),
        weights: Box::new(w.clone()),
        reason,
        action,
    })
}

/// What is wrong with the safetensors file at `path`, if anything: a header that does not
/// parse, or tensors that do not end where the file does.
fn safetensors_defect(path: &Path) -> Result<Option<String>, HubError> {
    let io = |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len < 8 {
        return Ok(Some(format!(
            "{len} bytes, fewer than the 8 of the header's length"
        )));
    }
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(io)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len - 8 {
        return Ok(Some(format!(
            "a header of {n} bytes in a file of {len} bytes"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let header: serde_json::Value = match serde_json::from_slice(&header) {
        Ok(h) => h,
        Err(e) => {
            return Ok(Some(format!(
                "its {n}-byte JSON header does not parse: {e}"
            )))
        }
    };
    let Some(tensors) = header.as_object() else {
        return Ok(Some("its header is not a JSON object".to_string()));
    };
    let mut end = 0u64;
    for (name, t) in tensors.iter().filter(|(k, _)| *k != "__metadata__") {
        let offsets = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64());
        match offsets {
            Some(e) => end = end.max(e),
            None => {
                return Ok(Some(format!(
                    "tensor `{name}` has no data_offsets [start, end]"
                )))
            }
        }
    }
    let expected = (8 + n).saturating_add(end);
    Ok((expected != len)
        .then(|| format!("its header describes {expected} bytes, the file holds {len}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<HubWeights, String> {
        s.parse::<HubWeights>().map_err(|e| e.to_string())
    }

    #[test]
    fn specs_parse_with_defaults() {
        let w = |repo: &str, rev: Option<&str>, file: &str| HubWeights {
            repo: repo.into(),
            revision: rev.map(Into::into),
            file: file.into(),
        };
        assert_eq!(
            parse("hub:owner/repo"),
            Ok(w("owner/repo", None, "model.safetensors"))
        );
        assert_eq!(
            parse("hub:Owner_1/re.po-2@v1.0"),
            Ok(w("Owner_1/re.po-2", Some("v1.0"), "model.safetensors"))
        );
        assert_eq!(
            parse("hub:o/r:sub/dir/w.safetensors"),
            Ok(w("o/r", None, "sub/dir/w.safetensors"))
        );
        assert_eq!(
            parse("hub:o/r@refs/pr/1:w.safetensors"),
            Ok(w("o/r", Some("refs/pr/1"), "w.safetensors"))
        );
        for s in ["hub:o/r", "hub:o/r@main:model.safetensors", "hub:o/r@x:a/b"] {
            let p = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parse(&p.to_string()), Ok(p.clone()), "{s} round trip");
        }
        assert_eq!(
            parse("hub:o/r").map(|w| w.revision().to_string()),
            Ok("main".into())
        );
        assert!(HubWeights::is_spec("hub:anything") && !HubWeights::is_spec("weights/x"));
    }

    #[test]
    fn malformed_specs_say_why() {
        for (spec, why) in [
            ("o/r", "does not start with `hub:`"),
            ("hub:", "no `/`"),
            ("hub:repo-only", "`repo-only` is not OWNER/REPO"),
            ("hub:/r", "the owner is empty"),
            ("hub:o/", "the repository name is empty"),
            ("hub:o/r/x", "holds `/`"),
            ("hub:o/r@", "the revision is empty"),
            ("hub:o/r:", "the file is empty"),
            ("hub:o/r@main:", "the file is empty"),
            ("hub:o/r:../../etc/passwd", "`..` path component"),
            (
                "hub:o/r:/abs.safetensors",
                "empty, `.` or `..` path component",
            ),
            ("hub:o/r@a/../b", "`..` path component"),
            ("hub:o/r:a\\b", "holds '\\\\'"),
            ("hub:o/r:a b", "holds ' '"),
            ("hub:o w/r", "holds ` `"),
            ("hub:o--w/r", "holds `--` or `..`"),
            ("hub:-o/r", "starts or ends with"),
        ] {
            let err = parse(spec).expect_err(spec);
            assert!(err.contains(why), "{spec}: `{why}` not in: {err}");
            assert!(err.contains(&format!("`{spec}`")), "{spec}: {err}");
            assert!(err.contains("hub:OWNER/REPO[@REVISION][:FILE]"), "{err}");
        }
    }

    #[test]
    fn hub_safetensors_check_finds_short_and_long_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut whole = (header.len() as u64).to_le_bytes().to_vec();
        whole.extend_from_slice(header);
        whole.extend_from_slice(&[0; 8]);
        let long = [whole.as_slice(), &[0]].concat();
        let not_object = [2, 0, 0, 0, 0, 0, 0, 0, b'[', b']'];
        let n = whole.len(); // 8 + 54 + 8 = 70
        let short = format!("describes {n} bytes, the file holds {}", n - 1);
        let longer = format!("describes {n} bytes, the file holds {}", n + 1);
        let cases: [(&[u8], Option<&str>); 5] = [
            (&whole, None),
            (&whole[..n - 1], Some(&short)),
            (&long, Some(&longer)),
            (&whole[..5], Some("fewer than the 8")),
            (&not_object, Some("not a JSON object")),
        ];
        for (i, (bytes, defect)) in cases.into_iter().enumerate() {
            let p = dir.path().join(format!("{i}.safetensors"));
            std::fs::write(&p, bytes)?;
            match (defect, safetensors_defect(&p)?) {
                (None, None) => {}
                (Some(want), Some(got)) => assert!(got.contains(want), "{i}: {got}"),
                (want, got) => panic!("case {i}: expected {want:?}, found {got:?}"),
            }
        }
        Ok(())
    }
}
