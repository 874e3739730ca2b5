//! [`TopKeys`]: the most frequent keys of a stream in fixed memory (Space-Saving,
//! Metwally, Agrawal and El Abbadi, 2005).
//!
//! At most `capacity` keys are kept, each with a count. A key already kept adds one to
//! its count; a new key takes a free place, or, when every place is taken, the place of
//! a key with the smallest count `m`, starting at `m + 1` with an error of `m`. The keys
//! are kept in buckets of equal count, listed by increasing count (the "stream summary"
//! of the paper), so every update, that displacement included, is O(1); a hash table
//! finds a key by `&str`, and a displaced key's text is overwritten in place, so
//! recording allocates only while the summary fills up.
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

/// No slot, no bucket.
const NIL: u32 = u32::MAX;

/// Largest capacity (indices are `u32`).
const MAX_CAPACITY: usize = 1 << 31;

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

/// A kept key, in the list of its bucket.
#[derive(Debug)]
struct Slot {
    key: String,
    /// The hash of `key`.
    hash: u64,
    error: u64,
    /// The bucket of its count.
    bucket: u32,
    prev: u32,
    next: u32,
}

/// The keys that have one count; buckets are listed by increasing count.
#[derive(Debug)]
struct Bucket {
    count: u64,
    /// Its first slot (never `NIL` for a bucket in the list).
    head: u32,
    prev: u32,
    next: u32,
}

/// The most frequent keys of a stream, in memory fixed by a capacity (Space-Saving).
///
/// See the [module](self) for the error bound.
#[derive(Debug)]
pub struct TopKeys {
    capacity: usize,
    slots: Vec<Slot>,
    buckets: Vec<Bucket>,
    /// The bucket of the smallest count (`NIL`: no key kept).
    min: u32,
    /// Slot indices, by the hash of their key.
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    free_slots: Vec<u32>,
    free_buckets: Vec<u32>,
    len: usize,
    total: u64,
    /// The largest count ever displaced: the error bound.
    floor: u64,
}

