//! `⌊(a × b + c) / m⌋` exactly: the one product in the algorithms that can outgrow 64 bits.
//!
//! A quota of 10^12 per 10 years multiplies to about 3 × 10^26, so the algorithms never
//! form such a product in `u64`: they call [`mul_add_div`], which widens to `u128` only
//! when the product does not fit. The Redis scripts mirror it with `muldiv` in
//! `algorithms.lua` (an exact shift-and-add over doubles below 2^53), and a differential
//! test checks the two agree on random operands up to 2^53.

/// `(⌊(a × b + c) / m⌋, (a × b + c) mod m)`, exact.
///
/// The callers only ask for quotients below 2^53 (a quantity of time or cost); a quotient
/// beyond `u64` saturates. `m` must not be 0.
#[inline]
pub(crate) fn mul_add_div(a: u64, b: u64, c: u64, m: u64) -> (u64, u64) {
    if let Some(n) = a.checked_mul(b).and_then(|p| p.checked_add(c)) {
        return (n / m, n % m);
    }
    let n = u128::from(a) * u128::from(b) + u128::from(c);
    let m = u128::from(m);
    // The remainder is below `m`, so it fits.
    (u64::try_from(n / m).unwrap_or(u64::MAX), (n % m) as u64)
}

/// The greatest common divisor (Euclid), for reducing `window / limit` to lowest terms.
pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_add_div_is_exact_beyond_64_bits() {
        // 10^12 per 10 years: the scaled tolerance 3.1536e26 does not fit u64.
        let ten_years = 10 * 365 * 86_400 * 1_000_000u64;
        let (q, r) = mul_add_div(1_000_000_000_000, ten_years, 7, 999_999_999_989);
        let n = 1_000_000_000_000u128 * u128::from(ten_years) + 7;
        assert_eq!(u128::from(q), n / 999_999_999_989);
        assert_eq!(u128::from(r), n % 999_999_999_989);
        assert_eq!(mul_add_div(3, 5, 1, 4), (4, 0));
        assert_eq!(mul_add_div(u64::MAX, u64::MAX, 0, 1).0, u64::MAX);
    }

    #[test]
    fn gcd_reduces_a_daily_quota_to_lowest_terms() {
        assert_eq!(gcd(86_400_000_000, 1_000_000), 1_000_000);
        assert_eq!(gcd(10_000, 3), 1);
        assert_eq!(gcd(7, 0), 7);
    }

    proptest::proptest! {
        #[test]
        fn mul_add_div_matches_u128_arithmetic(
            a in 0u64..1 << 53, b in 0u64..1 << 53, c in 0u64..1 << 53, m in 1u64..1 << 53,
        ) {
            let n = u128::from(a) * u128::from(b) + u128::from(c);
            let (q, r) = mul_add_div(a, b, c, m);
            if n / u128::from(m) <= u128::from(u64::MAX) {
                proptest::prop_assert_eq!(u128::from(q), n / u128::from(m));
                proptest::prop_assert_eq!(u128::from(r), n % u128::from(m));
            }
        }
    }
}
