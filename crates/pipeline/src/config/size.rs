//! Sizes in bytes as configs and flags write them: a number of bytes, or a number with a
//! unit (`5GB`, `500MB`, `1.5GiB`), as transformers' `max_shard_size` reads them.

use serde::{Deserialize, Serialize};

/// A size: a count of bytes, or a string with a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    /// Bytes.
    Bytes(u64),
    /// `5GB`, `500MB`, `1.5GiB`, `123` (bytes).
    Text(String),
}

impl ByteSize {
    /// The size in bytes, or why it is not one.
    pub fn bytes(&self) -> std::result::Result<u64, String> {
        match self {
            ByteSize::Bytes(n) => Ok(*n),
            ByteSize::Text(s) => parse_size(s, 1),
        }
    }
}

/// Parses `s` as a size; a bare number is counted in units of `bare` bytes. Units:
/// B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024), in any
/// case; the number may have a fraction.
pub fn parse_size(s: &str, bare: u64) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("'{s}' is not a size (expected e.g. 5GB, 500MB, 1.5GiB or a number)");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bare as f64,
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = (n * mult).round();
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("'{s}' is not a size of at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5GB", 1), Ok(5_000_000_000));
        assert_eq!(parse_size("1.5 GiB", 1), Ok(1_610_612_736));
        assert_eq!(parse_size("500mb", 1), Ok(500_000_000));
        assert_eq!(parse_size("123", 1), Ok(123));
        assert_eq!(parse_size("20", 1_000_000_000), Ok(20_000_000_000));
        assert!(parse_size("5 apples", 1)
            .unwrap_err()
            .contains("'5 apples' is not a size"));
        assert!(parse_size("0GB", 1).is_err());
        assert_eq!(ByteSize::Bytes(7).bytes(), Ok(7));
    }
}
