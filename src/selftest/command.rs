//! The `gpunet selftest` command: run, print the table (or JSON), and exit
//! non-zero on any failure.

use super::{run, Level};
use crate::gpu::{AdapterChoice, GpuContext};
use crate::output;
use crate::train::DeviceChoice;
use anyhow::{bail, Result};
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct SelftestArgs {
    /// The device to test. Only GPU adapters have kernels to test: the CPU
    /// is the reference the GPU is compared with. `auto` is the adapter
    /// `train` would use.
    #[arg(long, value_enum, default_value = "gpu")]
    pub device: DeviceChoice,
    /// `quick`: odd shapes only (what `train` runs once per adapter);
    /// `full`: the odd shapes and the default models' shapes.
    #[arg(long, value_enum, default_value = "full")]
    pub level: Level,
    /// Print the result as JSON (every kernel's summary and every case).
    #[arg(long)]
    pub json: bool,
}

/// Runs the self-test; an error (exit status 1) if any kernel failed.
pub fn command(args: &SelftestArgs) -> Result<()> {
    if args.device == DeviceChoice::Cpu {
        bail!(
            "--device cpu: the CPU is the reference the self-test compares the GPU \
             with, so there is nothing to test; use --device gpu"
        );
    }
    let choice = AdapterChoice::best()?;
    let ctx = GpuContext::from_adapter(choice)?;
    let mut err = output::stderr();
    let report = run(&ctx, args.level, &mut |group| {
        let _ = writeln!(err, "checking {group} …");
    })?;
    let mut out = output::stdout();
    if args.json {
        let json = serde_json::json!({
            "adapter": report.adapter,
            "level": report.level,
            "passed": report.passed(),
            "kernels": report.summaries(),
            "checks": report.checks,
        });
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", report.table())?;
    }
    out.flush()?;
    if !report.passed() {
        let failed: Vec<String> = report
            .summaries()
            .into_iter()
            .filter(|s| !s.passed)
            .map(|s| s.kernel)
            .collect();
        bail!(
            "the self-test failed on {} for: {}",
            report.adapter,
            failed.join("; ")
        );
    }
    Ok(())
}
