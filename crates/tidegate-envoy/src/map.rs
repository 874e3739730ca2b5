//! `Map`: the hash map of the lookups every call makes (domains, the configuration
//! tree's children, the rules' limiters, the statistics counters), with aHash: std's
//! SipHash took 2-3 % of a call's instructions. Keyed per process at random, as std's
//! is, since descriptor values come from clients.

/// A `HashMap` hashed with aHash.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
