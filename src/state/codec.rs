//! The compact binary form of an event's record: what a repeat re-emits and
//! what a refund reads, in about 60 bytes for a typical purchase instead of
//! the ~500 bytes of its reward event.
//!
//! At retail scale these records dominate the state's memory (one per event
//! within the retention window), in the embedded store and in Redis alike.
//! Integers are LEB128 varints (signed ones zigzag-encoded), strings are
//! length-prefixed, decimals are a mantissa and a scale, and the common
//! shapes of `occurred_at` (`...Z` or `...+HH:MM`, whole seconds) and of
//! `rules_version` (16 hex digits) are stored as numbers. A leading format
//! byte lets the layout change later without misreading old records.
//!
//! Invariant: `decode(encode(r)) == r` for every record (tested, and by a
//! property test on generated streams).

use rust_decimal::Decimal;
use smallvec::SmallVec;

use crate::event::{Kind, Micros};
use crate::outcome::{Line, RewardRecord, RewardView, StampTouch, Status};
use crate::state::{EventRecord, MemberState, PurchaseRecord};

const FORMAT: u8 = 3;

/// Bytes before the flags: the format byte and the write time.
const HEAD: usize = 5;

/// A record being encoded: on the stack up to a size that holds every
/// typical record, so that the record kept costs one allocation, its own.
type Writer = SmallVec<[u8; 160]>;

/// Format byte of an encoded member state.
const STATE_FORMAT: u8 = 3;

/// A member's state as bytes (a format byte, then postcard: varints and
/// length-prefixed fields; lots, months and decimals through the compact
/// forms below). Event records are not part of it: stores keep them one by
/// one, so a write touches only the records that changed.
pub fn encode_state(state: &MemberState) -> Vec<u8> {
    let mut out = vec![STATE_FORMAT];
    // Serializing plain data into a vector cannot fail.
    if let Ok(bytes) = postcard::to_allocvec(state) {
        out.extend_from_slice(&bytes);
    }
    out
}

pub fn decode_state(bytes: &[u8]) -> Result<MemberState, CorruptRecord> {
    match bytes.split_first() {
        Some((&STATE_FORMAT, rest)) => postcard::from_bytes(rest).map_err(|_| CorruptRecord(1)),
        _ => Err(CorruptRecord(0)),
    }
}

/// A record that cannot be read back: the store holds something this
/// version did not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt event record at byte {0}")]
pub struct CorruptRecord(pub usize);

/// An event's record, encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StoredEvent(pub Box<[u8]>);

impl StoredEvent {
    /// Encodes a new outcome straight from its view.
    pub fn encode(occurred_at: Micros, reward: &RewardView<'_>, purchase: Option<&PurchaseRecord>) -> Self {
        let mut w = Writer::new();
        w.push(FORMAT);
        // Written-at: fixed width, right after the format byte, so that the
        // Redis store's sweep (a Lua script) reads it without decoding the
        // rest, and `stamped` sets it in place; 0 until stamped.
        w.extend_from_slice(&[0; 4]);
        let kind = match reward.kind {
            Kind::Purchase => 0,
            Kind::Refund => 1,
            Kind::Redeem => 2,
            Kind::Profile => 3,
            Kind::Adjust => 4,
        };
        let time = time_shape(occurred_at, reward.occurred_at);
        let version = hex8(reward.rules_version);
        let flags = kind
            | u8::from(reward.status == Status::Rejected) << 3
            | u8::from(reward.original_unknown) << 4
            | u8::from(reward.pending.is_some()) << 5
            | u8::from(reward.merchant_id.is_some()) << 6
            | u8::from(purchase.is_some()) << 7;
        w.push(flags);
        // Whole seconds (most POS clocks) take 5 bytes instead of 8.
        signed(&mut w, time_code(occurred_at.0));
        match time {
            TimeShape::Utc => w.push(0),
            TimeShape::Offset(minutes) => {
                w.push(1);
                signed(&mut w, i64::from(minutes));
            }
            TimeShape::Text => {
                w.push(2);
                text(&mut w, reward.occurred_at);
            }
        }
        if let Some(merchant) = reward.merchant_id {
            text(&mut w, merchant);
        }
        signed(&mut w, reward.points);
        signed(&mut w, reward.balance);
        if let Some(pending) = reward.pending {
            signed(&mut w, pending);
        }
        unsigned(&mut w, reward.lines.len() as u64);
        for &(line, points) in reward.lines {
            match line {
                Line::Expired => w.push(0),
                Line::Base => w.push(1),
                Line::Redeem => w.push(2),
                Line::Refund => w.push(3),
                Line::Adjust => w.push(4),
                Line::Tier(i) => {
                    w.push(5);
                    unsigned(&mut w, i as u64);
                }
                Line::Rule(i) => {
                    w.push(6);
                    unsigned(&mut w, i as u64);
                }
            }
            signed(&mut w, points);
        }
        unsigned(&mut w, reward.tier_before as u64);
        unsigned(&mut w, reward.tier_after as u64);
        decimal(&mut w, reward.qualifying_spend);
        unsigned(&mut w, reward.stamps.len() as u64);
        for s in reward.stamps {
            unsigned(&mut w, s.rule as u64);
            unsigned(&mut w, u64::from(s.stamps));
            unsigned(&mut w, u64::from(s.completed));
        }
        unsigned(&mut w, reward.gifts.len() as u64);
        for &g in reward.gifts {
            unsigned(&mut w, g as u64);
        }
        match version {
            Some(v) => {
                w.push(0);
                w.extend_from_slice(&v);
            }
            None => {
                w.push(1);
                text(&mut w, reward.rules_version);
            }
        }
        if let Some(p) = purchase {
            decimal(&mut w, p.total);
            signed(&mut w, p.points);
            decimal(&mut w, p.eligible);
            signed(&mut w, i64::from(p.month));
            decimal(&mut w, p.refunded);
            signed(&mut w, p.points_reversed);
            decimal(&mut w, p.spend_reversed);
        }
        Self(Box::from(w.as_slice()))
    }

