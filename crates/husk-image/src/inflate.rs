//! Whole-blob gzip inflate with libdeflate.
//!
//! libdeflate inflates ~3x faster than zlib-rs here (benches/unpack.sh), but it is not a
//! streaming decoder: it wants the whole compressed member and an output buffer of the final
//! size. Layers up to [`MAX_COMPRESSED`] are read whole and, when they are a single gzip
//! member whose trailer declares at most [`MAX_OUTPUT`] bytes, inflated in one call. Anything
//! else (bigger layers, several members, trailing bytes, corrupt data) returns `None` and
//! the caller streams the same bytes through flate2, which also words the error: both paths
//! accept exactly the same inputs and produce the same bytes.

use std::ptr::NonNull;

/// Largest compressed layer read whole into memory.
pub const MAX_COMPRESSED: usize = 256 << 20;
/// Largest uncompressed layer inflated in one buffer (bounds memory per layer being pulled).
pub const MAX_OUTPUT: usize = 1 << 30;

/// An owned libdeflate decompressor (a few KiB of tables).
struct Decompressor(NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Decompressor {
    fn new() -> Option<Self> {
        // SAFETY: plain allocation; null on failure, checked.
        NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() }).map(Self)
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// Inflate `gz`, a complete gzip blob, if it is one member that ends exactly at the end of
/// `gz` and whose trailer's size is within [`MAX_OUTPUT`]; otherwise `None`.
pub fn gunzip_whole(gz: &[u8]) -> Option<Vec<u8>> {
    if gz.len() < 18 || gz.len() > MAX_COMPRESSED {
        return None;
    }
    // ISIZE: the member's uncompressed size mod 2^32, last 4 bytes (little-endian).
    let isize_ = u32::from_le_bytes(gz[gz.len() - 4..].try_into().ok()?) as usize;
    if isize_ > MAX_OUTPUT {
        return None;
    }
    let d = Decompressor::new()?;
    // calloc'ed: pages are only touched as libdeflate writes them
    let mut out = vec![0u8; isize_];
    let (mut consumed, mut written) = (0usize, 0usize);
    // SAFETY: the pointers and lengths describe `gz` and `out`, both live for the call;
    // libdeflate writes at most out.len() bytes and both counts through valid pointers.
    let r = unsafe {
        libdeflate_sys::libdeflate_gzip_decompress_ex(
            d.0.as_ptr(),
            gz.as_ptr().cast(),
            gz.len(),
            out.as_mut_ptr().cast(),
            out.len(),
            &mut consumed,
            &mut written,
        )
    };
    // _ex, not the plain call: that one ignores whatever follows the first member.
    (r == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS
        && consumed == gz.len()
        && written == out.len())
    .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn one_member_inflates_and_anything_else_is_left_to_the_stream() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let one = gz(&data);
        assert_eq!(gunzip_whole(&one).as_deref(), Some(&data[..]));
        // a second member: libdeflate's plain call would drop it silently
        let mut two = one.clone();
        two.extend_from_slice(&gz(b"second"));
        assert_eq!(gunzip_whole(&two), None);
        let mut trailing = one.clone();
        trailing.push(0);
        assert_eq!(gunzip_whole(&trailing), None);
        let mut corrupt = one.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0xff;
        assert_eq!(gunzip_whole(&corrupt), None);
        // a trailer that lies about the size
        let mut lying = one;
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(gunzip_whole(&lying), None);
        assert_eq!(gunzip_whole(b"not gzip"), None);
    }
}
