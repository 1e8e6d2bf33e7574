//! `sparseswaps plugins`: what warm-start plugins this binary can see.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `plugins`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PluginsCommand {
    /// List the plugins found (name, version, ABI, patterns, needed inputs, library), in
    /// search order.
    List {
        /// Extra directory searched for plugins (repeatable).
        #[arg(long, value_name = "DIR")]
        plugin_dir: Vec<PathBuf>,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        PluginsCommand::List { plugin_dir } => list(&plugin_dir),
    }
}

fn list(dirs: &[PathBuf]) -> Result<()> {
    let listing = sparseswaps_pipeline::tools::list_plugins(dirs);
    let rows: Vec<[String; 6]> = listing
        .plugins
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.version.clone(),
                p.abi.to_string(),
                p.patterns.clone(),
                p.needs.clone(),
                p.library.display().to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "ABI", "PATTERNS", "NEEDS", "LIBRARY"].map(String::from);
    let mut width = [0usize; 5];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4]
        );
    }
    if rows.is_empty() {
        println!("(no plugins found)");
    }
    for p in &listing.shadowed {
        println!(
            "shadowed: {} {} ({}): an earlier library has the same name",
            p.name,
            p.version,
            p.library.display()
        );
    }
    for s in &listing.skipped {
        println!("skipped: {s}");
    }
    println!("searched (in order): {}", listing.searched);
    Ok(())
}
