//! Hostile messages through the daemon's data path: the decoder, the engine
//! (the programs of `config/rules/` over an in-memory store), the reward
//! event and the dead-letter line.
//!
//! The input is a sequence of messages separated by the ASCII record
//! separator (0x1E, as in JSON text sequences): a byte that cannot appear in
//! a valid message, so one without it is a whole message, newlines and all.
//! The messages are scored one at a time (`score`'s path) and as one batch
//! (the daemon's path), and both must agree.
//!
//! Invariants checked besides "no panic":
//! - the verdict agrees with serde_json on what is a JSON object;
//! - a decoded event, written back as JSON, decodes to the same event;
//! - reward events and dead-letter lines are JSON and say what was decided;
//!   a reward's breakdown sums to its points; a repeat re-emits the bytes
//!   of the first reward of its member and event id.

#![no_main]

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use loyalty_scorer::batch::BatchScorer;
use loyalty_scorer::decode::{DEFAULT_MAX_MESSAGE_BYTES, DecodeError, Decoder, Reason};
use loyalty_scorer::event::{Event, Kind};
use loyalty_scorer::outcome::Outcome;
use loyalty_scorer::output::write_dead_letter;
use loyalty_scorer::pipeline::{Disposition, Scorer, Sink};
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::load::load_str;
use loyalty_scorer::rules::{Program, ProgramSet};
use loyalty_scorer::state::memory::MemoryStore;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

/// The separator of the messages of one input.
const SEPARATOR: u8 = 0x1e;

/// Messages scored per input: enough for a purchase, its refunds, repeats
/// and redemptions of one member.
const MAX_MESSAGES: usize = 16;

/// The batch path's wall clock, in seconds: fixed, so runs repeat.
const NOW_SECONDS: u64 = 1_800_000_000;

static PROGRAMS: LazyLock<ProgramSet> = LazyLock::new(|| {
    let files = [
        ("acme.toml", include_str!("../../config/rules/acme.toml")),
        ("citypoints.toml", include_str!("../../config/rules/citypoints.toml")),
        ("style.toml", include_str!("../../config/rules/style.toml")),
    ];
    let programs = files
        .into_iter()
        .map(|(name, text)| match load_str(name, text) {
            Ok(program) => Arc::new(program),
            Err(problems) => panic!("{name} does not load: {problems:?}"),
        })
        .collect();
    ProgramSet::new(programs).unwrap_or_else(|| panic!("the example programs have distinct ids"))
});

fuzz_target!(|data: &[u8]| {
    let messages: Vec<&[u8]> = data.split(|&b| b == SEPARATOR).take(MAX_MESSAGES).collect();
    let programs = &*PROGRAMS;

    let mut one_by_one = Check::new(programs);
    let mut scorer = Scorer::new(programs.clone(), Settings::default(), DEFAULT_MAX_MESSAGE_BYTES, MemoryStore::new());
    for (i, message) in messages.iter().enumerate() {
        if let Err(error) = scorer.score(i as u64 + 1, message, &mut one_by_one) {
            panic!("scoring message {} failed: {error}", i + 1);
        }
    }

    let mut batched = Check::new(programs);
    let batch: Vec<(u64, &[u8])> = messages.iter().enumerate().map(|(i, m)| (i as u64 + 1, *m)).collect();
    let mut batch_scorer = BatchScorer::new(programs.clone(), Settings::default(), DEFAULT_MAX_MESSAGE_BYTES)
        .unwrap_or_else(|e| panic!("batch scorer: {e}"))
        .with_clock(|| NOW_SECONDS);
    let mut store = MemoryStore::new();
    if let Err(error) = ready(batch_scorer.score_batch(&mut store, &batch, &mut batched)) {
        panic!("scoring the batch failed: {error}");
    }
    assert_eq!(one_by_one.seen, batched.seen, "one at a time and as a batch differ");
});

/// The output of a future that never waits (the in-memory store's).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-memory store waited"),
    }
}

/// What became of one message, as far as the outside sees it.
#[derive(Debug, PartialEq)]
enum Seen {
    Dead(Reason, String),
    Anonymous,
    Scored(Vec<u8>),
    Repeat(Vec<u8>),
}

/// A sink that checks every disposition and records what it saw.
struct Check<'p> {
    programs: &'p ProgramSet,
    seen: Vec<Seen>,
    /// The first reward of each (program, member, event id).
    first: HashMap<(String, String, String), Vec<u8>>,
}

impl<'p> Check<'p> {
    fn new(programs: &'p ProgramSet) -> Self {
        Self { programs, seen: Vec::new(), first: HashMap::new() }
    }
}

