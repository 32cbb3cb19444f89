//! Exact checks run on a candidate after the Hyperscan prefilter fired. Pure functions on bytes,
//! public so that the benchmark's regex baseline validates exactly like the engine.

/// ASCII word character in the `\b` sense (`[A-Za-z0-9_]`).
#[inline]
pub fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Luhn checksum over ASCII digits (callers strip separators).
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        if !d.is_ascii_digit() {
            return false;
        }
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Payment networks whose issuer (IIN) prefixes we recognise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardNetwork {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
    Maestro,
    Mir,
}

fn prefix_num(d: &[u8], n: usize) -> u32 {
    d[..n].iter().fold(0, |a, &b| a * 10 + u32::from(b - b'0'))
}

/// The network of a card number (digits only) if its IIN prefix is known and its length fits
/// that network. Unknown prefixes are not cards: this rejects most random 16-digit ids.
pub fn card_network(d: &[u8]) -> Option<CardNetwork> {
    let len = d.len();
    if !(12..=19).contains(&len) || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let p6 = prefix_num(d, 6);
    use CardNetwork::*;
    let (net, lens): (CardNetwork, &[usize]) = if p1 == 4 {
        (Visa, &[13, 16, 19])
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        (Mastercard, &[16])
    } else if p2 == 34 || p2 == 37 {
        (Amex, &[15])
    } else if (2200..=2204).contains(&p4) {
        (Mir, &[16, 17, 18, 19])
    } else if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 {
        (Discover, &[16, 17, 18, 19])
    } else if (622126..=622925).contains(&p6) || p2 == 62 {
        (UnionPay, &[16, 17, 18, 19])
    } else if (3528..=3589).contains(&p4) {
        (Jcb, &[16, 17, 18, 19])
    } else if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 {
        (Diners, &[14, 15, 16, 17, 18, 19])
    } else if p2 == 50 || (56..=58).contains(&p2) || p2 == 63 || p2 == 67 {
        (Maestro, &[13, 14, 15, 16, 17, 18, 19])
    } else {
        return None;
    };
    lens.contains(&len).then_some(net)
}

/// A payment card number: 13-19 digits, known network, Luhn valid.
pub fn is_card_number(digits: &[u8]) -> bool {
    digits.len() >= 13 && card_network(digits).is_some() && luhn(digits)
}

/// US SSN parts: area 001-899 except 666, group 01-99, serial 0001-9999 (SSA's never-issued rules).
pub fn is_ssn(area: &[u8], group: &[u8], serial: &[u8]) -> bool {
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if area.len() != 3 || group.len() != 2 || serial.len() != 4 {
        return false;
    }
    if !(all_digits(area) && all_digits(group) && all_digits(serial)) {
        return false;
    }
    let a = prefix_num(area, 3);
    let g = prefix_num(group, 2);
    let s = prefix_num(serial, 4);
    a != 0 && a != 666 && a < 900 && g != 0 && s != 0
}

/// A whole cell value that is an SSN: `123-45-6789`, `123 45 6789` or `123456789` (surrounding
/// whitespace allowed). Only used for columns named like SSNs.
pub fn is_ssn_value(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    match v.len() {
        9 => is_ssn(&v[..3], &v[3..5], &v[5..]),
        11 if (v[3] == b'-' && v[6] == b'-') || (v[3] == b' ' && v[6] == b' ') => {
            is_ssn(&v[..3], &v[4..6], &v[7..])
        }
        _ => false,
    }
}

/// IBAN total length by country (ISO 13616 registry, the countries users meet in practice).
pub fn iban_length(cc: &[u8]) -> Option<usize> {
    let n = match cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    };
    Some(n)
}

/// Every country code in [`iban_length`], for building the prefilter.
pub const IBAN_COUNTRIES: &[&str] = &[
    "AD", "AE", "AL", "AT", "AZ", "BA", "BE", "BG", "BH", "BR", "CH", "CR", "CY", "CZ", "DE", "DK",
    "DO", "EE", "EG", "ES", "FI", "FO", "FR", "GB", "GE", "GI", "GL", "GR", "GT", "HR", "HU", "IE",
    "IL", "IS", "IT", "JO", "KW", "KZ", "LB", "LI", "LT", "LU", "LV", "MC", "MD", "ME", "MK", "MR",
    "MT", "MU", "NL", "NO", "PK", "PL", "PS", "PT", "QA", "RO", "RS", "SA", "SE", "SI", "SK", "SM",
    "TN", "TR", "UA", "VG", "XK",
];

