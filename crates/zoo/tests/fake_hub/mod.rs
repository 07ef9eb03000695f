//! A fake Hugging Face hub on 127.0.0.1 for the hub tests (no network is reachable from the
//! test machines): a small HTTP/1.1 server on `std::net::TcpListener` answering what hf-hub
//! 0.4's blocking API asks, one connection at a time (`Connection: close` on every reply).
//!
//! `GET /OWNER/REPO/resolve/REVISION/FILE` (REVISION `main` or [`COMMIT`]):
//! - with `Range: bytes=A-B` or `bytes=A-`: `206 Partial Content`, `Content-Range: bytes
//!   A-B/LEN`, `ETag`, `X-Repo-Commit` (hf-hub's metadata request is `bytes=0-0`; it reads the
//!   commit, the ETag (the blob's name) and the size from that reply, then asks for
//!   `bytes=START-`, START > 0 when it resumes a `.part` file);
//! - without `Range`: `200 OK` and the whole file;
//! - anything else: `404` with `X-Error-Code: EntryNotFound`, as the hub answers.
//!
//! A [`Fault`] breaks the body replies (never the `bytes=0-0` one, unless it is the redirect).
//!
//! Shared by `crates/zoo/tests/hub*.rs` and `crates/cli/tests/hub.rs` (`#[path]`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The commit every reply names (`X-Repo-Commit`).
pub const COMMIT: &str = "3c1d7e5a0b9f2468ace013579bdf2468ace01357";
/// The repository the tests serve.
pub const REPO: &str = "convnets-test/mnist-net-hub";

/// `tests/golden/hub/`: the PyTorch-written weights and their logits (`gen.py` there).
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/hub")
}

/// How the server misbehaves on body requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers as the hub does.
    None,
    /// Announces the whole length, sends half of it and closes the connection.
    DropMidBody,
    /// Sends half the file with no `Content-Length` and closes: a close-delimited body that
    /// looks complete to the client.
    ShortWithoutLength,
    /// Answers the metadata request with `302 Found` and no `Location`.
    RedirectWithoutLocation,
}

/// One request as the server saw it: the path and the `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// A running fake hub serving files of [`REPO`]; stopped when dropped.
pub struct FakeHub {
    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub url: String,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct File {
    name: String,
    bytes: Vec<u8>,
    etag: String,
}

struct Served {
    files: Vec<File>,
    fault: Fault,
}

impl FakeHub {
    /// Serves `bytes` as `FILE` of [`REPO`] with `fault`.
    pub fn start(file: &str, bytes: Vec<u8>, fault: Fault) -> std::io::Result<FakeHub> {
        Self::start_files(vec![(file, bytes)], fault)
    }

    /// Serves several files of [`REPO`] (name, bytes), each with `fault`.
    pub fn start_files(files: Vec<(&str, Vec<u8>)>, fault: Fault) -> std::io::Result<FakeHub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let files = files
            .into_iter()
            .map(|(name, bytes)| {
                // The hub's ETag of an LFS file is its SHA-256; any name unique to the
                // content does.
                let etag = format!(
                    "{:016x}{:08x}",
                    bytes
                        .iter()
                        .fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64)
                            .wrapping_mul(0x100000001b3)),
                    bytes.len()
                );
                File {
                    name: name.to_string(),
                    bytes,
                    etag,
                }
            })
            .collect();
        let served = Served { files, fault };
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = conn {
                        let _ = handle(s, &served, &seen);
                    }
                }
            })
        };
        Ok(FakeHub {
            url: format!("http://{addr}"),
            addr,
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the server and waits for its thread: the port refuses connections afterwards.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn handle(s: TcpStream, served: &Served, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    if let Ok(mut v) = seen.lock() {
        v.push(Seen {
            path: path.clone(),
            range: range.clone(),
        });
    }
    let mut out = s;
    let file = served.files.iter().find(|f| {
        ["main", COMMIT]
            .iter()
            .any(|rev| path == format!("/{REPO}/resolve/{rev}/{}", f.name))
    });
    let Some(file) = file else {
        let body = b"Entry not found";
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        out.write_all(body)?;
        return out.flush();
    };
    let len = file.bytes.len();
    let common = format!(
        "ETag: \"{}\"\r\nX-Repo-Commit: {COMMIT}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        file.etag
    );
    let metadata = range.as_deref() == Some("bytes=0-0");
    if served.fault == Fault::RedirectWithoutLocation && metadata {
        write!(
            out,
            "HTTP/1.1 302 Found\r\n{common}Content-Length: 0\r\n\r\n"
        )?;
        return out.flush();
    }
    let (start, end) = match range.as_deref().and_then(parse_range) {
        Some((a, b)) => (
            a,
            b.unwrap_or(len.saturating_sub(1))
                .min(len.saturating_sub(1)),
        ),
        None => (0, len.saturating_sub(1)),
    };
    if start >= len {
        write!(
            out,
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return out.flush();
    }
    let body = &file.bytes[start..=end];
    let half = &body[..body.len() / 2];
    match (served.fault, metadata) {
        (Fault::DropMidBody, false) => {
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes {start}-{end}/{len}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            out.write_all(half)?;
            out.flush()?;
            out.shutdown(Shutdown::Both)
        }
        (Fault::ShortWithoutLength, false) => {
            write!(out, "HTTP/1.1 200 OK\r\n{common}\r\n")?;
            out.write_all(half)?;
            out.flush()?;
            out.shutdown(Shutdown::Both)
        }
        _ => {
            let status = match range {
                Some(_) => {
                    format!("206 Partial Content\r\nContent-Range: bytes {start}-{end}/{len}")
                }
                None => "200 OK".to_string(),
            };
            write!(
                out,
                "HTTP/1.1 {status}\r\n{common}Content-Length: {}\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
            out.flush()
        }
    }
}

/// `bytes=A-B` or `bytes=A-`.
fn parse_range(r: &str) -> Option<(usize, Option<usize>)> {
    let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = match b.trim() {
        "" => None,
        b => Some(b.parse().ok()?),
    };
    Some((a, b))
}
