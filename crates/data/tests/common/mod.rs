//! Helpers shared by the integration tests: IDX builders, gzip, a tiny HTTP server and the
//! real-data folder.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Encodes an unsigned-byte IDX array.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// gzip-compresses `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// Decompresses gzip `bytes`.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// The folder named by `CONVNETS_DATA` (relative paths are tried from the current folder,
/// then from the workspace root), or `None` after printing that the test is skipped.
pub fn real_data_dir(test: &str) -> Option<PathBuf> {
    let Some(v) = std::env::var_os("CONVNETS_DATA").filter(|v| !v.is_empty()) else {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: needs CONVNETS_DATA (a folder holding mnist/ and fashion-mnist/): {test}"
            );
        }
        return None;
    };
    let p = PathBuf::from(v);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let found = [p.clone(), workspace.join(&p)]
        .into_iter()
        .find(|c| c.join("mnist").is_dir());
    if found.is_none() {
        panic!("CONVNETS_DATA={} holds no mnist/ folder", p.display());
    }
    found
}

/// Names of the entries of `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readable folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What the test server answers for a path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 200 announcing the whole body's length, but the connection closes after `cut` bytes.
    Cut(Vec<u8>, usize),
    /// This status with an empty body.
    Status(u16),
}

/// A minimal HTTP/1.1 server on 127.0.0.1, one connection at a time, stopped when dropped.
/// Unknown paths get 404.
pub struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `routes` (path -> reply).
    pub fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let _ = handle(stream, &routes, &h);
                }
            }
        });
        Server {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/<prefix>/`.
    pub fn base(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}/", self.addr)
    }

    /// Paths requested so far, in order.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(
    mut stream: TcpStream,
    routes: &HashMap<String, Reply>,
    hits: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let path = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    hits.lock().expect("lock").push(path.clone());
    let head = |status: &str, len: usize| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    match routes.get(&path) {
        Some(Reply::Body(b)) => {
            stream.write_all(head("200 OK", b.len()).as_bytes())?;
            stream.write_all(b)?;
        }
        Some(Reply::Cut(b, cut)) => {
            stream.write_all(head("200 OK", b.len()).as_bytes())?;
            stream.write_all(&b[..*cut])?;
            stream.flush()?;
            stream.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        Some(Reply::Status(code)) => {
            stream.write_all(head(&format!("{code} Nope"), 0).as_bytes())?;
        }
        None => stream.write_all(head("404 Not Found", 0).as_bytes())?,
    }
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}
