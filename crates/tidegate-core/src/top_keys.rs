//! [`TopKeys`]: the most frequent keys of a stream in fixed memory (Space-Saving,
//! Metwally, Agrawal and El Abbadi, 2005).
//!
//! At most `capacity` keys are kept, each with a count. A key already kept adds one to
//! its count; a new key takes a free place, or, when every place is taken, the place of
//! the key with the smallest count `m`, starting at `m + 1` with an error of `m`. A
//! min-heap over the counts (with each key's place in it) finds that key in O(1) and
//! keeps itself in order in O(log capacity) per update; a hash table finds a key by
//! `&str`, so a key already kept costs no allocation.
//!
//! **The bound.** Let `N` be the number of keys recorded ([`TopKeys::total`]) and `K`
//! the capacity. [`TopKeys::error_bound`] is the largest count ever displaced (0 until
//! the summary first overflows); it never exceeds `N / K`, since the `K` counts sum to
//! at most `N` and the displaced one was the smallest. Then:
//!
//! - every key reported with count `c` and error `e` was recorded between `c - e` and
//!   `c` times, and `e ≤ error_bound`;
//! - every key not reported was recorded at most `error_bound` times, so every key
//!   recorded more than `N / K` times is reported.
//!
//! [`TopKeys::remove`] forgets a key (its count starts again from zero, as if it had never
//! been recorded); a key that comes back later is counted from `error_bound + 1`, with
//! the error `error_bound`, so both statements stay true.
//!
//! Two summaries of disjoint streams (two servers) combine by adding, key by key, the
//! counts and the errors (a key missing from one side counts that side's
//! `error_bound` as both), and their totals and bounds.

use core::cmp::Ordering;

use hashbrown::HashTable;

/// One key of a [`TopKeys`] summary: its count (an over-estimate) and by how much at
/// most the count overstates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopKey {
    /// The key.
    pub key: String,
    /// How many times it was recorded, over-estimated by at most `error`.
    pub count: u64,
    /// The most `count` overstates (the key was recorded at least `count - error` times).
    pub error: u64,
}

#[derive(Debug)]
struct Slot {
    key: String,
    count: u64,
    error: u64,
    /// Where this slot is in the heap.
    pos: usize,
}

/// The most frequent keys of a stream, in memory fixed by a capacity (Space-Saving).
///
/// See the [module](self) for the error bound.
#[derive(Debug)]
pub struct TopKeys {
    capacity: usize,
    slots: Vec<Slot>,
    /// Slot indices, a min-heap by count.
    heap: Vec<usize>,
    /// Slot indices, by the hash of their key.
    index: HashTable<usize>,
    hasher: ahash::RandomState,
    /// Slots that [`TopKeys::remove`] freed.
    free: Vec<usize>,
    total: u64,
    /// The largest count ever displaced: the error bound.
    floor: u64,
}

