//! Which refinement options the CUDA backend runs, checked before any device work.
//!
//! The kernels search exhaustively (every admissible pair, in f32, then the near-best
//! candidates re-checked in f64, as the CPU's exhaustive search), so their result is the
//! CPU engine's for [`Search::Exhaustive`]. The bounded search of the CPU gives the same
//! pairs, but the CUDA backend does not run it: rather than ignore a `search = "bounded"`
//! silently, it refuses it and says what to do.

use sparseswaps_core::{CoreError, RefineOptions, Search};

use crate::error::{KernelsError, Result};

/// Why the CUDA backend refuses [`Search::Bounded`], as the error says it.
pub const BOUNDED_SEARCH_REFUSED: &str = "the CUDA backend searches exhaustively; set search = \"exhaustive\" (same result) or use the CPU backend";

/// Checks that the CUDA backend can honour `opts`; the first thing
/// [`crate::CudaBackend::refine_layer`] (and so [`sparseswaps_core::Backend::refine`])
/// does. [`Search::Bounded`] is refused with [`BOUNDED_SEARCH_REFUSED`] as a
/// [`CoreError::Backend`] (through [`KernelsError::Core`], so it reaches the core error
/// type unchanged); [`Search::Exhaustive`] is what the kernels run.
pub fn check_refine_options(opts: &RefineOptions) -> Result<()> {
    match opts.search {
        Search::Exhaustive => Ok(()),
        Search::Bounded => Err(KernelsError::Core(CoreError::Backend {
            backend: "cuda".into(),
            message: BOUNDED_SEARCH_REFUSED.into(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparseswaps_core::Budget;

    #[test]
    fn bounded_search_is_refused_with_a_clear_message() {
        let opts = RefineOptions {
            search: Search::Bounded,
            ..RefineOptions::default()
        };
        let e = check_refine_options(&opts).unwrap_err();
        assert!(
            !e.is_unavailable(),
            "a refusal is no reason to fall back: {e:?}"
        );
        assert_eq!(
            e.into_core().to_string(),
            "cuda backend failed: the CUDA backend searches exhaustively; set search = \"exhaustive\" (same result) or use the CPU backend"
        );
    }

    #[test]
    fn exhaustive_search_is_accepted_whatever_the_other_options() {
        for budget in [Budget::Row, Budget::Layer] {
            for max_swaps in [None, Some(0), Some(7)] {
                let opts = RefineOptions {
                    search: Search::Exhaustive,
                    budget,
                    max_swaps,
                    ..RefineOptions::default()
                };
                assert_eq!(check_refine_options(&opts), Ok(()));
            }
        }
    }
}
