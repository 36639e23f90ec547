//! D-Bus's marshalling format ("Marshaling (Wire Format)" in the D-Bus specification):
//! the types a signature names, and values written and read with their alignment.
//!
//! Every value is aligned to its type's boundary, counted from the start of the message
//! (the body starts on an 8-byte boundary, so a body written from offset 0 lines up the
//! same). Padding is zero bytes, and a reader refuses any other. husk writes
//! little-endian; a reader takes either byte order, as the message's first byte says.

use super::error::DbusError;

/// The longest array, in bytes of its elements.
pub const MAX_ARRAY_LEN: usize = 1 << 26;
/// The longest signature.
const MAX_SIGNATURE_LEN: usize = 255;
/// Nesting limits: 32 arrays and 32 structs (dict entries count as structs), 64 containers
/// in all with variants, so a hostile message cannot recurse deeply.
const MAX_ARRAY_DEPTH: usize = 32;
const MAX_STRUCT_DEPTH: usize = 32;
const MAX_DEPTH: usize = 64;

/// One complete type of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `y`
    Byte,
    /// `b`
    Bool,
    /// `n`
    I16,
    /// `q`
    U16,
    /// `i`
    I32,
    /// `u`
    U32,
    /// `x`
    I64,
    /// `t`
    U64,
    /// `d`
    Double,
    /// `s`
    Str,
    /// `o`
    Path,
    /// `g`
    Sig,
    /// `v`
    Variant,
    /// `aT`
    Array(Box<Type>),
    /// `(T...)`
    Struct(Vec<Type>),
    /// `{KV}`, only as an array's element
    Entry(Box<Type>, Box<Type>),
}

impl Type {
    /// Its alignment boundary in bytes.
    pub fn align(&self) -> usize {
        match self {
            Type::Byte | Type::Sig | Type::Variant => 1,
            Type::I16 | Type::U16 => 2,
            Type::Bool | Type::I32 | Type::U32 | Type::Str | Type::Path | Type::Array(_) => 4,
            Type::I64 | Type::U64 | Type::Double | Type::Struct(_) | Type::Entry(..) => 8,
        }
    }

    fn is_basic(&self) -> bool {
        !matches!(
            self,
            Type::Variant | Type::Array(_) | Type::Struct(_) | Type::Entry(..)
        )
    }

    /// Append its signature to `out`.
    pub fn write_sig(&self, out: &mut String) {
        let c = match self {
            Type::Byte => 'y',
            Type::Bool => 'b',
            Type::I16 => 'n',
            Type::U16 => 'q',
            Type::I32 => 'i',
            Type::U32 => 'u',
            Type::I64 => 'x',
            Type::U64 => 't',
            Type::Double => 'd',
            Type::Str => 's',
            Type::Path => 'o',
            Type::Sig => 'g',
            Type::Variant => 'v',
            Type::Array(t) => {
                out.push('a');
                return t.write_sig(out);
            }
            Type::Struct(fields) => {
                out.push('(');
                fields.iter().for_each(|f| f.write_sig(out));
                return out.push(')');
            }
            Type::Entry(k, v) => {
                out.push('{');
                k.write_sig(out);
                v.write_sig(out);
                return out.push('}');
            }
        };
        out.push(c);
    }

    /// A signature of zero or more complete types (a message body's).
    pub fn parse_list(sig: &str) -> Result<Vec<Type>, DbusError> {
        if sig.len() > MAX_SIGNATURE_LEN {
            return Err(DbusError::malformed("signature longer than 255"));
        }
        let mut p = SigParser {
            s: sig.as_bytes(),
            pos: 0,
        };
        let mut out = Vec::new();
        while p.pos < p.s.len() {
            out.push(p.one(0, 0, false)?);
        }
        Ok(out)
    }

    /// A signature of exactly one complete type (a variant's).
    pub fn parse_one(sig: &str) -> Result<Type, DbusError> {
        let mut t = Type::parse_list(sig)?;
        match t.len() {
            1 => Ok(t.remove(0)),
            _ => Err(DbusError::malformed(format!(
                "variant signature {sig:?} is not one complete type"
            ))),
        }
    }
}

