//! Reading cell text as amounts, plain numbers and times.
//!
//! Three readers, from lenient to strict:
//! - [`parse_amount`] reads what people type into a money column: currency marks, thousands
//!   separators, decimal commas, accounting parentheses. It refuses what is ambiguous.
//! - [`parse_plain_number`] reads only what is plainly a number (JSON's grammar), so ids
//!   with leading zeros and long digit strings stay text.
//! - [`parse_time`] reads the date and time forms of order exports.

use lodestar_core::Timestamp;
use serde_json::{Number, Value};

/// Characters that may stand before or after an amount to name its currency.
const CURRENCY_SIGNS: &[char] = &[
    '$', '¥', '￥', '€', '£', '₹', '₩', '₽', '₺', '₫', '₱', '฿', '元', '円', '圓',
];

/// Characters that group digits in thousands, besides `.` and `,`.
const GROUP_MARKS: &[char] = &[' ', '\u{a0}', '\u{202f}', '\''];

/// Reads a money amount: `1234.5`, `1,234.50`, `¥12.00`, `USD 12`, `12,50 €`, `1.234,50`,
/// `-$3`, `(3.00)`.
///
/// Rules: at most one sign (`-`, `+`, or accounting parentheses) and one currency mark
/// (a sign from a short list, up to three letters such as `USD`, or both as in `US$`) at
/// either end. Of `.` and `,`, the one that comes last and appears once is the decimal
/// separator when both appear; a lone `,` is decimal unless exactly three digits follow it
/// (then it groups thousands, as in `1,234`); a repeated mark always groups. Groups after
/// the first must have three digits. Anything else, including an empty text, is `None`.
pub fn parse_amount(text: &str) -> Option<f64> {
    if let Some(value) = simple_decimal(text) {
        return Some(value);
    }
    let mut s = text.trim();
    let mut negative = false;
    if let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        negative = true;
        s = inner.trim();
    }
    let mut sign_seen = negative;
    let mut take_sign = |s: &mut &str| {
        if sign_seen {
            return;
        }
        if let Some(rest) = s.strip_prefix('-') {
            negative = true;
            sign_seen = true;
            *s = rest.trim_start();
        } else if let Some(rest) = s.strip_prefix('+') {
            sign_seen = true;
            *s = rest.trim_start();
        }
    };
    take_sign(&mut s);
    s = strip_currency_prefix(s).trim_start();
    take_sign(&mut s);
    s = strip_currency_suffix(s).trim_end();
    let number = normalise_separators(s)?;
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// The common case, read without allocating: an optional sign, digits, at most one `.`.
fn simple_decimal(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let digits = b
        .strip_prefix(b"-")
        .or_else(|| b.strip_prefix(b"+"))
        .unwrap_or(b);
    let mut dots = 0;
    let mut any_digit = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => any_digit = true,
            b'.' => dots += 1,
            _ => return None,
        }
    }
    if !any_digit || dots > 1 {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

fn strip_currency_prefix(s: &str) -> &str {
    let letters = s
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .count()
        .min(4);
    let mut rest = if (1..=3).contains(&letters) {
        &s[letters..]
    } else {
        s
    };
    if let Some(c) = rest.chars().next().filter(|c| CURRENCY_SIGNS.contains(c)) {
        rest = &rest[c.len_utf8()..];
    } else if rest.len() == s.len() {
        return s;
    }
    rest
}

fn strip_currency_suffix(s: &str) -> &str {
    if let Some(c) = s.chars().next_back().filter(|c| CURRENCY_SIGNS.contains(c)) {
        return &s[..s.len() - c.len_utf8()];
    }
    let letters = s
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if (1..=3).contains(&letters) {
        &s[..s.len() - letters]
    } else {
        s
    }
}

/// The amount's digits with `.` as the only separator, or `None` when the separators are
/// ambiguous or misplaced.
fn normalise_separators(s: &str) -> Option<String> {
    if !s.bytes().any(|b| b.is_ascii_digit())
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',' || GROUP_MARKS.contains(&c))
    {
        return None;
    }
    let dots = s.matches('.').count();
    let commas = s.matches(',').count();
    let decimal = match (dots, commas) {
        (0, 0) => None,
        (_, 0) if dots > 1 => None,
        (1, 0) => Some('.'),
        (0, 1) => {
            let after = &s[s.find(',')? + 1..];
            if after.len() == 3 && after.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                Some(',')
            }
        }
        (0, _) => None,
        _ => {
            let last = if s.rfind('.')? > s.rfind(',')? {
                '.'
            } else {
                ','
            };
            if s.matches(last).count() != 1 {
                return None;
            }
            Some(last)
        }
    };
    let (int_part, frac_part) = match decimal {
        Some(mark) => {
            let at = s.find(mark)?;
            (&s[..at], &s[at + 1..])
        }
        None => (s, ""),
    };
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = String::with_capacity(s.len());
    let mut groups = int_part.split(|c: char| !c.is_ascii_digit());
    let first = groups.next().unwrap_or("");
    let mut grouped = false;
    for group in groups {
        grouped = true;
        if group.len() != 3 {
            return None;
        }
        digits.push_str(group);
    }
    if grouped {
        // The grouping marks must all be one character.
        let mut marks = int_part.chars().filter(|c| !c.is_ascii_digit());
        let mark = marks.next()?;
        if marks.any(|c| c != mark) || first.is_empty() || first.len() > 3 {
            return None;
        }
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push_str(if first.is_empty() { "0" } else { first });
    out.push_str(&digits);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(frac_part);
    }
    Some(out)
}

