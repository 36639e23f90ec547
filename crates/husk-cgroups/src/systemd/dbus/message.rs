//! A D-Bus message ("Message Format" in the D-Bus specification): a 12-byte fixed header,
//! the header fields as `a(yv)`, padding to 8, and the body its SIGNATURE field describes.

use super::error::DbusError;
use super::wire::{signature, Reader, Type, Value, Writer};

/// The longest message, header and body.
pub const MAX_MESSAGE_LEN: usize = 1 << 27;
/// The fixed header plus the header fields' array length: enough to know the whole length.
pub const PREFIX_LEN: usize = 16;

/// The message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

/// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SENDER: u8 = 7;
const SIGNATURE: u8 = 8;

/// The one protocol version.
const VERSION: u8 = 1;

/// A message with the header fields husk uses (others are read past and dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    /// A method call; its serial is given when it is sent.
    pub fn call(dest: &str, path: &str, interface: &str, member: &str, body: Vec<Value>) -> Self {
        Message {
            kind: Kind::MethodCall,
            flags: 0,
            serial: 0,
            path: Some(path.to_string()),
            interface: Some(interface.to_string()),
            member: Some(member.to_string()),
            error_name: None,
            reply_serial: None,
            destination: Some(dest.to_string()),
            sender: None,
            body,
        }
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        signature(&self.body)
    }

    /// The bytes of this message, little-endian.
    pub fn encode(&self) -> Result<Vec<u8>, DbusError> {
        if self.serial == 0 {
            return Err(DbusError::malformed("serial 0"));
        }
        // The body first (its offset 0 is the 8-aligned start of the body), for its length.
        let mut body = Writer::default();
        for v in &self.body {
            body.value(v)?;
        }
        let sig = self.signature();
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![Value::Byte(code), Value::variant(v)]))
        };
        let text = |s: &Option<String>| s.as_ref().map(|s| Value::Str(s.clone()));
        if let Some(p) = &self.path {
            field(PATH, Value::Path(p.clone()));
        }
        for (code, v) in [
            (INTERFACE, text(&self.interface)),
            (MEMBER, text(&self.member)),
            (ERROR_NAME, text(&self.error_name)),
            (REPLY_SERIAL, self.reply_serial.map(Value::U32)),
            (DESTINATION, text(&self.destination)),
            (SENDER, text(&self.sender)),
            (
                SIGNATURE,
                (!sig.is_empty()).then(|| Value::Sig(sig.clone())),
            ),
        ] {
            if let Some(v) = v {
                field(code, v);
            }
        }
        let mut w = Writer::default();
        w.buf
            .extend_from_slice(&[b'l', self.kind as u8, self.flags, VERSION]);
        w.buf
            .extend_from_slice(&(body.buf.len() as u32).to_le_bytes());
        w.buf.extend_from_slice(&self.serial.to_le_bytes());
        let field_type = Type::Struct(vec![Type::Byte, Type::Variant]);
        w.value(&Value::Array(field_type, fields))?;
        w.pad(8);
        w.buf.extend_from_slice(&body.buf);
        if w.buf.len() > MAX_MESSAGE_LEN {
            return Err(DbusError::malformed("message longer than 128 MiB"));
        }
        Ok(w.buf)
    }

    /// The whole length of the message whose first [`PREFIX_LEN`] bytes are `prefix`.
    pub fn len_from_prefix(prefix: &[u8; PREFIX_LEN]) -> Result<usize, DbusError> {
        let big_endian = endianness(prefix[0])?;
        let n = |at: usize| {
            let b: [u8; 4] = prefix[at..at + 4].try_into().expect("4 bytes");
            let n = match big_endian {
                true => u32::from_be_bytes(b),
                false => u32::from_le_bytes(b),
            };
            n as usize
        };
        let (body, fields) = (n(4), n(12));
        let header = (PREFIX_LEN + fields).next_multiple_of(8);
        let total = header + body;
        if fields > super::wire::MAX_ARRAY_LEN || total > MAX_MESSAGE_LEN {
            return Err(DbusError::malformed(format!(
                "message of {total} bytes (the limit is 128 MiB)"
            )));
        }
        Ok(total)
    }

    /// Parse one whole message.
    pub fn parse(buf: &[u8]) -> Result<Message, DbusError> {
        let prefix: &[u8; PREFIX_LEN] = buf
            .get(..PREFIX_LEN)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| DbusError::malformed("shorter than a header"))?;
        if Message::len_from_prefix(prefix)? != buf.len() {
            return Err(DbusError::malformed("length differs from the header's"));
        }
        let big_endian = endianness(buf[0])?;
        let kind = match buf[1] {
            1 => Kind::MethodCall,
            2 => Kind::MethodReturn,
            3 => Kind::Error,
            4 => Kind::Signal,
            t => return Err(DbusError::malformed(format!("message type {t}"))),
        };
        if buf[3] != VERSION {
            return Err(DbusError::malformed(format!("protocol version {}", buf[3])));
        }
        let mut r = Reader::new(buf, big_endian);
        r.pos = 4;
        let body_len = r.u32()? as usize;
        let serial = r.u32()?;
        if serial == 0 {
            return Err(DbusError::malformed("serial 0"));
        }
        let fields = r.value(&Type::Array(Box::new(Type::Struct(vec![
            Type::Byte,
            Type::Variant,
        ]))))?;
        let mut m = Message {
            kind,
            flags: buf[2],
            serial,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            body: Vec::new(),
        };
        let mut sig = String::new();
        let Value::Array(_, fields) = fields else {
            unreachable!("read an array")
        };
        for f in fields {
            let Value::Struct(f) = f else {
                unreachable!("read structs")
            };
            let (&Value::Byte(code), Value::Variant(v)) = (&f[0], &f[1]) else {
                unreachable!("read (yv)")
            };
            let want = match code {
                PATH => Type::Path,
                REPLY_SERIAL => Type::U32,
                SIGNATURE => Type::Sig,
                INTERFACE | MEMBER | ERROR_NAME | DESTINATION | SENDER => Type::Str,
                _ => continue, // unknown fields are ignored, as the specification asks
            };
            if v.type_of() != want {
                return Err(DbusError::malformed(format!(
                    "header field {code} of the wrong type"
                )));
            }
            let s = v.as_str().map(str::to_string);
            match code {
                PATH => m.path = s,
                INTERFACE => m.interface = s,
                MEMBER => m.member = s,
                ERROR_NAME => m.error_name = s,
                REPLY_SERIAL => m.reply_serial = v.as_u32(),
                DESTINATION => m.destination = s,
                SENDER => m.sender = s,
                _ => sig = s.unwrap_or_default(),
            }
        }
        let required = match kind {
            Kind::MethodCall => m.path.is_some() && m.member.is_some(),
            Kind::Signal => m.path.is_some() && m.interface.is_some() && m.member.is_some(),
            Kind::Error => m.error_name.is_some() && m.reply_serial.is_some(),
            Kind::MethodReturn => m.reply_serial.is_some(),
        };
        if !required {
            return Err(DbusError::malformed(format!(
                "a {kind:?} without its required header fields"
            )));
        }
        r.align(8)?;
        if buf.len() - r.pos != body_len {
            return Err(DbusError::malformed("header fields overrun the body"));
        }
        for t in Type::parse_list(&sig)? {
            m.body.push(r.value(&t)?);
        }
        if r.pos != buf.len() {
            return Err(DbusError::malformed(format!(
                "body longer than its signature {sig:?}"
            )));
        }
        Ok(m)
    }
}