struct SigParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl SigParser<'_> {
    fn bad(&self, why: &str) -> DbusError {
        DbusError::malformed(format!(
            "signature {:?}: {why}",
            String::from_utf8_lossy(self.s)
        ))
    }

    /// One complete type; `in_array`: a dict entry may start here.
    fn one(&mut self, arrays: usize, structs: usize, in_array: bool) -> Result<Type, DbusError> {
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.bad("ends inside a type"));
        };
        self.pos += 1;
        Ok(match c {
            b'y' => Type::Byte,
            b'b' => Type::Bool,
            b'n' => Type::I16,
            b'q' => Type::U16,
            b'i' => Type::I32,
            b'u' => Type::U32,
            b'x' => Type::I64,
            b't' => Type::U64,
            b'd' => Type::Double,
            b's' => Type::Str,
            b'o' => Type::Path,
            b'g' => Type::Sig,
            b'v' => Type::Variant,
            b'a' => {
                if arrays == MAX_ARRAY_DEPTH {
                    return Err(self.bad("arrays nested deeper than 32"));
                }
                Type::Array(Box::new(self.one(arrays + 1, structs, true)?))
            }
            b'(' => {
                if structs == MAX_STRUCT_DEPTH {
                    return Err(self.bad("structs nested deeper than 32"));
                }
                let mut fields = Vec::new();
                while self.s.get(self.pos) != Some(&b')') {
                    fields.push(self.one(arrays, structs + 1, false)?);
                }
                self.pos += 1;
                if fields.is_empty() {
                    return Err(self.bad("empty struct"));
                }
                Type::Struct(fields)
            }
            b'{' => {
                if !in_array {
                    return Err(self.bad("dict entry outside an array"));
                }
                if structs == MAX_STRUCT_DEPTH {
                    return Err(self.bad("structs nested deeper than 32"));
                }
                let k = self.one(arrays, structs + 1, false)?;
                if !k.is_basic() {
                    return Err(self.bad("dict entry key is not a basic type"));
                }
                let v = self.one(arrays, structs + 1, false)?;
                if self.s.get(self.pos) != Some(&b'}') {
                    return Err(self.bad("dict entry has not exactly two types"));
                }
                self.pos += 1;
                Type::Entry(Box::new(k), Box::new(v))
            }
            // `h` (a unix fd) never comes: husk does not negotiate fd passing.
            c => return Err(self.bad(&format!("unknown or unexpected type code {:?}", c as char))),
        })
    }
}