/// Reads text that is plainly a number, by JSON's grammar (`-12`, `0.5`, `3e8`): no
/// leading `+`, no leading zeros, no separators. Integers within `i64` stay exact; other
/// numbers are kept only when 15 significant digits or fewer, so no digit is lost.
pub fn parse_plain_number(text: &str) -> Option<Number> {
    if !is_json_number(text) {
        return None;
    }
    let integral = text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if integral {
        return text.parse::<i64>().ok().map(Number::from);
    }
    let significant = text
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0')
        .count();
    if significant > 15 {
        return None;
    }
    Number::from_f64(text.parse().ok()?)
}

/// True when `text` is a number by JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_len = digits(&mut i);
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A cell's text as a property value: a number when it is plainly one, else the text.
pub fn text_value(text: &str) -> Value {
    match parse_plain_number(text) {
        Some(number) => Value::Number(number),
        None => Value::String(text.to_string()),
    }
}

/// The earliest and latest years accepted as an order's time; outside them a time is far
/// likelier a typo or a wrong column than history.
const YEARS: std::ops::RangeInclusive<i64> = 1900..=2199;

/// Reads an order time.
///
/// Accepted: everything [`Timestamp::parse`] reads (RFC 3339, `YYYY-MM-DD`, `YYYYMMDD`,
/// `YYYY/MM/DD`, `YYYY-MM-DD HH:MM[:SS]`), also with `/` or `年月日` between the date's
/// parts and one-digit months and days; and Unix time as 10 digits (seconds) or 13 digits
/// (milliseconds). A time written without an offset is local time at `utc_offset_minutes`
/// east of UTC. Month-first and day-first forms (`03/04/2024`) are ambiguous and refused,
/// as are years outside 1900–2199.
pub fn parse_time(text: &str, utc_offset_minutes: i32) -> Option<Timestamp> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let offset_ms = i64::from(utc_offset_minutes) * 60_000;
    if let Some((millis, absolute)) = fast_date_time(text) {
        let at = Timestamp(if absolute { millis } else { millis - offset_ms });
        return in_range(at);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let at = match text.len() {
            8 => Timestamp::parse(text)?.add_millis(-offset_ms),
            10 => Timestamp(text.parse::<i64>().ok()?.checked_mul(1_000)?),
            13 => Timestamp(text.parse().ok()?),
            _ => return None,
        };
        return in_range(at);
    }
    let normalised = normalise_date(text);
    let at = Timestamp::parse(&normalised)?;
    let at = if has_offset(&normalised) {
        at
    } else {
        at.add_millis(-offset_ms)
    };
    in_range(at)
}

