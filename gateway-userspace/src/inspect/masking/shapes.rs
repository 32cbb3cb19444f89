//! The prefilter for digit-shaped values: cards, SSNs, North American phone numbers, IBANs.
//!
//! Hyperscan is fast on literals but slow on patterns made only of character classes: on
//! DB-shaped rows (ids, timestamps, amounts) the card trigger alone ran at 0.7 GB/s and the four
//! digit triggers together cost more than everything else ten times over. These shapes are
//! fixed-width and short, so they are found here instead, bit-parallel: each 64-byte window is
//! classified into one bit mask per byte class (digit, '-', ' ', '.', '(', ')', uppercase) with
//! SIMD compares, and every shape is a handful of shifts and ANDs over those masks.
//!
//! A hit says where a shape *ends* (like a Hyperscan match without start-of-match), and the
//! same confirmers as before decide. Each shape is at least as permissive as the confirmer it
//! feeds (see the `shapes` docs), which the tests check against the Hyperscan expressions.

use super::detectors::Trigger;

/// Which digit-shaped triggers a scan reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ShapeSet {
    pub card: bool,
    pub ssn: bool,
    pub nanp: bool,
    pub iban: bool,
}

impl ShapeSet {
    /// The triggers found here instead of by Hyperscan.
    pub fn handles(t: Trigger) -> bool {
        matches!(
            t,
            Trigger::Card | Trigger::Ssn | Trigger::PhoneNanp | Trigger::Iban
        )
    }

    pub fn enable(&mut self, t: Trigger) {
        match t {
            Trigger::Card => self.card = true,
            Trigger::Ssn => self.ssn = true,
            Trigger::PhoneNanp => self.nanp = true,
            Trigger::Iban => self.iban = true,
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        !(self.card || self.ssn || self.nanp || self.iban)
    }
}

/// One bit per byte of a 64-byte window, per class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Classes {
    digit: u64,
    hyphen: u64,
    space: u64,
    dot: u64,
    lparen: u64,
    rparen: u64,
    upper: u64,
}

impl Classes {
    /// The classes from two compares of the window against a byte: `eq(b)` (equal to `b`) and
    /// `range(lo, width)` (within `lo..=lo + width`), each a 64-bit mask. Both SIMD classifiers
    /// provide these; the classes are defined once, here.
    #[inline(always)]
    fn from_compares(eq: impl Fn(u8) -> u64, range: impl Fn(u8, u8) -> u64) -> Classes {
        Classes {
            digit: range(b'0', 9),
            upper: range(b'A', 25),
            hyphen: eq(b'-'),
            space: eq(b' '),
            dot: eq(b'.'),
            lparen: eq(b'('),
            rparen: eq(b')'),
        }
    }
}

/// Longest look-back of any shape (the 4-6-4 card): bytes before the window's new part.
const LOOKBACK: usize = 16;
/// New bytes per window; the first `LOOKBACK` bits of a window only serve as left context.
const STEP: usize = 64 - LOOKBACK;

/// Per-trigger hit masks of one window: bit `i` set means a shape ends with byte `i`.
#[derive(Clone, Copy, Default)]
struct Hits {
    card: u64,
    ssn: u64,
    nanp: u64,
    iban: u64,
}

