//! Timestamp identifiers (<https://atproto.com/specs/tid>) and the clock that issues them.
//!
//! A TID is a 64-bit integer written as 13 characters of "base32-sortable" (`234567abcdefghijklmnopqrstuvwxyz`,
//! most significant first), so string order equals numeric order. Layout: top bit 0, then 53 bits
//! of microseconds since the UNIX epoch, then a 10-bit clock identifier.
//!
//! Tricky bits: 13 characters carry 65 bits, so the syntax only forces the 65th bit to zero (first
//! character `2`..`j`); a TID whose first character is `c`..`j` parses (upstream accepts it) but
//! has the 64th bit set, i.e. more than 53 bits of microseconds. [`Tid::micros`] then returns up to
//! 54 bits. [`TidClock`] only issues spec-conformant TIDs.

use crate::error::{Kind, Reason, SyntaxError};

/// Length of a TID string.
pub const TID_LEN: usize = 13;

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
const CLOCK_BITS: u32 = 10;
const CLOCK_MASK: u64 = (1 << CLOCK_BITS) - 1;
/// Largest microsecond count a spec-conformant TID holds (53 bits, about the year 2255).
pub const MAX_TID_MICROS: u64 = (1 << 53) - 1;
/// Largest clock identifier (10 bits).
pub const MAX_CLOCK_ID: u16 = (1 << CLOCK_BITS) - 1;

string_newtype!(
    /// A syntactically valid TID, such as `3jzfcijpj2z2a`.
    ///
    /// 13 characters of base32-sortable, the first one of `234567abcdefghij`. Case-sensitive.
    /// Ordering (`Ord`, and plain string comparison) is numeric, hence chronological.
    Tid,
    check
);

impl Tid {
    /// Builds the TID for `micros` since the UNIX epoch and `clock_id`.
    ///
    /// Only the low 54 bits of `micros` and the low 10 bits of `clock_id` are used (54 so that every
    /// parsed TID round-trips through [`Tid::micros`]; conformant TIDs use 53).
    pub fn from_parts(micros: u64, clock_id: u16) -> Tid {
        let micros = micros & ((1 << 54) - 1);
        Tid::from_u64((micros << CLOCK_BITS) | (u64::from(clock_id) & CLOCK_MASK))
    }

    /// The TID whose 64-bit value is `value` (any `u64` is encodable).
    pub fn from_u64(value: u64) -> Tid {
        let mut out = String::with_capacity(TID_LEN);
        for i in (0..TID_LEN).rev() {
            // 5 * 12 = 60: the first character takes bits 64..60, of which bit 64 is always 0.
            let digit = (value >> (5 * i)) & 0x1f;
            out.push(char::from(ALPHABET[digit as usize]));
        }
        Tid(out)
    }

    /// The 64-bit value.
    pub fn to_u64(&self) -> u64 {
        self.0.bytes().fold(0u64, |acc, b| {
            (acc << 5) | u64::from(digit_value(b).unwrap_or(0))
        })
    }

    /// Microseconds since the UNIX epoch (bits 10 and up).
    pub fn micros(&self) -> u64 {
        self.to_u64() >> CLOCK_BITS
    }

    /// The clock identifier (low 10 bits).
    pub fn clock_id(&self) -> u16 {
        // Masked to 10 bits, so the conversion cannot fail.
        u16::try_from(self.to_u64() & CLOCK_MASK).unwrap_or(MAX_CLOCK_ID)
    }
}

fn digit_value(b: u8) -> Option<u8> {
    match b {
        b'2'..=b'7' => Some(b - b'2'),
        b'a'..=b'z' => Some(b - b'a' + 6),
        _ => None,
    }
}

fn check(s: &str) -> Result<(), SyntaxError> {
    check_reason(s).map_err(|reason| SyntaxError::new(Kind::Tid, reason))
}

fn check_reason(s: &str) -> Result<(), Reason> {
    if let Some((at, ch)) = s
        .char_indices()
        .find(|&(_, c)| !u8::try_from(c).is_ok_and(|b| digit_value(b).is_some()))
    {
        return Err(Reason::InvalidChar { ch, at });
    }
    if s.len() != TID_LEN {
        return Err(Reason::WrongLength {
            len: s.len(),
            expected: TID_LEN,
        });
    }
    match s.bytes().next().and_then(digit_value) {
        Some(first) if first < 16 => Ok(()),
        _ => Err(Reason::HighBitSet),
    }
}

/// Issues TIDs that never repeat and never go back, whatever the wall clock does.
///
/// The time is an argument (`now_micros`), so the clock is deterministic in tests. Each TID is
/// greater than every TID this clock issued or [observed](TidClock::observe) before: when
/// `now_micros` stalls or goes backwards, the clock issues the next free microsecond instead.
/// It saturates at the largest `u64` TID, which no real clock reaches.
#[derive(Debug, Clone)]
pub struct TidClock {
    clock_id: u16,
    last: Option<u64>,
}

impl TidClock {
    /// A clock with this identifier (low 10 bits used), which has issued nothing yet.
    pub fn new(clock_id: u16) -> TidClock {
        TidClock {
            clock_id: clock_id & MAX_CLOCK_ID,
            last: None,
        }
    }

    /// The clock identifier stamped in every TID of this clock.
    pub fn clock_id(&self) -> u16 {
        self.clock_id
    }