    /// Encodes a whole record (after a refund updated its purchase part).
    pub fn from_record(record: &EventRecord) -> Self {
        Self::encode(record.occurred_at, &record.reward.view(), record.purchase.as_ref()).stamped(record.written_at)
    }

    /// The record with the wall-clock second it was first written (a shared
    /// store expires records by wall-clock time, as Redis does keys).
    /// Seconds past 2106 are stored as `u32::MAX`.
    pub fn stamped(mut self, written_at: u64) -> Self {
        if let Some(head) = self.0.get_mut(1..HEAD) {
            head.copy_from_slice(&u32::try_from(written_at).unwrap_or(u32::MAX).to_be_bytes());
        }
        self
    }

    /// The wall-clock second the record was first written; 0 when never
    /// stamped (the embedded store's records).
    pub fn written_at(&self) -> Result<u64, CorruptRecord> {
        match self.0.get(..HEAD) {
            Some([FORMAT, a, b, c, d]) => Ok(u64::from(u32::from_be_bytes([*a, *b, *c, *d]))),
            _ => Err(CorruptRecord(0)),
        }
    }

    /// The event's `occurred_at`, read without decoding the rest.
    pub fn occurred_at(&self) -> Result<Micros, CorruptRecord> {
        self.written_at()?;
        let mut r = Reader { bytes: &self.0, at: HEAD + 1 };
        Ok(Micros(time_from_code(r.signed()?)))
    }