impl TopKeys {
    /// A summary of at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            slots: Vec::new(),
            heap: Vec::new(),
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            free: Vec::new(),
            total: 0,
            floor: 0,
        }
    }

    /// The most keys kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many keys are kept now.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// How many keys were recorded in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The most any count overstates, and the most times any key not kept was recorded:
    /// the largest count ever displaced, at most `total / capacity`.
    pub fn error_bound(&self) -> u64 {
        self.floor
    }

    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(hash, |&i| slots[i].key == key).copied()
    }

    /// Counts one occurrence of `key`.
    pub fn record(&mut self, key: &str) {
        self.total = self.total.saturating_add(1);
        let hash = self.hasher.hash_one(key);
        if let Some(i) = self.find(hash, key) {
            let slot = &mut self.slots[i];
            slot.count = slot.count.saturating_add(1);
            let pos = slot.pos;
            self.sift_down(pos);
            return;
        }
        if self.heap.len() < self.capacity {
            let i = match self.free.pop() {
                Some(i) => {
                    let slot = &mut self.slots[i];
                    slot.key.clear();
                    slot.key.push_str(key);
                    i
                }
                None => {
                    self.slots.push(Slot {
                        key: key.to_owned(),
                        count: 0,
                        error: 0,
                        pos: 0,
                    });
                    self.slots.len() - 1
                }
            };
            let pos = self.heap.len();
            let slot = &mut self.slots[i];
            slot.count = self.floor.saturating_add(1);
            slot.error = self.floor;
            slot.pos = pos;
            self.heap.push(i);
            self.insert_index(hash, i);
            // Every count is at least `floor`, so `floor + 1` may sit above others.
            self.sift_up(pos);
            return;
        }
        // Full: the key with the smallest count gives its place.
        let i = self.heap[0];
        self.remove_index(i);
        let slot = &mut self.slots[i];
        let min = slot.count;
        self.floor = self.floor.max(min);
        slot.key.clear();
        slot.key.push_str(key);
        slot.count = min.saturating_add(1);
        slot.error = min;
        self.insert_index(hash, i);
        self.sift_down(0);
    }

    /// Forgets `key`; whether it was kept. Its count starts again from zero.
    pub fn remove(&mut self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        let Some(i) = self.find(hash, key) else {
            return false;
        };
        self.remove_index(i);
        let pos = self.slots[i].pos;
        let last = self.heap.len() - 1;
        self.swap(pos, last);
        self.heap.pop();
        if pos < self.heap.len() {
            self.sift_down(pos);
            self.sift_up(pos);
        }
        self.free.push(i);
        true
    }

    /// `key`'s count and error, if it is kept.
    pub fn get(&self, key: &str) -> Option<TopKey> {
        let i = self.find(self.hasher.hash_one(key), key)?;
        Some(self.top_key(i))
    }

    /// The `n` keys with the largest counts, largest first (equal counts: smaller error
    /// first, then by key).
    pub fn top(&self, n: usize) -> Vec<TopKey> {
        let mut order: Vec<usize> = self.heap.clone();
        let by_rank = |a: &usize, b: &usize| -> Ordering {
            let (a, b) = (&self.slots[*a], &self.slots[*b]);
            b.count
                .cmp(&a.count)
                .then(a.error.cmp(&b.error))
                .then_with(|| a.key.cmp(&b.key))
        };
        if n < order.len() {
            if n == 0 {
                return Vec::new();
            }
            order.select_nth_unstable_by(n - 1, by_rank);
            order.truncate(n);
        }
        order.sort_unstable_by(by_rank);
        order.into_iter().map(|i| self.top_key(i)).collect()
    }

    fn top_key(&self, i: usize) -> TopKey {
        let s = &self.slots[i];
        TopKey {
            key: s.key.clone(),
            count: s.count,
            error: s.error,
        }
    }

    fn insert_index(&mut self, hash: u64, i: usize) {
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| hasher.hash_one(slots[j].key.as_str()));
    }

    fn remove_index(&mut self, i: usize) {
        let hash = self.hasher.hash_one(self.slots[i].key.as_str());
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
    }

    fn count_at(&self, pos: usize) -> u64 {
        self.slots[self.heap[pos]].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.slots[self.heap[a]].pos = a;
        self.slots[self.heap[b]].pos = b;
    }

    fn sift_down(&mut self, mut pos: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                return;
            }
            let right = left + 1;
            let child = if right < len && self.count_at(right) < self.count_at(left) {
                right
            } else {
                left
            };
            if self.count_at(child) >= self.count_at(pos) {
                return;
            }
            self.swap(pos, child);
            pos = child;
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.count_at(parent) <= self.count_at(pos) {
                return;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn counts(t: &TopKeys) -> Vec<(String, u64, u64)> {
        t.top(usize::MAX)
            .into_iter()
            .map(|k| (k.key, k.count, k.error))
            .collect()
    }

    /// The heap is in order and every position and index entry is right.
    fn assert_consistent(t: &TopKeys) {
        for pos in 1..t.heap.len() {
            assert!(t.count_at((pos - 1) / 2) <= t.count_at(pos), "heap order");
        }
        for (pos, &i) in t.heap.iter().enumerate() {
            assert_eq!(t.slots[i].pos, pos);
            assert_eq!(
                t.find(t.hasher.hash_one(t.slots[i].key.as_str()), &t.slots[i].key),
                Some(i)
            );
        }
        assert_eq!(t.index.len(), t.heap.len());
    }

    #[test]
    fn below_capacity_counts_are_exact() {
        let mut t = TopKeys::new(3);
        for k in ["a", "b", "a", "c", "a", "b"] {
            t.record(k);
        }
        assert_eq!(
            counts(&t),
            vec![("a".into(), 3, 0), ("b".into(), 2, 0), ("c".into(), 1, 0)]
        );
        assert_eq!((t.total(), t.error_bound(), t.len()), (6, 0, 3));
    }

    #[test]
    fn a_new_key_takes_the_place_of_the_smallest_count_with_its_count_as_error() {
        let mut t = TopKeys::new(2);
        for k in ["a", "a", "a", "b", "b", "c"] {
            t.record(k);
        }
        // `b` (2) gave its place to `c`: 3 with an error of 2.
        assert_eq!(counts(&t), vec![("a".into(), 3, 0), ("c".into(), 3, 2)]);
        assert_eq!(t.error_bound(), 2);
        assert!(t.get("b").is_none());
        assert_consistent(&t);
    }

    #[test]
    fn top_returns_at_most_n_keys_largest_first() {
        let mut t = TopKeys::new(10);
        for (k, n) in [("a", 1), ("b", 5), ("c", 3), ("d", 4)] {
            for _ in 0..n {
                t.record(k);
            }
        }
        let keys: Vec<String> = t.top(2).into_iter().map(|k| k.key).collect();
        assert_eq!(keys, ["b", "d"]);
        assert!(t.top(0).is_empty());
        assert_eq!(t.top(100).len(), 4);
    }

    #[test]
    fn a_removed_key_comes_back_counted_from_the_error_bound() {
        let mut t = TopKeys::new(2);
        for k in ["a", "a", "b", "c"] {
            t.record(k);
        }
        let bound = t.error_bound();
        assert_eq!(bound, 1);
        assert!(t.remove("a"));
        assert!(!t.remove("a"));
        assert!(t.get("a").is_none());
        assert_consistent(&t);
        t.record("a");
        assert_eq!(
            t.get("a"),
            Some(TopKey {
                key: "a".into(),
                count: bound + 1,
                error: bound
            })
        );
        assert_consistent(&t);
    }

    #[test]
    fn capacity_zero_keeps_one_key() {
        let mut t = TopKeys::new(0);
        t.record("a");
        t.record("b");
        assert_eq!(t.capacity(), 1);
        assert_eq!(counts(&t), vec![("b".into(), 2, 1)]);
    }

    /// A skewed stream: key `i` of `keys` with a probability about `1 / (i + 1)^s`.
    fn zipf_stream(keys: usize, s: f64, len: usize, seed: u64) -> Vec<String> {
        let weights: Vec<f64> = (0..keys).map(|i| 1.0 / ((i + 1) as f64).powf(s)).collect();
        let sum: f64 = weights.iter().sum();
        let mut cdf = Vec::with_capacity(keys);
        let mut acc = 0.0;
        for w in &weights {
            acc += w / sum;
            cdf.push(acc);
        }
        // SplitMix64: reproducible from the seed proptest draws.
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let u = (z >> 11) as f64 / (1u64 << 53) as f64;
                let i = cdf.partition_point(|&c| c < u).min(keys - 1);
                format!("k{i}")
            })
            .collect()
    }

    /// Checks the documented bound of `t` against the exact counts.
    fn assert_bound(t: &TopKeys, exact: &HashMap<String, u64>, n: u64) {
        let k = t.capacity() as u64;
        assert!(
            t.error_bound() <= n / k,
            "bound {} > N/K {}",
            t.error_bound(),
            n / k
        );
        let reported: HashMap<String, TopKey> = t
            .top(usize::MAX)
            .into_iter()
            .map(|x| (x.key.clone(), x))
            .collect();
        for x in reported.values() {
            let truth = exact.get(&x.key).copied().unwrap_or(0);
            assert!(
                truth <= x.count,
                "{}: true {truth} > count {}",
                x.key,
                x.count
            );
            assert!(
                x.count <= truth + x.error,
                "{}: count {} > true {truth} + error {}",
                x.key,
                x.count,
                x.error
            );
            assert!(x.error <= t.error_bound());
        }
        for (key, &truth) in exact {
            if truth > n / k {
                assert!(
                    reported.contains_key(key),
                    "{key} seen {truth} > N/K {} times is missing",
                    n / k
                );
            }
            if !reported.contains_key(key) {
                assert!(
                    truth <= t.error_bound(),
                    "{key} missing with {truth} > bound {}",
                    t.error_bound()
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn on_a_skewed_stream_counts_stay_within_the_bound(
            capacity in 1usize..64,
            keys in 2usize..400,
            s in 0.6f64..1.6,
            len in 1usize..4000,
            seed in any::<u64>(),
        ) {
            let stream = zipf_stream(keys, s, len, seed);
            let mut t = TopKeys::new(capacity);
            let mut exact: HashMap<String, u64> = HashMap::new();
            for key in &stream {
                t.record(key);
                *exact.entry(key.clone()).or_default() += 1;
            }
            prop_assert_eq!(t.total(), stream.len() as u64);
            assert_consistent(&t);
            assert_bound(&t, &exact, stream.len() as u64);
        }

        #[test]
        fn removals_keep_the_bound_for_counts_since_each_removal(
            capacity in 1usize..32,
            keys in 2usize..200,
            len in 1usize..3000,
            seed in any::<u64>(),
            remove_every in 5usize..200,
        ) {
            let stream = zipf_stream(keys, 1.1, len, seed);
            let mut t = TopKeys::new(capacity);
            // Counts since each key's last removal.
            let mut exact: HashMap<String, u64> = HashMap::new();
            for (n, key) in stream.iter().enumerate() {
                t.record(key);
                *exact.entry(key.clone()).or_default() += 1;
                if n % remove_every == 0 {
                    let victim = format!("k{}", n % 3);
                    t.remove(&victim);
                    exact.remove(&victim);
                }
            }
            assert_consistent(&t);
            assert_bound(&t, &exact, stream.len() as u64);
        }
    }
}
