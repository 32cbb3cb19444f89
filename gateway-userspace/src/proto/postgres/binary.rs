//! Values of every type, in text and binary format: how to look inside them for sensitive data
//! and what a masked value of the type looks like.
//!
//! A binary value must stay a valid value of its declared type, or the client cannot decode
//! the row. Text-like types (text, varchar, name, xml, enums, citext), `bytea`, `json` and
//! `jsonb` can hold a placeholder; arrays and records are taken apart, their elements masked
//! one by one and put back with new lengths. Numbers are read as text for the content
//! detectors (a card number stored as `int8` or `numeric` has no digits in its binary form).
//! A value that must be masked but whose type cannot hold a placeholder (an `int4` computed
//! from a card, a `date` of birth in binary) is refused instead: the session answers with an
//! error naming the column and how to read it masked (text format, or a cast to text). A NULL
//! or a zero would be a value the agent cannot tell from a real one.

use std::borrow::Cow;

use std::sync::Arc;

use super::catalog::TypeInfo;
use crate::inspect::masking::{ColumnPlan, DetectorKind, MaskError, MaskingEngine, Report};

/// How a type's values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Its binary form is its text (text, varchar, bpchar, name, xml, enum, citext).
    Text,
    Json,
    /// Binary: a version byte (1), then JSON text.
    Jsonb,
    Bytea,
    Int8,
    Numeric,
    /// An array (binary: its element type is in the value).
    Array,
    /// A record or composite (binary: each field's type is in the value).
    Record,
    /// No text can hide in it (integers up to 32 bits, floats, dates, times, uuids, ...).
    Fixed,
    /// Not known: looked at as raw bytes only.
    Unknown,
}

/// Built-in array types (their elements' types are in each binary value).
const ARRAY_OIDS: &[u32] = &[
    143, 199, 1000, 1001, 1003, 1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028, 1115, 1182,
    1183, 1185, 1187, 1231, 1270, 2201, 2287, 2951, 3807,
];

/// Type details from the catalog, for types that are not built in.
pub type Types<'a> = dyn Fn(u32) -> Option<Arc<TypeInfo>> + 'a;

/// The shape of a type: built-in OIDs first, then what the catalog says (domains, enums,
/// composites, arrays of user types).
pub fn shape_of(oid: u32, types: &Types<'_>) -> Shape {
    shape_with(oid, types, 0)
}

fn shape_with(oid: u32, types: &Types<'_>, depth: usize) -> Shape {
    match oid {
        25 | 1043 | 1042 | 19 | 18 | 705 | 142 => Shape::Text,
        114 => Shape::Json,
        3802 => Shape::Jsonb,
        17 => Shape::Bytea,
        20 => Shape::Int8,
        1700 => Shape::Numeric,
        2249 => Shape::Record,
        16 | 21 | 23 | 26 | 28 | 29 | 700 | 701 | 1082 | 1083 | 1114 | 1184 | 1186 | 1266
        | 2950 | 650 | 869 | 829 | 774 | 1560 | 1562 | 3220 | 5069 | 600 | 601 | 602 | 603
        | 604 | 628 | 718 => Shape::Fixed,
        o if ARRAY_OIDS.contains(&o) => Shape::Array,
        _ => {
            let Some(t) = types(oid) else {
                return Shape::Unknown;
            };
            match t.typtype {
                b'e' => Shape::Text,
                b'c' => Shape::Record,
                b'd' if depth < 8 => shape_with(t.base, types, depth + 1),
                _ if t.category == b'A' => Shape::Array,
                _ if t.name == "citext" => Shape::Text,
                _ => Shape::Unknown,
            }
        }
    }
}

/// What became of a cell.
pub enum Cell {
    Unchanged,
    Masked(Vec<u8>),
    /// It must be masked and its type cannot hold a placeholder in this format.
    Refuse,
}