/// The shapes. Bit `i` of `m << k` is bit `i - k` of `m`: "`m` holds `k` bytes back".
///
/// - card: 13 digits in a row, or `dddd S dddd S dddd`, or `dddd S dddddd S dddd` (S is ' '
///   or '-'). Every card the confirmer accepts has one of these: 13-19 digits in one group,
///   4-6-4/4-6-5 groups, or three or more groups of 4 before the last.
/// - ssn: `ddd-dd-dddd`; nanp: `ddd-ddd-dddd`, `ddd.ddd.dddd`, `(ddd) ?ddd[-. ]dddd` (exactly
///   the former Hyperscan expressions).
/// - iban: two uppercase letters and two digits; the confirmer checks the country.
#[inline(always)]
fn shapes(c: &Classes, set: ShapeSet) -> Hits {
    let d = c.digit;
    let d2 = d & (d << 1);
    let d3 = d2 & (d << 2);
    let d4 = d2 & (d2 << 2);
    let mut h = Hits::default();
    if set.card {
        let sep = c.hyphen | c.space;
        let run13 = d4 & (d4 << 4) & (d4 << 8) & (d << 12);
        let g444 = d4 & (sep << 4) & (d4 << 5) & (sep << 9) & (d4 << 10);
        let g464 = d4 & (sep << 4) & (d4 << 5) & (d2 << 9) & (sep << 11) & (d4 << 12);
        h.card = run13 | g444 | g464;
    }
    if set.ssn {
        h.ssn = d4 & (c.hyphen << 4) & (d2 << 5) & (c.hyphen << 7) & (d3 << 8);
    }
    if set.nanp {
        let tail = d4 & (d3 << 5); // "ddd?dddd" with any byte at `?`
        let dashed = (c.hyphen << 4) & (c.hyphen << 8) & (d3 << 9);
        let dotted = (c.dot << 4) & (c.dot << 8) & (d3 << 9);
        let paren = (c.rparen << 8) & (d3 << 9) & (c.lparen << 12);
        let paren_space = (c.space << 8) & (c.rparen << 9) & (d3 << 10) & (c.lparen << 13);
        let sep = c.hyphen | c.dot | c.space;
        h.nanp = tail & (dashed | dotted | ((sep << 4) & (paren | paren_space)));
    }
    if set.iban {
        h.iban = d2 & (c.upper << 2) & (c.upper << 3);
    }
    h
}

/// Reports `(trigger, end)` for every shape in `buf`, in end order; `on_hit` returns `false` to
/// stop early.
pub(crate) fn scan(buf: &[u8], set: ShapeSet, on_hit: impl FnMut(Trigger, usize) -> bool) {
    if set.is_empty() || buf.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            return simd::scan_avx512(buf, set, on_hit);
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return simd::scan_avx2(buf, set, on_hit);
        }
    }
    scan_with(buf, set, on_hit, classify_scalar)
}

/// The window loop, generic over the classifier so each SIMD variant inlines its own.
#[inline(always)]
fn scan_with(
    buf: &[u8],
    set: ShapeSet,
    mut on_hit: impl FnMut(Trigger, usize) -> bool,
    classify: impl Fn(&[u8; 64]) -> Classes,
) {
    let len = buf.len();
    let mut padded: [u8; 64];
    // Window `w` covers bytes [start, start + 64) with start = w * STEP - LOOKBACK; its bits
    // below LOOKBACK were reported by the previous window.
    let mut start: isize = -(LOOKBACK as isize);
    while start + (LOOKBACK as isize) < len as isize {
        let window: &[u8; 64] = match usize::try_from(start) {
            Ok(s) if s + 64 <= len => buf[s..s + 64].try_into().expect("64 bytes"),
            _ => {
                // Edges: bytes outside the buffer are zero, which is in no class.
                padded = [0u8; 64];
                let from = start.max(0) as usize;
                let to = (start + 64).min(len as isize) as usize;
                let at = (from as isize - start) as usize;
                padded[at..at + (to - from)].copy_from_slice(&buf[from..to]);
                &padded
            }
        };
        let h = shapes(&classify(window), set);
        let mut any = (h.card | h.ssn | h.nanp | h.iban) & !((1u64 << LOOKBACK) - 1);
        while any != 0 {
            let bit = any.trailing_zeros();
            any &= any - 1;
            let end = (start + bit as isize + 1) as usize;
            for (mask, trigger) in [
                (h.card, Trigger::Card),
                (h.ssn, Trigger::Ssn),
                (h.nanp, Trigger::PhoneNanp),
                (h.iban, Trigger::Iban),
            ] {
                if mask & (1 << bit) != 0 && !on_hit(trigger, end) {
                    return;
                }
            }
        }
        start += STEP as isize;
    }
}

