//! `gpunet selftest`: does this adapter compute what the CPU reference
//! computes? Every kernel and every version the adapter would run, on odd
//! shapes (and, in the full test, on the default models' shapes), against
//! the CPU reference with the tests' tolerances; one PASS/FAIL line per
//! kernel with the largest error and its tolerance.
//!
//! The versioned kernels (matmul, the conv passes) are checked first; a
//! version that fails any case is refused (`Refused`), and the layers are
//! then checked as the engine would run them without it. `train` runs the
//! quick level the first time it meets an adapter (see `tune_cache.rs`).

mod command;
mod compare;
mod kernels;
mod layers;

pub use command::{command, SelftestArgs};
pub use compare::{compare, compare_exact, Check};

use crate::gpu::{ConvPass, ConvVersion, GpuContext, Kernels, MatmulVersion, Refused};
use crate::graph::{Graph, Shape};
use crate::spec::ModelSpec;
use anyhow::{Context as _, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Test-only: a kernel-name prefix (`matmul Registers`) whose results the
/// self-test corrupts before comparing them, to exercise the refusal and
/// the fall-back without a faulty driver. Never set it for real runs.
pub const FAULT_ENV: &str = "GPUNET_SELFTEST_FAULT";

/// How much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Odd shapes only, every kernel and version (what `train` runs once).
    Quick,
    /// The tests' odd shapes and the default models' (MLP, CNN, CIFAR).
    Full,
}

/// What the checks share: the device, the kernels under test, the random
/// inputs, and the results so far.
pub struct Runner<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub level: Level,
    pub rng: ChaCha8Rng,
    fault: Option<String>,
    checks: Vec<Check>,
}

impl Runner<'_> {
    /// `n` values uniform in [-scale, scale).
    pub fn random(&mut self, n: usize, scale: f32) -> Vec<f32> {
        use rand::Rng;
        (0..n)
            .map(|_| self.rng.random_range(-scale..scale))
            .collect()
    }

    /// Records `got` against `want` (see [`compare`]).
    pub fn check(
        &mut self,
        kernel: &str,
        case: &str,
        mut got: Vec<f32>,
        want: &[f32],
        atol: f32,
        rtol: f32,
    ) {
        if self.fault.as_ref().is_some_and(|f| kernel.starts_with(f)) {
            if let Some(first) = got.first_mut() {
                *first += 1.0;
            }
        }
        self.checks
            .push(compare(kernel, case, &got, want, atol, rtol));
    }

    pub fn check_exact(&mut self, kernel: &str, case: &str, got: &[u32], want: &[u32]) {
        self.checks.push(compare_exact(kernel, case, got, want));
    }

    /// The matmul versions under test: all this adapter can run.
    pub fn matmul_versions(&self) -> Vec<MatmulVersion> {
        MatmulVersion::available(self.ctx)
    }

    pub fn conv_versions(&self, pass: ConvPass) -> Vec<ConvVersion> {
        ConvVersion::available(self.ctx, pass)
    }
}

/// The result of a self-test.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub adapter: String,
    pub level: Level,
    pub checks: Vec<Check>,
}

/// One kernel's line: its cases, the one closest to failing (or the first
/// that failed), PASS or FAIL.
#[derive(Debug, Clone, Serialize)]
pub struct KernelSummary {
    pub kernel: String,
    pub passed: bool,
    pub cases: usize,
    pub failed_cases: usize,
    pub max_error: f32,
    pub tolerance: f32,
    /// The case of `max_error`.
    pub worst_case: String,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// One summary per kernel, in the order they were first checked.
    pub fn summaries(&self) -> Vec<KernelSummary> {
        let mut out: Vec<KernelSummary> = Vec::new();
        for c in &self.checks {
            let ratio = |e: f32, t: f32| if t > 0.0 { e / t } else { e };
            let i = match out.iter().position(|s| s.kernel == c.kernel) {
                Some(i) => i,
                None => {
                    out.push(KernelSummary {
                        kernel: c.kernel.clone(),
                        passed: true,
                        cases: 0,
                        failed_cases: 0,
                        max_error: 0.0,
                        tolerance: c.tolerance,
                        worst_case: c.case.clone(),
                    });
                    out.len() - 1
                }
            };
            let s = &mut out[i];
            s.cases += 1;
            let worse = if s.passed != c.passed {
                !c.passed
            } else {
                ratio(c.max_error, c.tolerance) > ratio(s.max_error, s.tolerance)
            };
            if worse {
                s.max_error = c.max_error;
                s.tolerance = c.tolerance;
                s.worst_case = c.case.clone();
            }
            if !c.passed {
                s.passed = false;
                s.failed_cases += 1;
            }
        }
        out
    }

    /// The kernel versions that failed any case: the engine must not run them.
    pub fn refused(&self) -> Refused {
        let failed = |prefix: &str| {
            self.checks
                .iter()
                .any(|c| !c.passed && c.kernel.starts_with(prefix))
        };
        let mut refused = Refused::default();
        for v in MatmulVersion::ALL {
            if failed(&format!("matmul {v:?} ")) {
                refused.matmul.push(v);
            }
        }
        for v in ConvVersion::ALL {
            for (pass, name) in PASS_NAMES {
                if failed(&format!("conv2d {v:?} {name}")) {
                    refused.conv.push((pass, v));
                }
            }
        }
        refused
    }