    pub fn decode(&self) -> Result<EventRecord, CorruptRecord> {
        let written_at = self.written_at()?;
        let mut r = Reader { bytes: &self.0, at: HEAD };
        let flags = r.byte()?;
        let kind = match flags & 0b111 {
            0 => Kind::Purchase,
            1 => Kind::Refund,
            2 => Kind::Redeem,
            3 => Kind::Profile,
            4 => Kind::Adjust,
            _ => return Err(r.corrupt()),
        };
        let occurred_at = Micros(time_from_code(r.signed()?));
        let occurred_text: Box<str> = match r.byte()? {
            0 => render_time(occurred_at, None).ok_or(r.corrupt())?.into(),
            1 => {
                let minutes = i16::try_from(r.signed()?).map_err(|_| r.corrupt())?;
                render_time(occurred_at, Some(minutes)).ok_or(r.corrupt())?.into()
            }
            2 => r.text()?.into(),
            _ => return Err(r.corrupt()),
        };
        let merchant_id = if flags & 1 << 6 != 0 { Some(r.text()?.into()) } else { None };
        let points = r.signed()?;
        let balance = r.signed()?;
        let pending = if flags & 1 << 5 != 0 { Some(r.signed()?) } else { None };
        let count = r.count()?;
        let mut lines = Vec::with_capacity(count);
        for _ in 0..count {
            let line = match r.byte()? {
                0 => Line::Expired,
                1 => Line::Base,
                2 => Line::Redeem,
                3 => Line::Refund,
                4 => Line::Adjust,
                5 => Line::Tier(r.index()?),
                6 => Line::Rule(r.index()?),
                _ => return Err(r.corrupt()),
            };
            lines.push((line, r.signed()?));
        }
        let tier_before = r.index()?;
        let tier_after = r.index()?;
        let qualifying_spend = r.decimal()?;
        let count = r.count()?;
        let mut stamps = Vec::with_capacity(count);
        for _ in 0..count {
            let rule = r.index()?;
            let stamps_left = r.small()?;
            let completed = r.small()?;
            stamps.push(StampTouch { rule, stamps: stamps_left, completed });
        }
        let count = r.count()?;
        let mut gifts = Vec::with_capacity(count);
        for _ in 0..count {
            gifts.push(r.index()?);
        }
        let rules_version: Box<str> = match r.byte()? {
            0 => r.take(8)?.iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
            1 => r.text()?.into(),
            _ => return Err(r.corrupt()),
        };
        let purchase = if flags & 1 << 7 != 0 {
            Some(PurchaseRecord {
                total: r.decimal()?,
                points: r.signed()?,
                eligible: r.decimal()?,
                month: i32::try_from(r.signed()?).map_err(|_| r.corrupt())?,
                refunded: r.decimal()?,
                points_reversed: r.signed()?,
                spend_reversed: r.decimal()?,
            })
        } else {
            None
        };
        if r.at != r.bytes.len() {
            return Err(r.corrupt());
        }
        Ok(EventRecord {
            occurred_at,
            written_at,
            reward: RewardRecord {
                kind,
                status: if flags & 1 << 3 != 0 { Status::Rejected } else { Status::Scored },
                original_unknown: flags & 1 << 4 != 0,
                occurred_at: occurred_text,
                merchant_id,
                points,
                balance,
                pending,
                lines: lines.into(),
                tier_before,
                tier_after,
                qualifying_spend,
                stamps: stamps.into(),
                gifts: gifts.into(),
                rules_version,
            },
            purchase,
        })
    }
}

fn unsigned(w: &mut Writer, v: u64) {
    wide(w, u128::from(v));
}

/// LEB128 of a 128-bit value.
fn wide(w: &mut Writer, mut v: u128) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn signed(w: &mut Writer, v: i64) {
    unsigned(w, ((v << 1) ^ (v >> 63)) as u64);
}

fn text(w: &mut Writer, s: &str) {
    unsigned(w, s.len() as u64);
    w.extend_from_slice(s.as_bytes());
}

fn decimal(w: &mut Writer, d: Decimal) {
    let m = d.mantissa();
    wide(w, ((m << 1) ^ (m >> 127)) as u128);
    w.push(d.scale() as u8);
}

