//! Sizes before allocations: what a model and a plan will hold, in bytes,
//! counted with checked arithmetic and compared with the host's available
//! memory and the adapter's buffer limits, so that a model too large for
//! the machine is refused by name ("layer 0 (dense99999999999): its weights
//! need 314 TB; this machine has 24 GB available") instead of aborting the
//! process in the allocator.

use crate::graph::Graph;
use anyhow::{bail, Result};
use std::fmt;

/// A byte count, shown in decimal units ("3.1 TB", "24 GB", "512 bytes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
        if self.0 < 1000 {
            return write!(f, "{} bytes", self.0);
        }
        let mut value = self.0 as f64 / 1000.0;
        let mut unit = 0;
        while value >= 1000.0 && unit + 1 < UNITS.len() {
            value /= 1000.0;
            unit += 1;
        }
        // Two significant figures below 10, whole numbers above.
        if value < 10.0 {
            write!(f, "{value:.1} {}", UNITS[unit])
        } else {
            write!(f, "{value:.0} {}", UNITS[unit])
        }
    }
}

/// The product of `dims`, or None when it does not fit 64 bits.
pub fn product(dims: &[usize]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
}

/// Bytes of `count` values of `size` bytes each, or None past 64 bits.
pub fn bytes_of(count: u64, size: u64) -> Option<u64> {
    count.checked_mul(size)
}

/// One thing a plan will allocate: what it is (named for the user: "layer
/// 0 (dense128): its weights") and its bytes (None: past 64 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub what: String,
    pub bytes: Option<u64>,
}

impl Need {
    pub fn new(what: impl Into<String>, bytes: Option<u64>) -> Need {
        Need {
            what: what.into(),
            bytes,
        }
    }
}

/// The memory the host can give this process now: Linux's `MemAvailable`
/// (what can be allocated without swapping). None where it is not known
/// (other systems), and then nothing is refused on the host's account.
pub fn host_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Refuses `needs` when any of them, or all of them together, exceed the
/// host's available memory; names the largest. `context` says what they
/// are for ("training with --batch 64").
pub fn check_host(needs: &[Need], context: &str) -> Result<()> {
    check_against(needs, host_available(), "this machine has", context)
}

