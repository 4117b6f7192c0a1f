//! Decoding: message bytes -> [`Event`] or a [`DecodeError`] carrying the
//! contract's reason (section 5).
//!
//! Owns the input contract (section 1) and its invalid-input verdicts; nothing
//! downstream re-validates an [`Event`]. It must not score, log or count: the
//! pipeline does that with the returned reason.
//!
//! # Zero copy, zero allocation
//!
//! A [`Decoder`] copies each message once into a buffer it owns, pads it, and
//! lets simd-json build its tape over that buffer (strings are unescaped in
//! place), so every string of an [`Event`] borrows the buffer. The tape, the
//! parser's buffers and the items arena are kept across calls; once they
//! have grown to the largest message seen, decoding a valid event allocates
//! nothing. Only errors allocate (their `detail`), and the first message of
//! ordinary size after a large one (over [`KEPT_MESSAGE_BYTES`]), which
//! starts again from fresh buffers rather than keep the large ones.
//!
//! The items live in a [`bumpalo::Bump`] reset at each call rather than in a
//! reused `Vec<Item<'a>>`: such a vector would have to be stored in the
//! decoder with the lifetime of the borrow of the decoder itself, which safe
//! Rust cannot name (the crate denies `unsafe`). The arena hands out
//! `&'a [Item<'a>]` safely and keeps its memory across resets.
//!
//! # Verdicts
//!
//! Reasons are checked in the contract's order and the first that applies
//! wins; within one reason the detail names the first bad field in this order:
//! `event_id`, `kind`, `member_id`, `program`, `merchant_id`, `store_id`,
//! `channel`, `occurred_at`, `currency`, `total`, `items` (first `items` for
//! more than [`MAX_ITEMS`] of them, then element by element: `items` for a
//! non-object, then `items.sku`, `items.category`, `items.quantity`,
//! `items.amount`), `original_event_id`, `points`, `birth_date`, `reason`.
//!
//! - `invalid_json` is a property of the document, decided before `kind` is
//!   read: a top-level value that is not an object, a key repeated in the
//!   event object (known or unknown keys) or in an object of an `items` array
//!   (whatever the kind; keys inside unknown fields are not checked), and
//!   nesting deeper than [`MAX_DEPTH`] levels. The event object is level 1,
//!   so `{"x":[[...]]}` with 127 arrays is accepted and with 128 rejected.
//! - `unknown_kind` (none of the five kinds below): the detail is the
//!   string, or for a non-string the JSON text re-serialized from the parsed
//!   value (`true`, `5`, `1.5`, `1e300`; equal to the written text for
//!   integers and shortest-form floats), or `object` / `array`.
//! - Fields a kind does not use are ignored, as are unknown fields.
//! - A `program` of the wrong type is `invalid_field` `program`; the currency
//!   is then not compared (there is no program to compare with).
//! - Numbers simd-json cannot hold (`1e400`, `100000000000000000000`) are
//!   replaced, on a cold path after the first parse fails, by `1e300` /
//!   `-1e300`, which keeps their verdict as written: `invalid_amount` in an
//!   amount, `invalid_field` in `quantity` or `points`, ignored elsewhere.
//!   As a `kind`, such a number is reported as `1e300`.
//!
//! # Kinds
//!
//! `kind` is `purchase` (the default), `refund`, `redeem`, `profile` or
//! `adjust`. Each kind reads its own fields and ignores the others (see
//! `scoring.md` section 1 and `scoring-v2.md` section 1):
//!
//! | kind | required | optional, kind-specific |
//! |---|---|---|
//! | `purchase` | `event_id`, `occurred_at`, `currency`, `total` | `items` |
//! | `refund` | `event_id`, `occurred_at`, `currency`, `total`, `original_event_id` | |
//! | `redeem` | `event_id`, `occurred_at`, `points` (1..=10^9) | |
//! | `profile` | `event_id`, `member_id`, `occurred_at` | `birth_date` |
//! | `adjust` | `event_id`, `member_id`, `occurred_at`, `points` (non-zero, -10^9..=10^9) | `reason` |
//!
//! Every kind also reads `program`, `member_id` and the three optional
//! strings `merchant_id`, `store_id` and `channel` (type-checked: a
//! non-string is `invalid_field`), so the reward event can echo
//! `merchant_id` whatever the kind. `member_id` absent or `null` means an
//! anonymous event for `purchase`, `refund` and `redeem`, and is
//! `missing_field` `member_id` for `profile` and `adjust`, which only make
//! sense for a member. `currency_mismatch` cannot arise for the kinds that
//! have no currency (`redeem`, `profile`, `adjust`).
//!
//! - `birth_date` is a string written exactly `YYYY-MM-DD` that is a real
//!   calendar date of the years 0001..=9999 (29 February only in leap
//!   years); anything else, including a timestamp or a number, is
//!   `invalid_field` `birth_date`. It is not compared with `occurred_at`: a
//!   birth date after the event is accepted, since the CRM owns the value
//!   and the decoder judges its form, not its plausibility.
//! - `reason` is a string of at most 64 bytes (after JSON unescaping, like
//!   every length here; the empty string is accepted); anything else is
//!   `invalid_field` `reason`.
//! - An adjust's `points` is a JSON integer: `0`, a float (`5.0`), a number
//!   outside -10^9..=10^9 or a non-number is `invalid_field` `points`.
//!
//! # Limits
//!
//! Everything one message can make the scorer keep, echo or loop over is
//! bounded, and going over a bound is a dead letter with the reason the
//! contract implies (`docs/semantics.md` has the table): the message size
//! (`too_large`), the nesting depth ([`MAX_DEPTH`], `invalid_json`), and, as
//! `invalid_field` naming the field, the ids ([`MAX_EVENT_ID_BYTES`],
//! [`MAX_MEMBER_ID_BYTES`]), the other strings the scorer reads
//! ([`MAX_NAME_BYTES`]; `reason`, 64 bytes), `occurred_at`
//! ([`MAX_TIMESTAMP_BYTES`]) and the number of items ([`MAX_ITEMS`]).
//! [`MAX_NAME_BYTES`], [`MAX_TIMESTAMP_BYTES`] and [`MAX_ITEMS`] are this
//! crate's: the contract sets no bound there. Numbers have the ranges above.
//! Only the message size bounds simd-json's tape and indexes, which grow
//! with the number of JSON values.
//!

