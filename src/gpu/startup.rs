//! Opening a GPU trainer the way `train` does: the device, the quick
//! self-test the first time gpunet meets an adapter, the plan with its
//! tuning (both cached per adapter, `tune_cache.rs`), and the time each
//! part took before the first step can run.

use super::tune_cache::{Opened, SelftestRecord, TuneCache};
use super::{describe, AdapterChoice, GpuContext, GpuTrainer, Kernels};
use crate::backend::Optimizer;
use crate::data::Dataset;
use crate::graph::Graph;
use crate::selftest::{self, Level};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Instant;

/// Time to first step, in parts: everything a run does before its first
/// training step can be submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Startup {
    /// Opening the adapter and device.
    pub device_seconds: f64,
    /// The quick self-test (0 when its result was cached).
    pub selftest_seconds: f64,
    /// Planning: buffers, shader compilation, and measuring kernel versions
    /// for the shapes the cache did not hold.
    pub plan_seconds: f64,
    /// The three together (and the dataset upload inside planning).
    pub seconds: f64,
    /// What the tuning cache held: `loaded`, `new`, `off`, or why an old
    /// file was replaced.
    pub tuning_cache: String,
}

/// Opens `choice` and plans `graph` on it for training, saying on `log`
/// what the self-test and the tuner do when they run.
#[allow(clippy::too_many_arguments)]
pub fn open_trainer(
    choice: AdapterChoice,
    graph: &Graph,
    batch: usize,
    optimizer: Optimizer,
    init: &[f32],
    train: &Dataset,
    test: &Dataset,
    log: &mut dyn Write,
) -> Result<GpuTrainer> {
    let dir = super::tune_cache::cache_dir();
    open_trainer_in(dir, choice, graph, batch, optimizer, init, train, test, log)
}

/// `open_trainer` with the tuning cache in `cache_dir` (None: in memory).
#[allow(clippy::too_many_arguments)]
pub fn open_trainer_in(
    cache_dir: Option<std::path::PathBuf>,
    choice: AdapterChoice,
    graph: &Graph,
    batch: usize,
    optimizer: Optimizer,
    init: &[f32],
    train: &Dataset,
    test: &Dataset,
    log: &mut dyn Write,
) -> Result<GpuTrainer> {
    let start = Instant::now();
    let ctx = GpuContext::from_adapter(choice)?;
    let device_seconds = start.elapsed().as_secs_f64();

    let mut cache = TuneCache::open_at(cache_dir, super::tune_cache::CacheKey::of(&ctx));
    let cache_state = match &cache.opened {
        Opened::Off => "off".to_string(),
        Opened::New => "new".to_string(),
        Opened::Loaded => "loaded".to_string(),
        Opened::Replaced(why) => {
            if let Some(path) = cache.path() {
                writeln!(
                    log,
                    "tuning cache {}: {why}; measuring again",
                    path.display()
                )?;
            }
            format!("replaced ({why})")
        }
    };

    let selftest_start = Instant::now();
    let record = match cache.file.selftest.clone() {
        Some(record) => record,
        None => {
            writeln!(
                log,
                "first run on {}: checking its kernels against the CPU reference \
                 (quick self-test; `gpunet selftest` runs the full one) …",
                ctx.describe()
            )?;
            crate::status::set(|| {
                "checking the kernels against the CPU reference (first run on this adapter)".into()
            });
            let report = selftest::run(&ctx, Level::Quick, &mut |_| {})?;
            let record = SelftestRecord {
                level: Level::Quick,
                refused: report.refused(),
                failed_without_fallback: report.failed_without_fallback(),
                seconds: selftest_start.elapsed().as_secs_f64(),
            };
            cache.record_selftest(record.clone());
            if let Err(e) = cache.save() {
                writeln!(log, "warning: {e:#}")?;
            }
            record
        }
    };
    let selftest_seconds = if cache.opened == Opened::Loaded && cache.file.selftest.is_some() {
        0.0
    } else {
        selftest_start.elapsed().as_secs_f64()
    };
    if !record.failed_without_fallback.is_empty() {
        bail!(
            "{} computes wrong results in: {}. Train with --device cpu, or update the \
             driver (`gpunet selftest` shows every kernel; the result is cached in {})",
            describe(&ctx.info),
            record.failed_without_fallback.join("; "),
            cache
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "memory".into())
        );
    }
    if !record.refused.is_empty() {
        writeln!(
            log,
            "warning: the self-test found these kernel versions wrong on this adapter, \
             so they are not used: {}",
            describe_refused(&record.refused)
        )?;
    }

    let plan_start = Instant::now();
    if cache.file.choices.is_empty() {
        writeln!(
            log,
            "tuning: measuring kernel versions for each shape (first run on this adapter{}) …",
            match cache.path() {
                Some(p) => format!("; kept in {}", p.display()),
                None => String::new(),
            }
        )?;
    }
    let kernels = Kernels::tuned(&ctx, record.refused.clone(), cache);
    crate::status::set(|| "planning the graph".into());
    let mut trainer =
        GpuTrainer::with_kernels(ctx, kernels, graph, batch, optimizer, init, train, test)?;
    if let Err(e) = trainer.save_tuning() {
        writeln!(log, "warning: {e:#}")?;
    }
    let plan_seconds = plan_start.elapsed().as_secs_f64();
    trainer.startup = Some(Startup {
        device_seconds,
        selftest_seconds,
        plan_seconds,
        seconds: start.elapsed().as_secs_f64(),
        tuning_cache: cache_state,
    });
    Ok(trainer)
}

fn describe_refused(refused: &super::Refused) -> String {
    let mut names: Vec<String> = refused
        .matmul
        .iter()
        .map(|v| format!("matmul {v:?}"))
        .collect();
    names.extend(
        refused
            .conv
            .iter()
            .map(|(pass, v)| format!("conv2d {v:?} {pass:?}")),
    );
    names.join(", ")
}