/// Refuses any one of `needs` larger than `limit` (the adapter's largest
/// buffer); nothing is summed, since wgpu does not say how much memory the
/// device has.
pub fn check_each(needs: &[Need], limit: u64, limit_name: &str) -> Result<()> {
    for need in needs {
        match need.bytes {
            None => bail!(
                "{} need{} more than 18 EB (the byte count does not fit 64 bits)",
                need.what,
                plural(&need.what)
            ),
            Some(b) if b > limit => bail!(
                "{} need{} {}; {limit_name} is {}",
                need.what,
                plural(&need.what),
                Bytes(b),
                Bytes(limit)
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// "its weights need" but "the parameters need": the verb agrees with the
/// last word of `what`.
fn plural(what: &str) -> &'static str {
    let last = what.rsplit(' ').next().unwrap_or(what);
    if last.ends_with('s') {
        ""
    } else {
        "s"
    }
}

/// The check behind [`check_host`], with the available memory given (None:
/// unknown, so only sizes past 64 bits are refused).
pub fn check_against(
    needs: &[Need],
    available: Option<u64>,
    has: &str,
    context: &str,
) -> Result<()> {
    let context = if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    };
    let mut total: Option<u64> = Some(0);
    for need in needs {
        let Some(bytes) = need.bytes else {
            bail!(
                "{} need{} more than 18 EB{context}: the byte count does not fit 64 bits",
                need.what,
                plural(&need.what)
            );
        };
        if let Some(free) = available {
            if bytes > free {
                bail!(
                    "{} need{} {}{context}; {has} {} available",
                    need.what,
                    plural(&need.what),
                    Bytes(bytes),
                    Bytes(free)
                );
            }
        }
        total = total.and_then(|t| t.checked_add(bytes));
    }
    let largest = needs.iter().max_by_key(|n| n.bytes);
    match (total, available, largest) {
        (None, _, Some(largest)) => bail!(
            "the plan needs more than 18 EB in all{context} (largest: {})",
            largest.what
        ),
        (Some(total), Some(free), Some(largest)) if total > free => bail!(
            "the plan needs {} in all{context}, the largest part {} for {}; {has} {} available",
            Bytes(total),
            Bytes(largest.bytes.unwrap_or(0)),
            largest.what,
            Bytes(free)
        ),
        _ => Ok(()),
    }
}

/// What a planned graph holds for batches of `batch` with an optimiser of
/// `state_vectors` per-parameter vectors, one entry per part: the flat
/// parameters with their gradients and optimiser state, the batch's
/// inputs, and each node's output, gradient and saved tensors. Values are
/// 4 bytes (f32 or u32). The same parts are buffers on a GPU and vectors on
/// the CPU.
pub fn plan_needs(graph: &Graph, batch: usize, state_vectors: usize) -> Vec<Need> {
    let batch = batch as u64;
    let f32s = |n: Option<u64>| n.and_then(|n| bytes_of(n, 4));
    let mut needs = vec![
        Need::new(
            format!(
                "the parameters ({} values), their gradients and {state_vectors} optimiser state vector{}",
                graph.param_len,
                if state_vectors == 1 { "" } else { "s" }
            ),
            f32s((graph.param_len as u64).checked_mul(2 + state_vectors as u64)),
        ),
        Need::new(
            format!("a batch of {batch} inputs"),
            f32s(batch.checked_mul(graph.input_size() as u64)),
        ),
    ];
    for node in &graph.nodes {
        let per_batch = batch.checked_mul(node.output_len() as u64);
        // The output and its gradient, then what backward reads.
        let mut values = per_batch.and_then(|n| n.checked_mul(2));
        for saved in &node.saved {
            let n = if saved.per_example {
                batch.checked_mul(saved.len as u64)
            } else {
                Some(saved.len as u64)
            };
            values = values.zip(n).and_then(|(a, b)| a.checked_add(b));
        }
        needs.push(Need::new(
            format!("{}: its outputs for a batch of {batch}", node.label()),
            f32s(values),
        ));
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_in_decimal_units() {
        assert_eq!(Bytes(512).to_string(), "512 bytes");
        assert_eq!(Bytes(3_136_000_000_000).to_string(), "3.1 TB");
        assert_eq!(Bytes(24_000_000_000).to_string(), "24 GB");
        assert_eq!(Bytes(u64::MAX).to_string(), "18 EB");
    }

    #[test]
    fn products_past_64_bits_are_none() {
        assert_eq!(product(&[2, 3, 4]), Some(24));
        assert_eq!(product(&[]), Some(1));
        assert_eq!(product(&[1 << 32, 1 << 32]), None);
    }

    #[test]
    fn the_largest_part_and_the_total_are_named() {
        let needs = [
            Need::new("layer 0 (dense100): its weights", Some(4000)),
            Need::new("layer 2 (dense10): its weights", Some(400)),
        ];
        assert!(check_against(&needs, Some(10_000), "this machine has", "").is_ok());
        assert!(check_against(&needs, None, "this machine has", "").is_ok());
        let one = check_against(&needs, Some(3000), "this machine has", "")
            .unwrap_err()
            .to_string();
        assert_eq!(
            one,
            "layer 0 (dense100): its weights need 4.0 KB; this machine has 3.0 KB available"
        );
        let all = check_against(&needs, Some(4100), "this machine has", "training")
            .unwrap_err()
            .to_string();
        assert!(
            all.contains("the plan needs 4.4 KB in all (training)"),
            "{all}"
        );
        assert!(all.contains("layer 0 (dense100): its weights"), "{all}");
        let over = [Need::new("the batch's inputs", None)];
        let text = check_against(&over, None, "this machine has", "")
            .unwrap_err()
            .to_string();
        assert!(text.contains("more than 18 EB"), "{text}");
        let device = check_each(&needs, 1000, "the adapter's largest buffer")
            .unwrap_err()
            .to_string();
        assert_eq!(
            device,
            "layer 0 (dense100): its weights need 4.0 KB; the adapter's largest buffer is 1.0 KB"
        );
    }
}
