//! A stand-in for an OpenAI-compatible endpoint, for the judge's tests: a real HTTP server on
//! 127.0.0.1 that answers each connection with the next canned reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the test server does with one connection.
pub enum Canned {
    Reply(u16, String),
    /// A reply with one more header line.
    WithHeader(u16, &'static str, String),
    Stall(Duration),
}

pub fn completion(content: &str) -> Canned {
    Canned::Reply(200, serde_json::json!({ "choices": [{ "message": { "content": content } }] }).to_string())
}

/// A real HTTP server on 127.0.0.1 answering one connection per canned reply, in the order
/// the connections arrive, each on its own thread, then stopping. It records the requests.
pub struct Server {
    pub url: String,
    pub seen: Arc<Mutex<Vec<String>>>,
}

pub fn serve(replies: Vec<Canned>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for reply in replies {
            let Ok((stream, _)) = listener.accept() else { return };
            let log = Arc::clone(&log);
            std::thread::spawn(move || answer(stream, reply, &log));
        }
    });
    Server { url, seen }
}

/// Reads one request from `stream`, records it, and does what `reply` says.
fn answer(stream: std::net::TcpStream, reply: Canned, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        request.push_str(&line);
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    request.push_str(&String::from_utf8_lossy(&body));
    log.lock().unwrap().push(request);
    let mut stream = reader.into_inner();
    match reply {
        Canned::Stall(time) => std::thread::sleep(time),
        Canned::Reply(status, body) => reply_with(&mut stream, status, "", &body),
        Canned::WithHeader(status, header, body) => reply_with(&mut stream, status, &format!("{header}\r\n"), &body),
    }
}

fn reply_with(stream: &mut std::net::TcpStream, status: u16, headers: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
