//! A small streaming tar reader (ustar, GNU long names, PAX) and writer.
//!
//! Written here rather than taken from the `tar` crate so that every limit (header sizes,
//! path lengths, numeric ranges) is ours and paths are only ever handed out as raw bytes
//! for the unpacker to resolve safely.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

pub const BLOCK: usize = 512;
/// Largest PAX extended header or GNU long name we accept.
pub const MAX_META: u64 = 1 << 20;
/// Longest path we accept (Linux PATH_MAX).
pub const MAX_PATH: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Format(String),
}

fn ferr<T>(m: impl Into<String>) -> Result<T, TarError> {
    Err(TarError::Format(m.into()))
}

fn parse_num(field: &[u8]) -> Result<u64, TarError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256, big endian; refuse negative
        if field[0] & 0x40 != 0 {
            return ferr("negative numeric field");
        }
        let mut v: u64 = (field[0] & 0x3f) as u64;
        for &b in &field[1..] {
            if v > (u64::MAX >> 8) {
                return ferr("numeric field overflow");
            }
            v = (v << 8) | b as u64;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut seen = false;
    for &b in field {
        match b {
            b'0'..=b'7' => {
                seen = true;
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add((b - b'0') as u64))
                    .ok_or_else(|| TarError::Format("numeric field overflow".into()))?;
            }
            b' ' if !seen => {}
            0 | b' ' => break,
            _ => return ferr("bad octal field"),
        }
    }
    Ok(v)
}

fn cstr_field(f: &[u8]) -> &[u8] {
    match f.iter().position(|&b| b == 0) {
        Some(i) => &f[..i],
        None => f,
    }
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Ok(want) = parse_num(&h[148..156]) else {
        return false;
    };
    let mut u: u64 = 0;
    let mut s: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        u += b as u64;
        s += b as i8 as i64;
    }
    want == u || want as i64 == s
}

pub struct Reader<R> {
    inner: R,
    /// bytes of the current entry's data (plus padding) not yet consumed
    remaining: u64,
    padding: u64,
    globals: BTreeMap<String, Vec<u8>>,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            remaining: 0,
            padding: 0,
            globals: BTreeMap::new(),
            done: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.inner.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn read_meta(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_META {
            return ferr(format!("extended header of {size} bytes is too large"));
        }
        let mut v = vec![0u8; size as usize];
        self.inner.read_exact(&mut v)?;
        self.skip(pad(size))?;
        Ok(v)
    }

    /// Read the next entry's header. The entry's data must be consumed with `read_data`
    /// (or is skipped automatically by the next call).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.done {
            return Ok(None);
        }
        let left = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(left)?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut meta_count = 0;
        loop {
            let mut h = [0u8; BLOCK];
            match read_full(&mut self.inner, &mut h)? {
                0 => {
                    // EOF without end-of-archive blocks: accept (some writers omit them)
                    self.done = true;
                    return Ok(None);
                }
                BLOCK => {}
                _ => return ferr("truncated header"),
            }
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            if !checksum_ok(&h) {
                return ferr("header checksum mismatch");
            }
            let size = parse_num(&h[124..136])?;
            let typ = h[156];
            match typ {
                b'L' | b'K' | b'x' | b'g' => {
                    meta_count += 1;
                    if meta_count > 16 {
                        return ferr("too many extended headers");
                    }
                    let data = self.read_meta(size)?;
                    match typ {
                        b'L' => long_name = Some(cstr_field(&data).to_vec()),
                        b'K' => long_link = Some(cstr_field(&data).to_vec()),
                        b'x' => parse_pax(&data, &mut pax)?,
                        _ => parse_pax(&data, &mut self.globals)?,
                    }
                    continue;
                }
                _ => {}
            }
            let kind = match typ {
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                b'S' => return ferr("sparse files are not supported"),
                t => return ferr(format!("unsupported entry type {:?}", t as char)),
            };
            let ustar = &h[257..263] == b"ustar\0" || &h[257..263] == b"ustar ";
            let mut path = cstr_field(&h[0..100]).to_vec();
            if ustar && &h[257..263] == b"ustar\0" {
                let prefix = cstr_field(&h[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&path);
                    path = p;
                }
            }
            if let Some(n) = long_name {
                path = n;
            }
            let mut link = cstr_field(&h[157..257]).to_vec();
            if let Some(l) = long_link {
                link = l;
            }
            let mut e = Entry {
                kind,
                path,
                link,
                size,
                mode: (parse_num(&h[100..108])? & 0o7777) as u32,
                uid: parse_num(&h[108..116])?,
                gid: parse_num(&h[116..124])?,
                mtime: parse_num(&h[136..148])?.min(i64::MAX as u64) as i64,
                mtime_nsec: 0,
                devmajor: parse_num(&h[329..337]).unwrap_or(0) as u32,
                devminor: parse_num(&h[337..345]).unwrap_or(0) as u32,
                xattrs: Vec::new(),
            };
            for (k, v) in self.globals.iter().chain(pax.iter()) {
                apply_pax(&mut e, k, v)?;
            }
            if e.path.len() > MAX_PATH || e.link.len() > MAX_PATH {
                return ferr("path too long");
            }
            // No file can be larger than off_t; bounding the size here also keeps
            // `remaining + padding` from overflowing when the data is skipped.
            if e.size > i64::MAX as u64 {
                return ferr(format!("entry size {} is too large", e.size));
            }
            if e.kind == Kind::File {
                self.remaining = e.size;
                self.padding = pad(e.size);
            } else {
                // Header-only types carry no data whatever their size field says.
                e.size = 0;
            }
            return Ok(Some(e));
        }
    }

    /// Read the current entry's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let k = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar entry truncated",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Consume everything after the end-of-archive marker (so digests cover the stream).
    pub fn drain(&mut self) -> io::Result<u64> {
        let left = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(left)?;
        io::copy(&mut self.inner, &mut io::sink())
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub fn pad(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn parse_pax(data: &[u8], out: &mut BTreeMap<String, Vec<u8>>) -> Result<(), TarError> {
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| TarError::Format("bad pax record".into()))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| TarError::Format("bad pax record length".into()))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return ferr("bad pax record length");
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| TarError::Format("bad pax record".into()))?;
        let key = String::from_utf8_lossy(&rec[..eq]).into_owned();
        out.insert(key, rec[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(())
}

fn pax_num(v: &[u8]) -> Result<u64, TarError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TarError::Format("bad pax number".into()))
}

