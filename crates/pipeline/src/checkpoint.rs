//! The checkpoint files of a run, under their former path: everything here lives in
//! [`crate::staging`], the one home of the staging directory and its checkpoints.

pub use crate::staging::{
    check_resumable, claim, clean_leftovers, first_difference, fsync_dir, fsync_tree, live_owner,
    manifest_path, read_block, read_hidden, read_manifest, remove_hidden, staging_dir, write_block,
    write_hidden, write_manifest, BlockTargets, Manifest, FORMAT,
};