mod number;
mod timestamp;

use bumpalo::Bump;
use rust_decimal::Decimal;
use simd_json::{Buffers, INPUT_PADDING, Node, StaticNode, Tape, fill_tape_padded};

use crate::event::{Event, Item, Kind};
use crate::rules::ProgramSet;

pub use timestamp::{MAX_TIMESTAMP_BYTES, parse_date, parse_timestamp};

/// The contract's reasons for invalid input, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    TooLarge,
    InvalidJson,
    UnknownKind,
    MissingField,
    UnknownProgram,
    InvalidAmount,
    CurrencyMismatch,
    InvalidField,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::InvalidJson => "invalid_json",
            Reason::UnknownKind => "unknown_kind",
            Reason::MissingField => "missing_field",
            Reason::UnknownProgram => "unknown_program",
            Reason::InvalidAmount => "invalid_amount",
            Reason::CurrencyMismatch => "currency_mismatch",
            Reason::InvalidField => "invalid_field",
        }
    }
}

/// Why a message cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    pub reason: Reason,
    /// The field name, the offending value, or empty (contract section 5).
    pub detail: String,
}

impl DecodeError {
    fn new(reason: Reason, detail: &str) -> Self {
        Self { reason, detail: detail.to_owned() }
    }
}

/// Default maximum message size (64 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The deepest nesting accepted, counting the event object as level 1.
pub const MAX_DEPTH: usize = 128;

/// The longest `event_id` and `original_event_id`, in bytes (the contract's).
pub const MAX_EVENT_ID_BYTES: usize = 128;

/// The longest `member_id`, in bytes (the contract's).
pub const MAX_MEMBER_ID_BYTES: usize = 64;

/// The longest `merchant_id`, `store_id`, `channel`, item `sku` and item
/// `category`, in bytes (`invalid_field` with the field beyond it).
///
/// The contract gives these strings no length, but nothing that names a
/// merchant, store, channel, product or category comes near it: a longer
/// value is a producer's bug (a document pasted into a field). Unbounded,
/// one such value would travel in every reward event (`merchant_id`) and
/// sit in the store with each outcome for the whole retention window.
pub const MAX_NAME_BYTES: usize = 256;

