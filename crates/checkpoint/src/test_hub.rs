//! A stand-in for the Hugging Face hub, for tests (this crate's, and with the `test-hub` feature
//! other crates'): a real HTTP server on
//! 127.0.0.1 that speaks the part of the hub's protocol hf-hub uses — the repository listing
//! (`/api/models/<id>/revision/<rev>`) and file resolution (`/<id>/resolve/<rev>/<file>`, with
//! ranges, an ETag and the commit header, one hop through a relative redirect) — and refuses
//! a gated repository without a token. It answers a proxy's absolute-form requests
//! (`GET http://host/path`) too, as a forward proxy to itself, so a test can tell whether a
//! client went through a proxy.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One repository the server holds.
pub struct HubRepo {
    pub id: &'static str,
    pub commit: &'static str,
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// Answered only with an `Authorization` header.
    pub gated: bool,
}

/// A running server: its address (an `HF_ENDPOINT`, or a proxy) and the request targets so far
/// (a path, or a whole URL for a request sent to it as a proxy).
pub struct Hub {
    pub endpoint: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// Serves `repos` until the test process ends, one thread per connection.
pub fn serve(repos: Vec<HubRepo>) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (log, repos) = (Arc::clone(&requests), Arc::new(repos));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, repos) = (Arc::clone(&log), Arc::clone(&repos));
            std::thread::spawn(move || answer(stream, &repos, &log));
        }
    });
    Hub { endpoint, requests }
}

/// A request's target and path, and the headers the protocol needs.
struct Request {
    target: String,
    path: String,
    range: Option<(usize, Option<usize>)>,
    authorized: bool,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_owned();
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".to_owned(), |slash| rest[slash..].to_owned()),
        None => target.clone(),
    };
    let (mut range, mut authorized) = (None, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let lower = header.to_ascii_lowercase();
        authorized |= lower.starts_with("authorization:");
        if let Some(bytes) = lower.strip_prefix("range:").and_then(|v| v.trim().strip_prefix("bytes=")) {
            let (start, end) = bytes.split_once('-')?;
            range = Some((start.parse().ok()?, end.parse().ok()));
        }
    }
    Some(Request { target, path, range, authorized })
}

fn answer(mut stream: TcpStream, repos: &[HubRepo], log: &Mutex<Vec<String>>) {
    let Some(request) = read_request(&stream) else { return };
    log.lock().unwrap().push(request.target.clone());
    let (status, headers, body) = route(&request, repos);
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
}

type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);

fn route(request: &Request, repos: &[HubRepo]) -> Reply {
    let not_found = || (404, vec![("X-Error-Code", "RepoNotFound".to_owned())], b"not found".to_vec());
    let path = request.path.trim_start_matches('/');
    let find = |id: &str| repos.iter().find(|repo| repo.id == id);
    if let Some(rest) = path.strip_prefix("api/models/") {
        let Some((id, _revision)) = rest.split_once("/revision/") else { return not_found() };
        let Some(repo) = find(id) else { return not_found() };
        if repo.gated && !request.authorized {
            return (401, Vec::new(), b"gated".to_vec());
        }
        let siblings: Vec<_> = repo.files.iter().map(|(name, _)| serde_json::json!({ "rfilename": name })).collect();
        return (200, Vec::new(), serde_json::json!({ "sha": repo.commit, "siblings": siblings }).to_string().into_bytes());
    }
    // `/<id>/resolve/<rev>/<file>` redirects to `/cdn/<id>/<file>`, which serves the bytes.
    if let Some((id, rest)) = path.split_once("/resolve/") {
        let file = rest.split_once('/').map_or("", |(_, file)| file);
        return (302, vec![("Location", format!("/cdn/{id}/{file}"))], Vec::new());
    }
    let Some(rest) = path.strip_prefix("cdn/") else { return not_found() };
    let rest = rest.strip_prefix("datasets/").unwrap_or(rest);
    let Some(repo) = repos.iter().find(|repo| rest.starts_with(&format!("{}/", repo.id))) else { return not_found() };
    if repo.gated && !request.authorized {
        return (401, Vec::new(), b"gated".to_vec());
    }
    let name = &rest[repo.id.len() + 1..];
    let Some((_, bytes)) = repo.files.iter().find(|(file, _)| *file == name) else {
        return (404, vec![("X-Error-Code", "EntryNotFound".to_owned())], b"no such file".to_vec());
    };
    let (start, end) = request.range.unwrap_or((0, None));
    let end = end.unwrap_or(bytes.len() - 1).min(bytes.len() - 1);
    let headers = vec![
        ("ETag", format!("\"{:016x}\"", etag(bytes))),
        ("X-Repo-Commit", repo.commit.to_owned()),
        ("Content-Range", format!("bytes {start}-{end}/{}", bytes.len())),
    ];
    (206, headers, bytes[start..=end].to_vec())
}

/// A content hash standing in for the hub's ETag (FNV-1a).
fn etag(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The files of a small model repository: config, tokenizer and weights.
pub fn model_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config.json", br#"{"model_type": "llama"}"#.to_vec()),
        ("tokenizer.json", b"{}".to_vec()),
        ("model.safetensors", b"weights".to_vec()),
    ]
}