/// A value of any of the types above.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    Variant(Box<Value>),
    /// The element type (an empty array still has one) and the elements.
    Array(Type, Vec<Value>),
    Struct(Vec<Value>),
    Entry(Box<Value>, Box<Value>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn type_of(&self) -> Type {
        match self {
            Value::Byte(_) => Type::Byte,
            Value::Bool(_) => Type::Bool,
            Value::I16(_) => Type::I16,
            Value::U16(_) => Type::U16,
            Value::I32(_) => Type::I32,
            Value::U32(_) => Type::U32,
            Value::I64(_) => Type::I64,
            Value::U64(_) => Type::U64,
            Value::Double(_) => Type::Double,
            Value::Str(_) => Type::Str,
            Value::Path(_) => Type::Path,
            Value::Sig(_) => Type::Sig,
            Value::Variant(_) => Type::Variant,
            Value::Array(t, _) => Type::Array(Box::new(t.clone())),
            Value::Struct(f) => Type::Struct(f.iter().map(Value::type_of).collect()),
            Value::Entry(k, v) => Type::Entry(Box::new(k.type_of()), Box::new(v.type_of())),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }
}

/// The signature of a sequence of values.
pub fn signature(values: &[Value]) -> String {
    let mut s = String::new();
    values.iter().for_each(|v| v.type_of().write_sig(&mut s));
    s
}

/// An object path: "/" or "/" followed by elements of [A-Za-z0-9_], separated by "/".
pub fn valid_path(p: &str) -> bool {
    p == "/"
        || p.strip_prefix('/').is_some_and(|rest| {
            rest.split('/')
                .all(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        })
}

/// Writes values little-endian into a buffer whose offset 0 is 8-aligned in the message.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// Zeros up to the next multiple of `align`.
    pub fn pad(&mut self, align: usize) {
        self.buf.resize(self.buf.len().next_multiple_of(align), 0);
    }

    fn text(&mut self, s: &str, what: &str) -> Result<(), DbusError> {
        if s.contains('\0') {
            return Err(DbusError::malformed(format!("{what} {s:?} contains a NUL")));
        }
        Ok(())
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// Write one value at its alignment.
    pub fn value(&mut self, v: &Value) -> Result<(), DbusError> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(*b as u32),
            Value::I16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::Double(d) => {
                self.pad(8);
                self.buf.extend_from_slice(&d.to_le_bytes())
            }
            Value::Str(s) | Value::Path(s) => {
                self.text(s, "string")?;
                if matches!(v, Value::Path(_)) && !valid_path(s) {
                    return Err(DbusError::malformed(format!("{s:?} is not an object path")));
                }
                self.u32(s.len() as u32);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => {
                self.text(s, "signature")?;
                Type::parse_list(s)?;
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Variant(inner) => {
                let mut sig = String::new();
                inner.type_of().write_sig(&mut sig);
                self.value(&Value::Sig(sig))?;
                self.value(inner)?;
            }
            Value::Array(t, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The padding to the first element is there even when there is none, and
                // is not counted in the length.
                self.pad(t.align());
                let start = self.buf.len();
                for item in items {
                    if item.type_of() != *t {
                        return Err(DbusError::malformed("array element of another type"));
                    }
                    self.value(item)?;
                }
                let len = self.buf.len() - start;
                if len > MAX_ARRAY_LEN {
                    return Err(DbusError::malformed("array longer than 64 MiB"));
                }
                self.buf[len_at..len_at + 4].copy_from_slice(&(len as u32).to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f)?;
                }
            }
            Value::Entry(k, v) => {
                self.pad(8);
                self.value(k)?;
                self.value(v)?;
            }
        }
        Ok(())
    }
}

/// Reads values from a whole message (offsets count from its first byte).
pub struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
    big_endian: bool,
    arrays: usize,
    structs: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            big_endian,
            arrays: 0,
            structs: 0,
            depth: 0,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DbusError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| DbusError::malformed("a value runs past the end"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    /// Skip to `align`; the padding must be zeros.
    pub fn align(&mut self, align: usize) -> Result<(), DbusError> {
        let n = (align - self.pos % align) % align;
        if self.take(n)?.iter().any(|b| *b != 0) {
            return Err(DbusError::malformed("non-zero padding"));
        }
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DbusError> {
        self.align(N)?;
        let mut a: [u8; N] = self.take(N)?.try_into().expect("took N bytes");
        if self.big_endian {
            a.reverse();
        }
        Ok(a)
    }

    pub fn u32(&mut self) -> Result<u32, DbusError> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn text(&mut self, len: usize) -> Result<String, DbusError> {
        let b = self.take(len + 1)?;
        if b[len] != 0 {
            return Err(DbusError::malformed("string without its NUL"));
        }
        let s = std::str::from_utf8(&b[..len])
            .map_err(|_| DbusError::malformed("string is not UTF-8"))?;
        if s.contains('\0') {
            return Err(DbusError::malformed("string contains a NUL"));
        }
        Ok(s.to_string())
    }

    fn enter(&mut self, array: bool, strukt: bool) -> Result<(), DbusError> {
        self.arrays += array as usize;
        self.structs += strukt as usize;
        self.depth += 1;
        if self.arrays > MAX_ARRAY_DEPTH
            || self.structs > MAX_STRUCT_DEPTH
            || self.depth > MAX_DEPTH
        {
            return Err(DbusError::malformed("containers nested too deeply"));
        }
        Ok(())
    }

    fn leave(&mut self, array: bool, strukt: bool) {
        self.arrays -= array as usize;
        self.structs -= strukt as usize;
        self.depth -= 1;
    }

    /// Read one value of type `t`.
    pub fn value(&mut self, t: &Type) -> Result<Value, DbusError> {
        Ok(match t {
            Type::Byte => Value::Byte(self.take(1)?[0]),
            Type::Bool => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(DbusError::malformed(format!("boolean {n}"))),
            },
            Type::I16 => Value::I16(i16::from_le_bytes(self.fixed()?)),
            Type::U16 => Value::U16(u16::from_le_bytes(self.fixed()?)),
            Type::I32 => Value::I32(i32::from_le_bytes(self.fixed()?)),
            Type::U32 => Value::U32(self.u32()?),
            Type::I64 => Value::I64(i64::from_le_bytes(self.fixed()?)),
            Type::U64 => Value::U64(u64::from_le_bytes(self.fixed()?)),
            Type::Double => Value::Double(f64::from_le_bytes(self.fixed()?)),
            Type::Str | Type::Path => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if *t == Type::Str {
                    Value::Str(s)
                } else if valid_path(&s) {
                    Value::Path(s)
                } else {
                    return Err(DbusError::malformed(format!("{s:?} is not an object path")));
                }
            }
            Type::Sig => {
                let len = self.take(1)?[0] as usize;
                let s = self.text(len)?;
                Type::parse_list(&s)?;
                Value::Sig(s)
            }
            Type::Variant => {
                let Value::Sig(sig) = self.value(&Type::Sig)? else {
                    unreachable!("read a signature")
                };
                let inner = Type::parse_one(&sig)?;
                self.enter(false, false)?;
                let v = self.value(&inner)?;
                self.leave(false, false);
                Value::Variant(Box::new(v))
            }
            Type::Array(elem) => {
                let len = self.u32()? as usize;
                if len > MAX_ARRAY_LEN {
                    return Err(DbusError::malformed("array longer than 64 MiB"));
                }
                self.align(elem.align())?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(|| DbusError::malformed("an array runs past the end"))?;
                self.enter(true, false)?;
                let mut items = Vec::new();
                // Every element takes at least one byte, so this ends.
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                self.leave(true, false);
                if self.pos != end {
                    return Err(DbusError::malformed("array elements overrun its length"));
                }
                Value::Array((**elem).clone(), items)
            }
            Type::Struct(fields) => {
                self.align(8)?;
                self.enter(false, true)?;
                let v = fields
                    .iter()
                    .map(|f| self.value(f))
                    .collect::<Result<Vec<_>, _>>()?;
                self.leave(false, true);
                Value::Struct(v)
            }
            Type::Entry(k, v) => {
                self.align(8)?;
                self.enter(false, true)?;
                let k = self.value(k)?;
                let v = self.value(v)?;
                self.leave(false, true);
                Value::Entry(Box::new(k), Box::new(v))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(vs: &[Value]) -> Vec<u8> {
        let mut w = Writer::default();
        vs.iter().for_each(|v| w.value(v).unwrap());
        w.buf
    }

    fn read(sig: &str, bytes: &[u8], big_endian: bool) -> Vec<Value> {
        let mut r = Reader::new(bytes, big_endian);
        let v = Type::parse_list(sig)
            .unwrap()
            .iter()
            .map(|t| r.value(t).unwrap())
            .collect();
        assert_eq!(r.pos, bytes.len(), "all of {bytes:?} read");
        v
    }

    /// Written as the hand-derived bytes, read back from them, and its signature as given.
    fn check(sig: &str, vs: &[Value], bytes: &[u8]) {
        assert_eq!(signature(vs), sig);
        assert_eq!(write(vs), bytes, "writing {vs:?}");
        assert_eq!(read(sig, bytes, false), vs, "reading {bytes:?}");
    }

    #[test]
    fn basic_types_at_their_alignment() {
        // Each value after a byte, so that the padding shows: 2-byte types skip 1 byte,
        // 4-byte types 3, 8-byte types 7.
        check("yy", &[Value::Byte(7), Value::Byte(0xff)], b"\x07\xff");
        check(
            "yb",
            &[Value::Byte(1), Value::Bool(true)],
            b"\x01\0\0\0\x01\0\0\0",
        );
        check("yn", &[Value::Byte(1), Value::I16(-2)], b"\x01\0\xfe\xff");
        check(
            "yq",
            &[Value::Byte(1), Value::U16(0x1234)],
            b"\x01\0\x34\x12",
        );
        check(
            "yi",
            &[Value::Byte(1), Value::I32(-1)],
            b"\x01\0\0\0\xff\xff\xff\xff",
        );
        check(
            "yu",
            &[Value::Byte(1), Value::U32(0x0102_0304)],
            b"\x01\0\0\0\x04\x03\x02\x01",
        );
        check(
            "yx",
            &[Value::Byte(1), Value::I64(-2)],
            b"\x01\0\0\0\0\0\0\0\xfe\xff\xff\xff\xff\xff\xff\xff",
        );
        check(
            "yt",
            &[Value::Byte(1), Value::U64(u64::MAX - 1)],
            b"\x01\0\0\0\0\0\0\0\xfe\xff\xff\xff\xff\xff\xff\xff",
        );
        // 1.0 is 0x3ff0000000000000 in IEEE 754.
        check("d", &[Value::Double(1.0)], b"\0\0\0\0\0\0\xf0\x3f");
    }

    #[test]
    fn strings_paths_and_signatures() {
        // A u32 length without the NUL, the bytes, a NUL.
        check("s", &[Value::str("ab")], b"\x02\0\0\0ab\0");
        check("s", &[Value::str("")], b"\0\0\0\0\0");
        check("o", &[Value::Path("/a_1/b".into())], b"\x06\0\0\0/a_1/b\0");
        // A byte length, the bytes, a NUL; no alignment.
        check(
            "yg",
            &[Value::Byte(9), Value::Sig("a(sv)".into())],
            b"\x09\x05a(sv)\0",
        );
        // A string after a string: the second length is aligned to 4 again.
        check(
            "ss",
            &[Value::str("a"), Value::str("b")],
            b"\x01\0\0\0a\0\0\0\x01\0\0\0b\0",
        );
    }

    #[test]
    fn arrays_count_their_elements_not_the_padding() {
        // au [1, 2]: length 8, no padding (u32 aligns to 4 already).
        check(
            "au",
            &[Value::Array(Type::U32, vec![Value::U32(1), Value::U32(2)])],
            b"\x08\0\0\0\x01\0\0\0\x02\0\0\0",
        );
        // at [1]: length 8, then 4 bytes of padding to the 8-aligned element, not counted.
        check(
            "at",
            &[Value::Array(Type::U64, vec![Value::U64(1)])],
            b"\x08\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0",
        );
        // An empty a(sv) still pads to its element's alignment.
        let sv = Type::Struct(vec![Type::Str, Type::Variant]);
        check(
            "a(sv)",
            &[Value::Array(sv.clone(), vec![])],
            b"\0\0\0\0\0\0\0\0",
        );
        // ay: bytes, no padding.
        check(
            "ay",
            &[Value::Array(
                Type::Byte,
                vec![Value::Byte(3), Value::Byte(4)],
            )],
            b"\x02\0\0\0\x03\x04",
        );
    }

    #[test]
    fn a_unit_property_as_systemd_takes_it() {
        // a(sv) [("Delegate", <true>)]: length 20 at 0, padding 4..8, the struct at 8: the
        // string's length 8, "Delegate\0" to 21, the variant's signature "b" (1, 'b', NUL)
        // to 24, the boolean at 24..28. 28 - 8 = 20.
        let sv = Type::Struct(vec![Type::Str, Type::Variant]);
        let prop = Value::Struct(vec![
            Value::str("Delegate"),
            Value::variant(Value::Bool(true)),
        ]);
        check(
            "a(sv)",
            &[Value::Array(sv, vec![prop])],
            b"\x14\0\0\0\0\0\0\0\x08\0\0\0Delegate\0\x01b\0\x01\0\0\0",
        );
    }

    #[test]
    fn dicts_and_variants() {
        // a{sv} {"k": <u32 5>}: length at 0, pad to 8, entry: "k" (1, 'k', NUL) to 14, the
        // variant's signature "u" to 17, pad to 20, 5 to 24. 24 - 8 = 16.
        let entry = Type::Entry(Box::new(Type::Str), Box::new(Type::Variant));
        let v = Value::Array(
            entry,
            vec![Value::Entry(
                Box::new(Value::str("k")),
                Box::new(Value::variant(Value::U32(5))),
            )],
        );
        check(
            "a{sv}",
            &[v],
            b"\x10\0\0\0\0\0\0\0\x01\0\0\0k\0\x01u\0\0\0\0\x05\0\0\0",
        );
        // A variant holding an array of strings: signature "as", then the array at 4.
        check(
            "v",
            &[Value::variant(Value::Array(
                Type::Str,
                vec![Value::str("x")],
            ))],
            b"\x02as\0\x06\0\0\0\x01\0\0\0x\0",
        );
    }

    #[test]
    fn big_endian_is_read_too() {
        assert_eq!(
            read("yu", b"\x01\0\0\0\x01\x02\x03\x04", true),
            [Value::Byte(1), Value::U32(0x0102_0304)]
        );
        assert_eq!(read("s", b"\0\0\0\x02ab\0", true), [Value::str("ab")]);
    }

    #[test]
    fn signatures_are_checked() {
        for bad in [
            "(", "()", "a", "{sv}", "a{vs}", "a{sss}", "h", "z", ")", "a{s}",
        ] {
            assert!(Type::parse_list(bad).is_err(), "{bad:?} accepted");
        }
        let deep_arrays = "a".repeat(33) + "y";
        assert!(Type::parse_list(&deep_arrays).is_err());
        let ok_arrays = "a".repeat(32) + "y";
        assert!(Type::parse_list(&ok_arrays).is_ok());
        let deep_structs = "(".repeat(33) + "y" + &")".repeat(33);
        assert!(Type::parse_list(&deep_structs).is_err());
        assert!(Type::parse_one("ss").is_err());
        let t = Type::parse_list("ssa(sv)a(sa(sv))").unwrap();
        let mut back = String::new();
        t.iter().for_each(|t| t.write_sig(&mut back));
        assert_eq!(back, "ssa(sv)a(sa(sv))");
    }

    #[test]
    fn malformed_values_are_refused() {
        let refused = |sig: &str, bytes: &[u8]| {
            let mut r = Reader::new(bytes, false);
            let all = Type::parse_list(sig)
                .unwrap()
                .iter()
                .try_for_each(|t| r.value(t).map(drop));
            assert!(all.is_err(), "{sig} {bytes:?} accepted");
        };
        refused("b", b"\x02\0\0\0"); // a boolean is 0 or 1
        refused("s", b"\x02\0\0\0ab"); // no NUL
        refused("s", b"\x02\0\0\0abc"); // not NUL where it should be
        refused("s", b"\x01\0\0\0\xff\0"); // not UTF-8
        refused("s", b"\x02\0\0\0a\0\0"); // a NUL inside
        refused("o", b"\x02\0\0\0a/\0"); // not a path
        refused("o", b"\x02\0\0\0//\0"); // empty element
        refused("yu", b"\x01\x01\0\0\x05\0\0\0"); // not a byte then u32: padding nonzero
        refused("(yu)", b"\x01\x01\0\0\x05\0\0\0");
        refused("au", b"\x06\0\0\0\x01\0\0\0\x02\0"); // 6 bytes cannot hold whole u32s
        refused("au", b"\xff\xff\xff\xff"); // longer than the limit
        refused("au", b"\x08\0\0\0\x01\0\0\0"); // shorter than it says
        refused("v", b"\x02uu\0\0\0\0\0\0\0\0\0"); // a variant holds one type
        refused("g", b"\x01h\0"); // a type husk does not speak
                                  // Variants inside variants deeper than 64 containers.
        let mut deep = Vec::new();
        for _ in 0..70 {
            deep.extend_from_slice(b"\x01v\0");
        }
        deep.extend_from_slice(b"\x01y\0\x07");
        refused("v", &deep);
    }

    #[test]
    fn writing_refuses_what_a_bus_would() {
        let mut w = Writer::default();
        assert!(w.value(&Value::str("a\0b")).is_err());
        assert!(w.value(&Value::Path("no/slash".into())).is_err());
        assert!(w.value(&Value::Sig("(".into())).is_err());
        assert!(w
            .value(&Value::Array(Type::U32, vec![Value::str("x")]))
            .is_err());
    }

    #[test]
    fn round_trips() {
        let sv = Type::Struct(vec![Type::Str, Type::Variant]);
        let vs = vec![
            Value::Byte(1),
            Value::Array(
                sv.clone(),
                vec![
                    Value::Struct(vec![
                        Value::str("PIDs"),
                        Value::variant(Value::Array(Type::U32, vec![Value::U32(42)])),
                    ]),
                    Value::Struct(vec![
                        Value::str("MemoryMax"),
                        Value::variant(Value::U64(1 << 30)),
                    ]),
                    Value::Struct(vec![
                        Value::str("AllowedCPUs"),
                        Value::variant(Value::Array(Type::Byte, vec![Value::Byte(3)])),
                    ]),
                ],
            ),
            Value::I16(-5),
            Value::Double(-0.5),
            Value::Path("/".into()),
            Value::Array(
                Type::Struct(vec![Type::Str, Type::Array(Box::new(sv.clone()))]),
                vec![],
            ),
        ];
        let sig = signature(&vs);
        assert_eq!(sig, "ya(sv)ndoa(sa(sv))");
        assert_eq!(read(&sig, &write(&vs), false), vs);
    }
}