/// 16 lower-case hex digits as 8 bytes.
fn hex8(s: &str) -> Option<[u8; 8]> {
    let b = s.as_bytes();
    if b.len() != 16 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

enum TimeShape {
    /// `YYYY-MM-DDTHH:MM:SSZ`
    Utc,
    /// `YYYY-MM-DDTHH:MM:SS+HH:MM` with this offset in minutes.
    Offset(i16),
    /// Anything else valid (fractions, lower-case letters): kept as written.
    Text,
}

/// Which form `text` (a valid timestamp of instant `at`) takes.
fn time_shape(at: Micros, text: &str) -> TimeShape {
    let b = text.as_bytes();
    let shape = match b.len() {
        20 if b[19] == b'Z' => TimeShape::Utc,
        25 if matches!(b[19], b'+' | b'-') => {
            let two = |i: usize| i16::from(b[i].wrapping_sub(b'0')) * 10 + i16::from(b[i + 1].wrapping_sub(b'0'));
            let minutes = two(20) * 60 + two(23);
            TimeShape::Offset(if b[19] == b'-' { -minutes } else { minutes })
        }
        _ => return TimeShape::Text,
    };
    let offset = match shape {
        TimeShape::Offset(m) => Some(m),
        _ => None,
    };
    // Only a form that renders back to the very same text is compacted.
    let mut rendered = [0; 25];
    match render_time_into(at, offset, &mut rendered) {
        Some(len) if &rendered[..len] == b => shape,
        _ => TimeShape::Text,
    }
}

/// `at` as `YYYY-MM-DDTHH:MM:SS` and `Z` or the offset; `None` when `at` has
/// a fraction of a second or is out of range.
fn render_time(at: Micros, offset_minutes: Option<i16>) -> Option<String> {
    let mut out = [0; 25];
    let len = render_time_into(at, offset_minutes, &mut out)?;
    String::from_utf8(out[..len].to_vec()).ok()
}

/// [`render_time`] into a buffer, returning the length: every purchase's
/// record checks its timestamp's shape this way, and formatting through
/// `chrono`'s format strings costs more than the rest of the record.
fn render_time_into(at: Micros, offset_minutes: Option<i16>, out: &mut [u8; 25]) -> Option<usize> {
    use chrono::{Datelike as _, Timelike as _};
    if at.0 % Micros::PER_SECOND != 0 {
        return None;
    }
    let offset = offset_minutes.unwrap_or(0);
    if offset.unsigned_abs() >= 24 * 60 {
        return None;
    }
    let local = chrono::DateTime::from_timestamp(at.0 / Micros::PER_SECOND + i64::from(offset) * 60, 0)?.naive_utc();
    let year = u32::try_from(local.year()).ok().filter(|y| *y <= 9999)?;
    let digits = |out: &mut [u8], value: u32| {
        let mut v = value;
        for d in out.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut out[0..4], year);
    out[4] = b'-';
    digits(&mut out[5..7], local.month());
    out[7] = b'-';
    digits(&mut out[8..10], local.day());
    out[10] = b'T';
    digits(&mut out[11..13], local.hour());
    out[13] = b':';
    digits(&mut out[14..16], local.minute());
    out[16] = b':';
    digits(&mut out[17..19], local.second());
    match offset_minutes {
        None => {
            out[19] = b'Z';
            Some(20)
        }
        Some(m) => {
            out[19] = if m < 0 { b'-' } else { b'+' };
            let m = u32::from(m.unsigned_abs());
            digits(&mut out[20..22], m / 60);
            out[22] = b':';
            digits(&mut out[23..25], m % 60);
            Some(25)
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(&self) -> CorruptRecord {
        CorruptRecord(self.at)
    }

    fn byte(&mut self) -> Result<u8, CorruptRecord> {
        let b = *self.bytes.get(self.at).ok_or(self.corrupt())?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(self.corrupt())?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn unsigned(&mut self) -> Result<u64, CorruptRecord> {
        u64::try_from(self.wide()?).map_err(|_| self.corrupt())
    }

    fn wide(&mut self) -> Result<u128, CorruptRecord> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt())
    }

    fn signed(&mut self) -> Result<i64, CorruptRecord> {
        let z = self.unsigned()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    fn index(&mut self) -> Result<usize, CorruptRecord> {
        usize::try_from(self.unsigned()?).map_err(|_| self.corrupt())
    }

    fn small(&mut self) -> Result<u32, CorruptRecord> {
        u32::try_from(self.unsigned()?).map_err(|_| self.corrupt())
    }

    /// A count of items that each take at least one byte.
    fn count(&mut self) -> Result<usize, CorruptRecord> {
        let n = self.index()?;
        if n > self.bytes.len() - self.at {
            return Err(self.corrupt());
        }
        Ok(n)
    }

    fn text(&mut self) -> Result<&'a str, CorruptRecord> {
        let n = self.index()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt())
    }

    fn decimal(&mut self) -> Result<Decimal, CorruptRecord> {
        let z = self.wide()?;
        let m = (z >> 1) as i128 ^ -((z & 1) as i128);
        let scale = u32::from(self.byte()?);
        Decimal::try_from_i128_with_scale(m, scale).map_err(|_| self.corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(occurred: &str, version: &str, purchase: bool) -> EventRecord {
        let at = crate::decode::parse_timestamp(occurred).unwrap_or_default();
        EventRecord {
            occurred_at: at,
            written_at: 1_790_000_000,
            reward: RewardRecord {
                kind: Kind::Refund,
                status: Status::Rejected,
                original_unknown: true,
                occurred_at: occurred.into(),
                merchant_id: Some("fuel-co".into()),
                points: -1234,
                balance: -56,
                pending: Some(789),
                lines: vec![(Line::Expired, -3), (Line::Tier(2), 40), (Line::Rule(300), 5), (Line::Adjust, -9)].into(),
                tier_before: 1,
                tier_after: 0,
                qualifying_spend: "-1234.5678".parse().unwrap_or_default(),
                stamps: vec![StampTouch { rule: 4, stamps: 2, completed: 1_000_000 }].into(),
                gifts: vec![4, 4, 7].into(),
                rules_version: version.into(),
            },
            purchase: purchase.then(|| PurchaseRecord {
                total: "1000000000000".parse().unwrap_or_default(),
                points: 1_000_000_000_000_000,
                eligible: "0.3333333333333333333333333333".parse().unwrap_or_default(),
                month: 2026 * 12 + 10,
                refunded: "12.5".parse().unwrap_or_default(),
                points_reversed: 7,
                spend_reversed: Decimal::MAX,
            }),
        }
    }

    #[test]
    fn records_round_trip() {
        for occurred in [
            "2026-11-02T08:15:00Z",
            "2026-12-24T09:00:00+01:00",
            "2026-12-24T09:00:00-09:30",
            "2026-12-24T09:00:00.5Z",
            "2026-12-24t09:00:00z",
            "2026-12-24T09:00:00+00:00",
            "1970-01-01T00:00:00Z",
        ] {
            for version in ["0c7b4d85e48ce39e", "not-hex-version", ""] {
                for purchase in [false, true] {
                    let r = record(occurred, version, purchase);
                    let stored = StoredEvent::from_record(&r);
                    assert_eq!(stored.decode(), Ok(r), "{occurred} {version} {purchase}");
                }
            }
        }
    }

    #[test]
    fn common_shapes_are_compact() {
        let mut r = record("2026-11-02T08:15:00Z", "0c7b4d85e48ce39e", true);
        r.reward.merchant_id = None;
        r.reward.kind = Kind::Purchase;
        r.reward.lines = vec![(Line::Base, 312), (Line::Rule(1), 40), (Line::Rule(2), 200)].into();
        r.reward.stamps = vec![StampTouch { rule: 2, stamps: 0, completed: 1 }].into();
        r.reward.gifts = vec![1, 2].into();
        r.reward.qualifying_spend = "3136.00".parse().unwrap_or_default();
        r.purchase = Some(PurchaseRecord {
            total: "3120.00".parse().unwrap_or_default(),
            points: 3360,
            eligible: "3120.00".parse().unwrap_or_default(),
            month: 2026 * 12 + 10,
            refunded: Decimal::ZERO,
            points_reversed: 0,
            spend_reversed: Decimal::ZERO,
        });
        let stored = StoredEvent::from_record(&r);
        assert!(stored.0.len() <= 76, "{} bytes", stored.0.len());
        assert_eq!(stored.written_at(), Ok(1_790_000_000));
        assert_eq!(stored.decode(), Ok(r));
    }

    #[test]
    fn member_states_round_trip() {
        let mut state = MemberState { tier: "silver".into(), debt: 5, purchases: 3, ..MemberState::default() };
        state.credit(40, crate::state::Lot { earned_at: Micros(10), month: 1, release_at: Micros(10), points: 0 });
        state.credit(7, crate::state::Lot { earned_at: Micros(20), month: 1, release_at: Micros(99), points: 0 });
        state.credit(
            9,
            crate::state::Lot { earned_at: Micros(5_000_000), month: -3, release_at: Micros(9_000_000), points: 0 },
        );
        state.monthly_spend =
            vec![(24_300, "12.5".parse().unwrap_or_default()), (24_302, "-0.0001".parse().unwrap_or_default())];
        state.lifetime_spend = "3136.00".parse().unwrap_or_default();
        state.birthday = Some((2, 29));
        state.stamps.push(("card".into(), 3));
        let r = record("2026-11-02T08:15:00Z", "0c7b4d85e48ce39e", true);
        let bytes = encode_state(&state);
        // Records are stored apart from the state, one by one.
        let mut with_record = state.clone();
        with_record.events.insert("E1".into(), StoredEvent::from_record(&r));
        assert_eq!(encode_state(&with_record), bytes);
        assert_eq!(decode_state(&bytes), Ok(state));
        assert!(decode_state(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_state(&[]).is_err());
    }

    #[test]
    fn times_render_as_chrono_formats_them() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Years 1 to 9999, whole seconds; offsets within a day.
            let secs = (seed % 315_537_897_600) as i64 - 62_135_596_800;
            let offset = ((seed >> 40) % 2879) as i16 - 1439;
            for offset in [None, Some(offset), Some(0), Some(-0)] {
                let fixed = chrono::FixedOffset::east_opt(i32::from(offset.unwrap_or(0)) * 60).unwrap();
                let local = chrono::DateTime::from_timestamp(secs, 0).unwrap().with_timezone(&fixed);
                let want = match offset {
                    None => local.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    Some(_) => local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                };
                let got = render_time(Micros(secs * Micros::PER_SECOND), offset);
                if want.starts_with('-') || want.starts_with('+') || want.len() > 25 {
                    assert_eq!(got, None, "{want}");
                } else {
                    assert_eq!(got.as_deref(), Some(want.as_str()), "{secs} {offset:?}");
                }
            }
        }
        assert_eq!(render_time(Micros(1), None), None);
        assert_eq!(render_time(Micros(0), Some(24 * 60)), None);
    }

    #[test]
    fn truncated_or_altered_records_are_errors_not_panics() {
        let stored = StoredEvent::from_record(&record("2026-11-02T08:15:00Z", "0c7b4d85e48ce39e", true));
        for end in 0..stored.0.len() {
            assert!(StoredEvent(stored.0[..end].into()).decode().is_err(), "prefix of {end} bytes");
        }
        let mut longer = stored.0.to_vec();
        longer.push(0);
        assert!(StoredEvent(longer.into()).decode().is_err());
        for i in 0..stored.0.len() {
            let mut bytes = stored.0.to_vec();
            bytes[i] ^= 0xff;
            let _ = StoredEvent(bytes.into()).decode();
        }
    }
}

/// A time difference in microseconds as a number that stays short for whole
/// seconds (most POS timestamps): `seconds x 2`, or `micros x 2 + 1`.
fn time_code(delta: i64) -> i64 {
    if delta % Micros::PER_SECOND == 0 { delta / Micros::PER_SECOND * 2 } else { delta.saturating_mul(2) + 1 }
}

fn time_from_code(code: i64) -> i64 {
    if code & 1 == 0 { (code / 2).saturating_mul(Micros::PER_SECOND) } else { (code - 1) / 2 }
}

/// Serde form of lots: each relative to the one before (earning time, local
/// month), its release relative to its earning: a few bytes a lot instead of
/// two full microsecond timestamps.
pub mod serde_lots {
    use std::collections::VecDeque;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{time_code, time_from_code};
    use crate::event::Micros;
    use crate::state::Lot;

    pub fn serialize<S: Serializer>(lots: &VecDeque<Lot>, s: S) -> Result<S::Ok, S::Error> {
        let mut at = 0i64;
        let mut month = 0i32;
        let items: Vec<(i64, i64, i32, i64)> = lots
            .iter()
            .map(|l| {
                let item = (
                    time_code(l.earned_at.0 - at),
                    time_code(l.release_at.0 - l.earned_at.0),
                    l.month.wrapping_sub(month),
                    l.points,
                );
                at = l.earned_at.0;
                month = l.month;
                item
            })
            .collect();
        items.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<Lot>, D::Error> {
        let items: Vec<(i64, i64, i32, i64)> = Deserialize::deserialize(d)?;
        let mut at = 0i64;
        let mut month = 0i32;
        Ok(items
            .into_iter()
            .map(|(t, r, m, points)| {
                at = at.saturating_add(time_from_code(t));
                month = month.wrapping_add(m);
                Lot { earned_at: Micros(at), month, release_at: Micros(at.saturating_add(time_from_code(r))), points }
            })
            .collect())
    }
}

/// Serde form of a decimal: its mantissa and scale as varints, not a string.
pub mod serde_decimal {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        (d.mantissa(), d.scale() as u8).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let (mantissa, scale): (i128, u8) = Deserialize::deserialize(d)?;
        Decimal::try_from_i128_with_scale(mantissa, u32::from(scale)).map_err(serde::de::Error::custom)
    }
}

/// Serde form of spend by month: months relative to the one before,
/// decimals as mantissa and scale.
pub mod serde_monthly {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(months: &[(i32, Decimal)], s: S) -> Result<S::Ok, S::Error> {
        let mut prev = 0i32;
        let items: Vec<(i32, i128, u8)> = months
            .iter()
            .map(|(m, d)| {
                let item = (m.wrapping_sub(prev), d.mantissa(), d.scale() as u8);
                prev = *m;
                item
            })
            .collect();
        items.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(i32, Decimal)>, D::Error> {
        let items: Vec<(i32, i128, u8)> = Deserialize::deserialize(d)?;
        let mut month = 0i32;
        items
            .into_iter()
            .map(|(delta, mantissa, scale)| {
                month = month.wrapping_add(delta);
                Decimal::try_from_i128_with_scale(mantissa, u32::from(scale))
                    .map(|d| (month, d))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}