fn apply_pax(e: &mut Entry, k: &str, v: &[u8]) -> Result<(), TarError> {
    match k {
        "path" => e.path = v.to_vec(),
        "linkpath" => e.link = v.to_vec(),
        "size" => e.size = pax_num(v)?,
        "uid" => e.uid = pax_num(v)?,
        "gid" => e.gid = pax_num(v)?,
        "mtime" => {
            let s = String::from_utf8_lossy(v);
            let (secs, frac) = s.split_once('.').unwrap_or((&s, ""));
            e.mtime = secs
                .parse()
                .map_err(|_| TarError::Format("bad pax mtime".into()))?;
            let mut f: String = frac.chars().take(9).collect();
            while f.len() < 9 {
                f.push('0');
            }
            e.mtime_nsec = f.parse().unwrap_or(0);
        }
        _ if k.starts_with("SCHILY.xattr.") => {
            e.xattrs
                .push((k.as_bytes()["SCHILY.xattr.".len()..].to_vec(), v.to_vec()));
        }
        _ if k.starts_with("GNU.sparse.") => return ferr("sparse files are not supported"),
        _ => {}
    }
    Ok(())
}

/// Minimal tar writer (PAX for long names and xattrs). Used by `save` and by tests that
/// build layers, including deliberately hostile ones (`raw_header`).
pub struct Writer<W: Write> {
    inner: W,
}

#[derive(Clone, Debug)]
pub struct Header {
    pub kind: Kind,
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Header {
    pub fn new(kind: Kind, path: &str) -> Header {
        Header {
            kind,
            path: path.as_bytes().to_vec(),
            link: Vec::new(),
            size: 0,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 0,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        }
    }
}

fn put_octal(field: &mut [u8], v: u64) -> bool {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    if s.len() > field.len() - 1 {
        return false;
    }
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
    true
}

fn pax_record(key: &str, val: &[u8]) -> Vec<u8> {
    let base = key.len() + val.len() + 3; // ' ' '=' '\n'
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(val);
    r.push(b'\n');
    r
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Self {
        Writer { inner }
    }

    /// Write a raw 512-byte header block, checksum fixed up. For tests of hostile input.
    pub fn raw_block(&mut self, block: &[u8; BLOCK]) -> io::Result<()> {
        self.inner.write_all(block)
    }

    fn ustar_block(h: &Header, path: &[u8], link: &[u8], typ: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let p = &path[..path.len().min(100)];
        b[..p.len()].copy_from_slice(p);
        put_octal(&mut b[100..108], h.mode as u64);
        put_octal(&mut b[108..116], h.uid.min(0o7777777));
        put_octal(&mut b[116..124], h.gid.min(0o7777777));
        put_octal(&mut b[124..136], size);
        put_octal(&mut b[136..148], h.mtime);
        b[156] = typ;
        let l = &link[..link.len().min(100)];
        b[157..157 + l.len()].copy_from_slice(l);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        put_octal(&mut b[329..337], h.devmajor as u64);
        put_octal(&mut b[337..345], h.devminor as u64);
        fix_checksum(&mut b);
        b
    }

    pub fn append(&mut self, h: &Header, data: &mut dyn Read) -> io::Result<()> {
        let mut pax = Vec::new();
        if h.path.len() > 100 {
            pax.extend(pax_record("path", &h.path));
        }
        if h.link.len() > 100 {
            pax.extend(pax_record("linkpath", &h.link));
        }
        if h.size > 0o77777777777 {
            pax.extend(pax_record("size", h.size.to_string().as_bytes()));
        }
        if h.uid > 0o7777777 {
            pax.extend(pax_record("uid", h.uid.to_string().as_bytes()));
        }
        if h.gid > 0o7777777 {
            pax.extend(pax_record("gid", h.gid.to_string().as_bytes()));
        }
        for (k, v) in &h.xattrs {
            pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        if !pax.is_empty() {
            let ph = Header::new(Kind::File, "PaxHeader");
            let b = Self::ustar_block(&ph, b"././@PaxHeader", b"", b'x', pax.len() as u64);
            self.inner.write_all(&b)?;
            self.inner.write_all(&pax)?;
            self.inner
                .write_all(&vec![0u8; pad(pax.len() as u64) as usize])?;
        }
        let typ = match h.kind {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        };
        let size = if h.kind == Kind::File { h.size } else { 0 };
        let b = Self::ustar_block(h, &h.path, &h.link, typ, size.min(0o77777777777));
        self.inner.write_all(&b)?;
        if size > 0 {
            let n = io::copy(&mut data.take(size), &mut self.inner)?;
            if n != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "short tar entry data",
                ));
            }
            self.inner.write_all(&vec![0u8; pad(size) as usize])?;
        }
        Ok(())
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let mut h = Header::new(Kind::File, path);
        h.mode = mode;
        h.size = data.len() as u64;
        self.append(&h, &mut &data[..])
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let mut h = Header::new(Kind::Dir, path);
        h.mode = mode;
        self.append(&h, &mut io::empty())
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let mut h = Header::new(Kind::Symlink, path);
        h.mode = 0o777;
        h.link = target.as_bytes().to_vec();
        self.append(&h, &mut io::empty())
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let mut h = Header::new(Kind::HardLink, path);
        h.link = target.as_bytes().to_vec();
        self.append(&h, &mut io::empty())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&[0u8; BLOCK * 2])?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