impl TopKeys {
    /// A summary of at most `capacity` keys (at least 1, at most 2^31).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.clamp(1, MAX_CAPACITY),
            slots: Vec::new(),
            buckets: Vec::new(),
            min: NIL,
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            free_slots: Vec::new(),
            free_buckets: Vec::new(),
            len: 0,
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
        self.len
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
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

    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key == key)
            .copied()
    }

    /// Counts one occurrence of `key`.
    pub fn record(&mut self, key: &str) {
        self.total = self.total.saturating_add(1);
        let hash = self.hasher.hash_one(key);
        if let Some(i) = self.find(hash, key) {
            self.increment(i);
            return;
        }
        if self.len < self.capacity {
            let i = match self.free_slots.pop() {
                Some(i) => {
                    let slot = &mut self.slots[i as usize];
                    slot.key.clear();
                    slot.key.push_str(key);
                    slot.hash = hash;
                    i
                }
                None => {
                    self.slots.push(Slot {
                        key: key.to_owned(),
                        hash,
                        error: 0,
                        bucket: NIL,
                        prev: NIL,
                        next: NIL,
                    });
                    (self.slots.len() - 1) as u32
                }
            };
            self.slots[i as usize].error = self.floor;
            self.place(i, self.floor.saturating_add(1));
            self.insert_index(hash, i);
            self.len += 1;
            return;
        }
        // Full: a key of the smallest count gives its place.
        let i = self.buckets[self.min as usize].head;
        let min = self.buckets[self.min as usize].count;
        self.remove_index(i);
        self.floor = self.floor.max(min);
        let slot = &mut self.slots[i as usize];
        slot.key.clear();
        slot.key.push_str(key);
        slot.hash = hash;
        slot.error = min;
        self.increment(i);
        self.insert_index(hash, i);
    }

    /// Forgets `key`; whether it was kept. Its count starts again from zero.
    pub fn remove(&mut self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        let Some(i) = self.find(hash, key) else {
            return false;
        };
        self.remove_index(i);
        let b = self.detach(i);
        if self.buckets[b as usize].head == NIL {
            self.free_bucket(b);
        }
        self.free_slots.push(i);
        self.len -= 1;
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
        let mut order: Vec<TopKey> = Vec::with_capacity(self.len);
        let mut b = self.min;
        while b != NIL {
            let bucket = &self.buckets[b as usize];
            let mut i = bucket.head;
            while i != NIL {
                order.push(self.top_key(i));
                i = self.slots[i as usize].next;
            }
            b = bucket.next;
        }
        let by_rank = |a: &TopKey, b: &TopKey| -> Ordering {
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
        order
    }

    fn top_key(&self, i: u32) -> TopKey {
        let s = &self.slots[i as usize];
        TopKey {
            key: s.key.clone(),
            count: self.buckets[s.bucket as usize].count,
            error: s.error,
        }
    }

    fn insert_index(&mut self, hash: u64, i: u32) {
        let slots = &self.slots;
        self.index
            .insert_unique(hash, i, |&j| slots[j as usize].hash);
    }

    fn remove_index(&mut self, i: u32) {
        let hash = self.slots[i as usize].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
    }

    /// Adds one to slot `i`'s count: O(1), into the next bucket or a new one.
    fn increment(&mut self, i: u32) {
        let b = self.slots[i as usize].bucket;
        let (count, next) = {
            let bucket = &self.buckets[b as usize];
            (bucket.count, bucket.next)
        };
        let Some(up) = count.checked_add(1) else {
            return;
        };
        if next != NIL && self.buckets[next as usize].count == up {
            self.detach(i);
            if self.buckets[b as usize].head == NIL {
                self.free_bucket(b);
            }
            self.attach(i, next);
        } else if self.buckets[b as usize].head == i && self.slots[i as usize].next == NIL {
            // Alone in its bucket, and the next count is larger still.
            self.buckets[b as usize].count = up;
        } else {
            self.detach(i);
            let n = self.new_bucket(up, b, next);
            self.attach(i, n);
        }
    }

    /// Puts the detached slot `i` in the bucket of `count` (made if missing). Every
    /// count is at least `floor`, so from `floor + 1` this looks at two buckets at most.
    fn place(&mut self, i: u32, count: u64) {
        let (mut prev, mut cur) = (NIL, self.min);
        while cur != NIL && self.buckets[cur as usize].count < count {
            prev = cur;
            cur = self.buckets[cur as usize].next;
        }
        if cur != NIL && self.buckets[cur as usize].count == count {
            self.attach(i, cur);
        } else {
            let n = self.new_bucket(count, prev, cur);
            self.attach(i, n);
        }
    }

    /// A bucket of `count` (with no slot yet) between `prev` and `next`.
    fn new_bucket(&mut self, count: u64, prev: u32, next: u32) -> u32 {
        let bucket = Bucket {
            count,
            head: NIL,
            prev,
            next,
        };
        let b = match self.free_buckets.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        match prev {
            NIL => self.min = b,
            p => self.buckets[p as usize].next = b,
        }
        if next != NIL {
            self.buckets[next as usize].prev = b;
        }
        b
    }

    /// Takes the empty bucket `b` out of the list.
    fn free_bucket(&mut self, b: u32) {
        let (prev, next) = {
            let bucket = &self.buckets[b as usize];
            (bucket.prev, bucket.next)
        };
        match prev {
            NIL => self.min = next,
            p => self.buckets[p as usize].next = next,
        }
        if next != NIL {
            self.buckets[next as usize].prev = prev;
        }
        self.free_buckets.push(b);
    }

    /// Slot `i` first in bucket `b`.
    fn attach(&mut self, i: u32, b: u32) {
        let head = self.buckets[b as usize].head;
        let slot = &mut self.slots[i as usize];
        slot.bucket = b;
        slot.prev = NIL;
        slot.next = head;
        if head != NIL {
            self.slots[head as usize].prev = i;
        }
        self.buckets[b as usize].head = i;
    }

    /// Takes slot `i` out of its bucket's list (the bucket may be left empty); its bucket.
    fn detach(&mut self, i: u32) -> u32 {
        let Slot {
            bucket, prev, next, ..
        } = self.slots[i as usize];
        match prev {
            NIL => self.buckets[bucket as usize].head = next,
            p => self.slots[p as usize].next = next,
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        bucket
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

    /// Buckets are listed by increasing count, none empty, and every slot's links,
    /// bucket, hash and index entry are right.
    fn assert_consistent(t: &TopKeys) {
        let (mut b, mut prev_bucket, mut last, mut seen) = (t.min, NIL, None, 0);
        while b != NIL {
            let bucket = &t.buckets[b as usize];
            assert_eq!(bucket.prev, prev_bucket);
            assert!(last < Some(bucket.count), "counts increase");
            assert!(bucket.count >= t.floor, "counts are at least the bound");
            assert_ne!(bucket.head, NIL, "no empty bucket");
            let (mut i, mut prev) = (bucket.head, NIL);
            while i != NIL {
                let slot = &t.slots[i as usize];
                assert_eq!((slot.bucket, slot.prev), (b, prev));
                assert_eq!(slot.hash, t.hasher.hash_one(slot.key.as_str()));
                assert_eq!(t.find(slot.hash, &slot.key), Some(i));
                seen += 1;
                prev = i;
                i = slot.next;
            }
            last = Some(bucket.count);
            prev_bucket = b;
            b = bucket.next;
        }
        assert_eq!(seen, t.len());
        assert_eq!(t.index.len(), t.len());
        assert!(t.len() <= t.capacity());
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
                    assert_consistent(&t);
                }
            }
            assert_consistent(&t);
            assert_bound(&t, &exact, stream.len() as u64);
        }
    }
}
