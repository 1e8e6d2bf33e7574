//! `refine.objective`: what the swaps of a layer minimise.

use serde::{Deserialize, Serialize};

/// What the swaps of a layer minimise (`refine.objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The error of the mask with the original weights (ordinary swaps only).
    #[default]
    Mask,
    /// The ordinary swaps, then exact 1-swaps of the re-fitted error, whose re-fitted
    /// weights the layer keeps.
    Refit,
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mask" => Ok(Objective::Mask),
            "refit" => Ok(Objective::Refit),
            other => Err(format!("objective = '{other}': expected mask or refit")),
        }
    }
}
