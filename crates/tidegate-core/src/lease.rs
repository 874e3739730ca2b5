//! Leases for hot keys: the `lease` option of a policy, and the accounting of the slice
//! of a key's quota one instance holds (a pure state machine over an injected clock).
//!
//! A shared store (Redis) hands an instance a slice of a key's quota in one atomic call,
//! consumed from the shared state as if that many unit-cost requests had been admitted
//! at that moment; the instance then answers from the slice locally until it is spent or
//! expires, and takes another. [`LeaseState`] is that local part: what is left, until
//! when it may be spent, and what to ask for next.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::PolicyError;

/// How much of a key's quota an instance takes at once: `lease=50` (units of cost) or
/// `lease=10%` (of the policy's capacity: `limit`, or `burst` for the buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// A number of units of cost (at least 1, at most the policy's capacity).
    Units(u64),
    /// A whole percentage of the policy's capacity (1 to 100), at least one unit.
    Percent(u8),
}

impl Lease {
    /// The slice size in units of cost for a policy of this `capacity`.
    pub fn units(self, capacity: u64) -> u64 {
        match self {
            Self::Units(n) => n.min(capacity),
            Self::Percent(p) => {
                ((u128::from(capacity) * u128::from(p) / 100) as u64).clamp(1, capacity)
            }
        }
    }

