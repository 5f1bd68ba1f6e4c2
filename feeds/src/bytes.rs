//! Byte-level helpers of the hot path, and the crate's only `unsafe`: a
//! 16-bytes-at-a-time byte search (SSE2, part of every x86-64 CPU) and the
//! ASCII-to-`&str` view of the plain-JSON tape builder.

/// Index of the first `needle` in `hay`.
///
/// std's `read_until` searches with a word-at-a-time `memchr` (~1.5
/// instructions per byte of every capture line); SSE2 takes ~0.5.
#[inline]
pub(crate) fn find(hay: &[u8], needle: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut i = 0;
        // SAFETY: SSE2 is in the x86-64 baseline (no runtime check needed);
        // each load reads the 16 bytes `hay[i..i + 16]`, in bounds by the
        // loop condition, and `loadu` has no alignment requirement.
        unsafe {
            let n = _mm_set1_epi8(needle as i8);
            while i + 16 <= hay.len() {
                let v = _mm_loadu_si128(hay.as_ptr().add(i).cast::<__m128i>());
                let m = _mm_movemask_epi8(_mm_cmpeq_epi8(v, n));
                if m != 0 {
                    return Some(i + m.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
        hay[i..].iter().position(|&c| c == needle).map(|k| i + k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        hay.iter().position(|&c| c == needle)
    }
}

/// [`find`], and whether every byte of `hay` before the match (all of
/// it, without one) is ASCII: the capture reader's line search, which
/// then skips the UTF-8 validation of an ASCII line (one more vector OR per
/// 16 bytes instead of a second pass over the line).
#[inline]
pub(crate) fn find_ascii(hay: &[u8], needle: u8) -> (Option<usize>, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8, _mm_setzero_si128,
        };
        let mut i = 0;
        // SAFETY: as in `find`: SSE2 is in the x86-64 baseline, and each
        // load reads the 16 bytes `hay[i..i + 16]`, in bounds by the loop
        // condition (`loadu`: no alignment requirement).
        let ascii = unsafe {
            let n = _mm_set1_epi8(needle as i8);
            // The OR of every block before the current one: a byte >= 0x80
            // sets its high bit.
            let mut high = _mm_setzero_si128();
            while i + 16 <= hay.len() {
                let v = _mm_loadu_si128(hay.as_ptr().add(i).cast::<__m128i>());
                let m = _mm_movemask_epi8(_mm_cmpeq_epi8(v, n));
                if m != 0 {
                    let k = m.trailing_zeros();
                    let before = _mm_movemask_epi8(v) & ((1 << k) - 1);
                    let ascii = _mm_movemask_epi8(high) == 0 && before == 0;
                    return (Some(i + k as usize), ascii);
                }
                high = _mm_or_si128(high, v);
                i += 16;
            }
            _mm_movemask_epi8(high) == 0
        };
        let rest = &hay[i..];
        let at = rest.iter().position(|&c| c == needle);
        let tail_ascii = rest[..at.unwrap_or(rest.len())].is_ascii();
        (at.map(|k| i + k), ascii && tail_ascii)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let at = hay.iter().position(|&c| c == needle);
        (at, hay[..at.unwrap_or(hay.len())].is_ascii())
    }
}

/// In the 16 bytes at `b[i..]`: the offset of the first byte that is `"`,
/// `\\`, below 0x20 or at least 0x80 (`Some(16)`: none of them); `None`
/// if fewer than 16 bytes are left (the caller then looks byte by byte).
#[inline(always)]
pub(crate) fn string_stop16(b: &[u8], i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        let chunk = b.get(i..)?.first_chunk::<16>()?;
        // SAFETY: SSE2 is in the x86-64 baseline; the load reads exactly the
        // 16 bytes of `chunk` (a `&[u8; 16]`), `loadu` needs no alignment.
        let m = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            // Signed compare: bytes >= 0x80 are negative, so `< 0x20` also
            // flags every non-ASCII byte.
            let stop = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                ),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
            );
            _mm_movemask_epi8(stop)
        };
        Some(if m == 0 {
            16
        } else {
            m.trailing_zeros() as usize
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (b, i);
        None
    }
}

/// `s` as text; the caller has checked every byte below 0x80.
#[inline]
pub(crate) fn ascii(s: &[u8]) -> &str {
    debug_assert!(s.is_ascii());
    // SAFETY: callers pass only bytes they have seen to be below 0x80
    // (`plain_json::string_end`: `string_stop16` and the SWAR test flag any
    // byte with its high bit set, the byte loop any byte >= 0x80); ASCII is
    // valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(s) }
}

#[cfg(test)]
mod tests {
    use super::{find, find_ascii, string_stop16};

    #[test]
    fn find_ascii_agrees_with_position_and_is_ascii() {
        for len in 0..70usize {
            for nl in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                for high in [
                    None,
                    Some(0),
                    Some(len / 3),
                    Some(len.saturating_sub(1)),
                    Some(len),
                ] {
                    let mut hay: Vec<u8> = (0..len).map(|k| b'a' + (k % 23) as u8).collect();
                    if let Some(h) = high.filter(|&h| h < len) {
                        hay[h] = 0x80 | (h as u8);
                    }
                    if let Some(n) = nl.filter(|&n| n < len) {
                        hay[n] = b'\n';
                    }
                    let at = hay.iter().position(|&c| c == b'\n');
                    let ascii = hay[..at.unwrap_or(hay.len())].is_ascii();
                    assert_eq!(find_ascii(&hay, b'\n'), (at, ascii), "{hay:?}");
                }
            }
        }
    }

    #[test]
    fn string_stops() {
        for stop in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
            for at in 0..16 {
                let mut b = [b'a'; 20];
                b[at + 2] = stop;
                b[19] = stop;
                assert_eq!(string_stop16(&b, 2), Some(at), "{stop:#x} at {at}");
            }
        }
        let b = [b' '; 20];
        assert_eq!(string_stop16(&b, 4), Some(16));
        assert_eq!(string_stop16(&b, 5), None);
        for ok in [0x20u8, 0x7f, b'!', b'#', b'[', b']'] {
            assert_eq!(string_stop16(&[ok; 16], 0), Some(16), "{ok:#x}");
        }
    }

    #[test]
    fn find_agrees_with_position() {
        let mut hay = Vec::new();
        for n in 0..80u8 {
            hay.push(b'a' + n % 7);
            for needle in [b'a', b'c', b'g', b'\n'] {
                assert_eq!(find(&hay, needle), hay.iter().position(|&c| c == needle));
            }
            for start in 0..hay.len() {
                assert_eq!(
                    find(&hay[start..], b'd'),
                    hay[start..].iter().position(|&c| c == b'd')
                );
            }
        }
    }
}
