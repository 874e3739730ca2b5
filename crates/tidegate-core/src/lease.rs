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

/// The slice of a key's quota an instance holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Units of cost not spent yet.
    pub left: u64,
    /// Local µs from which the slice may no longer be spent.
    pub expires_at: u64,
    /// The store's µs time of the (earliest) take, which a return of the slice names.
    pub taken_at: u64,
    /// Local µs when the shared quota is full again, as the store said at the take.
    pub reset_at: u64,
}

/// What [`LeaseState::spend`] answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    /// Admitted from the slice: `left` units remain in it; the shared quota is full
    /// again after `reset_after` µs (as of the take).
    Local {
        /// Units left in the slice.
        left: u64,
        /// µs until the shared quota is full again, as of the take.
        reset_after: u64,
    },
    /// The slice cannot pay: take a new one from the store (see [`Take`]).
    Take(Take),
}

/// A take to ask the store for: at least `min` units (else deny the request), up to
/// `want`. The unexpired rest of the old slice is held in it until the answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Take {
    /// Fewest units that, with what is held, pay for the request.
    pub min: u64,
    /// Units to take if the store has them: a full slice, or the request's cost.
    pub want: u64,
    held: Option<Slice>,
}

/// One key's lease on one instance: at most one slice at a time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaseState {
    slice: Option<Slice>,
}

impl LeaseState {
    /// The slice held now, if any.
    pub fn slice(&self) -> Option<Slice> {
        self.slice
    }

    /// Pays `cost` from the slice at local time `now`, or says what to take instead
    /// (slices of `lease` units). An expired slice is dropped (stranded).
    pub fn spend(&mut self, now: u64, cost: u64, lease: u64) -> Spend {
        if self.slice.is_some_and(|s| now >= s.expires_at) {
            self.slice = None;
        }
        if let Some(s) = &mut self.slice
            && s.left >= cost
        {
            s.left -= cost;
            let spent = Spend::Local {
                left: s.left,
                reset_after: s.reset_at.saturating_sub(now),
            };
            if s.left == 0 {
                self.slice = None;
            }
            return spent;
        }
        let held = self.slice.take();
        let have = held.map_or(0, |s| s.left);
        Spend::Take(Take {
            min: cost - have,
            want: lease.max(cost) - have,
            held,
        })
    }

    /// The store granted `grant` units (`take.min <= grant <= take.want`) to a take
    /// sent at local time `sent_at`: the request's `cost` is paid from them and what
    /// was held, and the rest becomes the slice, spendable for `lifetime` µs from
    /// `sent_at` (and no longer than what was held). `taken_at` is the store's time of
    /// the take, `reset_after` its µs until the quota is full. Returns the units left.
    #[allow(clippy::too_many_arguments)]
    pub fn granted(
        &mut self,
        take: Take,
        sent_at: u64,
        cost: u64,
        grant: u64,
        lifetime: u64,
        taken_at: u64,
        reset_after: u64,
    ) -> u64 {
        debug_assert!(grant >= take.min && grant <= take.want);
        let mut slice = Slice {
            left: grant,
            expires_at: sent_at.saturating_add(lifetime),
            taken_at,
            reset_at: sent_at.saturating_add(reset_after),
        };
        if let Some(h) = take.held {
            slice.left += h.left;
            slice.expires_at = slice.expires_at.min(h.expires_at);
            slice.taken_at = slice.taken_at.min(h.taken_at);
        }
        slice.left = slice.left.saturating_sub(cost);
        self.slice = (slice.left > 0).then_some(slice);
        slice.left
    }

    /// The store denied the take, or could not answer: what was held is kept.
    pub fn refused(&mut self, take: Take) {
        self.slice = take.held;
    }

    /// Gives up the slice (for a return to the store): its unspent units and the
    /// store's time of its take. The store decides what of it may still be refunded.
    pub fn release(&mut self) -> Option<Slice> {
        self.slice.take().filter(|s| s.left > 0)
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

    #[test]
    fn a_fresh_state_takes_a_full_slice_then_answers_locally_until_spent() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        assert_eq!((t.min, t.want), (1, 10));
        assert_eq!(s.granted(t, 0, 1, 10, 1_000, 5, 700), 9);
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
    fn a_slice_is_not_spent_from_its_expiry_on() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 1_000, 1, 10, 500, 0, 500);
        assert!(matches!(
            s.spend(1_499, 1, 10),
            Spend::Local { left: 8, .. }
        ));
        let t = take(&mut s, 1_500, 1, 10);
        assert_eq!((t.min, t.want), (1, 10), "the expired rest is stranded");
        s.refused(t);
        assert_eq!(s.slice(), None);
    }

    #[test]
    fn a_cost_larger_than_what_is_left_merges_the_rest_with_the_new_take() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 0, 1, 10, 1_000, 7, 1_000);
        assert!(matches!(s.spend(1, 6, 10), Spend::Local { left: 3, .. }));
        let t = take(&mut s, 2, 5, 10);
        assert_eq!((t.min, t.want), (2, 7), "3 are held");
        // The store had only 4: 3 + 4 - 5 = 2 left, expiring with the older slice.
        assert_eq!(s.granted(t, 2, 5, 4, 5_000, 9, 5_000), 2);
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
    fn a_refused_take_keeps_what_was_held_and_release_gives_it_up() {
        let mut s = LeaseState::default();
        let t = take(&mut s, 0, 1, 10);
        s.granted(t, 0, 1, 10, 1_000, 42, 1_000);
        let t = take(&mut s, 1, 20, 10);
        s.refused(t);
        assert_eq!(s.slice().map(|x| x.left), Some(9));
        let back = s.release().unwrap();
        assert_eq!((back.left, back.taken_at), (9, 42));
        assert_eq!(s.release(), None);
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
            let held_before = s.slice();
            match s.spend(now, cost, 8) {
                Spend::Local { .. } => paid += cost,
                Spend::Take(t) => {
                    if let Some(h) = held_before
                        && t.held.is_none()
                    {
                        stranded += h.left;
                    }
                    if next(4) == 0 {
                        s.refused(t);
                    } else {
                        let grant = t.min + next(t.want - t.min + 1);
                        granted += grant;
                        paid += cost;
                        let left = s.granted(t, now, cost, grant, 1 + next(400), now, 0);
                        assert!(left < 8, "left {left} of a slice of 8");
                    }
                }
            }
            let held = s.slice().map_or(0, |x| x.left);
            assert_eq!(paid + held + stranded, granted);
        }
    }
}