    /// The next TID: `now_micros` (capped at [`MAX_TID_MICROS`]) if that is greater than everything
    /// issued or observed so far, otherwise the smallest greater TID with this clock's identifier.
    pub fn next(&mut self, now_micros: u64) -> Tid {
        let id = u64::from(self.clock_id);
        let mut value = (now_micros.min(MAX_TID_MICROS) << CLOCK_BITS) | id;
        if let Some(last) = self.last
            && value <= last
        {
            let floor_micros = last >> CLOCK_BITS;
            let micros = if id > last & CLOCK_MASK {
                floor_micros
            } else {
                floor_micros.saturating_add(1)
            };
            value = micros
                .checked_mul(1 << CLOCK_BITS)
                .map_or(u64::MAX, |v| v | id)
                .max(last);
        }
        self.last = Some(value);
        Tid::from_u64(value)
    }

    /// Records a TID seen elsewhere (say, the latest repo revision); the next TID will be greater.
    pub fn observe(&mut self, tid: &Tid) {
        let value = tid.to_u64();
        self.last = Some(self.last.map_or(value, |last| last.max(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Tid>().unwrap_err().reason
    }

    #[test]
    fn known_values() {
        assert_eq!(Tid::from_u64(0).as_str(), "2222222222222");
        assert_eq!(Tid::from_u64(u64::MAX).as_str(), "jzzzzzzzzzzzz");
        assert_eq!(Tid::from_u64(i64::MAX as u64).as_str(), "bzzzzzzzzzzzz");
        let tid: Tid = "3jzfcijpj2z2a".parse().unwrap();
        assert_eq!(Tid::from_parts(tid.micros(), tid.clock_id()), tid);
        assert_eq!(tid.clock_id(), 6);
    }

    #[test]
    fn reasons() {
        assert_eq!(
            reason("3jzfcijpj2z21"),
            Reason::InvalidChar { ch: '1', at: 12 }
        );
        assert_eq!(
            reason("3JZFCIJPJ2Z2A"),
            Reason::InvalidChar { ch: 'J', at: 1 }
        );
        assert_eq!(
            reason("222"),
            Reason::WrongLength {
                len: 3,
                expected: 13
            }
        );
        assert_eq!(reason("kjzfcijpj2z2a"), Reason::HighBitSet);
        assert_eq!(
            reason(""),
            Reason::WrongLength {
                len: 0,
                expected: 13
            }
        );
    }

    #[test]
    fn clock_handles_stalls_and_observations() {
        let mut clock = TidClock::new(5);
        let a = clock.next(1000);
        assert_eq!((a.micros(), a.clock_id()), (1000, 5));
        let b = clock.next(1000);
        assert_eq!((b.micros(), b.clock_id()), (1001, 5));
        let c = clock.next(10);
        assert_eq!(c.micros(), 1002);
        clock.observe(&Tid::from_parts(5000, 9));
        let d = clock.next(4000);
        assert_eq!((d.micros(), d.clock_id()), (5001, 5));
        clock.observe(&Tid::from_parts(6000, 1));
        let e = clock.next(0);
        assert_eq!((e.micros(), e.clock_id()), (6000, 5));
    }

    #[test]
    fn clock_saturates_without_panicking() {
        let mut clock = TidClock::new(3);
        clock.observe(&Tid::from_u64(u64::MAX));
        assert_eq!(clock.next(0).to_u64(), u64::MAX);
        assert_eq!(clock.next(u64::MAX).to_u64(), u64::MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parts_round_trip(micros in 0u64..(1 << 54), clock_id in 0u16..1024) {
            let tid = Tid::from_parts(micros, clock_id);
            prop_assert_eq!(tid.micros(), micros);
            prop_assert_eq!(tid.clock_id(), clock_id);
            let parsed: Tid = tid.to_string().parse().unwrap();
            prop_assert_eq!(&parsed, &tid);
            prop_assert_eq!(Tid::from_u64(tid.to_u64()), tid);
        }

        #[test]
        fn string_order_is_numeric_order(a in any::<u64>(), b in any::<u64>()) {
            let (ta, tb) = (Tid::from_u64(a), Tid::from_u64(b));
            prop_assert!(ta.as_str().parse::<Tid>().is_ok());
            prop_assert_eq!(ta.as_str().cmp(tb.as_str()), a.cmp(&b));
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
        }

        #[test]
        fn clock_is_strictly_monotonic(
            clock_id in 0u16..1024,
            steps in proptest::collection::vec((0u64..(1 << 53), any::<bool>(), any::<u64>()), 1..64),
        ) {
            let mut clock = TidClock::new(clock_id);
            let mut floor: Option<Tid> = None;
            for (now, observe, seen) in steps {
                if observe {
                    let seen = Tid::from_u64(seen >> 12);
                    clock.observe(&seen);
                    floor = floor.max(Some(seen));
                }
                let tid = clock.next(now);
                prop_assert_eq!(tid.clock_id(), clock_id);
                if let Some(prev) = &floor {
                    prop_assert!(&tid > prev, "{} not after {}", tid, prev);
                }
                prop_assert!(tid.micros() >= now.min(MAX_TID_MICROS));
                floor = Some(tid);
            }
        }
    }
}