pub fn fix_checksum(b: &mut [u8; BLOCK]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| x as u64).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut w = Writer::new(Vec::new());
        w.dir("d", 0o750).unwrap();
        w.file("d/f", 0o600, b"hello").unwrap();
        let long = format!("d/{}", "x".repeat(300));
        w.file(&long, 0o644, b"").unwrap();
        w.symlink("d/s", "../../etc/passwd").unwrap();
        w.hardlink("d/h", "d/f").unwrap();
        let mut h = Header::new(Kind::File, "d/x");
        h.xattrs.push(("user.a".into(), b"b".to_vec()));
        h.uid = 1 << 30;
        w.append(&h, &mut io::empty()).unwrap();
        let data = w.finish().unwrap();
        let mut r = Reader::new(&data[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.kind, e.path.as_slice(), e.mode),
            (Kind::Dir, &b"d"[..], 0o750)
        );
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.size, 5);
        let mut buf = [0u8; 16];
        let n = r.read_data(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long.as_bytes());
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.kind, e.link.as_slice()),
            (Kind::Symlink, &b"../../etc/passwd"[..])
        );
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.kind, e.link.as_slice()), (Kind::HardLink, &b"d/f"[..]));
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.xattrs, vec![(b"user.a".to_vec(), b"b".to_vec())]);
        assert_eq!(e.uid, 1 << 30);
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn rejects_bad_checksum_and_huge_pax() {
        let mut w = Writer::new(Vec::new());
        w.file("a", 0o644, b"x").unwrap();
        let mut data = w.finish().unwrap();
        data[0] = b'b';
        assert!(Reader::new(&data[..]).next_entry().is_err());

        let mut b = [0u8; BLOCK];
        b[..5].copy_from_slice(b"pax\0\0");
        b[156] = b'x';
        put_octal(&mut b[124..136], MAX_META + 1);
        b[257..263].copy_from_slice(b"ustar\0");
        fix_checksum(&mut b);
        let err = Reader::new(&b[..]).next_entry().unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    /// A size no file can have (a PAX `size` near u64::MAX) made `remaining + padding`
    /// overflow when the entry was skipped (a whiteout's data is never read): a panic in
    /// debug builds and, wrapped to 0, the entry's data parsed as headers in release.
    #[test]
    fn refuses_entry_size_beyond_off_t() {
        let mut w = Writer::new(Vec::new());
        let pax = pax_record("size", u64::MAX.to_string().as_bytes());
        let mut h = [0u8; BLOCK];
        h[..4].copy_from_slice(b"pax\0");
        h[156] = b'x';
        put_octal(&mut h[100..108], 0o644);
        put_octal(&mut h[124..136], pax.len() as u64);
        h[257..263].copy_from_slice(b"ustar\0");
        fix_checksum(&mut h);
        w.raw_block(&h).unwrap();
        let mut body = pax.clone();
        body.resize(BLOCK, 0);
        w.raw_block(body.as_slice().try_into().unwrap()).unwrap();
        w.file(".wh.gone", 0o644, b"").unwrap();
        let data = w.finish().unwrap();
        let mut r = Reader::new(&data[..]);
        let err = r.next_entry().and_then(|_| r.next_entry()).unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
    }

    #[test]
    fn pax_record_lengths() {
        for n in 0..200 {
            let v = vec![b'a'; n];
            let r = pax_record("path", &v);
            let len: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, r.len());
        }
    }
}
