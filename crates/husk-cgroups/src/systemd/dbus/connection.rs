//! One synchronous connection to a message bus: connect, authenticate (SASL EXTERNAL, as
//! "Authentication Protocol" in the D-Bus specification describes), Hello, then method
//! calls and signals, each read with a deadline so that a stuck bus is an error, not a hang.
//!
//! No threads and no event loop: the runtime clones its children with raw clone(2), which
//! a process with other threads must not do.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use super::address::Target;
use super::error::DbusError;
use super::message::{Kind, Message, PREFIX_LEN};
use super::wire::Value;

const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";
/// Longest line of the authentication exchange we accept.
const MAX_AUTH_LINE: usize = 1024;

/// An open, authenticated connection with its unique name.
pub struct Connection {
    sock: UnixStream,
    last_serial: u32,
    /// Signals that arrived while waiting for a reply, kept for [`Connection::wait_signal`].
    queued: VecDeque<Message>,
    /// How long a method call may wait for its reply.
    call_timeout: Duration,
    /// Hello's answer; the systemd calls need not know it (the tests do).
    #[cfg_attr(not(test), allow(dead_code))]
    unique_name: String,
}

impl Connection {
    /// Connect to the first of `targets` that accepts, authenticate as `uid` (as the bus
    /// sees it: a rootless engine's own uid 0 is not) and say Hello. Sockets are made
    /// SOCK_CLOEXEC (std's UnixStream always does).
    pub fn open(
        targets: Vec<Target>,
        uid: u32,
        call_timeout: Duration,
    ) -> Result<Connection, DbusError> {
        let mut last = None;
        for t in targets {
            let sock = match &t {
                Target::Path(p) => UnixStream::connect(p),
                Target::Abstract(name) => {
                    SocketAddr::from_abstract_name(name).and_then(|a| UnixStream::connect_addr(&a))
                }
            };
            match sock {
                Ok(sock) => {
                    let mut c = Connection {
                        sock,
                        last_serial: 0,
                        queued: VecDeque::new(),
                        call_timeout,
                        unique_name: String::new(),
                    };
                    c.handshake(uid)?;
                    return Ok(c);
                }
                Err(source) => {
                    last = Some(DbusError::Connect {
                        addr: t.to_string(),
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| DbusError::Address {
            addr: String::new(),
            reason: "no socket to connect to".into(),
        }))
    }

    /// The name the bus gave us (":1.42").
    #[cfg(test)]
    pub fn unique_name(&self) -> &str {
        &self.unique_name
    }

    fn handshake(&mut self, uid: u32) -> Result<(), DbusError> {
        let deadline = Instant::now() + self.call_timeout;
        // The credentials byte (a NUL; the bus reads our uid from SO_PEERCRED), then
        // EXTERNAL with our uid as a decimal string, hex-encoded.
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.write(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let reply = self.auth_line(deadline)?;
        if !reply.starts_with("OK ") {
            return Err(DbusError::Auth { uid, reply });
        }
        // BEGIN and Hello in one write: nothing comes back between them.
        let mut hello = Message::call(BUS_NAME, BUS_PATH, BUS_NAME, "Hello", vec![]);
        hello.serial = self.next_serial();
        let mut out = b"BEGIN\r\n".to_vec();
        out.extend(hello.encode()?);
        self.write(&out)?;
        let reply = self.reply_to(hello.serial, "Hello", deadline)?;
        self.unique_name = one("Hello", reply.body, |v| v.as_str().map(str::to_string))?;
        Ok(())
    }

    fn next_serial(&mut self) -> u32 {
        self.last_serial = self.last_serial.checked_add(1).unwrap_or(1);
        self.last_serial
    }

    /// One line of the authentication exchange, without its CRLF.
    fn auth_line(&mut self, deadline: Instant) -> Result<String, DbusError> {
        let mut line = Vec::new();
        // Byte by byte: the line is short, and nothing after it may be consumed here.
        while !line.ends_with(b"\r\n") {
            if line.len() > MAX_AUTH_LINE {
                return Err(DbusError::malformed("authentication line too long"));
            }
            let mut b = [0u8];
            self.read_exact(&mut b, deadline, "the authentication reply")?;
            line.push(b[0]);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn write(&mut self, b: &[u8]) -> Result<(), DbusError> {
        let io = |source| DbusError::Io {
            op: "writing to",
            source,
        };
        self.sock
            .set_write_timeout(Some(self.call_timeout))
            .map_err(io)?;
        self.sock.write_all(b).map_err(io)
    }

    fn read_exact(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        what: &str,
    ) -> Result<(), DbusError> {
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout(what));
            }
            let io = |source| DbusError::Io {
                op: "reading from",
                source,
            };
            self.sock.set_read_timeout(Some(left)).map_err(io)?;
            match self.sock.read(&mut buf[got..]) {
                Ok(0) => return Err(DbusError::Closed { what: what.into() }),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.timeout(what))
                }
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    fn timeout(&self, what: &str) -> DbusError {
        DbusError::Timeout {
            what: what.into(),
            after: self.call_timeout,
        }
    }

    /// The next message from the bus.
    fn receive(&mut self, deadline: Instant, what: &str) -> Result<Message, DbusError> {
        let mut prefix = [0u8; PREFIX_LEN];
        self.read_exact(&mut prefix, deadline, what)?;
        let len = Message::len_from_prefix(&prefix)?;
        let mut buf = vec![0u8; len];
        buf[..PREFIX_LEN].copy_from_slice(&prefix);
        self.read_exact(&mut buf[PREFIX_LEN..], deadline, what)?;
        Message::parse(&buf)
    }

    /// Read until the reply to `serial`; signals are queued, anything else dropped.
    fn reply_to(
        &mut self,
        serial: u32,
        member: &str,
        deadline: Instant,
    ) -> Result<Message, DbusError> {
        let what = format!("the reply to {member}");
        loop {
            let m = self.receive(deadline, &what)?;
            match m.kind {
                Kind::Signal => self.queued.push_back(m),
                Kind::MethodReturn if m.reply_serial == Some(serial) => return Ok(m),
                Kind::Error if m.reply_serial == Some(serial) => {
                    return Err(DbusError::Method {
                        name: m.error_name.unwrap_or_default(),
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    })
                }
                // A call to us (the bus may Ping a peer): we serve none, and set no flags
                // that would make a reply owed to us elsewhere.
                _ => {}
            }
        }
    }

    /// Call `member` and return the reply's body; an error reply is [`DbusError::Method`].
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, DbusError> {
        let deadline = Instant::now() + self.call_timeout;
        let serial = self.send(Message::call(dest, path, interface, member, args))?;
        Ok(self.reply_to(serial, member, deadline)?.body)
    }

    /// Send `m` with the next serial, which is returned.
    pub fn send(&mut self, mut m: Message) -> Result<u32, DbusError> {
        m.serial = self.next_serial();
        self.write(&m.encode()?)?;
        Ok(m.serial)
    }

    /// A call to the bus itself (org.freedesktop.DBus).
    pub fn call_bus(&mut self, member: &str, args: Vec<Value>) -> Result<Vec<Value>, DbusError> {
        self.call(BUS_NAME, BUS_PATH, BUS_NAME, member, args)
    }

    /// Ask the bus to route the signals `rule` matches to us (AddMatch).
    pub fn add_match(&mut self, rule: &str) -> Result<(), DbusError> {
        self.call_bus("AddMatch", vec![Value::str(rule)]).map(drop)
    }

    /// The first signal, queued or new, for which `pick` returns something; waits at most
    /// `timeout` in all.
    pub fn wait_signal<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T, DbusError> {
        while let Some(m) = self.queued.pop_front() {
            if let Some(t) = pick(&m) {
                return Ok(t);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = match self.receive(deadline, what) {
                Err(DbusError::Timeout { what, .. }) => {
                    return Err(DbusError::Timeout {
                        what,
                        after: timeout,
                    })
                }
                r => r?,
            };
            if m.kind == Kind::Signal {
                if let Some(t) = pick(&m) {
                    return Ok(t);
                }
            }
        }
    }
}

/// A reply body of exactly one value of the expected kind, taken by `get`.
pub fn one<T>(
    member: &str,
    body: Vec<Value>,
    get: impl FnOnce(&Value) -> Option<T>,
) -> Result<T, DbusError> {
    let signature = super::wire::signature(&body);
    match &body[..] {
        [v] => get(v),
        _ => None,
    }
    .ok_or(DbusError::Reply {
        member: member.to_string(),
        signature,
    })
}
