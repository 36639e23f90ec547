//! A client for the CRI's streaming Exec and Attach: the CRI answers them with a URL of
//! containerd's streaming server, which speaks Kubernetes' channel protocol over websocket
//! (RFC 6455) as well as over SPDY. Websocket is small enough to write here: one HTTP
//! upgrade, then frames; every binary message starts with its channel's number
//! (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize). With `v4.channel.k8s.io` the error
//! channel ends the session with a JSON Status, where a non-zero exit code is a cause
//! `ExitCode`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;

pub struct Session {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// What a session gave back, by channel.
#[derive(Default, Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The error channel's Status, when the server sent one.
    pub status: Option<serde_json::Value>,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The command's exit code as the Status tells it: 0 on Success.
    pub fn exit_code(&self) -> Option<i32> {
        let s = self.status.as_ref()?;
        if s["status"] == "Success" {
            return Some(0);
        }
        s["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")?["message"]
            .as_str()?
            .parse()
            .ok()
    }
}

impl Session {
    /// Open the websocket at `url` (http://HOST:PORT/PATH, as ExecResponse/AttachResponse
    /// give it) with Kubernetes' v4 channel protocol.
    pub fn open(url: &str) -> Session {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("streaming URL {url}: not http://"));
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut w = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        // The key only has to be 16 bytes in base64; the server's accept value is not
        // checked here (nothing but this server is on the other end).
        write!(
            w,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: aHVzay1jcmktdGVzdC1rZXk=\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        .unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(
            status.starts_with("HTTP/1.1 101"),
            "websocket upgrade at {url}: {status}"
        );
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Session { r, w }
    }

    /// One masked binary frame (a client's frames are masked) on `channel`.
    pub fn send(&mut self, channel: u8, data: &[u8]) {
        let mut payload = vec![channel];
        payload.extend_from_slice(data);
        self.frame(0x2, &payload);
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x88];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.w.write_all(&f).unwrap();
    }

    /// The next data message (channel, bytes); None when the server closed the session.
    pub fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut message = Vec::new();
        loop {
            let mut h = [0u8; 2];
            if self.r.read_exact(&mut h).is_err() {
                return None;
            }
            let opcode = h[0] & 0x0f;
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b).ok()?;
                len = u16::from_be_bytes(b) as u64;
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.r.read_exact(&mut b).ok()?;
                len = u64::from_be_bytes(b);
            }
            let mut mask = [0u8; 4];
            if h[1] & 0x80 != 0 {
                self.r.read_exact(&mut mask).ok()?;
            }
            let mut payload = vec![0u8; len as usize];
            self.r.read_exact(&mut payload).ok()?;
            if h[1] & 0x80 != 0 {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0x8 => return None,
                0x9 => self.frame(0xa, &payload),
                0xa => {}
                _ => {
                    message.extend_from_slice(&payload);
                    if h[0] & 0x80 != 0 {
                        break;
                    }
                }
            }
        }
        // The server opens each of its channels with a message of the channel's number
        // alone: that is delivered as empty data.
        match message.split_first() {
            Some((ch, data)) => Some((*ch, data.to_vec())),
            None => self.recv(),
        }
    }

    /// Read until `stdout` contains `needle` (or the session ends); what came so far.
    pub fn read_until(&mut self, needle: &str, out: &mut Output) {
        while !out.stdout().contains(needle) {
            if !self.collect_one(out) {
                return;
            }
        }
    }

    /// Everything until the server closes the session.
    pub fn read_to_end(mut self) -> Output {
        let mut out = Output::default();
        while self.collect_one(&mut out) {}
        out
    }

    fn collect_one(&mut self, out: &mut Output) -> bool {
        match self.recv() {
            None => false,
            Some((STDOUT, d)) => {
                out.stdout.extend_from_slice(&d);
                true
            }
            Some((STDERR, d)) => {
                out.stderr.extend_from_slice(&d);
                true
            }
            Some((ERROR, d)) => {
                if !d.is_empty() {
                    out.status = Some(serde_json::from_slice(&d).unwrap_or_else(|_| {
                        serde_json::json!({"status": "Failure",
                            "message": String::from_utf8_lossy(&d)})
                    }));
                }
                true
            }
            Some(_) => true,
        }
    }

    /// Send a close frame (the client's end of the session: detach).
    pub fn close(mut self) {
        self.frame(0x8, &[0x03, 0xe8]);
    }
}