    /// The kernels without versions to fall back on that failed.
    pub fn failed_without_fallback(&self) -> Vec<String> {
        self.summaries()
            .into_iter()
            .filter(|s| !s.passed)
            .filter(|s| !s.kernel.starts_with("matmul ") && !s.kernel.starts_with("conv2d "))
            .map(|s| format!("{} ({})", s.kernel, s.worst_case))
            .collect()
    }

    /// The table `gpunet selftest` prints.
    pub fn table(&self) -> String {
        let summaries = self.summaries();
        let width = summaries.iter().map(|s| s.kernel.len()).max().unwrap_or(0);
        let level = match self.level {
            Level::Quick => "quick",
            Level::Full => "full",
        };
        let mut text = format!("self-test ({level}) on {}\n", self.adapter);
        for s in &summaries {
            let verdict = if s.passed { "PASS" } else { "FAIL" };
            text += &format!(
                "{verdict}  {:width$}  {:>3} cases  max error {:.2e} (tolerance {:.2e})",
                s.kernel, s.cases, s.max_error, s.tolerance
            );
            if !s.passed {
                text += &format!(", {} failed, worst: {}", s.failed_cases, s.worst_case);
            }
            text.push('\n');
        }
        let failed = summaries.iter().filter(|s| !s.passed).count();
        text += &format!(
            "{} kernels, {} cases: {}\n",
            summaries.len(),
            self.checks.len(),
            if failed == 0 {
                "all passed".to_string()
            } else {
                format!("{failed} FAILED")
            }
        );
        text
    }
}

const PASS_NAMES: [(ConvPass, &str); 3] = [
    (ConvPass::Forward, "forward"),
    (ConvPass::BackwardInput, "backward to the input"),
    (ConvPass::BackwardWeight, "backward to the weights"),
];

/// An odd little graph with every layer kind: conv (stride 2, fused
/// activation), pool, a standalone activation, bn after a conv and after a
/// dense layer, dropout, a residual block (add), gap, flatten, dense.
const ODD_GRAPH: &str = "conv5k3s2p1,relu,pool2,tanh,bn,dropout0.3,\
res(conv5k3p1,relu,conv5k3p1),gap,flatten,dense9,bn,sigmoid,dense3";

fn graph(spec: &str, input: Shape, classes: usize) -> Result<Graph> {
    let spec = ModelSpec::parse(spec)?;
    Graph::new(&spec, input, classes).with_context(|| format!("the self-test's graph {spec}"))
}

/// Runs the self-test at `level`; `progress` hears the name of each group
/// as it starts.
pub fn run(ctx: &GpuContext, level: Level, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let mnist = Shape { c: 1, h: 28, w: 28 };
    let odd = graph(ODD_GRAPH, Shape { c: 3, h: 9, w: 7 }, 3)?;
    let mlp = graph("mlp", mnist, 10)?;
    let cnn = graph("cnn", mnist, 10)?;
    let cifar = graph("cifar", Shape { c: 3, h: 32, w: 32 }, 10)?;
    let (model_matmuls, model_convs) = match level {
        Level::Quick => (Vec::new(), Vec::new()),
        Level::Full => {
            let mut mm = kernels::dense_shapes(&mlp, 128);
            mm.extend(kernels::dense_shapes(&cnn, 128));
            let mut convs = kernels::graph_convs(&cnn, 4);
            convs.extend(kernels::graph_convs(&cifar, 2));
            (mm, convs)
        }
    };

    let all_versions = Kernels::new(ctx);
    let fault = std::env::var(FAULT_ENV).ok().filter(|f| !f.is_empty());
    let mut runner = Runner {
        ctx,
        kernels: &all_versions,
        level,
        rng: ChaCha8Rng::seed_from_u64(15),
        fault,
        checks: Vec::new(),
    };
    progress("matmul");
    kernels::matmul(&mut runner, &model_matmuls)?;
    progress("conv2d");
    kernels::conv(&mut runner, &model_convs)?;
    progress("softmax_xent, optimisers, gather");
    kernels::softmax_xent(&mut runner)?;
    kernels::optimizers(&mut runner)?;
    kernels::gather_batches(&mut runner)?;

    // The layers as the engine runs them, without the refused versions.
    let refused = Report {
        adapter: String::new(),
        level,
        checks: runner.checks.clone(),
    }
    .refused();
    let engine = Kernels::with_refused(ctx, refused);
    let mut runner = Runner {
        kernels: &engine,
        ..runner
    };
    progress("layers");
    layers::check_graph(&mut runner, "odd", &odd, 3)?;
    if level == Level::Full {
        layers::check_graph(&mut runner, "mlp", &mlp, 16)?;
        layers::check_graph(&mut runner, "cnn", &cnn, 4)?;
        layers::check_graph(&mut runner, "cifar", &cifar, 2)?;
    }
    Ok(Report {
        adapter: ctx.describe(),
        level,
        checks: runner.checks,
    })
}