fn classify_scalar(w: &[u8; 64]) -> Classes {
    let mut c = Classes::default();
    for (i, &b) in w.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'0'..=b'9' => c.digit |= bit,
            b'A'..=b'Z' => c.upper |= bit,
            b'-' => c.hyphen |= bit,
            b' ' => c.space |= bit,
            b'.' => c.dot |= bit,
            b'(' => c.lparen |= bit,
            b')' => c.rparen |= bit,
            _ => {}
        }
    }
    c
}

/// SIMD classifiers. Intrinsics are `unsafe` to call only because the CPU must support them:
/// each is reached only after `is_x86_feature_detected!` said so, and reads exactly the 64
/// bytes of a `&[u8; 64]`. The tests check both against [`classify_scalar`].
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd {
    use std::arch::x86_64::*;

    use super::{Classes, ShapeSet, Trigger, scan_with};

    pub(super) fn scan_avx512(
        buf: &[u8],
        set: ShapeSet,
        on_hit: impl FnMut(Trigger, usize) -> bool,
    ) {
        #[target_feature(enable = "avx512bw")]
        fn inner(buf: &[u8], set: ShapeSet, on_hit: impl FnMut(Trigger, usize) -> bool) {
            // The closure inherits avx512bw, so the classifier inlines into the loop.
            scan_with(buf, set, on_hit, |w| classify_avx512(w))
        }
        // SAFETY: the caller checked avx512bw.
        unsafe { inner(buf, set, on_hit) }
    }

    pub(super) fn scan_avx2(buf: &[u8], set: ShapeSet, on_hit: impl FnMut(Trigger, usize) -> bool) {
        #[target_feature(enable = "avx2")]
        fn inner(buf: &[u8], set: ShapeSet, on_hit: impl FnMut(Trigger, usize) -> bool) {
            // The closure inherits avx2, so the classifier inlines into the loop.
            scan_with(buf, set, on_hit, |w| classify_avx2(w))
        }
        // SAFETY: the caller checked avx2.
        unsafe { inner(buf, set, on_hit) }
    }

    #[target_feature(enable = "avx512bw")]
    pub(super) fn classify_avx512(w: &[u8; 64]) -> Classes {
        // SAFETY: `w` is 64 readable bytes.
        let v = unsafe { _mm512_loadu_si512(w.as_ptr().cast()) };
        let eq = |b: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b as i8));
        // Unsigned `v - lo <= width`.
        let range = |lo: u8, width: u8| {
            _mm512_cmple_epu8_mask(
                _mm512_sub_epi8(v, _mm512_set1_epi8(lo as i8)),
                _mm512_set1_epi8(width as i8),
            )
        };
        Classes::from_compares(eq, range)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn classify_avx2(w: &[u8; 64]) -> Classes {
        // SAFETY: `w` is 64 readable bytes, read as two 32-byte halves.
        let (lo, hi) = unsafe {
            (
                _mm256_loadu_si256(w.as_ptr().cast()),
                _mm256_loadu_si256(w.as_ptr().add(32).cast()),
            )
        };
        let bits = |f: &dyn Fn(__m256i) -> __m256i| {
            let l = _mm256_movemask_epi8(f(lo)) as u32 as u64;
            let h = _mm256_movemask_epi8(f(hi)) as u32 as u64;
            l | (h << 32)
        };
        let eq = |b: u8| bits(&|v| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b as i8)));
        // Unsigned `v - lo <= width`: min(x, width) == x.
        let range = |lo: u8, width: u8| {
            bits(&|v| {
                let x = _mm256_sub_epi8(v, _mm256_set1_epi8(lo as i8));
                _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(width as i8)), x)
            })
        };
        Classes::from_compares(eq, range)
    }
}

#[cfg(test)]
pub(super) mod tests;
