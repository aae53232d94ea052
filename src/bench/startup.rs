//! Time to first step and time to accuracy, for the default CNN on the
//! adapter `train` would use:
//! - `startup`: opening the device, the quick self-test, shader compilation
//!   and tuning, cold (an empty tuning cache in a temporary directory: what
//!   the first run on a device pays) and then warm (the same cache again);
//! - `accuracy`: training seconds (the epochs' training passes, as
//!   `train` reports them) until the test accuracy first reaches 99%, with
//!   `train`'s defaults (SGD, momentum 0.9, lr 0.1, batch 128).

use super::report::Reporter;
use super::Settings;
use crate::backend::Optimizer;
use crate::data::{load_mnist, Split};
use crate::gpu::{open_trainer_in, AdapterChoice, Startup};
use crate::graph::{Graph, Shape};
use crate::schedule::ScheduleKind;
use crate::spec::ModelSpec;
use crate::train::{train, DeviceChoice, MetricsLine, TrainConfig};
use anyhow::{Context as _, Result};
use serde::Serialize;

const SGD: Optimizer = Optimizer::Sgd {
    momentum: 0.9,
    weight_decay: 0.0,
    nesterov: false,
};

/// Time to first step of the default CNN at batch 128.
#[derive(Debug, Serialize)]
pub struct StartupRow {
    pub model: &'static str,
    pub batch: usize,
    pub cold: Startup,
    pub warm: Startup,
}

/// Runs the startup part: cold, then warm, in a private cache directory.
pub fn startup(settings: &Settings, out: &mut Reporter) -> Result<Vec<StartupRow>> {
    let data = load_mnist(&settings.data, Split::Train)
        .with_context(|| {
            format!(
                "the startup bench needs MNIST in {}",
                settings.data.display()
            )
        })?
        .truncated(1024);
    let spec = ModelSpec::parse("cnn")?;
    let graph = Graph::new(&spec, Shape { c: 1, h: 28, w: 28 }, 10)?;
    let init = graph.init_params(0);
    let batch = 128;
    let dir = std::env::temp_dir().join(format!("gpunet-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = || -> Result<Startup> {
        let choice = AdapterChoice::best()?;
        let trainer = open_trainer_in(
            Some(dir.clone()),
            choice,
            &graph,
            batch,
            SGD,
            &init,
            &data,
            &data,
            &mut std::io::sink(),
        )?;
        Ok(trainer
            .startup
            .clone()
            .expect("open_trainer times the start"))
    };
    let cold = open();
    let warm = cold.as_ref().ok().map(|_| open());
    let _ = std::fs::remove_dir_all(&dir);
    let (cold, warm) = (cold?, warm.expect("run after a cold start")?);
    out.line(&format!(
        "time to first step, cnn at batch {batch}: cold {:.2}s (self-test {:.2}s, shaders \
         and tuning {:.2}s), warm {:.2}s",
        cold.seconds, cold.selftest_seconds, cold.plan_seconds, warm.seconds
    ))?;
    Ok(vec![StartupRow {
        model: "cnn",
        batch,
        cold,
        warm,
    }])
}

/// Time to 99% test accuracy for the default CNN.
#[derive(Debug, Serialize)]
pub struct AccuracyRow {
    pub model: &'static str,
    pub target: f64,
    /// Training seconds summed over the epochs until the target was met;
    /// null when it was not within `epochs`.
    pub seconds_to_target: Option<f64>,
    pub epochs_run: usize,
    pub best_test_acc: f64,
    pub train_images: usize,
}

/// Trains until the target is reached or the epochs run out.
pub fn accuracy(settings: &Settings, out: &mut Reporter) -> Result<Vec<AccuracyRow>> {
    const TARGET: f64 = 0.99;
    let cfg = TrainConfig {
        spec: Some(ModelSpec::parse("cnn")?),
        expected_input: None,
        device: DeviceChoice::Gpu,
        epochs: settings.accuracy_epochs,
        batch: 128,
        optimizer: SGD,
        lr: 0.1,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        step_epochs: 1,
        gamma: 1.0,
        seed: 0,
        label_smoothing: 0.0,
        no_bias_decay: false,
        normalize: Default::default(),
        augment: Default::default(),
        image_size: None,
        data: settings.data.clone(),
        train_limit: settings.accuracy_train_limit,
        test_limit: None,
        save: None,
        checkpoint_every: 0,
        resume: None,
        log: None,
        log_every: 0,
        plot: None,
        snapshot_every: 0,
    };
    let mut row = AccuracyRow {
        model: "cnn",
        target: TARGET,
        seconds_to_target: None,
        epochs_run: 0,
        best_test_acc: 0.0,
        train_images: 0,
    };
    let mut trained = 0.0;
    let mut images = 0;
    // Stops the run once the target is met (an error train passes back).
    #[derive(Debug)]
    struct Reached;
    impl std::fmt::Display for Reached {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "target reached")
        }
    }
    impl std::error::Error for Reached {}
    let result = train(&cfg, &mut std::io::sink(), &mut |line| {
        let MetricsLine::Epoch { report, .. } = line else {
            return Ok(());
        };
        trained += report.seconds;
        images = (report.images_per_sec * report.seconds).round() as usize;
        row.epochs_run = report.epoch;
        row.best_test_acc = row.best_test_acc.max(report.test_acc);
        if report.test_acc >= TARGET {
            row.seconds_to_target = Some(trained);
            return Err(Reached.into());
        }
        Ok(())
    });
    match result {
        Ok(_) => {}
        Err(e) if e.is::<Reached>() => {}
        Err(e) => return Err(e),
    }
    row.train_images = images;
    out.line(&format!(
        "time to {}% test accuracy, cnn: {} ({} epochs, best {:.2}%)",
        TARGET * 100.0,
        match row.seconds_to_target {
            Some(s) => format!("{s:.2}s of training"),
            None => "not reached".into(),
        },
        row.epochs_run,
        row.best_test_acc * 100.0
    ))?;
    Ok(vec![row])
}