/// The most items a purchase may list (`invalid_field` `items` beyond it).
///
/// Far above any till's receipt. Without it the number of items is bounded
/// only by the message size, which an operator may raise to 100 MiB: the
/// items arena of every decoder of a batch (about 56 bytes an item, kept
/// across batches) and the engine's passes over the basket (one per bonus
/// rule) would grow with a single hostile message.
pub const MAX_ITEMS: usize = 1_000;

/// Decodes messages one at a time, reusing its buffers.
pub struct Decoder {
    max_message_bytes: usize,
    /// The current message and [`INPUT_PADDING`]; the event's strings borrow it.
    buf: Vec<u8>,
    /// Cold path: the message with out-of-range numbers replaced; the event's
    /// strings borrow it instead of `buf` when it was needed.
    scratch: Vec<u8>,
    buffers: Buffers,
    /// Always empty between calls; kept for its allocation.
    tape: Tape<'static>,
    /// Holds the current event's items; reset at the start of each call.
    items: Bump,
    /// Tape indexes of the unknown keys of the object being checked for
    /// repeated keys.
    unknown_keys: Vec<usize>,
    /// Whether the last message was over [`KEPT_MESSAGE_BYTES`].
    grown: bool,
}

/// A decoder keeps the buffers that messages up to this size made it grow;
/// after a larger message it starts afresh at the next smaller one.
///
/// The copies, tape and indexes of a message take up to about 30 times its
/// size (a tape node for each value of `[0,0,...]`), and a batch holds one
/// decoder per message, kept from batch to batch: without this, one batch
/// of such messages near the default 64 KiB limit would pin about 2 MB in
/// each of its 512 decoders, a gigabyte, for the life of the process. Real
/// events are well under it, so the warm path still allocates nothing.
pub const KEPT_MESSAGE_BYTES: usize = 4 * 1024;

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("max_message_bytes", &self.max_message_bytes).finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl Decoder {
    /// A decoder that rejects messages over `max_message_bytes` as `too_large`.
    pub fn new(max_message_bytes: usize) -> Self {
        // Sized for typical messages (POS events are well under 2 KiB); the
        // buffers grow to the largest seen. A batch holds one decoder per
        // message: sized for the largest allowed message, 512 of them would
        // take hundreds of megabytes and spread a batch over cold memory.
        let expected = max_message_bytes.min(2 * 1024);
        Self {
            max_message_bytes,
            buf: Vec::with_capacity(expected + INPUT_PADDING),
            scratch: Vec::new(),
            buffers: Buffers::with_max_depth(expected, MAX_DEPTH),
            tape: Tape(Vec::with_capacity(expected / 4)),
            items: Bump::with_capacity(64 * size_of::<Item<'static>>()),
            unknown_keys: Vec::with_capacity(16),
            grown: false,
        }
    }

    /// Decodes one message. The event borrows the decoder until it is dropped,
    /// so it must be used (or copied out) before the next call.
    pub fn decode<'a>(&'a mut self, message: &[u8], programs: &ProgramSet) -> Result<Event<'a>, DecodeError> {
        if message.len() > self.max_message_bytes {
            return Err(DecodeError::new(Reason::TooLarge, ""));
        }
        let grown = message.len() > KEPT_MESSAGE_BYTES;
        if self.grown && !grown {
            *self = Self::new(self.max_message_bytes);
        }
        self.grown = grown;
        let Self { buf, scratch, buffers, tape: kept_tape, items, unknown_keys, .. } = self;
        items.reset();
        let mut tape: Tape<'a> = std::mem::replace(kept_tape, Tape(Vec::new())).reset();
        let result = parse(message, buf, scratch, buffers, &mut tape).and_then(|()| {
            let walk = Walk { tape: &tape.0, unknown_keys };
            walk.event(programs, items)
        });
        *kept_tape = tape.reset();
        result
    }
}

fn invalid_json() -> DecodeError {
    DecodeError::new(Reason::InvalidJson, "")
}

