//! One module per subcommand, each with its `Args` and `run`.

pub mod compare;
pub mod convert;
pub mod eval;
pub mod plugins;
pub mod refine_layer;
pub mod run;