/// ISO 13616 check: compact uppercase IBAN, right length for its country, mod-97 == 1.
pub fn is_iban(iban: &[u8]) -> bool {
    if iban.len() < 5 || iban_length(&iban[..2]) != Some(iban.len()) {
        return false;
    }
    if !iban[2].is_ascii_digit() || !iban[3].is_ascii_digit() {
        return false;
    }
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        match c {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// Dotted-quad IPv4 with no leading zeros ("01" is more likely a version or a date part).
pub fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&b| b == b'.') {
        parts += 1;
        if parts > 4 || part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        if part.len() > 1 && part[0] == b'0' {
            return false;
        }
        if prefix_num(part, part.len()) > 255 {
            return false;
        }
    }
    parts == 4
}

/// IPv6 (std's parser), requiring a digit and either `::` or all eight groups so that hex words
/// and `a:b:c` timestamps are not taken for addresses.
pub fn is_ipv6(s: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(s) else {
        return false;
    };
    let colons = s.iter().filter(|&&b| b == b':').count();
    if !s.iter().any(u8::is_ascii_digit) || !(text.contains("::") || colons == 7) {
        return false;
    }
    text.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Decodes unpadded (or padded) base64url; `None` on any other byte.
pub fn base64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // A single leftover sextet cannot come from whole bytes.
    (bits < 6).then_some(out)
}

/// A JWT header segment: base64url of a JSON object with an `alg` member.
pub fn is_jwt_header(segment: &[u8]) -> bool {
    let Some(json) = base64url_decode(segment) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
        .is_ok_and(|m| m.contains_key("alg"))
}

