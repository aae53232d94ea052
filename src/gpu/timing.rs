//! How long kernels take on the GPU: timestamp queries written at the start
//! and end of a compute pass where the device has `TIMESTAMP_QUERY`, wall
//! time around submit-and-wait otherwise. Used by `gpunet bench`.

use super::kernel::Dispatch;
use super::GpuContext;
use anyhow::{ensure, Result};
use std::time::Instant;

/// Queries in the timer's query set: two per timed pass.
const QUERY_CAPACITY: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// What a `GpuTimer` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingSource {
    /// Timestamps the GPU writes before and after each pass: kernel time only.
    Timestamps,
    /// Host time around submit and wait: kernel time plus launch overhead.
    WallClock,
}

impl TimingSource {
    /// One line saying how times were taken.
    pub fn describe(self) -> &'static str {
        match self {
            TimingSource::Timestamps => "GPU timestamps",
            TimingSource::WallClock => "wall clock (adapter has no timestamp queries)",
        }
    }
}

/// Pass timestamps on the device, with the buffer they are resolved into.
struct TimestampQueries {
    query_set: wgpu::QuerySet,
    /// Resolved ticks: one u64 per query.
    resolved: wgpu::Buffer,
    /// Nanoseconds per tick.
    period_ns: f64,
}

/// Times compute passes on one device.
pub struct GpuTimer {
    timestamps: Option<TimestampQueries>,
}

impl GpuTimer {
    /// A timer using timestamp queries if the device was opened with
    /// `TIMESTAMP_QUERY`, the wall clock otherwise.
    pub fn new(ctx: &GpuContext) -> GpuTimer {
        let has_timestamps = ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY);
        let period_ns = f64::from(ctx.queue.get_timestamp_period());
        let timestamps = (has_timestamps && period_ns > 0.0).then(|| TimestampQueries {
            query_set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERY_CAPACITY,
            }),
            resolved: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resolved timestamps"),
                size: u64::from(QUERY_CAPACITY) * u64::from(wgpu::QUERY_SIZE),
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period_ns,
        });
        GpuTimer { timestamps }
    }

    /// Where this timer's times come from.
    pub fn source(&self) -> TimingSource {
        match self.timestamps {
            Some(_) => TimingSource::Timestamps,
            None => TimingSource::WallClock,
        }
    }

    /// Runs each element of `passes` as its own compute pass (dispatches
    /// recorded with step slot 0) and returns each pass's duration in
    /// seconds. Waits for the GPU.
    pub fn time_passes(&self, ctx: &GpuContext, passes: &[&[Dispatch]]) -> Result<Vec<f64>> {
        match &self.timestamps {
            Some(queries) => {
                let per_submit = (QUERY_CAPACITY / 2) as usize;
                let mut seconds = Vec::with_capacity(passes.len());
                for chunk in passes.chunks(per_submit) {
                    seconds.extend(queries.time_chunk(ctx, chunk)?);
                }
                Ok(seconds)
            }
            None => passes
                .iter()
                .map(|dispatches| wall_time(ctx, dispatches))
                .collect(),
        }
    }
}

impl TimestampQueries {
    /// Records every pass into one encoder, each with a timestamp at its
    /// start and end, submits once and reads the timestamps back.
    fn time_chunk(&self, ctx: &GpuContext, passes: &[&[Dispatch]]) -> Result<Vec<f64>> {
        let queries = 2 * passes.len() as u32;
        ensure!(queries <= QUERY_CAPACITY, "too many passes to time at once");
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("timed passes"),
            });
        for (i, dispatches) in passes.iter().enumerate() {
            let start_index = 2 * i as u32;
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed pass"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &self.query_set,
                    beginning_of_pass_write_index: Some(start_index),
                    end_of_pass_write_index: Some(start_index + 1),
                }),
            });
            for d in dispatches.iter() {
                d.record(&mut pass, 0);
            }
        }
        encoder.resolve_query_set(&self.query_set, 0..queries, &self.resolved, 0);
        ctx.queue.submit([encoder.finish()]);
        // `read` copies 4-byte words: each tick count is two of them.
        let words: Vec<u32> = ctx.read(&self.resolved, 0, 2 * queries as usize)?;
        let ticks: Vec<u64> = words
            .chunks_exact(2)
            .map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32))
            .collect();
        Ok(ticks
            .chunks_exact(2)
            .map(|pair| pair[1].saturating_sub(pair[0]) as f64 * self.period_ns * 1e-9)
            .collect())
    }
}

/// Host seconds to submit one pass of `dispatches` and wait for it.
fn wall_time(ctx: &GpuContext, dispatches: &[Dispatch]) -> Result<f64> {
    ctx.wait()?;
    let start = Instant::now();
    ctx.run(dispatches);
    ctx.wait()?;
    Ok(start.elapsed().as_secs_f64())
}