/// Fills `tape` from `message`, borrowing `buf` or, on the cold path, `scratch`.
fn parse<'a>(
    message: &[u8],
    buf: &'a mut Vec<u8>,
    scratch: &'a mut Vec<u8>,
    buffers: &mut Buffers,
    tape: &mut Tape<'a>,
) -> Result<(), DecodeError> {
    buf.clear();
    buf.extend_from_slice(message);
    buf.resize(message.len() + INPUT_PADDING, 0);
    if fill_tape_padded(buf, message.len(), buffers, tape).is_ok() {
        return Ok(());
    }
    // simd-json rejects numbers it cannot hold, but the contract judges them
    // as written; retry with such numbers replaced by in-range sentinels.
    tape.0.clear();
    if !number::replace_huge_numbers(message, scratch) {
        return Err(invalid_json());
    }
    let len = scratch.len();
    scratch.resize(len + INPUT_PADDING, 0);
    fill_tape_padded(scratch, len, buffers, tape).map_err(|_| invalid_json())
}

/// Keys of the event object, in the order their details are checked.
const EVENT_ID: usize = 0;
const KIND: usize = 1;
const MEMBER_ID: usize = 2;
const PROGRAM: usize = 3;
const MERCHANT_ID: usize = 4;
const STORE_ID: usize = 5;
const CHANNEL: usize = 6;
const OCCURRED_AT: usize = 7;
const CURRENCY: usize = 8;
const TOTAL: usize = 9;
const ITEMS: usize = 10;
const ORIGINAL_EVENT_ID: usize = 11;
const POINTS: usize = 12;
const BIRTH_DATE: usize = 13;
const REASON: usize = 14;

#[inline(always)]
fn event_key(key: &str) -> Option<usize> {
    Some(match key {
        "event_id" => EVENT_ID,
        "kind" => KIND,
        "member_id" => MEMBER_ID,
        "program" => PROGRAM,
        "merchant_id" => MERCHANT_ID,
        "store_id" => STORE_ID,
        "channel" => CHANNEL,
        "occurred_at" => OCCURRED_AT,
        "currency" => CURRENCY,
        "total" => TOTAL,
        "items" => ITEMS,
        "original_event_id" => ORIGINAL_EVENT_ID,
        "points" => POINTS,
        "birth_date" => BIRTH_DATE,
        "reason" => REASON,
        _ => return None,
    })
}

const SKU: usize = 0;
const CATEGORY: usize = 1;
const QUANTITY: usize = 2;
const AMOUNT: usize = 3;

#[inline(always)]
fn item_key(key: &str) -> Option<usize> {
    Some(match key {
        "sku" => SKU,
        "category" => CATEGORY,
        "quantity" => QUANTITY,
        "amount" => AMOUNT,
        _ => return None,
    })
}

/// Tape index of each known key's value; `None` when absent or `null`.
type Slots<const N: usize> = [Option<usize>; N];

const NO_ITEM: Item<'static> = Item { sku: None, category: None, quantity: 1, amount: Decimal::ZERO };

/// The detail of a pending verdict; turned into a `String` only on error.
#[derive(Clone, Copy)]
enum Detail<'a> {
    Field(&'static str),
    Value(&'a str),
}

/// The first verdict in the contract's order among those noted so far.
#[derive(Default)]
struct Verdict<'a> {
    first: Option<(Reason, Detail<'a>)>,
}

impl<'a> Verdict<'a> {
    /// Keeps the earlier reason; on a tie the field noted first, which is the
    /// module's fixed field order.
    fn note(&mut self, reason: Reason, detail: Detail<'a>) {
        if self.first.is_none_or(|(r, _)| reason < r) {
            self.first = Some((reason, detail));
        }
    }

    fn field(&mut self, reason: Reason, field: &'static str) {
        self.note(reason, Detail::Field(field));
    }

    /// Notes, at this point of the order, what `other` noted: the same as
    /// noting each of its verdicts here, since it kept the first of them.
    fn merge(&mut self, other: Verdict<'a>) {
        if let Some((reason, detail)) = other.first {
            self.note(reason, detail);
        }
    }

    fn into_error(self) -> Option<DecodeError> {
        self.first.map(|(reason, detail)| match detail {
            Detail::Field(f) | Detail::Value(f) => DecodeError::new(reason, f),
        })
    }
}

struct Walk<'t, 'a, 'k> {
    tape: &'t [Node<'a>],
    unknown_keys: &'k mut Vec<usize>,
}