/// The placeholder of a whole value of `kind`, valid for its type in `format`; `None` when the
/// type cannot hold one.
pub fn whole_value(
    engine: &MaskingEngine,
    kind: DetectorKind,
    value: &[u8],
    shape: Shape,
    format: i16,
) -> Option<Vec<u8>> {
    let mut p = Vec::with_capacity(24);
    engine.placeholder(kind, value, &mut p);
    let json_string = |p: &[u8]| {
        let mut v = Vec::with_capacity(p.len() + 3);
        v.push(b'"');
        v.extend_from_slice(p);
        v.push(b'"');
        v
    };
    match (format, shape) {
        (_, Shape::Json) => Some(json_string(&p)),
        (0, Shape::Jsonb) => Some(json_string(&p)),
        (_, Shape::Jsonb) => {
            let mut v = vec![1];
            v.extend(json_string(&p));
            Some(v)
        }
        // bytea's text form is hex: keep it decodable.
        (0, Shape::Bytea) => Some(hex_bytea(&p)),
        (0, _) => Some(p),
        (_, Shape::Text | Shape::Bytea) => Some(p),
        _ => None,
    }
}

fn hex_bytea(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + b.len() * 2);
    v.extend_from_slice(b"\\x");
    crate::util::hex_into(b, &mut v);
    v
}

/// Masks a cell by content (the column is not derived from anything sensitive, or is a plain
/// read of a sensitive column whose decoys must survive).
pub fn mask_content(
    engine: &MaskingEngine,
    plan: &ColumnPlan,
    value: &[u8],
    shape: Shape,
    format: i16,
    catalog: &Types<'_>,
    report: &mut Report,
) -> Result<Cell, MaskError> {
    if value.is_empty() {
        return Ok(Cell::Unchanged);
    }
    let text_plan = |v: &[u8], report: &mut Report| -> Result<Cell, MaskError> {
        Ok(match engine.mask_cell_planned(plan, v, report)? {
            Some(m) => Cell::Masked(m),
            None => Cell::Unchanged,
        })
    };
    if format == 0 {
        return match shape {
            Shape::Json | Shape::Jsonb => json_cell(engine, plan, value, report),
            Shape::Bytea if value.starts_with(b"\\x") => {
                let Some(raw) = crate::util::unhex(&value[2..]) else {
                    return text_plan(value, report);
                };
                Ok(match engine.mask_cell_planned(plan, &raw, report)? {
                    Some(m) => Cell::Masked(hex_bytea(&m)),
                    None => Cell::Unchanged,
                })
            }
            _ => text_plan(value, report),
        };
    }
    // Binary. A rule that masks whole cells (`full`, `as:`) applies to every type.
    if plan.whole_kind().is_some()
        && !matches!(
            shape,
            Shape::Text | Shape::Bytea | Shape::Json | Shape::Jsonb
        )
    {
        return Ok(Cell::Refuse);
    }
    match shape {
        Shape::Text | Shape::Bytea => text_plan(value, report),
        Shape::Json => json_cell(engine, plan, value, report),
        Shape::Jsonb => {
            if value.first() != Some(&1) {
                return raw_check(engine, value);
            }
            Ok(match json_cell(engine, plan, &value[1..], report)? {
                Cell::Masked(m) => {
                    let mut v = vec![1];
                    v.extend(m);
                    Cell::Masked(v)
                }
                other => other,
            })
        }
        Shape::Int8 => {
            let Ok(b) = <[u8; 8]>::try_from(value) else {
                return Ok(Cell::Refuse);
            };
            digits_check(engine, &i64::from_be_bytes(b).to_string())
        }
        Shape::Numeric => match numeric_text(value) {
            Some(t) => digits_check(engine, &t),
            None => Ok(Cell::Refuse),
        },
        Shape::Array => container(engine, plan, value, catalog, report, array_parts),
        Shape::Record => container(engine, plan, value, catalog, report, record_parts),
        Shape::Fixed => Ok(Cell::Unchanged),
        Shape::Unknown => raw_check(engine, value),
    }
}