    /// Checks the lease against the policy's `capacity`.
    pub fn check(self, capacity: u64) -> Result<Self, PolicyError> {
        match self {
            Self::Units(0) => Err(PolicyError::new("lease", "must be at least 1")),
            Self::Units(n) if n > capacity => Err(PolicyError::new(
                "lease",
                format!(
                    "{n} is larger than the policy's capacity {capacity} (its limit, or burst)"
                ),
            )),
            Self::Percent(p) if p == 0 || p > 100 => Err(PolicyError::new(
                "lease",
                format!("{p}% must be a whole percentage from 1% to 100%"),
            )),
            ok => Ok(ok),
        }
    }
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Units(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for Lease {
    type Err = PolicyError;

    /// `50` or `10%`.
    fn from_str(text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        let bad = || {
            PolicyError::new(
                "lease",
                format!(
                    "`{text}` is not a lease: write units of cost (`50`) or a percentage (`10%`)"
                ),
            )
        };
        match text.strip_suffix('%') {
            Some(p) => {
                let p: u64 = p.trim().parse().map_err(|_| bad())?;
                let p = u8::try_from(p).map_err(|_| {
                    PolicyError::new(
                        "lease",
                        format!("{p}% must be a whole percentage from 1% to 100%"),
                    )
                })?;
                Ok(Self::Percent(p))
            }
            None => text
                .replace('_', "")
                .parse()
                .map(Self::Units)
                .map_err(|_| bad()),
        }
    }
}

impl<'de> Deserialize<'de> for Lease {
    /// An integer (units of cost) or a string (`"50"`, `"10%"`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LeaseVisitor;
        impl Visitor<'_> for LeaseVisitor {
            type Value = Lease;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a lease: units of cost (50) or a percentage (\"10%\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lease, E> {
                Ok(Lease::Units(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lease, E> {
                u64::try_from(v)
                    .map(Lease::Units)
                    .map_err(|_| E::custom(PolicyError::new("lease", "must be at least 1")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lease, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(LeaseVisitor)
    }
}

/// An `Option<Lease>` in 8 bytes (0 for none), as the algorithms keep it: their
/// parameters are copied into every tracker record, so they stay small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct PackedLease(u64);

impl PackedLease {
    const PERCENT: u64 = 1 << 63;

    /// Packs a checked lease (units are at most 10^15, never 0).
    pub(crate) fn new(lease: Option<Lease>) -> Self {
        match lease {
            None => Self(0),
            Some(Lease::Units(n)) => Self(n),
            Some(Lease::Percent(p)) => Self(Self::PERCENT | u64::from(p)),
        }
    }

    /// The lease packed.
    pub(crate) fn get(self) -> Option<Lease> {
        match self.0 {
            0 => None,
            v if v & Self::PERCENT != 0 => Some(Lease::Percent((v & !Self::PERCENT) as u8)),
            n => Some(Lease::Units(n)),
        }
    }
}

/// The slice of a key's quota an instance holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Units of cost not spent yet.
    pub left: u64,
    /// Local µs by which the slice must be spent: the end of the fixed window it was
    /// taken from; for a bucket, the moment the shared schedule, as the take left it,
    /// stops running ahead of now (see [`Slice::valid`]).
    pub expires_at: u64,
    /// The store's µs time of the (earliest) take, which a return of the slice names.
    pub taken_at: u64,
    /// For a bucket, its emission interval `T = period / parts` µs: each unit still held
    /// must be covered by `T` of the schedule's lead.
    pub interval: Option<(u64, u64)>,
}

impl Slice {
    /// Whether the slice may be spent (or returned) at local time `now`: before the end
    /// of its window; for a bucket while `now + left × T < expires_at`, i.e. while the
    /// shared schedule still runs ahead of now by at least the units held, so the shared
    /// bucket can never have refilled through them.
    pub fn valid(&self, now: u64) -> bool {
        match self.interval {
            None => now < self.expires_at,
            Some((period, parts)) => {
                let hold = (u128::from(self.left) * u128::from(period)).div_ceil(u128::from(parts));
                u128::from(now) + hold < u128::from(self.expires_at)
            }
        }
    }
}

/// What [`LeaseState::spend`] answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    /// Admitted from the slice: `left` units remain in it.
    Local {
        /// Units left in the slice.
        left: u64,
        /// µs until the slice's expiry: a lower bound of the time until the shared
        /// quota is full again (the rest of the window; the schedule's lead).
        reset_after: u64,
    },
    /// The store denied a take `retry_after` µs ago or less and nothing held pays:
    /// denied locally until then (denying is always within the allowance).
    Denied {
        /// µs until the store said the cost could be admitted.
        retry_after: u64,
    },
    /// The slice cannot pay: take a new one from the store (see [`Take`]).
    Take(Take),
}

/// A take to ask the store for: at least `min` units (else deny the request), up to
/// `want`. The still valid rest of the old slice is held in it until the answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Take {
    /// Fewest units that, with what is held, pay for the request.
    pub min: u64,
    /// Units to take if the store has them: a full slice, or the request's cost.
    pub want: u64,
    held: Option<Slice>,
}

/// What the store answered to a granted [`Take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Units granted (`take.min <= units <= take.want`).
    pub units: u64,
    /// Local µs when the take was sent (no later than the store's moment of the take).
    pub sent_at: u64,
    /// The store's µs time of the take.
    pub taken_at: u64,
    /// The store's `reset_after` for the take: the rest of the window, or for a bucket
    /// how far the schedule runs ahead of the take's moment.
    pub reset_after: u64,
    /// For a bucket, `T = period / parts` µs (see [`Slice::interval`]).
    pub interval: Option<(u64, u64)>,
}

/// One key's lease on one instance: at most one slice at a time.
///
/// The size of the next slice adapts: halved (down to 1) when a slice expires with
/// units left, so that a key spent more slowly than its slices last strands little,
/// and doubled back (up to the lease) each time a slice is spent in full.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaseState {
    slice: Option<Slice>,
    /// Units of the next slice; 0 for the full lease.
    size: u64,
    /// Local µs until which a denial of the store answers, and the fewest units it
    /// denied: asking for as many again before then is denied as well.
    denied_until: u64,
    denied_min: u64,
}

impl LeaseState {
    /// The slice held now, if any.
    pub fn slice(&self) -> Option<Slice> {
        self.slice
    }

    /// Pays `cost` from the slice at local time `now`, or says what to take instead
    /// (slices of up to `lease` units). A slice no longer valid is dropped (stranded).
    pub fn spend(&mut self, now: u64, cost: u64, lease: u64) -> Spend {
        let size_now = |size: u64| if size == 0 { lease } else { size.min(lease) };
        if let Some(s) = self.slice
            && !s.valid(now)
        {
            self.slice = None;
            self.size = (size_now(self.size) / 2).max(1);
        }
        let size = size_now(self.size);
        if let Some(s) = &mut self.slice
            && s.left >= cost
        {
            s.left -= cost;
            let spent = Spend::Local {
                left: s.left,
                reset_after: s.expires_at.saturating_sub(now),
            };
            if s.left == 0 {
                self.slice = None;
                self.size = size.saturating_mul(2).min(lease);
            }
            return spent;
        }
        let have = self.slice.map_or(0, |s| s.left);
        if now < self.denied_until && cost - have >= self.denied_min {
            return Spend::Denied {
                retry_after: self.denied_until - now,
            };
        }
        let held = self.slice.take();
        Spend::Take(Take {
            min: cost - have,
            want: size.max(cost) - have,
            held,
        })
    }

    /// The store granted a take: the request's `cost` is paid from the grant and what
    /// was held, and the rest becomes the slice. A window's slice expires with the
    /// earlier of the two windows; a bucket's with the new take, whose schedule covers
    /// what was held as well. Returns the units left.
    pub fn granted(&mut self, take: Take, cost: u64, grant: Grant) -> u64 {
        debug_assert!(grant.units >= take.min && grant.units <= take.want);
        let mut slice = Slice {
            left: grant.units,
            expires_at: grant.sent_at.saturating_add(grant.reset_after),
            taken_at: grant.taken_at,
            interval: grant.interval,
        };
        if let Some(h) = take.held {
            slice.left += h.left;
            slice.taken_at = slice.taken_at.min(h.taken_at);
            if slice.interval.is_none() {
                slice.expires_at = slice.expires_at.min(h.expires_at);
            }
        }
        slice.left = slice.left.saturating_sub(cost);
        self.slice = (slice.left > 0).then_some(slice);
        if slice.left == 0 && self.size != 0 {
            // Spent in full with its request.
            self.size = self.size.saturating_mul(2);
        }
        slice.left
    }

    /// The store could not answer: what was held is kept.
    pub fn refused(&mut self, take: Take) {
        self.slice = take.held;
    }

    /// The store denied the take at local time `now`, its `min` admitted only after
    /// `retry_after` µs: what was held is kept, and until then requests that would
    /// need as many units again are denied locally.
    pub fn denied(&mut self, take: Take, now: u64, retry_after: u64) {
        self.slice = take.held;
        self.denied_until = now.saturating_add(retry_after);
        self.denied_min = take.min;
    }

    /// Gives up the slice for a return to the store, if it is still valid at `now`
    /// (only a valid slice may be returned; an expired one is stranded).
    pub fn release(&mut self, now: u64) -> Option<Slice> {
        self.slice.take().filter(|s| s.left > 0 && s.valid(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_parses_units_and_percentages_and_names_the_field() {
        assert_eq!("50".parse::<Lease>().unwrap(), Lease::Units(50));
        assert_eq!("10%".parse::<Lease>().unwrap(), Lease::Percent(10));
        assert_eq!(Lease::Percent(10).to_string(), "10%");
        assert_eq!(Lease::Units(1_000).to_string(), "1000");
        let e = "ten".parse::<Lease>().unwrap_err();
        assert_eq!(e.field, "lease");
        assert!(e.reason.contains("units of cost"), "{e}");
        assert_eq!("300%".parse::<Lease>().unwrap_err().field, "lease");
        assert_eq!(
            Lease::Units(0).check(10).unwrap_err().reason,
            "must be at least 1"
        );
        assert!(
            Lease::Units(11)
                .check(10)
                .unwrap_err()
                .reason
                .contains("larger than")
        );
        assert!(Lease::Percent(0).check(10).is_err());
        assert!(Lease::Percent(101).check(10).is_err());
        assert_eq!(Lease::Percent(100).check(10), Ok(Lease::Percent(100)));
    }

    #[test]
    fn a_packed_lease_unpacks_to_itself() {
        for lease in [
            None,
            Some(Lease::Units(1)),
            Some(Lease::Units(1_000_000_000_000_000)),
            Some(Lease::Percent(1)),
            Some(Lease::Percent(100)),
        ] {
            assert_eq!(PackedLease::new(lease).get(), lease);
        }
    }

    #[test]
    fn percentage_leases_round_down_but_never_to_zero() {
        assert_eq!(Lease::Percent(10).units(1_000), 100);
        assert_eq!(Lease::Percent(10).units(5), 1);
        assert_eq!(Lease::Percent(100).units(7), 7);
        assert_eq!(Lease::Units(50).units(1_000_000_000_000_000), 50);
        assert_eq!(
            Lease::Percent(1).units(1_000_000_000_000_000),
            10_000_000_000_000
        );
    }

    fn take(state: &mut LeaseState, now: u64, cost: u64, lease: u64) -> Take {
        match state.spend(now, cost, lease) {
            Spend::Take(t) => t,
            other => panic!("expected a take, got {other:?}"),
        }
    }

    fn window(units: u64, sent_at: u64, taken_at: u64, reset_after: u64) -> Grant {
        Grant {
            units,
            sent_at,
            taken_at,
            reset_after,
            interval: None,
        }
    }

    #[test]
    fn a_fresh_state_takes_a_full_slice_then_answers_locally_until_spent() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        assert_eq!((t.min, t.want), (1, 10));
        assert_eq!(s.granted(t, 1, window(10, 0, 5, 700)), 9);
        for left in (0..9).rev() {
            assert_eq!(
                s.spend(100, 1, 10),
                Spend::Local {
                    left,
                    reset_after: 600
                }
            );
        }
        assert_eq!(s.slice(), None);
        let t = take(&mut s, 100, 1, 10);
        assert_eq!((t.min, t.want), (1, 10));
    }

    #[test]
    fn a_window_slice_is_not_spent_from_the_end_of_its_window() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 1, window(10, 1_000, 0, 500));
        assert!(matches!(
            s.spend(1_499, 1, 10),
            Spend::Local { left: 8, .. }
        ));
        let t = take(&mut s, 1_500, 1, 10);
        assert_eq!(
            (t.min, t.want),
            (1, 5),
            "the expired rest is stranded, the next slice halved"
        );
        s.refused(t);
        assert_eq!(s.slice(), None);
    }

    #[test]
    fn a_bucket_slice_must_be_spent_while_the_schedule_covers_what_is_held() {
        // T = 10 µs; the take left the schedule 100 µs ahead (a full bucket of 10 taken).
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        let grant = Grant {
            units: 10,
            sent_at: 0,
            taken_at: 0,
            reset_after: 100,
            interval: Some((10, 1)),
        };
        assert_eq!(s.granted(t, 1, grant), 9);
        // 9 held need 90 µs of lead: valid while now + 90 < 100.
        assert!(matches!(s.spend(9, 1, 10), Spend::Local { left: 8, .. }));
        // 8 held: valid while now + 80 < 100; at 20 it is not.
        let t = take(&mut s, 20, 1, 10);
        assert_eq!(s.slice(), None);
        assert_eq!(t.want, 5, "a stranded slice halves the next one");
        // A third of a microsecond per unit rounds the hold up.
        let slice = Slice {
            left: 3,
            expires_at: 3,
            taken_at: 0,
            interval: Some((1, 3)),
        };
        assert!(slice.valid(1) && !slice.valid(2));
    }

    #[test]
    fn a_denied_take_denies_locally_until_its_retry_after() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.denied(t, 100, 50);
        assert_eq!(s.spend(120, 1, 10), Spend::Denied { retry_after: 30 });
        assert!(matches!(s.spend(150, 1, 10), Spend::Take(_)));
        // A smaller request than the one denied still asks the store.
        let t = take(&mut s, 150, 3, 10);
        s.denied(t, 150, 50);
        assert_eq!(s.spend(160, 4, 10), Spend::Denied { retry_after: 40 });
        assert!(matches!(s.spend(160, 2, 10), Spend::Take(_)));
    }

    #[test]
    fn the_slice_size_halves_on_a_strand_and_doubles_back_when_spent() {
        let mut s = LeaseState::default();
        // Each slice expires with units left, but the slice of 1 is spent with its
        // request, which doubles the next.
        for (at, want) in [(0, 8), (1_000, 4), (2_000, 2), (3_000, 1), (4_000, 2)] {
            let t = take(&mut s, at, 1, 8);
            assert_eq!(t.want, want, "at {at}");
            s.granted(t, 1, window(want, at, at, 10));
        }
        assert!(matches!(s.spend(4_001, 1, 8), Spend::Local { left: 0, .. }));
        assert_eq!(take(&mut s, 4_003, 1, 8).want, 4);
    }

    #[test]
    fn a_cost_larger_than_what_is_left_merges_the_rest_with_the_new_take() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 1, window(10, 0, 7, 1_000));
        assert!(matches!(s.spend(1, 6, 10), Spend::Local { left: 3, .. }));
        let t = take(&mut s, 2, 5, 10);
        assert_eq!((t.min, t.want), (2, 7), "3 are held");
        // The store had only 4: 3 + 4 - 5 = 2 left, expiring with the older window.
        assert_eq!(s.granted(t, 5, window(4, 2, 9, 5_000)), 2);
        let slice = s.slice().unwrap();
        assert_eq!(
            (slice.left, slice.expires_at, slice.taken_at),
            (2, 1_000, 7)
        );
        // A cost above the lease asks for exactly what it misses.
        let t = take(&mut s, 3, 25, 10);
        assert_eq!((t.min, t.want), (23, 23));
    }

    #[test]
    fn a_refused_take_keeps_what_was_held_and_release_gives_up_only_a_valid_slice() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 1, window(10, 0, 42, 1_000));
        let t = take(&mut s, 1, 20, 10);
        s.refused(t);
        assert_eq!(s.slice().map(|x| x.left), Some(9));
        let back = s.release(999).unwrap();
        assert_eq!((back.left, back.taken_at), (9, 42));
        assert_eq!(s.release(999), None);
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 1, window(10, 0, 42, 1_000));
        assert_eq!(
            s.release(1_000),
            None,
            "an expired slice is stranded, not returned"
        );
    }

    #[test]
    fn random_traffic_never_spends_more_than_was_granted() {
        // A seeded walk: costs, takes, grants, expiries; the units admitted locally plus
        // those still held always equal the units granted minus the stranded ones.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut s = LeaseState::default();
        let (mut now, mut granted, mut paid, mut stranded) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..20_000 {
            now += next(50);
            let cost = 1 + next(12);
            if let Some(h) = s.slice()
                && !h.valid(now)
            {
                stranded += h.left;
            }
            match s.spend(now, cost, 8) {
                Spend::Local { .. } => paid += cost,
                Spend::Denied { retry_after } => assert!(retry_after > 0),
                Spend::Take(t) => {
                    if next(8) == 0 {
                        s.refused(t);
                    } else if next(8) == 0 {
                        s.denied(t, now, next(100));
                    } else {
                        let units = t.min + next(t.want - t.min + 1);
                        granted += units;
                        paid += cost;
                        let interval = (next(2) == 0).then(|| (1 + next(5), 1 + next(3)));
                        let grant = Grant {
                            units,
                            sent_at: now,
                            taken_at: now,
                            reset_after: 1 + next(400),
                            interval,
                        };
                        let left = s.granted(t, cost, grant);
                        assert!(left < 8, "left {left} of a slice of 8");
                    }
                }
            }
            let held = s.slice().map_or(0, |x| x.left);
            assert_eq!(paid + held + stranded, granted);
        }
    }
}
