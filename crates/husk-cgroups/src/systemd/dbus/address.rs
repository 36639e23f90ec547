//! Where a bus listens ("Server Addresses" and "Well-known Message Bus Instances" in the
//! D-Bus specification): `transport:key=value,...`, several separated by `;`, tried in
//! order. husk speaks the `unix` transport with `path=` or `abstract=`. (The user's bus
//! is found by [`super::super::user`], which reads its address with [`parse`].)

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::error::DbusError;

/// The system bus when DBUS_SYSTEM_BUS_ADDRESS does not say otherwise.
pub const SYSTEM_BUS_DEFAULT: &str = "unix:path=/run/dbus/system_bus_socket";

/// A socket to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(PathBuf),
    /// Linux's abstract namespace (the name without the leading NUL).
    Abstract(Vec<u8>),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Path(p) => write!(f, "{}", p.display()),
            Target::Abstract(a) => write!(f, "@{}", String::from_utf8_lossy(a)),
        }
    }
}

/// The system bus's address.
pub fn system_bus() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| SYSTEM_BUS_DEFAULT.to_string())
}

/// The sockets an address names, in order; entries of other transports are skipped, and
/// none usable at all is an error.
pub fn parse(addr: &str) -> Result<Vec<Target>, DbusError> {
    let bad = |reason: &str| DbusError::Address {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for entry in addr.split(';').filter(|e| !e.is_empty()) {
        let (transport, params) = entry
            .split_once(':')
            .ok_or_else(|| bad("an entry without a transport"))?;
        if transport != "unix" {
            continue;
        }
        let mut target = None;
        for kv in params.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad("a key without a value"))?;
            let v = unescape(v).ok_or_else(|| bad("a bad %-escape"))?;
            match k {
                "path" => target = Some(Target::Path(PathBuf::from(OsString::from_vec(v)))),
                "abstract" => target = Some(Target::Abstract(v)),
                _ => {} // guid=, and listen-only keys
            }
        }
        out.extend(target);
    }
    if out.is_empty() {
        return Err(bad("no unix:path= or unix:abstract= entry"));
    }
    Ok(out)
}

/// Values are %-escaped, except for a set of plain characters.
fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_addresses() {
        assert_eq!(
            parse("unix:path=/run/dbus/system_bus_socket").unwrap(),
            [Target::Path("/run/dbus/system_bus_socket".into())]
        );
        assert_eq!(
            parse("tcp:host=h,port=1;unix:abstract=/tmp/dbus-x%2cy,guid=ab12").unwrap(),
            [Target::Abstract(b"/tmp/dbus-x,y".to_vec())]
        );
        assert_eq!(
            parse("unix:path=/a;unix:path=/b%20c").unwrap(),
            [Target::Path("/a".into()), Target::Path("/b c".into())]
        );
        assert!(parse("tcp:host=h").is_err());
        assert!(parse("unix:path=/a%2").is_err());
        assert!(parse("nocolon").is_err());
    }
}