impl<'a> Walk<'_, 'a, '_> {
    fn event(mut self, programs: &ProgramSet, items: &'a Bump) -> Result<Event<'a>, DecodeError> {
        let Some(Node::Object { .. }) = self.tape.first() else {
            return Err(invalid_json());
        };
        let slots: Slots<15> = self.slots(0, event_key)?;
        let tape = self.tape;
        let node = |k: usize| slots[k].map(|i| tape[i]);

        // The items are walked once, whatever the kind: a key repeated in
        // one of them is `invalid_json`, which comes before every other
        // verdict; their fields are read in the same walk, and the verdicts
        // on those wait in `item_verdict` for their turn (after `total`),
        // when the kind is a purchase.
        let mut item_verdict = Verdict::default();
        let mut basket: &'a [Item<'a>] = &[];
        if let (Some(at), Some(Node::Array { len, .. })) = (slots[ITEMS], node(ITEMS)) {
            basket = self.items(&mut item_verdict, at + 1, len, items)?;
        }

        let kind = match node(KIND) {
            None => Kind::Purchase,
            Some(Node::String("purchase")) => Kind::Purchase,
            Some(Node::String("refund")) => Kind::Refund,
            Some(Node::String("redeem")) => Kind::Redeem,
            Some(Node::String("profile")) => Kind::Profile,
            Some(Node::String("adjust")) => Kind::Adjust,
            Some(other) => {
                return Err(DecodeError { reason: Reason::UnknownKind, detail: json_text(other) });
            }
        };

        let mut v = Verdict::default();
        let event_id = id(&mut v, node(EVENT_ID), "event_id", MAX_EVENT_ID_BYTES);
        let member_id = match node(MEMBER_ID) {
            None => {
                if matches!(kind, Kind::Profile | Kind::Adjust) {
                    v.field(Reason::MissingField, "member_id");
                }
                None
            }
            Some(Node::String(s)) if (1..=MAX_MEMBER_ID_BYTES).contains(&s.len()) => Some(s),
            Some(_) => {
                v.field(Reason::InvalidField, "member_id");
                None
            }
        };
        let program = match node(PROGRAM) {
            None => programs.resolve(None),
            Some(Node::String(s)) => {
                let found = programs.resolve(Some(s));
                if found.is_none() {
                    v.note(Reason::UnknownProgram, Detail::Value(s));
                }
                found
            }
            Some(_) => {
                v.field(Reason::InvalidField, "program");
                None
            }
        };
        let merchant_id = opt_str(&mut v, node(MERCHANT_ID), "merchant_id");
        let store_id = opt_str(&mut v, node(STORE_ID), "store_id");
        let channel = opt_str(&mut v, node(CHANNEL), "channel");
        let occurred_at = match node(OCCURRED_AT) {
            None => {
                v.field(Reason::MissingField, "occurred_at");
                None
            }
            Some(Node::String(s)) => {
                let at = parse_timestamp(s).map(|at| (at, s));
                if at.is_none() {
                    v.field(Reason::InvalidField, "occurred_at");
                }
                at
            }
            Some(_) => {
                v.field(Reason::InvalidField, "occurred_at");
                None
            }
        };

        let mut total = Some(Decimal::ZERO);
        if matches!(kind, Kind::Purchase | Kind::Refund) {
            match node(CURRENCY) {
                None => v.field(Reason::MissingField, "currency"),
                Some(Node::String(s)) => {
                    let expected = program.and_then(|p| programs.get(p));
                    if expected.is_some_and(|p| p.currency != s) {
                        v.note(Reason::CurrencyMismatch, Detail::Value(s));
                    }
                }
                Some(_) => v.field(Reason::InvalidField, "currency"),
            }
            total = amount(&mut v, node(TOTAL), "total");
        }

        if kind == Kind::Purchase {
            match node(ITEMS) {
                None | Some(Node::Array { .. }) => v.merge(item_verdict),
                Some(_) => v.field(Reason::InvalidField, "items"),
            }
        } else {
            basket = &[];
        }

        let mut original_event_id = None;
        if kind == Kind::Refund {
            original_event_id = id(&mut v, node(ORIGINAL_EVENT_ID), "original_event_id", MAX_EVENT_ID_BYTES);
        }

        let points = match kind {
            Kind::Redeem => required_points(&mut v, node(POINTS), |p| (1..=MAX_POINTS).contains(&p)),
            Kind::Adjust => {
                required_points(&mut v, node(POINTS), |p| p != 0 && (-MAX_POINTS..=MAX_POINTS).contains(&p))
            }
            _ => Some(0),
        };

        let mut birth_date = None;
        if kind == Kind::Profile {
            match node(BIRTH_DATE) {
                None => {}
                Some(Node::String(s)) => {
                    birth_date = parse_date(s);
                    if birth_date.is_none() {
                        v.field(Reason::InvalidField, "birth_date");
                    }
                }
                Some(_) => v.field(Reason::InvalidField, "birth_date"),
            }
        }

        let mut reason = None;
        if kind == Kind::Adjust {
            match node(REASON) {
                None => {}
                Some(Node::String(s)) if s.len() <= MAX_REASON_BYTES => reason = Some(s),
                Some(_) => v.field(Reason::InvalidField, "reason"),
            }
        }

        if let Some(error) = v.into_error() {
            return Err(error);
        }
        let (Some(event_id), Some(program), Some((occurred_at, occurred_at_raw)), Some(total)) =
            (event_id, program, occurred_at, total)
        else {
            return Err(unnoted());
        };
        let Some(points) = points else {
            return Err(unnoted());
        };
        Ok(Event {
            event_id,
            kind,
            member_id,
            program,
            merchant_id,
            store_id,
            channel,
            occurred_at,
            occurred_at_raw,
            total,
            items: basket,
            original_event_id,
            points,
            birth_date,
            reason,
        })
    }

