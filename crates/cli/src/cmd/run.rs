//! `sparseswaps run PIPELINE.toml`: the main job.

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sparseswaps_pipeline::{Event, PipelineConfig, RunOptions, RunReport};
use std::path::PathBuf;
use std::sync::Mutex;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline config (TOML; every key is documented in the README).
    config: PathBuf,
    /// Replace the output directory if it exists, and discard the checkpoint of an
    /// unfinished run of the same output.
    #[arg(long)]
    force: bool,
    /// Continue the unfinished run of this config from its last checkpointed block
    /// (refused when the config, an input or the version differs from the checkpoint).
    #[arg(long)]
    resume: bool,
    /// Extra directory searched for warm-start plugins (repeatable).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Vec<PathBuf>,
    /// No progress bars (log lines only).
    #[arg(long)]
    quiet: bool,
    /// Refuse to start when the run's memory plan (printed at the start) estimates a
    /// peak above this: gigabytes (`20`), or a size with a unit (`18GiB`, `500MB`).
    /// Overrides the config's `run.max_memory`.
    #[arg(long, value_name = "GB", value_parser = parse_gb)]
    max_memory: Option<u64>,
}

/// `--max-memory`: a bare number is gigabytes.
fn parse_gb(s: &str) -> std::result::Result<u64, String> {
    sparseswaps_pipeline::config::parse_size(s, 1_000_000_000)
}

fn style(t: &str) -> ProgressStyle {
    ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Progress bars driven by pipeline events.
struct Bars {
    multi: MultiProgress,
    blocks: Option<ProgressBar>,
    capture: Option<ProgressBar>,
    rows: Option<ProgressBar>,
    eval: Option<ProgressBar>,
}

impl Bars {
    /// A log line: above the bars, or on stderr as is when the bars are hidden (`--quiet`,
    /// or stderr not a terminal), so logs and tests still see it.
    fn say(&self, line: String) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Stage(s) => {
                self.say(format!("· {s}"));
            }
            Event::Note(s) => {
                self.say(format!("note: {s}"));
            }
            Event::EvalStart { label, windows } => {
                let b = self.multi.add(ProgressBar::new(windows as u64));
                b.set_style(style(
                    "eval {msg:8} {bar:40} {pos}/{len} windows {elapsed_precise} (eta {eta})",
                ));
                b.set_message(label);
                self.eval = Some(b);
            }
            Event::EvalWindow => {
                if let Some(b) = &self.eval {
                    b.inc(1);
                }
            }
            Event::EvalDone { label, ppl } => {
                if let Some(b) = self.eval.take() {
                    b.finish_and_clear();
                }
                self.say(format!("· {label} perplexity {ppl:.3}"));
            }
            Event::PruneStart { blocks, targets } => {
                let b = self.multi.add(ProgressBar::new(blocks as u64));
                b.set_style(style(
                    "blocks   {bar:40} {pos}/{len} ({msg}) {elapsed_precise} (eta {eta})",
                ));
                b.set_message(format!("{targets} target layers"));
                self.blocks = Some(b);
            }
            Event::BlockStart { .. } => {}
            Event::Captured { done, total } => {
                let b = self.capture.get_or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new(total as u64));
                    b.set_style(style("calib    {bar:40} {pos}/{len} micro-batches"));
                    b
                });
                b.set_length(total as u64);
                b.set_position(done as u64);
                if done == total {
                    b.finish_and_clear();
                    self.capture = None;
                }
            }
            Event::LayerStart { name, rows } => {
                let b = self.multi.add(ProgressBar::new(rows as u64));
                b.set_style(style("refine   {bar:40} {pos}/{len} rows {msg}"));
                b.set_message(name);
                self.rows = Some(b);
            }
            Event::Rows(n) => {
                if let Some(b) = &self.rows {
                    b.inc(n as u64);
                }
            }
            Event::LayerDone(r) => {
                if let Some(b) = self.rows.take() {
                    b.finish_and_clear();
                }
                // The re-fitted error, when there is one, is the written model's, and the
                // figure in brackets is its change from the warm start: under
                // `objective = "refit"` the mask's own error may rise while it falls.
                let refit = r
                    .budget
                    .reconstructed_relative
                    .map_or(String::new(), |v| format!(" -> re-fit {v:.4}"));
                let written = r
                    .budget
                    .reconstructed_relative
                    .unwrap_or(r.refined_relative);
                let below = if r.warm_relative > 0.0 {
                    100.0 * (1.0 - written / r.warm_relative)
                } else {
                    0.0
                };
                self.say(format!(
                    "  {:40} rel. error {:.4} -> {:.4}{refit} ({below:5.1}% below the warm start), {} swaps, {:.1} s",
                    r.name, r.warm_relative, r.refined_relative, r.swaps, r.seconds
                ));
            }
            Event::BlockDone { .. } => {
                if let Some(b) = &self.blocks {
                    b.inc(1);
                }
            }
            Event::Resumed {
                from_block,
                blocks,
                checkpoint,
            } => {
                if let Some(b) = &self.blocks {
                    b.set_position(from_block as u64);
                }
                self.say(format!(
                    "· resuming from block {from_block} of {blocks}: blocks 0..{from_block} restored from {}",
                    checkpoint.display()
                ));
            }
        }
    }

    fn finish(&mut self) {
        for b in [
            self.blocks.take(),
            self.capture.take(),
            self.rows.take(),
            self.eval.take(),
        ]
        .into_iter()
        .flatten()
        {
            b.finish_and_clear();
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let cfg = PipelineConfig::from_file(&args.config)?;
    let multi = MultiProgress::new();
    if args.quiet {
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    let bars = Mutex::new(Bars {
        multi,
        blocks: None,
        capture: None,
        rows: None,
        eval: None,
    });
    let opts = RunOptions {
        force: args.force,
        resume: args.resume,
        plugin_dirs: args.plugin_dir.clone(),
        max_memory: args.max_memory,
    };
    let events = |ev: Event| {
        if let Ok(mut b) = bars.lock() {
            b.handle(ev);
        }
    };
    let res = sparseswaps_pipeline::run(&cfg, &args.config, &opts, &events);
    if let Ok(mut b) = bars.lock() {
        b.finish();
    }
    let report = res?;
    print_summary(&report, &cfg);
    Ok(())
}

fn print_summary(r: &RunReport, cfg: &PipelineConfig) {
    println!();
    print!(
        "{}",
        sparseswaps_pipeline::summary::render_summary(&sparseswaps_pipeline::summary::summarize(r))
    );
    println!(
        "outputs in {}",
        sparseswaps_pipeline::config::expand_path(&cfg.output.dir).display()
    );
}