impl Sink for Check<'_> {
    fn accept(&mut self, position: u64, message: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        let verdict = match &disposition {
            Disposition::Dead(error) => Err(error.reason),
            _ => Ok(()),
        };
        judged_as_serde_json_would(message, verdict);
        let seen = match disposition {
            Disposition::Dead(error) => {
                dead_letter(position, message, &error);
                Seen::Dead(error.reason, error.detail)
            }
            Disposition::Anonymous { program } => {
                assert!(self.programs.iter().any(|p| p.id == program.id));
                Seen::Anonymous
            }
            Disposition::Scored { program, event, outcome, reward } => {
                round_trip(self.programs, event);
                scored_reward(program, event, outcome, reward);
                let key = (program.id.clone(), member(event).to_owned(), event.event_id.to_owned());
                let earlier = self.first.insert(key, reward.to_vec());
                assert!(earlier.is_none(), "scored twice: {}", event.event_id);
                Seen::Scored(reward.to_vec())
            }
            Disposition::Repeat { program, event, reward, .. } => {
                round_trip(self.programs, event);
                let key = (program.id.clone(), member(event).to_owned(), event.event_id.to_owned());
                // Every repeat of this input follows its first reward here.
                let first = self.first.get(&key).unwrap_or_else(|| panic!("a repeat of nothing: {key:?}"));
                assert_eq!(reward, first.as_slice(), "a repeat re-emits the first reward");
                Seen::Repeat(reward.to_vec())
            }
        };
        self.seen.push(seen);
        Ok(())
    }
}

fn member<'a>(event: &Event<'a>) -> &'a str {
    event.member_id.unwrap_or_else(|| panic!("scored without a member: {}", event.event_id))
}

/// The decoder's idea of a JSON object agrees with serde_json's: an object
/// serde_json reads without repeated keys (in the event or in an object of
/// its `items`) is never `invalid_json`, and whatever passes that verdict is
/// such an object, unless serde_json gave up on something the contract
/// accepts (a number beyond a double, nesting past its own limit of 127).
fn judged_as_serde_json_would(message: &[u8], verdict: Result<(), Reason>) {
    if message.len() > DEFAULT_MAX_MESSAGE_BYTES {
        assert_eq!(verdict, Err(Reason::TooLarge), "over the limit but not too_large");
        return;
    }
    assert_ne!(verdict, Err(Reason::TooLarge), "within the limit but too_large");
    let doc = serde_json::from_slice::<Doc>(message);
    match (verdict, doc) {
        (Err(Reason::InvalidJson), Ok(Doc::Object(members))) => {
            assert!(repeats_keys(&members), "serde_json reads an object, the decoder says invalid_json");
        }
        (Err(Reason::InvalidJson), _) => {}
        (_, Ok(Doc::Object(members))) => {
            assert!(!repeats_keys(&members), "a repeated key passed as JSON");
        }
        (_, Ok(_)) => panic!("not an object, yet not invalid_json"),
        (_, Err(error)) => {
            let text = error.to_string();
            assert!(
                text.starts_with("number out of range") || text.starts_with("recursion limit exceeded"),
                "serde_json rejects what the decoder accepts: {text}"
            );
        }
    }
}

/// Whether the event object, or an object directly in its `items` array,
/// has a key twice (after unescaping).
fn repeats_keys(members: &[(String, Doc)]) -> bool {
    let repeated = |members: &[(String, Doc)]| {
        let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.windows(2).any(|w| w[0] == w[1])
    };
    if repeated(members) {
        return true;
    }
    members.iter().filter(|(k, _)| k == "items").any(|(_, v)| match v {
        Doc::Array(elements) => elements.iter().any(|e| matches!(e, Doc::Object(m) if repeated(m))),
        _ => false,
    })
}

