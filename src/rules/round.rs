//! Rounding of points, exact: every points computation is rounded once, with
//! the program's mode, from an exact value.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::rules::model::Rounding;

/// The most points one breakdown line can hold. Rules files cap fixed
/// bonuses at this; computed lines (rates x multipliers x 10^12 of spend) are
/// clamped to it, so that sums of lines and balances stay far from `i64`
/// overflow whatever a valid rules file and event hold.
pub const MAX_LINE_POINTS: i64 = 1_000_000_000_000_000;

/// `a x b`, saturating at the largest decimal instead of panicking.
pub fn product(a: Decimal, b: Decimal) -> Decimal {
    a.checked_mul(b).unwrap_or(Decimal::MAX)
}

impl Rounding {
    /// Rounds a non-negative amount of points to an integer, clamped to
    /// 0..=[`MAX_LINE_POINTS`].
    pub fn points(self, value: Decimal) -> i64 {
        let rounded = match self {
            Rounding::Floor => value.floor(),
            Rounding::HalfUp => value.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
            Rounding::HalfEven => value.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointNearestEven),
        };
        rounded
            .to_i64()
            .unwrap_or(if rounded.is_sign_negative() { 0 } else { MAX_LINE_POINTS })
            .clamp(0, MAX_LINE_POINTS)
    }

    /// `self.points(product(a, b))`, in integers when the product's mantissa
    /// fits in 64 bits (an amount of spend times a rate or a multiplier
    /// always does): the decimal product is then exact, so rounding the
    /// exact quotient by `10^scale` gives the same points without the
    /// decimal multiplication, rescaling and conversion.
    pub fn product_points(self, a: Decimal, b: Decimal) -> i64 {
        self.small_product_points(a, b).unwrap_or_else(|| self.points(product(a, b)))
    }

    /// [`Self::product_points`] when both mantissas are non-negative and
    /// their product and `10^scale` fit in a `u64`.
    fn small_product_points(self, a: Decimal, b: Decimal) -> Option<i64> {
        let x = u64::try_from(a.mantissa()).ok()?;
        let y = u64::try_from(b.mantissa()).ok()?;
        let (quotient, remainder, unit) = split_pow10(x.checked_mul(y)?, a.scale() + b.scale())?;
        // Twice the remainder against the unit, without doubling (10^19 x 2
        // would overflow).
        let rest = unit - remainder;
        let up = match self {
            Rounding::Floor => false,
            Rounding::HalfUp => remainder >= rest,
            Rounding::HalfEven => remainder > rest || (remainder == rest && quotient % 2 == 1),
        };
        // quotient < u64::MAX when unit > 1, and up is false when unit == 1.
        let rounded = quotient + u64::from(up);
        Some(i64::try_from(rounded).map_or(MAX_LINE_POINTS, |p| p.min(MAX_LINE_POINTS)))
    }

    /// Rounds `numerator / denominator` (both >= 0, denominator > 0) exactly,
    /// with no intermediate precision limit.
    pub fn ratio(self, numerator: i128, denominator: i128) -> i128 {
        debug_assert!(numerator >= 0 && denominator > 0);
        let quotient = numerator / denominator;
        let remainder = numerator % denominator;
        let up = match self {
            Rounding::Floor => false,
            Rounding::HalfUp => 2 * remainder >= denominator,
            Rounding::HalfEven => {
                let twice = 2 * remainder;
                twice > denominator || (twice == denominator && quotient % 2 == 1)
            }
        };
        quotient + i128::from(up)
    }
}

/// `(m / 10^scale, m % 10^scale, 10^scale)`, or `None` when `10^scale`
/// overflows. Amounts and rates have few places: their scales divide by a
/// constant, which compiles to a multiplication, not a `div`.
fn split_pow10(m: u64, scale: u32) -> Option<(u64, u64, u64)> {
    macro_rules! by {
        ($unit:literal) => {
            Some((m / $unit, m % $unit, $unit))
        };
    }
    match scale {
        0 => Some((m, 0, 1)),
        1 => by!(10),
        2 => by!(100),
        3 => by!(1_000),
        4 => by!(10_000),
        5 => by!(100_000),
        6 => by!(1_000_000),
        _ => {
            let unit = 10u64.checked_pow(scale)?;
            Some((m / unit, m % unit, unit))
        }
    }
}