/// A calendar date (optionally followed by a time): `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYYMMDD`,
/// `MM/DD/YYYY`, `DD/MM/YYYY`, `DD.MM.YYYY`, `DD-MM-YYYY`. Used only for columns named like
/// dates of birth.
pub fn is_date(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    // Postgres renders `timestamp` as `1990-05-17 00:00:00`: look at the date part only.
    let date = v.split(|&b| b == b' ' || b == b'T').next().unwrap_or(v);
    let num = |s: &[u8]| {
        (!s.is_empty() && s.iter().all(u8::is_ascii_digit)).then(|| prefix_num(s, s.len()))
    };
    let ymd = |y: u32, m: u32, d: u32| {
        (1800..=2200).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    if date.len() == 8 {
        return match (num(&date[..4]), num(&date[4..6]), num(&date[6..])) {
            (Some(y), Some(m), Some(d)) => ymd(y, m, d),
            _ => false,
        };
    }
    let parts: Vec<&[u8]> = date.split(|&b| matches!(b, b'-' | b'/' | b'.')).collect();
    if parts.len() != 3 || date.len() > 10 {
        return false;
    }
    let (Some(a), Some(b), Some(c)) = (num(parts[0]), num(parts[1]), num(parts[2])) else {
        return false;
    };
    if parts[0].len() == 4 {
        ymd(a, b, c)
    } else if parts[2].len() == 4 {
        ymd(c, a, b) || ymd(c, b, a)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn(b"4242424242424242"));
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"4242424242424241"));
        assert!(!luhn(b""));
        assert!(!luhn(b"42a2"));
    }

    #[test]
    fn card_networks() {
        assert_eq!(card_network(b"4242424242424242"), Some(CardNetwork::Visa));
        assert_eq!(
            card_network(b"5555555555554444"),
            Some(CardNetwork::Mastercard)
        );
        assert_eq!(
            card_network(b"2223003122003222"),
            Some(CardNetwork::Mastercard)
        );
        assert_eq!(card_network(b"378282246310005"), Some(CardNetwork::Amex));
        assert_eq!(
            card_network(b"6011111111111117"),
            Some(CardNetwork::Discover)
        );
        assert_eq!(card_network(b"3530111333300000"), Some(CardNetwork::Jcb));
        assert_eq!(card_network(b"30569309025904"), Some(CardNetwork::Diners));
        assert_eq!(
            card_network(b"6200000000000005"),
            Some(CardNetwork::UnionPay)
        );
        // Amex must be 15 digits; 9 and 1 are no network.
        assert_eq!(card_network(b"3782822463100050"), None);
        assert_eq!(card_network(b"9123456789012345"), None);
        assert_eq!(card_network(b"1234567812345670"), None);
        assert!(is_card_number(b"4242424242424242"));
        assert!(is_card_number(b"4222222222222")); // 13-digit Visa
        assert!(!is_card_number(b"4242424242424241"));
    }

    #[test]
    fn ssn_rules() {
        assert!(is_ssn(b"123", b"45", b"6789"));
        assert!(!is_ssn(b"000", b"45", b"6789"));
        assert!(!is_ssn(b"666", b"45", b"6789"));
        assert!(!is_ssn(b"900", b"45", b"6789"));
        assert!(!is_ssn(b"999", b"45", b"6789"));
        assert!(!is_ssn(b"123", b"00", b"6789"));
        assert!(!is_ssn(b"123", b"45", b"0000"));
        assert!(is_ssn_value(b"123456789"));
        assert!(is_ssn_value(b" 123-45-6789 "));
        assert!(is_ssn_value(b"123 45 6789"));
        assert!(!is_ssn_value(b"123-45 6789"));
        assert!(!is_ssn_value(b"12345678"));
        assert!(!is_ssn_value(b"000456789"));
    }

    #[test]
    fn iban_checks() {
        assert!(is_iban(b"GB82WEST12345698765432"));
        assert!(is_iban(b"DE89370400440532013000"));
        assert!(is_iban(b"FR1420041010050500013M02606"));
        assert!(is_iban(b"NL91ABNA0417164300"));
        assert!(!is_iban(b"GB82WEST12345698765433")); // checksum
        assert!(!is_iban(b"GB82WEST1234569876543")); // length
        assert!(!is_iban(b"ZZ82WEST12345698765432")); // unknown country
        assert_eq!(
            IBAN_COUNTRIES.len(),
            IBAN_COUNTRIES
                .iter()
                .filter(|c| iban_length(c.as_bytes()).is_some())
                .count()
        );
    }

    #[test]
    fn ip_checks() {
        assert!(is_ipv4(b"10.0.0.1"));
        assert!(is_ipv4(b"255.255.255.255"));
        assert!(!is_ipv4(b"256.1.1.1"));
        assert!(!is_ipv4(b"10.2.3"));
        assert!(!is_ipv4(b"1.2.3.4.5"));
        assert!(!is_ipv4(b"01.2.3.4"));
        assert!(is_ipv6(b"2001:db8::1"));
        assert!(is_ipv6(b"fe80:0:0:0:202:b3ff:fe1e:8329"));
        assert!(!is_ipv6(b"10:30:00"));
        assert!(!is_ipv6(b"dead::beef"));
        assert!(!is_ipv6(b"00:1a:2b:3c:4d:5e"));
    }

    #[test]
    fn jwt_header() {
        assert!(is_jwt_header(b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
        // {"typ":"JWT"}: no alg.
        assert!(!is_jwt_header(b"eyJ0eXAiOiJKV1QifQ"));
        assert!(!is_jwt_header(b"eyJhbGciOi"));
        assert_eq!(base64url_decode(b"aGk").unwrap(), b"hi");
        assert_eq!(base64url_decode(b"aGk=").unwrap(), b"hi");
        assert!(base64url_decode(b"a$").is_none());
    }

    #[test]
    fn dates() {
        assert!(is_date(b"1990-05-17"));
        assert!(is_date(b"1990-05-17 00:00:00"));
        assert!(is_date(b"05/17/1990"));
        assert!(is_date(b"17.05.1990"));
        assert!(is_date(b"19900517"));
        assert!(!is_date(b"1990-13-17"));
        assert!(!is_date(b"hello"));
        assert!(!is_date(b"12345"));
        assert!(!is_date(b""));
    }
}
