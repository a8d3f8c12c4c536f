//! PostgreSQL `NUMERIC` read without panicking: values a decimal cannot hold are a clean error.
//!
//! sqlx's own `rust_decimal` decoding multiplies without a check and panics from 8e28 up; here the
//! wire value (binary or text) is spelled out as text and parsed with [`Decimal::from_str`],
//! which refuses what does not fit.

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::Row;

use crate::domain::truncate;

const NAN: u16 = 0xC000;
const POSITIVE_INFINITY: u16 = 0xD000;
const NEGATIVE_INFINITY: u16 = 0xF000;
const NEGATIVE: u16 = 0x4000;

/// The `NUMERIC` value at `index` as a decimal, or why it cannot be one.
pub(super) fn numeric(row: &PgRow, index: usize) -> Result<Decimal, String> {
    let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
    let format = raw.format();
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    let text = match format {
        PgValueFormat::Binary => binary_to_text(bytes)?,
        PgValueFormat::Text => String::from_utf8_lossy(bytes).into_owned(),
    };
    to_decimal(&text)
}

fn to_decimal(text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text.trim()).map_err(|_| {
        format!(
            "{} does not fit a decimal (at most 28 significant digits, below 7.9e28)",
            truncate(text.trim(), 40)
        )
    })
}

/// The binary `NUMERIC` wire format: ndigits, weight, sign, dscale (i16/u16 each), then ndigits
/// base-10000 digits, the first worth 10000^weight.
fn binary_to_text(bytes: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        bytes
            .get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated NUMERIC value".to_string())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    match sign {
        NAN => return Err("NaN is not an amount".into()),
        POSITIVE_INFINITY | NEGATIVE_INFINITY => return Err("Infinity is not an amount".into()),
        _ => {}
    }
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<u16>, String>>()?;
    // The base-10000 digit worth 10000^e (zero outside the stored digits).
    let digit_at = |e: i64| -> u16 {
        usize::try_from(weight - e)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut whole = String::new();
    for e in (0..=weight).rev() {
        if whole.is_empty() {
            whole = digit_at(e).to_string();
        } else {
            whole.push_str(&format!("{:04}", digit_at(e)));
        }
    }
    if whole.is_empty() {
        whole.push('0');
    }
    let mut fraction = String::new();
    let mut e = -1;
    while fraction.len() < dscale {
        fraction.push_str(&format!("{:04}", digit_at(e)));
        e -= 1;
    }
    fraction.truncate(dscale);
    let sign = if sign == NEGATIVE { "-" } else { "" };
    Ok(if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b
    }

    #[test]
    fn binary_numerics_spell_out_exactly() {
        assert_eq!(
            binary_to_text(&wire(0, 0, 2, &[1234, 5600])),
            Ok("1234.56".into())
        );
        assert_eq!(
            binary_to_text(&wire(-1, NEGATIVE, 2, &[500])),
            Ok("-0.05".into())
        );
        assert_eq!(
            binary_to_text(&wire(-2, 0, 5, &[1000])),
            Ok("0.00001".into())
        );
        assert_eq!(binary_to_text(&wire(1, 0, 0, &[1])), Ok("10000".into()));
        assert_eq!(binary_to_text(&wire(0, 0, 0, &[])), Ok("0".into()));
        assert_eq!(
            binary_to_text(&wire(1, 0, 3, &[12, 3456, 7000])),
            Ok("123456.700".into())
        );
        assert!(binary_to_text(&wire(0, NAN, 0, &[])).is_err());
        assert!(binary_to_text(&[0, 1, 0]).is_err(), "truncated");
    }

    #[test]
    fn values_past_the_decimal_range_are_errors_not_panics() {
        // 8e28 = 8 · 10000^7
        let text = binary_to_text(&wire(7, 0, 0, &[8])).expect("text");
        assert_eq!(text, format!("8{}", "0".repeat(28)));
        let e = to_decimal(&text).expect_err("too large");
        assert!(e.contains("does not fit a decimal"), "{e}");
        let huge = binary_to_text(&wire(i16::MAX, NEGATIVE, 0, &[1])).expect("text");
        assert!(to_decimal(&huge).is_err());
    }
}