    /// The items of a purchase, from the `len` elements starting at `first`.
    fn items(
        &mut self,
        v: &mut Verdict<'a>,
        first: usize,
        len: usize,
        arena: &'a Bump,
    ) -> Result<&'a [Item<'a>], DecodeError> {
        if len == 0 {
            return Ok(&[]);
        }
        // Too many items is an `invalid_field`; the items are still read,
        // since an earlier reason in one of them comes first, but not kept.
        let kept = if len > MAX_ITEMS {
            v.field(Reason::InvalidField, "items");
            0
        } else {
            len
        };
        let out = arena.alloc_slice_fill_copy(kept, NO_ITEM);
        let mut discarded = NO_ITEM;
        let mut at = first;
        for n in 0..len {
            let item = match out.get_mut(n) {
                Some(item) => item,
                None => &mut discarded,
            };
            if let Node::Object { .. } = self.tape[at] {
                let slots: Slots<4> = self.slots(at, item_key)?;
                let tape = self.tape;
                let node = |k: usize| slots[k].map(|i| tape[i]);
                item.sku = opt_str(v, node(SKU), "items.sku");
                item.category = opt_str(v, node(CATEGORY), "items.category");
                if let Some(n) = node(QUANTITY) {
                    match integer(n).filter(|q| (1..=1_000_000).contains(q)) {
                        Some(q) => item.quantity = u32::try_from(q).unwrap_or(1),
                        None => v.field(Reason::InvalidField, "items.quantity"),
                    }
                }
                item.amount = amount(v, node(AMOUNT), "items.amount").unwrap_or_default();
            } else {
                v.field(Reason::InvalidField, "items");
            }
            at = next(self.tape, at);
        }
        Ok(out)
    }

    /// The values of the known keys of the object at `at`, rejecting any
    /// repeated key as `invalid_json`.
    ///
    /// Known keys are checked with a bitmask; unknown keys only among
    /// themselves, by sorting their tape indexes (no allocation once the
    /// vector has grown).
    fn slots<const N: usize>(
        &mut self,
        at: usize,
        known: impl Fn(&str) -> Option<usize>,
    ) -> Result<Slots<N>, DecodeError> {
        let Node::Object { len, .. } = self.tape[at] else {
            return Err(invalid_json());
        };
        let mut slots = [None; N];
        let mut seen: u32 = 0;
        self.unknown_keys.clear();
        let mut key = at + 1;
        for _ in 0..len {
            let Node::String(name) = self.tape[key] else {
                return Err(invalid_json());
            };
            let value = key + 1;
            match known(name) {
                Some(k) => {
                    if seen & (1 << k) != 0 {
                        return Err(invalid_json());
                    }
                    seen |= 1 << k;
                    if !matches!(self.tape[value], Node::Static(StaticNode::Null)) {
                        slots[k] = Some(value);
                    }
                }
                None => self.unknown_keys.push(key),
            }
            key = next(self.tape, value);
        }
        if self.unknown_keys.len() > 1 {
            let tape = self.tape;
            let name = |i: &usize| match tape[*i] {
                Node::String(s) => s,
                _ => "",
            };
            self.unknown_keys.sort_unstable_by_key(name);
            if self.unknown_keys.windows(2).any(|w| name(&w[0]) == name(&w[1])) {
                return Err(invalid_json());
            }
        }
        Ok(slots)
    }
}

