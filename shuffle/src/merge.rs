//! k-way merging of sorted record streams, merging of equal keys across streams, and
//! multi-pass merging that bounds how many runs are open at once.

use std::cmp::Ordering;
use std::hash::Hash;
use std::sync::Arc;

use crate::error::Result;
use crate::spill::SpillRun;

/// Most runs merged (and files open) at once; more runs are first merged in groups.
pub(crate) const MAX_MERGE_FAN_IN: usize = 64;

/// Runs merged at once for a consumer under `budget`: each open run holds about three frames
/// of buffers (file buffer, stored and decoded frame), which the budget does not track, so a
/// merge may use about 1/4 of the limit for them (between 4 and 64 runs: fewer makes merges
/// take many passes). With a 64 MiB limit that is 21 runs, about 16 MiB.
pub(crate) fn merge_fan_in(budget: &crate::MemoryBudget) -> usize {
    let per_run = 3 * crate::frame::FRAME_TARGET_BYTES as u64;
    ((budget.limit_bytes() / 4 / per_run) as usize).clamp(4, MAX_MERGE_FAN_IN)
}

/// Merges streams that are each sorted by `cmp` into one sorted stream (a binary heap of
/// stream indices keyed by each stream's head). Exhausted streams are dropped at once, so
/// their spill files are deleted as soon as they have been read. Stops after an error.
pub(crate) struct SortedMerge<T, S, F> {
    sources: Vec<Option<S>>,
    heads: Vec<Option<T>>,
    heap: Vec<usize>,
    cmp: F,
    /// An error from a source, returned after the record read before it.
    pending: Option<crate::ShuffleError>,
    failed: bool,
}

impl<T, S, F> SortedMerge<T, S, F>
where
    S: Iterator<Item = Result<T>>,
    F: Fn(&T, &T) -> Ordering,
{
    /// Reads the first record of every source.
    pub(crate) fn new(sources: Vec<S>, cmp: F) -> Result<Self> {
        let mut heads = Vec::with_capacity(sources.len());
        let mut kept = Vec::with_capacity(sources.len());
        for mut s in sources {
            let head = s.next().transpose()?;
            kept.push(head.is_some().then_some(s));
            heads.push(head);
        }
        let heap = (0..heads.len()).filter(|&i| heads[i].is_some()).collect();
        let mut merge = SortedMerge {
            sources: kept,
            heads,
            heap,
            cmp,
            pending: None,
            failed: false,
        };
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i);
        }
        Ok(merge)
    }

    /// The next record, without taking it (`None` when an error comes next).
    pub(crate) fn peek(&self) -> Option<&T> {
        if self.pending.is_some() {
            return None;
        }
        let top = *self.heap.first()?;
        self.heads[top].as_ref()
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let head = |i: usize| self.heads[i].as_ref().expect("streams in the heap have a head");
        (self.cmp)(head(a), head(b)) == Ordering::Less
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                return;
            }
            let right = left + 1;
            let child = if right < n && self.less(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !self.less(self.heap[child], self.heap[i]) {
                return;
            }
            self.heap.swap(i, child);
            i = child;
        }
    }
}

impl<T, S, F> Iterator for SortedMerge<T, S, F>
where
    S: Iterator<Item = Result<T>>,
    F: Fn(&T, &T) -> Ordering,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.failed = true;
            self.sources.clear();
            return Some(Err(e));
        }
        let top = *self.heap.first()?;
        let item = self.heads[top].take().expect("streams in the heap have a head");
        let source = self.sources[top].as_mut().expect("streams in the heap are open");
        match source.next() {
            Some(Ok(next)) => self.heads[top] = Some(next),
            Some(Err(e)) => {
                self.pending = Some(e);
                self.heap.swap_remove(0);
            }
            None => {
                self.sources[top] = None;
                self.heap.swap_remove(0);
            }
        }
        self.sift_down(0);
        Some(Ok(item))
    }
}

/// A record tagged with the hash of its key, the order of aggregation runs.
pub(crate) type Hashed<K, C> = (u64, K, C);

/// The order of aggregation runs.
type ByHash<K, C> = fn(&Hashed<K, C>, &Hashed<K, C>) -> Ordering;

fn by_hash<K, C>(a: &Hashed<K, C>, b: &Hashed<K, C>) -> Ordering {
    a.0.cmp(&b.0)
}

/// Tags each record of a stream with the hash of its key.
pub(crate) fn with_hash<K: Hash, C>(
    records: impl Iterator<Item = Result<(K, C)>>,
) -> impl Iterator<Item = Result<Hashed<K, C>>> {
    records.map(|r| r.map(|(k, c)| (crate::aggregator::key_hash(&k), k, c)))
}

/// Merges streams sorted by key hash and combines equal keys with `merge_combiners`, as
/// Spark's ExternalAppendOnlyMap: all records of one hash are gathered, then merged by key
/// equality (distinct keys may share a hash). Yields each key once, in hash order.
pub(crate) struct CombiningMerge<K, C, S> {
    merge: SortedMerge<Hashed<K, C>, S, ByHash<K, C>>,
    merge_combiners: Arc<dyn Fn(C, C) -> C + Send + Sync>,
    /// The rest of the current hash group, already combined.
    ready: Vec<(K, C)>,
}