/// The value of `d` in units of 10^-`scale` when it has at most `scale`
/// decimal places (amounts in events have at most 4).
pub fn scaled(d: Decimal, scale: u32) -> Option<i128> {
    let mut d = d;
    if d.scale() > scale {
        let n = d.normalize();
        if n.scale() > scale {
            return None;
        }
        d = n;
    }
    d.rescale(scale);
    Some(d.mantissa())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn modes_round_halves_as_named() {
        let cases = [
            ("0.5", 0, 1, 0),
            ("1.5", 1, 2, 2),
            ("2.5", 2, 3, 2),
            ("2.4999", 2, 2, 2),
            ("2.5001", 2, 3, 3),
            ("0", 0, 0, 0),
        ];
        for (v, floor, up, even) in cases {
            assert_eq!(Rounding::Floor.points(dec(v)), floor, "floor {v}");
            assert_eq!(Rounding::HalfUp.points(dec(v)), up, "half_up {v}");
            assert_eq!(Rounding::HalfEven.points(dec(v)), even, "half_even {v}");
        }
    }

    #[test]
    fn points_are_clamped_to_a_line_maximum() {
        assert_eq!(Rounding::Floor.points(Decimal::MAX), MAX_LINE_POINTS);
        assert_eq!(Rounding::Floor.points(product(Decimal::MAX, dec("2"))), MAX_LINE_POINTS);
        assert_eq!(Rounding::HalfUp.points(dec("-3")), 0);
    }

    #[test]
    fn ratio_matches_decimal_rounding() {
        for n in 0..200i128 {
            for d in 1..20i128 {
                let exact = Decimal::from_i128_with_scale(n, 0) / Decimal::from_i128_with_scale(d, 0);
                for mode in [Rounding::Floor, Rounding::HalfUp, Rounding::HalfEven] {
                    // n/d with d < 20 is exact or repeating far beyond the half point,
                    // so decimal rounding is a valid oracle here.
                    assert_eq!(mode.ratio(n, d), i128::from(mode.points(exact)), "{mode:?} {n}/{d}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn integer_products_round_as_decimal_ones(
            a in 0u64..=u64::MAX,
            sa in 0u32..=28,
            b in 0u64..=u64::MAX,
            sb in 0u32..=28,
            small in proptest::bool::ANY,
        ) {
            // Half the cases at realistic sizes, where the integer path runs.
            let (a, b) = if small { (a % 10_000_000_000_000_000, b % 100_000) } else { (a, b) };
            let (a, b) = (Decimal::from_i128_with_scale(i128::from(a), sa), Decimal::from_i128_with_scale(i128::from(b), sb));
            for mode in [Rounding::Floor, Rounding::HalfUp, Rounding::HalfEven] {
                proptest::prop_assert_eq!(mode.product_points(a, b), mode.points(product(a, b)), "{:?} {} x {}", mode, a, b);
            }
        }
    }

    #[test]
    fn integer_products_round_halves_as_named() {
        for (a, b, floor, up, even) in
            [("2.5", "1", 2, 3, 2), ("0.25", "2", 0, 1, 0), ("1.5", "1", 1, 2, 2), ("0.0001", "0.5", 0, 0, 0)]
        {
            assert_eq!(Rounding::Floor.product_points(dec(a), dec(b)), floor, "floor {a} x {b}");
            assert_eq!(Rounding::HalfUp.product_points(dec(a), dec(b)), up, "half_up {a} x {b}");
            assert_eq!(Rounding::HalfEven.product_points(dec(a), dec(b)), even, "half_even {a} x {b}");
        }
        assert_eq!(Rounding::Floor.product_points(dec("-2"), dec("3")), 0);
        assert_eq!(Rounding::Floor.product_points(Decimal::MAX, dec("2")), MAX_LINE_POINTS);
    }

    #[test]
    fn scaled_refuses_extra_places() {
        assert_eq!(scaled(dec("12.5"), 4), Some(125_000));
        assert_eq!(scaled(dec("12.50000"), 4), Some(125_000));
        assert_eq!(scaled(dec("0.00001"), 4), None);
    }
}