/// A value sluice cannot take apart: refused if its raw bytes hold anything the detectors see.
fn raw_check(engine: &MaskingEngine, value: &[u8]) -> Result<Cell, MaskError> {
    Ok(if engine.find(value)?.is_empty() {
        Cell::Unchanged
    } else {
        Cell::Refuse
    })
}

/// A number: refused if its decimal form is something the detectors mask (a card number).
fn digits_check(engine: &MaskingEngine, text: &str) -> Result<Cell, MaskError> {
    raw_check(engine, text.as_bytes())
}

/// JSON text with findings replaced, keeping it valid JSON: a finding inside a string becomes
/// the placeholder, one outside (a number) becomes a string holding it.
fn json_cell(
    engine: &MaskingEngine,
    plan: &ColumnPlan,
    value: &[u8],
    report: &mut Report,
) -> Result<Cell, MaskError> {
    if plan.whole_kind().is_some() {
        return Ok(match engine.mask_cell_planned(plan, value, report)? {
            Some(m) => {
                let mut v = vec![b'"'];
                v.extend(m.iter().filter(|b| **b != b'"' && **b != b'\\'));
                v.push(b'"');
                Cell::Masked(v)
            }
            None => Cell::Unchanged,
        });
    }
    let spans = engine.find(value)?;
    if spans.is_empty() {
        return Ok(Cell::Unchanged);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut at = 0;
    let mut in_string = false;
    let mut escaped = false;
    let scan = |from: usize, to: usize, in_string: &mut bool, escaped: &mut bool| {
        for &b in &value[from..to] {
            if *escaped {
                *escaped = false;
            } else if *in_string && b == b'\\' {
                *escaped = true;
            } else if b == b'"' {
                *in_string = !*in_string;
            }
        }
    };
    for s in &spans {
        scan(at, s.start, &mut in_string, &mut escaped);
        out.extend_from_slice(&value[at..s.start]);
        let mut p = Vec::new();
        engine.render(s.kind, &value[s.start..s.end], &mut p);
        if in_string {
            out.extend(p);
        } else {
            out.push(b'"');
            out.extend(p);
            out.push(b'"');
        }
        report
            .findings
            .entry(s.kind)
            .and_modify(|n| *n += 1)
            .or_insert(1);
        // The masked part may hold quotes of its own (a finding spanning a string's end).
        scan(s.start, s.end, &mut in_string, &mut escaped);
        at = s.end;
    }
    out.extend_from_slice(&value[at..]);
    Ok(Cell::Masked(out))
}

/// The parts of a binary container: (element type, range in `value`) per non-NULL element,
/// plus where each length prefix sits so it can be rewritten.
struct Parts {
    /// (offset of the i32 length, element type, value range)
    elements: Vec<(usize, u32, std::ops::Range<usize>)>,
}

fn be_i32(v: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

/// `ndim, has_null, elem_type, (dim, lbound)*ndim, (len, bytes)*`.
fn array_parts(v: &[u8]) -> Option<Parts> {
    let ndim = usize::try_from(be_i32(v, 0)?).ok()?;
    if ndim > 6 {
        return None;
    }
    let elem = be_i32(v, 8)? as u32;
    let mut at = 12;
    let mut count: usize = 1;
    for _ in 0..ndim {
        let dim = usize::try_from(be_i32(v, at)?).ok()?;
        count = count.checked_mul(dim)?;
        at += 8;
    }
    if ndim == 0 {
        count = 0;
    }
    if count > v.len() / 4 {
        return None;
    }
    let mut elements = Vec::new();
    for _ in 0..count {
        let len = be_i32(v, at)?;
        if len < 0 {
            at += 4;
            continue;
        }
        let start = at + 4;
        let end = start.checked_add(len as usize)?;
        if end > v.len() {
            return None;
        }
        elements.push((at, elem, start..end));
        at = end;
    }
    (at == v.len()).then_some(Parts { elements })
}

/// `count, (type, len, bytes)*`.
fn record_parts(v: &[u8]) -> Option<Parts> {
    let count = usize::try_from(be_i32(v, 0)?).ok()?;
    if count > v.len() / 8 {
        return None;
    }
    let mut at = 4;
    let mut elements = Vec::new();
    for _ in 0..count {
        let ty = be_i32(v, at)? as u32;
        let len = be_i32(v, at + 4)?;
        at += 8;
        if len < 0 {
            continue;
        }
        let start = at;
        let end = start.checked_add(len as usize)?;
        if end > v.len() {
            return None;
        }
        elements.push((at - 4, ty, start..end));
        at = end;
    }
    (at == v.len()).then_some(Parts { elements })
}

fn container(
    engine: &MaskingEngine,
    plan: &ColumnPlan,
    value: &[u8],
    catalog: &Types<'_>,
    report: &mut Report,
    parts: fn(&[u8]) -> Option<Parts>,
) -> Result<Cell, MaskError> {
    let Some(p) = parts(value) else {
        // Not what its type says: only its raw bytes can be judged.
        return raw_check(engine, value);
    };
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    let mut at = 0;
    let mut changed = false;
    for (len_at, ty, range) in p.elements {
        let elem = &value[range.clone()];
        let shape = shape_of(ty, catalog);
        let masked: Cow<[u8]> = match mask_content(engine, plan, elem, shape, 1, catalog, report)? {
            Cell::Unchanged => Cow::Borrowed(elem),
            Cell::Masked(m) => {
                changed = true;
                Cow::Owned(m)
            }
            Cell::Refuse => return Ok(Cell::Refuse),
        };
        out.extend_from_slice(&value[at..len_at]);
        out.extend_from_slice(&(masked.len() as i32).to_be_bytes());
        out.extend_from_slice(&masked);
        at = range.end;
    }
    out.extend_from_slice(&value[at..]);
    Ok(if changed {
        Cell::Masked(out)
    } else {
        Cell::Unchanged
    })
}

/// A binary `numeric` as decimal text (digits only matter here: sign and scale are kept
/// roughly, since the detectors look for digit runs).
fn numeric_text(v: &[u8]) -> Option<String> {
    let n = u16::from_be_bytes(v.get(0..2)?.try_into().ok()?) as usize;
    let weight = i16::from_be_bytes(v.get(2..4)?.try_into().ok()?);
    let sign = u16::from_be_bytes(v.get(4..6)?.try_into().ok()?);
    if v.len() != 8 + 2 * n || n > 1000 {
        return None;
    }
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<u16> = (0..n)
        .map(|i| u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]))
        .collect();
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    // Integer part: groups 0..=weight.
    if weight < 0 {
        s.push('0');
    } else {
        for g in 0..=weight as usize {
            let d = digits.get(g).copied().unwrap_or(0);
            if g == 0 {
                s.push_str(&d.to_string());
            } else {
                s.push_str(&format!("{d:04}"));
            }
        }
    }
    let frac_start = (weight + 1).max(0) as usize;
    if frac_start < n || weight < -1 {
        s.push('.');
        for _ in 0..((-weight - 1).max(0)) {
            s.push_str("0000");
        }
        for d in digits.iter().skip(frac_start) {
            s.push_str(&format!("{d:04}"));
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> MaskingEngine {
        MaskingEngine::with_defaults().unwrap()
    }

    fn content(e: &MaskingEngine, v: &[u8], shape: Shape, format: i16) -> Option<Vec<u8>> {
        let plan = e.plan_column(&crate::inspect::masking::ColumnContext {
            name: "x",
            ..Default::default()
        });
        match mask_content(
            e,
            &plan,
            v,
            shape,
            format,
            &|_| None,
            &mut Report::default(),
        )
        .unwrap()
        {
            Cell::Masked(m) => Some(m),
            Cell::Unchanged => None,
            Cell::Refuse => Some(b"REFUSED".to_vec()),
        }
    }

    fn text_array(items: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(1i32.to_be_bytes());
        v.extend(0i32.to_be_bytes());
        v.extend(25u32.to_be_bytes());
        v.extend((items.len() as i32).to_be_bytes());
        v.extend(1i32.to_be_bytes());
        for i in items {
            v.extend((i.len() as i32).to_be_bytes());
            v.extend_from_slice(i);
        }
        v
    }

    #[test]
    fn arrays_and_records_are_masked_element_by_element_and_stay_valid() {
        let e = engine();
        let a = text_array(&[b"ada@example.com", b"plain"]);
        let m = content(&e, &a, Shape::Array, 1).unwrap();
        let parts = array_parts(&m).expect("still a valid array");
        let elems: Vec<&[u8]> = parts
            .elements
            .iter()
            .map(|(_, _, r)| &m[r.clone()])
            .collect();
        assert_eq!(elems, [&b"[EMAIL]"[..], b"plain"]);
        let mut rec = 2i32.to_be_bytes().to_vec();
        for (ty, val) in [
            (23u32, &7i32.to_be_bytes()[..]),
            (25, b"4111 1111 1111 1111"),
        ] {
            rec.extend(ty.to_be_bytes());
            rec.extend((val.len() as i32).to_be_bytes());
            rec.extend_from_slice(val);
        }
        let m = content(&e, &rec, Shape::Record, 1).unwrap();
        let parts = record_parts(&m).unwrap();
        assert_eq!(&m[parts.elements[1].2.clone()], b"[CARD]");
    }

    #[test]
    fn json_stays_json_and_numbers_holding_cards_are_refused() {
        let e = engine();
        let m = content(
            &e,
            br#"{"e":"ada@example.com","c":4111111111111111}"#,
            Shape::Json,
            0,
        )
        .unwrap();
        assert_eq!(m, br#"{"e":"[EMAIL]","c":"[CARD]"}"#);
        let mut jb = vec![1u8];
        jb.extend_from_slice(br#"["ada@example.com"]"#);
        assert_eq!(
            content(&e, &jb, Shape::Jsonb, 1).unwrap(),
            b"\x01[\"[EMAIL]\"]"
        );
        assert_eq!(
            content(&e, &4111111111111111i64.to_be_bytes(), Shape::Int8, 1).unwrap(),
            b"REFUSED"
        );
        assert!(content(&e, &42i64.to_be_bytes(), Shape::Int8, 1).is_none());
        // numeric 4111111111111111 = groups 4111 1111 1111 1111, weight 3.
        let mut n = Vec::new();
        for x in [4u16, 3, 0, 0, 4111, 1111, 1111, 1111] {
            n.extend(x.to_be_bytes());
        }
        assert_eq!(numeric_text(&n).unwrap(), "4111111111111111");
        assert_eq!(content(&e, &n, Shape::Numeric, 1).unwrap(), b"REFUSED");
        // bytea in text format is hex: looked at decoded, masked, hex again.
        let hexed = hex_bytea(b"mail ada@example.com");
        assert_eq!(
            content(&e, &hexed, Shape::Bytea, 0).unwrap(),
            hex_bytea(b"mail [EMAIL]")
        );
    }

    #[test]
    fn whole_values_keep_their_type_or_are_refused() {
        let e = engine();
        let w = |shape, format| whole_value(&e, DetectorKind::Email, b"x", shape, format);
        assert_eq!(w(Shape::Text, 1).unwrap(), b"[EMAIL]");
        assert_eq!(w(Shape::Jsonb, 1).unwrap(), b"\x01\"[EMAIL]\"");
        assert_eq!(w(Shape::Bytea, 0).unwrap(), hex_bytea(b"[EMAIL]"));
        assert!(w(Shape::Fixed, 1).is_none());
        assert!(w(Shape::Int8, 1).is_none());
        assert_eq!(w(Shape::Fixed, 0).unwrap(), b"[EMAIL]");
    }
}