impl<K, C, S> CombiningMerge<K, C, S>
where
    K: Eq,
    S: Iterator<Item = Result<Hashed<K, C>>>,
{
    pub(crate) fn new(sources: Vec<S>, merge_combiners: Arc<dyn Fn(C, C) -> C + Send + Sync>) -> Result<Self> {
        Ok(CombiningMerge {
            merge: SortedMerge::new(sources, by_hash::<K, C> as ByHash<K, C>)?,
            merge_combiners,
            ready: Vec::new(),
        })
    }
}

impl<K, C, S> Iterator for CombiningMerge<K, C, S>
where
    K: Eq,
    S: Iterator<Item = Result<Hashed<K, C>>>,
{
    type Item = Result<(K, C)>;

    fn next(&mut self) -> Option<Result<(K, C)>> {
        if let Some(done) = self.ready.pop() {
            return Some(Ok(done));
        }
        let (hash, k, c) = match self.merge.next()? {
            Ok(first) => first,
            Err(e) => return Some(Err(e)),
        };
        self.ready.push((k, c));
        while self.merge.peek().is_some_and(|next| next.0 == hash) {
            let (_, k, c) = match self.merge.next().expect("peeked") {
                Ok(next) => next,
                Err(e) => {
                    self.ready.clear();
                    return Some(Err(e));
                }
            };
            match self.ready.iter().position(|(seen, _)| *seen == k) {
                Some(i) => {
                    let (k, acc) = self.ready.swap_remove(i);
                    self.ready.push((k, (self.merge_combiners)(acc, c)));
                }
                None => self.ready.push((k, c)),
            }
        }
        self.ready.pop().map(Ok)
    }
}

/// Merges runs, at most `fan_in` at a time, with `merge_group` until at most `max_runs`
/// remain. Runs stay in their order (a merged run takes the place of its group), so
/// concatenating runs keeps records in insertion order. When few runs are over the limit,
/// only the oldest few are merged; when many are, every consecutive group of `fan_in` is
/// merged in one pass (so each record is rewritten once per pass, as in a merge tree).
pub(crate) fn reduce_runs(
    mut runs: Vec<SpillRun>,
    max_runs: usize,
    fan_in: usize,
    mut merge_group: impl FnMut(Vec<SpillRun>) -> Result<SpillRun>,
) -> Result<Vec<SpillRun>> {
    let max_runs = max_runs.max(1);
    let fan_in = fan_in.max(2);
    while runs.len() > max_runs {
        let excess = runs.len() - max_runs;
        if excess < fan_in {
            let group: Vec<SpillRun> = runs.drain(..=excess).collect();
            let merged = merge_group(group)?;
            tracing::debug!(runs = excess + 1, bytes = merged.len_bytes(), "merged spill runs");
            runs.insert(0, merged);
            break;
        }
        let mut next = Vec::with_capacity(runs.len().div_ceil(fan_in));
        let mut rest = runs.into_iter().peekable();
        while rest.peek().is_some() {
            let group: Vec<SpillRun> = rest.by_ref().take(fan_in).collect();
            next.push(if group.len() == 1 {
                group.into_iter().next().expect("one run")
            } else {
                merge_group(group)?
            });
        }
        tracing::debug!(runs = next.len(), "merged a pass of spill runs");
        runs = next;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ShuffleError;

    fn ok<T>(v: Vec<T>) -> std::vec::IntoIter<Result<T>> {
        v.into_iter().map(Ok).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn sorted_merge_interleaves_sorted_streams() {
        let streams = vec![vec![1, 4, 9, 9], vec![], vec![2, 3, 10], vec![0, 9, 11, 12, 13]];
        let mut expected: Vec<i32> = streams.concat();
        expected.sort();
        let merged: Vec<i32> = SortedMerge::new(streams.into_iter().map(ok).collect(), i32::cmp)
            .expect("opens")
            .collect::<Result<_>>()
            .expect("merges");
        assert_eq!(merged, expected);

        let desc = vec![ok(vec![5, 3, 1]), ok(vec![6, 2])];
        let merged: Vec<i32> = SortedMerge::new(desc, |a: &i32, b: &i32| b.cmp(a))
            .expect("opens")
            .map(|r| r.expect("ok"))
            .collect();
        assert_eq!(merged, [6, 5, 3, 2, 1]);
    }

    #[test]
    fn an_error_ends_the_merge() {
        let bad: Vec<Result<i32>> = vec![Ok(1), Err(ShuffleError::corrupt("run", 0, "x")), Ok(5)];
        let merge = SortedMerge::new(vec![bad.into_iter(), vec![Ok(2), Ok(3)].into_iter()], i32::cmp).expect("opens");
        let out: Vec<Result<i32>> = merge.collect();
        assert_eq!(out.len(), 2, "one record, then the error, then nothing");
        assert!(out[1].is_err());
    }

    #[test]
    fn combining_merge_merges_equal_keys_even_when_hashes_collide() {
        // Keys 1 and 2 share hash 7 (as if they collided); key 1 is in all three streams.
        let streams = vec![
            ok(vec![(3u64, 0u32, 10u64), (7, 1, 1), (7, 2, 100)]),
            ok(vec![(7, 1, 2), (9, 5, 5)]),
            ok(vec![(7, 1, 4), (7, 3, 1000)]),
        ];
        let mut out: Vec<(u32, u64)> = CombiningMerge::new(streams, Arc::new(|a: u64, b: u64| a + b))
            .expect("opens")
            .collect::<Result<_>>()
            .expect("merges");
        out.sort();
        assert_eq!(out, [(0, 10), (1, 7), (2, 100), (3, 1000), (5, 5)]);
    }
}