fn endianness(b: u8) -> Result<bool, DbusError> {
    match b {
        b'l' => Ok(false),
        b'B' => Ok(true),
        b => Err(DbusError::malformed(format!("endianness byte {b:#x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hello to the bus, serial 1, derived from the specification by hand: the fixed header,
    /// then the fields array (its length at 12, the first struct at 16) with PATH, INTERFACE,
    /// MEMBER and DESTINATION, each struct on an 8-byte boundary; no body, so no SIGNATURE.
    const HELLO: &[u8] = b"l\x01\x00\x01\
        \x00\x00\x00\x00\
        \x01\x00\x00\x00\
        \x6d\x00\x00\x00\
        \x01\x01o\x00\x15\x00\x00\x00/org/freedesktop/DBus\x00\x00\x00\
        \x02\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00\
        \x03\x01s\x00\x05\x00\x00\x00Hello\x00\x00\x00\
        \x06\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00";
    // Offsets: PATH 16..46 (+2 padding), INTERFACE 48..77 (+3), MEMBER 80..94 (+2),
    // DESTINATION 96..125; the array is 125 - 16 = 109 = 0x6d bytes, then 3 bytes of
    // padding to 128, where an empty body would start.

    fn hello() -> Message {
        let mut m = Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        );
        m.serial = 1;
        m
    }

    #[test]
    fn hello_as_the_specification_lays_it_out() {
        assert_eq!(HELLO.len(), 128);
        assert_eq!(hello().encode().unwrap(), HELLO);
        assert_eq!(Message::parse(HELLO).unwrap(), hello());
        let prefix: &[u8; 16] = HELLO[..16].try_into().unwrap();
        assert_eq!(Message::len_from_prefix(prefix).unwrap(), 128);
    }

    /// An error reply, serial 7, to serial 3, with a string body: the fields ERROR_NAME,
    /// REPLY_SERIAL and SIGNATURE, padding to 8, then the message.
    const ERROR: &[u8] = b"l\x03\x01\x01\
        \x08\x00\x00\x00\
        \x07\x00\x00\x00\
        \x2f\x00\x00\x00\
        \x04\x01s\x00\x12\x00\x00\x00org.x.NoSuchThing1\x00\x00\x00\x00\x00\x00\
        \x05\x01u\x00\x03\x00\x00\x00\
        \x08\x01g\x00\x01s\x00\
        \x00\
        \x03\x00\x00\x00bad\x00";
    // ERROR_NAME 16..43 (+5 padding), REPLY_SERIAL 48..56, SIGNATURE 56..63; array
    // 63 - 16 = 47 = 0x2f, 1 byte of padding; the body at 64: "bad" in 8 bytes.

    #[test]
    fn an_error_reply() {
        let m = Message::parse(ERROR).unwrap();
        assert_eq!(m.kind, Kind::Error);
        assert_eq!(m.flags, 1);
        assert_eq!(m.serial, 7);
        assert_eq!(m.reply_serial, Some(3));
        assert_eq!(m.error_name.as_deref(), Some("org.x.NoSuchThing1"));
        assert_eq!(m.body, [Value::str("bad")]);
        assert_eq!(m.encode().unwrap(), ERROR);
    }

    #[test]
    fn job_removed_round_trip_and_big_endian() {
        let m = Message {
            kind: Kind::Signal,
            flags: 1,
            serial: 99,
            path: Some("/org/freedesktop/systemd1".into()),
            interface: Some("org.freedesktop.systemd1.Manager".into()),
            member: Some("JobRemoved".into()),
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: Some(":1.0".into()),
            body: vec![
                Value::U32(12),
                Value::Path("/org/freedesktop/systemd1/job/12".into()),
                Value::str("husk-c1.scope"),
                Value::str("done"),
            ],
        };
        let bytes = m.encode().unwrap();
        assert_eq!(Message::parse(&bytes).unwrap(), m);

        // The same error as ERROR, big-endian: every number's bytes reversed.
        let mut be = ERROR.to_vec();
        be[0] = b'B';
        for at in [4, 8, 12, 20, 52, 64] {
            be[at..at + 4].reverse();
        }
        let m = Message::parse(&be).unwrap();
        assert_eq!((m.serial, m.reply_serial), (7, Some(3)));
        assert_eq!(m.body, [Value::str("bad")]);
    }

    #[test]
    fn broken_headers_are_refused() {
        let refused = |b: &[u8], why: &str| assert!(Message::parse(b).is_err(), "{why}");
        let mut b = HELLO.to_vec();
        b[0] = b'x';
        refused(&b, "endianness");
        let mut b = HELLO.to_vec();
        b[1] = 9;
        refused(&b, "type");
        let mut b = HELLO.to_vec();
        b[3] = 2;
        refused(&b, "version");
        let mut b = HELLO.to_vec();
        b[8] = 0;
        refused(&b, "serial 0");
        refused(&HELLO[..127], "short");
        // A method return without REPLY_SERIAL.
        let mut b = HELLO.to_vec();
        b[1] = 2;
        refused(&b, "required fields");
        // PATH given as a string.
        let mut b = HELLO.to_vec();
        b[18] = b's';
        refused(&b, "field type");
        // A body longer than its (empty) signature says.
        let mut b = HELLO.to_vec();
        b[4] = 8;
        b.extend_from_slice(&[0; 8]);
        refused(&b, "body");
        // The length limit, before anything is read.
        let mut p: [u8; 16] = HELLO[..16].try_into().unwrap();
        p[4..8].copy_from_slice(&0x0800_0000u32.to_le_bytes());
        assert!(Message::len_from_prefix(&p).is_err());
    }
}
