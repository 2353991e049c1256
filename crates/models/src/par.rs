//! Deterministic parallel sums over the aggregated rows of a data set.
//!
//! The rows are cut into a fixed number of chunks that depends only on the row count; each
//! chunk is summed in order and the chunk sums are added in order, so the result is the same
//! bit for bit whatever the number of threads.

use crate::data::Group;

/// Rows per chunk, at least (smaller data is one chunk).
const CHUNK_ROWS: usize = 8192;
/// Chunks, at most.
const MAX_CHUNKS: usize = 16;

/// Σ f(group, lo, hi) over the parts [lo, hi) of `groups` (which tile `0..rows` in order) that
/// fall in each chunk, using up to `threads` threads.
pub(crate) fn sum_rows(
    groups: &[Group],
    rows: usize,
    threads: usize,
    f: &(dyn Fn(&Group, usize, usize) -> f64 + Sync),
) -> f64 {
    let chunks = (rows / CHUNK_ROWS).clamp(1, MAX_CHUNKS);
    let bounds = |c: usize| (rows * c / chunks, rows * (c + 1) / chunks);
    let run = |c: usize| -> f64 {
        let (lo, hi) = bounds(c);
        let first = groups.partition_point(|g| g.end <= lo);
        let mut sum = 0.0;
        for g in &groups[first..] {
            if g.start >= hi {
                break;
            }
            sum += f(g, g.start.max(lo), g.end.min(hi));
        }
        sum
    };
    let threads = threads.clamp(1, chunks);
    let mut sums = vec![0.0; chunks];
    if threads == 1 {
        for (c, s) in sums.iter_mut().enumerate() {
            *s = run(c);
        }
    } else {
        let run = &run;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (1..threads)
                .map(|t| {
                    scope.spawn(move || {
                        (t..chunks)
                            .step_by(threads)
                            .map(|c| (c, run(c)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for c in (0..chunks).step_by(threads) {
                sums[c] = run(c);
            }
            for w in workers {
                // A panic in a worker is a bug in the likelihood code; propagate it.
                for (c, s) in w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)) {
                    sums[c] = s;
                }
            }
        });
    }
    sums.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_sum_for_any_thread_count() {
        let rows = 100_000;
        let groups = vec![
            Group {
                x: 0,
                start: 0,
                end: 10,
            },
            Group {
                x: 1,
                start: 10,
                end: 60_000,
            },
            Group {
                x: 2,
                start: 60_000,
                end: rows,
            },
        ];
        let f = |g: &Group, lo: usize, hi: usize| {
            (lo..hi)
                .map(|i| (i as f64).sqrt() * f64::from(g.x + 1))
                .sum::<f64>()
        };
        let one = sum_rows(&groups, rows, 1, &f);
        for threads in [2, 3, 7, 64] {
            assert_eq!(
                sum_rows(&groups, rows, threads, &f).to_bits(),
                one.to_bits()
            );
        }
        let naive: f64 = groups.iter().map(|g| f(g, g.start, g.end)).sum();
        assert!((one - naive).abs() < 1e-9 * naive);
    }
}