/// The common forms read without allocating: `YYYY-MM-DD`, then optionally `T` or a
/// space, `HH:MM`, `:SS`, a fraction, and `Z`. Returns the milliseconds since the epoch
/// as if UTC, and whether the text said so (`Z`). Anything else is `None`, for the full
/// parser to try.
fn fast_date_time(text: &str) -> Option<(i64, bool)> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    let mut rest = &b[10..];
    let mut absolute = false;
    if let [b'T' | b' ', time @ ..] = rest {
        if time.len() < 5 || time[2] != b':' {
            return None;
        }
        let (hour, minute) = (num(11..13)?, num(14..16)?);
        let mut second = 0;
        rest = &time[5..];
        if let [b':', ..] = rest {
            second = num(17..19)?;
            rest = &rest[3..];
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        millis += ((hour * 60 + minute) * 60 + second) * 1_000;
        if let [b'.', fraction @ ..] = rest {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            let mut ms = 0;
            for i in 0..3 {
                ms = ms * 10
                    + fraction
                        .get(i)
                        .filter(|_| i < digits)
                        .map_or(0, |&c| i64::from(c - b'0'));
            }
            millis += ms;
            rest = &fraction[digits..];
        }
        if let [b'Z' | b'z'] = rest {
            absolute = true;
            rest = &[];
        }
    }
    rest.is_empty().then_some((millis, absolute))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn in_range(at: Timestamp) -> Option<Timestamp> {
    const YEAR_MS: i64 = 31_556_952_000; // the mean Gregorian year
    let year = 1970 + at.millis().div_euclid(YEAR_MS);
    YEARS.contains(&year).then_some(at)
}

/// `2024/3/1 8:05` → `2024-03-01 08:05`; `2024年3月1日` → `2024-03-01`. Other text is
/// returned as it is.
fn normalise_date(text: &str) -> String {
    let date_len = text.find([' ', 'T']).unwrap_or(text.len());
    let (date, rest) = text.split_at(date_len);
    let date = date.trim_end_matches('日');
    let parts: Vec<&str> = date.split(['-', '/', '年', '月']).collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || parts[0].len() != 4 || !parts.iter().all(numeric) {
        return text.to_string();
    }
    if parts[1].len() > 2 || parts[2].len() > 2 {
        return text.to_string();
    }
    let mut out = format!("{}-{:0>2}-{:0>2}", parts[0], parts[1], parts[2]);
    let rest = rest.trim_start_matches(['T', ' ']);
    if !rest.is_empty() {
        out.push(' ');
        // Pad a one-digit hour: `8:05` → `08:05`.
        if rest.find(':') == Some(1) {
            out.push('0');
        }
        out.push_str(rest);
    }
    out
}

/// Whether a date-time text names its offset (`Z`, `+08:00`, `-0500`) after the time.
fn has_offset(text: &str) -> bool {
    let Some(time_at) = text.find([' ', 'T']) else {
        return false;
    };
    let time = &text[time_at + 1..];
    time.ends_with(['Z', 'z']) || time.contains(['+', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_people_type() {
        let cases: &[(&str, f64)] = &[
            ("1234.5", 1234.5),
            ("1,234.50", 1234.5),
            ("¥12.00", 12.0),
            ("￥12", 12.0),
            ("$1,234,567.89", 1_234_567.89),
            ("USD 12", 12.0),
            ("US$ 3.5", 3.5),
            ("12.00 USD", 12.0),
            ("12,50 €", 12.5),
            ("1.234,50", 1234.5),
            ("1 234,50", 1234.5),
            ("1'234.50", 1234.5),
            ("-$3", -3.0),
            ("$-3", -3.0),
            ("(3.00)", -3.0),
            ("+7", 7.0),
            ("12元", 12.0),
            (".5", 0.5),
            ("1,234", 1234.0),
            ("1,2345", 1.2345),
            ("0", 0.0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_amount(text), Some(*want), "{text}");
        }
    }

    #[test]
    fn ambiguous_or_garbage_amounts_are_refused() {
        for text in [
            "",
            "abc",
            "1,23,4",
            "1.2.3,4,5",
            "12,34,56",
            "--3",
            "(-3)",
            "1e5x",
            "NaN",
            "inf",
            "$",
            "1 2",
            "12.5.6",
            "3-4",
            "1,234.5,6",
            "12 34",
        ] {
            assert_eq!(parse_amount(text), None, "{text:?}");
        }
    }

    #[test]
    fn plain_numbers_are_strict() {
        assert_eq!(parse_plain_number("42"), Some(Number::from(42)));
        assert_eq!(parse_plain_number("-12.5"), Number::from_f64(-12.5));
        assert_eq!(parse_plain_number("3e2"), Number::from_f64(300.0));
        for text in [
            "007",
            "+1",
            "1,000",
            "1.",
            ".5",
            "12345678901234567890",
            "0.1234567890123456789",
            " 1",
            "",
        ] {
            assert_eq!(parse_plain_number(text), None, "{text:?}");
        }
        assert_eq!(text_value("00042"), Value::String("00042".into()));
    }

    proptest::proptest! {
        /// The allocation-free reader agrees with the full one wherever it answers.
        #[test]
        fn fast_times_agree_with_the_full_parser(
            y in 1900i64..2200, m in 1i64..13, d in 1i64..32, h in 0i64..24, mi in 0i64..60, s in 0i64..60,
            frac in proptest::option::of("[0-9]{1,9}"), sep in proptest::sample::select(vec!["T", " "]),
            form in 0usize..4, z in proptest::bool::ANY,
        ) {
            let date = format!("{y:04}-{m:02}-{d:02}");
            let text = match form {
                0 => date,
                1 => format!("{date}{sep}{h:02}:{mi:02}"),
                2 => format!("{date}{sep}{h:02}:{mi:02}:{s:02}"),
                _ => format!("{date}{sep}{h:02}:{mi:02}:{s:02}{}{}", frac.map(|f| format!(".{f}")).unwrap_or_default(), if z { "Z" } else { "" }),
            };
            let full = Timestamp::parse(&text).map(|t| t.millis());
            let fast = fast_date_time(&text).map(|(ms, _)| ms);
            proptest::prop_assert_eq!(fast, full, "{}", text);
        }

        /// So does the plain-decimal shortcut of amounts.
        #[test]
        fn simple_amounts_agree(text in "[+-]?[0-9]{0,6}(\\.[0-9]{0,4})?") {
            if let Some(fast) = simple_decimal(&text) {
                let s = text.trim_start_matches(['+', '-']);
                let slow = normalise_separators(s).and_then(|n| n.parse::<f64>().ok());
                let slow = slow.map(|v| if text.starts_with('-') { -v } else { v });
                proptest::prop_assert_eq!(Some(fast), slow, "{}", text);
            }
        }
    }

    #[test]
    fn order_times() {
        let utc = |s: &str| Timestamp::parse(s).unwrap();
        assert_eq!(
            parse_time("2024-03-01", 0),
            Some(utc("2024-03-01T00:00:00Z"))
        );
        assert_eq!(parse_time("20240301", 0), Some(utc("2024-03-01T00:00:00Z")));
        assert_eq!(
            parse_time("2024/3/1 8:05", 0),
            Some(utc("2024-03-01T08:05:00Z"))
        );
        assert_eq!(
            parse_time("2024年3月1日", 0),
            Some(utc("2024-03-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2024-03-01 10:00:00", 480),
            Some(utc("2024-03-01T02:00:00Z"))
        );
        assert_eq!(
            parse_time("2024-03-01T10:00:00+08:00", 60),
            Some(utc("2024-03-01T02:00:00Z")),
            "an explicit offset wins over the default"
        );
        assert_eq!(
            parse_time("1709251200", 0),
            Some(utc("2024-03-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("1709251200000", 0),
            Some(utc("2024-03-01T00:00:00Z"))
        );
        for text in [
            "",
            "yesterday",
            "03/01/2024",
            "2024-13-01",
            "0024-03-01",
            "12345",
            "2024-03",
        ] {
            assert_eq!(parse_time(text, 0), None, "{text:?}");
        }
    }
}