/// A decoded event, written back as JSON (only what its kind reads), decodes
/// to the same event.
fn round_trip(programs: &ProgramSet, event: &Event<'_>) {
    let program = programs.get(event.program).unwrap_or_else(|| panic!("decoded with no program"));
    let mut o = Map::new();
    o.insert("event_id".into(), event.event_id.into());
    o.insert("kind".into(), event.kind.as_str().into());
    o.insert("program".into(), program.id.as_str().into());
    o.insert("occurred_at".into(), event.occurred_at_raw.into());
    let optional = [
        ("member_id", event.member_id),
        ("merchant_id", event.merchant_id),
        ("store_id", event.store_id),
        ("channel", event.channel),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            o.insert(key.into(), value.into());
        }
    }
    match event.kind {
        Kind::Purchase | Kind::Refund => {
            o.insert("currency".into(), program.currency.as_str().into());
            o.insert("total".into(), event.total.to_string().into());
        }
        Kind::Redeem | Kind::Adjust => {
            o.insert("points".into(), event.points.into());
        }
        Kind::Profile => {}
    }
    if let Some(original) = event.original_event_id {
        o.insert("original_event_id".into(), original.into());
    }
    if !event.items.is_empty() {
        let items: Vec<Value> = event
            .items
            .iter()
            .map(|i| json!({"sku": i.sku, "category": i.category, "quantity": i.quantity, "amount": i.amount.to_string()}))
            .collect();
        o.insert("items".into(), items.into());
    }
    if let Some(d) = event.birth_date {
        o.insert("birth_date".into(), format!("{:04}-{:02}-{:02}", d.year, d.month, d.day).into());
    }
    if let Some(reason) = event.reason {
        o.insert("reason".into(), reason.into());
    }
    let text = serde_json::to_vec(&Value::Object(o)).unwrap_or_else(|e| panic!("serializing: {e}"));
    // Written back, an event can be longer (explicit quantities, decimal
    // strings for numbers): the limit is not what is tested here.
    let mut decoder = Decoder::new(16 << 20);
    match decoder.decode(&text, programs) {
        Ok(again) => assert_eq!(again, *event, "written back as {}", String::from_utf8_lossy(&text)),
        Err(error) => panic!("written back as {} it is {error}", String::from_utf8_lossy(&text)),
    }
}

/// The reward of a new outcome says what was scored, and its breakdown sums
/// to its points.
fn scored_reward(program: &Program, event: &Event<'_>, outcome: &Outcome, reward: &[u8]) {
    let v: Value = serde_json::from_slice(reward)
        .unwrap_or_else(|e| panic!("reward is not JSON ({e}): {}", String::from_utf8_lossy(reward)));
    assert_eq!(v["reward_id"], format!("r:{}", event.event_id));
    assert_eq!(v["event_id"], event.event_id);
    assert_eq!(v["member_id"], member(event));
    assert_eq!(v["program"], program.id.as_str());
    assert_eq!(v["kind"], event.kind.as_str());
    assert_eq!(v["occurred_at"], event.occurred_at_raw);
    assert_eq!(v.get("merchant_id").and_then(Value::as_str), event.merchant_id);
    assert_eq!(v["points"], outcome.points);
    assert_eq!(v["balance"], outcome.balance);
    let lines = v["breakdown"].as_array().unwrap_or_else(|| panic!("no breakdown"));
    let sum = lines.iter().try_fold(0i64, |sum, line| sum.checked_add(line["points"].as_i64()?));
    assert_eq!(sum, Some(outcome.points), "breakdown sums to the points");
}

/// The dead-letter line is JSON and carries the verdict and the input.
fn dead_letter(position: u64, message: &[u8], error: &DecodeError) {
    let mut line = Vec::new();
    write_dead_letter(&mut line, position, message, error);
    let v: Value = serde_json::from_slice(&line)
        .unwrap_or_else(|e| panic!("dead letter is not JSON ({e}): {}", String::from_utf8_lossy(&line)));
    assert_eq!(v["line"], position);
    assert_eq!(v["reason"], error.reason.as_str());
    assert_eq!(v["detail"], error.detail.as_str());
    match error.reason {
        Reason::TooLarge | Reason::InvalidJson => {
            assert!(error.detail.is_empty(), "{} has a detail", error.reason.as_str());
        }
        // The field's name.
        Reason::MissingField | Reason::InvalidAmount | Reason::InvalidField => {
            assert!(!error.detail.is_empty(), "{} without a detail", error.reason.as_str());
        }
        // The value, which may be empty.
        Reason::UnknownKind | Reason::UnknownProgram | Reason::CurrencyMismatch => {}
    }
    match std::str::from_utf8(message) {
        Ok(text) => assert_eq!(v["input"], text),
        Err(_) => assert!(v.get("input").is_none()),
    }
}

/// A JSON document with every member of every object, repeated keys included.
enum Doc {
    Scalar,
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Doc, E> {
        Ok(Doc::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Doc, E> {
        Ok(Doc::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Doc, E> {
        Ok(Doc::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Doc, E> {
        Ok(Doc::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Doc, E> {
        Ok(Doc::Scalar)
    }

    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = seq.next_element()? {
            elements.push(element);
        }
        Ok(Doc::Array(elements))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Doc>()? {
            members.push(member);
        }
        Ok(Doc::Object(members))
    }
}