/// The index of the node after the value at `at` (skipping its children).
fn next(tape: &[Node<'_>], at: usize) -> usize {
    match tape[at] {
        Node::Object { count, .. } | Node::Array { count, .. } => at + 1 + count,
        _ => at + 1,
    }
}

/// A required id string of 1..=`max` bytes.
fn id<'a>(v: &mut Verdict<'a>, n: Option<Node<'a>>, field: &'static str, max: usize) -> Option<&'a str> {
    match n {
        None => {
            v.field(Reason::MissingField, field);
            None
        }
        Some(Node::String(s)) if (1..=max).contains(&s.len()) => Some(s),
        Some(_) => {
            v.field(Reason::InvalidField, field);
            None
        }
    }
}

/// An optional string of at most [`MAX_NAME_BYTES`].
fn opt_str<'a>(v: &mut Verdict<'a>, n: Option<Node<'a>>, field: &'static str) -> Option<&'a str> {
    match n {
        None => None,
        Some(Node::String(s)) if s.len() <= MAX_NAME_BYTES => Some(s),
        Some(_) => {
            v.field(Reason::InvalidField, field);
            None
        }
    }
}

/// A required amount: a decimal string or a JSON number.
fn amount<'a>(v: &mut Verdict<'a>, n: Option<Node<'a>>, field: &'static str) -> Option<Decimal> {
    let Some(n) = n else {
        v.field(Reason::MissingField, field);
        return None;
    };
    let parsed = match n {
        Node::String(s) => number::amount_from_str(s),
        Node::Static(StaticNode::U64(u)) => number::amount_from_u64(u),
        Node::Static(StaticNode::I64(i)) => number::amount_from_i64(i),
        Node::Static(StaticNode::F64(f)) => number::amount_from_f64(f),
        _ => None,
    };
    if parsed.is_none() {
        v.field(Reason::InvalidAmount, field);
    }
    parsed
}

/// The largest number of points a redeem or an adjustment may carry (either sign).
const MAX_POINTS: i64 = 1_000_000_000;

/// The longest `reason` of an adjustment, in bytes.
const MAX_REASON_BYTES: usize = 64;

/// A required `points`: a JSON integer for which `valid` holds.
fn required_points(v: &mut Verdict<'_>, n: Option<Node<'_>>, valid: impl Fn(i64) -> bool) -> Option<i64> {
    let Some(n) = n else {
        v.field(Reason::MissingField, "points");
        return None;
    };
    let p = integer(n).filter(|&p| valid(p));
    if p.is_none() {
        v.field(Reason::InvalidField, "points");
    }
    p
}

/// A JSON integer (a float such as `5.0` is not one).
fn integer(n: Node<'_>) -> Option<i64> {
    match n {
        Node::Static(StaticNode::I64(i)) => Some(i),
        Node::Static(StaticNode::U64(u)) => i64::try_from(u).ok(),
        _ => None,
    }
}

/// The detail of an unknown `kind`: the string itself, a scalar's JSON text,
/// or the name of a composite.
fn json_text(n: Node<'_>) -> String {
    match n {
        Node::String(s) => s.to_owned(),
        Node::Object { .. } => "object".to_owned(),
        Node::Array { .. } => "array".to_owned(),
        Node::Static(StaticNode::F64(f)) => format!("{f:?}"),
        Node::Static(s) => s.to_string(),
    }
}

/// Every path that leaves a required value unset notes a verdict first; this
/// is the answer should that invariant ever break.
fn unnoted() -> DecodeError {
    debug_assert!(false, "a required field was unset without a verdict");
    DecodeError::new(Reason::InvalidField, "")
}

#[cfg(test)]
mod tests;
