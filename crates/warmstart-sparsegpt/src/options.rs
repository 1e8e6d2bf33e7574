//! Options of the SparseGPT warm start and their parsing from a plugin option string.

use crate::SparseGptError;
use std::str::FromStr;

/// Tuning of the SparseGPT procedure; the defaults are the reference code's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Columns per block of lazy OBS updates (reference: 128). For N:M patterns the
    /// block is rounded down to a multiple of `M` (at least `M`) so that no group
    /// straddles two blocks.
    pub blocksize: usize,
    /// Relative damping `λ`: `H = G + λ · mean(diag G) · I` (reference `percdamp`: 0.01).
    pub damping: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            blocksize: 128,
            damping: 0.01,
        }
    }
}

/// The keys [`Options::parse`] accepts, for error messages.
const KEYS: &str = "blocksize, damping";

impl Options {
    /// Parses `key=value` pairs separated by commas (`blocksize=128,damping=0.01`).
    /// Empty strings and empty items are allowed; keys are case-sensitive and may
    /// appear once. Unset keys keep their defaults. Errors name the key or item at
    /// fault.
    pub fn parse(s: &str) -> Result<Options, SparseGptError> {
        let bad = |m: String| SparseGptError::Options(m);
        let mut opts = Options::default();
        let (mut seen_block, mut seen_damp) = (false, false);
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(bad(format!("'{item}' is not key=value (keys: {KEYS})")));
            };
            let (key, value) = (key.trim(), value.trim());
            let seen = match key {
                "blocksize" => &mut seen_block,
                "damping" => &mut seen_damp,
                _ => return Err(bad(format!("unknown key '{key}' (keys: {KEYS})"))),
            };
            if std::mem::replace(seen, true) {
                return Err(bad(format!("key '{key}' is given twice")));
            }
            match key {
                "blocksize" => {
                    opts.blocksize = value.parse().map_err(|_| {
                        bad(format!(
                            "blocksize = '{value}' is not a whole number of columns"
                        ))
                    })?;
                }
                _ => {
                    opts.damping = value
                        .parse()
                        .map_err(|_| bad(format!("damping = '{value}' is not a number")))?;
                }
            }
        }
        opts.validate()?;
        Ok(opts)
    }

    /// Checks the ranges: `blocksize ≥ 1`, `damping` finite and `≥ 0`.
    pub fn validate(&self) -> Result<(), SparseGptError> {
        if self.blocksize == 0 {
            return Err(SparseGptError::Options(
                "blocksize = 0: a block needs at least one column".into(),
            ));
        }
        if !self.damping.is_finite() || self.damping < 0.0 {
            return Err(SparseGptError::Options(format!(
                "damping = {} must be finite and >= 0",
                self.damping
            )));
        }
        Ok(())
    }
}

impl FromStr for Options {
    type Err = SparseGptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Options::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        assert_eq!(Options::parse("").unwrap(), Options::default());
        let o = Options::parse(" blocksize = 32 , damping=0.1,").unwrap();
        assert_eq!((o.blocksize, o.damping), (32, 0.1));
        assert_eq!("damping=0".parse::<Options>().unwrap().damping, 0.0);
    }

    #[test]
    fn errors_name_the_key_or_value() {
        let msg = |s: &str| Options::parse(s).unwrap_err().to_string();
        assert!(msg("blocksize=abc").contains("blocksize = 'abc'"));
        assert!(msg("blocksize=-3").contains("blocksize = '-3'"));
        assert!(msg("blocksize=0").contains("blocksize = 0"));
        assert!(msg("damping=x").contains("damping = 'x'"));
        assert!(msg("damping=-1").contains("damping = -1"));
        assert!(msg("damping=nan").contains("damping = NaN"));
        assert!(msg("percdamp=0.1").contains("unknown key 'percdamp'"));
        assert!(msg("blocksize").contains("'blocksize' is not key=value"));
        assert!(msg("damping=0.1,damping=0.2").contains("'damping' is given twice"));
    }
}
