//! The data path for one message: decode -> member state -> rules -> reward.
//!
//! [`Scorer`] owns everything one stream needs (programs, decoder, engine
//! scratch, state store) and turns each message into a [`Disposition`] that
//! it hands to a [`Sink`]. `score` writes dispositions to files, `simulate`
//! aggregates them; the same path serves every command.
//!
//! Invariant: an event changes member state at most once. A repeated
//! `event_id` of a member finds its first outcome and re-emits it unchanged,
//! before the engine runs.

use std::io::{self, BufRead};

use crate::decode::{DecodeError, Decoder};
use crate::event::Event;
use crate::outcome::{Outcome, RewardView};
use crate::output;
use crate::rules::engine::{self, Settings};
use crate::rules::{Program, ProgramSet};
use crate::state::StateStore;
use crate::state::codec::StoredEvent;

/// What became of one message.
#[derive(Debug)]
pub enum Disposition<'a> {
    /// A new outcome: the reward event to emit, and what it is made of.
    Scored { program: &'a Program, event: &'a Event<'a>, outcome: &'a Outcome, reward: &'a [u8] },
    /// A repeated `event_id`: the first outcome's reward event, unchanged,
    /// and the `rules_version` it was scored under.
    Repeat { program: &'a Program, event: &'a Event<'a>, rules_version: &'a str, reward: &'a [u8] },
    /// A valid event without a member: counted, nothing emitted.
    Anonymous { program: &'a Program },
    /// Invalid input, for the dead-letter path.
    Dead(DecodeError),
}

/// Receives every message's disposition, in input order.
pub trait Sink {
    /// `position` numbers messages from 1 (a line number for files);
    /// `message` is the input as received.
    fn accept(&mut self, position: u64, message: &[u8], disposition: Disposition<'_>) -> io::Result<()>;
}

/// How many new outcomes between two sweeps of expired records: often
/// enough to bound memory, rarely enough that a sweep's cost (a pass over
/// all members) is amortised to nothing.
const PRUNE_EVERY: u64 = 1 << 20;

/// Scores messages one at a time against a state store.
#[derive(Debug)]
pub struct Scorer<S> {
    programs: ProgramSet,
    settings: Settings,
    decoder: Decoder,
    outcome: Outcome,
    reward: Vec<u8>,
    store: S,
    since_prune: u64,
    prune_every: u64,
}

impl<S: StateStore> Scorer<S> {
    pub fn new(programs: ProgramSet, settings: Settings, max_message_bytes: usize, store: S) -> Self {
        Self {
            programs,
            settings,
            decoder: Decoder::new(max_message_bytes),
            outcome: Outcome::default(),
            reward: Vec::with_capacity(1024),
            store,
            since_prune: 0,
            prune_every: PRUNE_EVERY,
        }
    }

    /// Sweeps expired records every `events` new outcomes instead of 2^20.
    pub fn with_prune_interval(mut self, events: u64) -> Self {
        self.prune_every = events.max(1);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn programs(&self) -> &ProgramSet {
        &self.programs
    }

    /// Scores one message and hands its disposition to `sink`.
    pub fn score(&mut self, position: u64, message: &[u8], sink: &mut dyn Sink) -> io::Result<()> {
        let event = match self.decoder.decode(message, &self.programs) {
            Ok(event) => event,
            Err(error) => return sink.accept(position, message, Disposition::Dead(error)),
        };
        let Some(program) = self.programs.get(event.program) else {
            // The decoder only yields indexes of configured programs.
            return Err(io::Error::other("decoder returned an unknown program index"));
        };
        let Some(member_id) = event.member_id else {
            return sink.accept(position, message, Disposition::Anonymous { program });
        };
        let (state, budgets) = self.store.member(&program.id, member_id);
        self.reward.clear();
        if let Some(stored) = state.events.get(event.event_id) {
            let record = stored.decode().map_err(io::Error::other)?;
            // Records are rendered with the program they were scored under.
            let scored_under = self.programs.version(&program.id, &record.reward.rules_version).unwrap_or(program);
            output::write_reward(&mut self.reward, scored_under, event.event_id, member_id, &record.reward.view());
            let rules_version = &record.reward.rules_version;
            let repeat = Disposition::Repeat { program, event: &event, rules_version, reward: &self.reward };
            return sink.accept(position, message, repeat);
        }
        engine::apply(program, &self.settings, state, budgets, &event, &mut self.outcome);
        let view = RewardView::new(program, &event, &self.outcome);
        output::write_reward(&mut self.reward, program, event.event_id, member_id, &view);
        let stored = StoredEvent::encode(event.occurred_at, &view, self.outcome.purchase.as_ref());
        state.events.insert(event.event_id.into(), stored);
        self.since_prune += 1;
        if self.since_prune >= self.prune_every {
            self.since_prune = 0;
            self.store.prune(self.settings.retention_days);
        }
        sink.accept(
            position,
            message,
            Disposition::Scored { program, event: &event, outcome: &self.outcome, reward: &self.reward },
        )
    }
}

/// Scores a JSON-lines stream in order, one line at a time (never the whole
/// input in memory). Calls `progress` with the bytes read so far.
pub fn score_lines<S: StateStore>(
    scorer: &mut Scorer<S>,
    input: impl BufRead,
    sink: &mut dyn Sink,
    progress: impl FnMut(u64),
) -> io::Result<()> {
    for_each_line(input, progress, |number, line| scorer.score(number, line, sink))
}

/// Hands each message of a JSON-lines stream to `f` with its line number.
/// Blank lines (spaces, tabs, CR) are skipped but counted; a line's
/// terminating `\n` or `\r\n` is not part of the message.
pub fn for_each_line(
    mut input: impl BufRead,
    mut progress: impl FnMut(u64),
    mut f: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    let mut read = 0u64;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        read += n as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            continue;
        }
        f(number, &line)?;
        progress(read);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rules::load::load_str;
    use crate::state::memory::MemoryStore;

    #[derive(Default)]
    struct Kinds(Vec<&'static str>);

    impl Sink for Kinds {
        fn accept(&mut self, _: u64, _: &[u8], d: Disposition<'_>) -> io::Result<()> {
            self.0.push(match d {
                Disposition::Scored { .. } => "scored",
                Disposition::Repeat { .. } => "repeat",
                Disposition::Anonymous { .. } => "anonymous",
                Disposition::Dead(_) => "dead",
            });
            Ok(())
        }
    }

    fn scorer(retention_days: i64) -> Scorer<MemoryStore> {
        let program = load_str("t.toml", "[program]\nid = \"p\"\ncurrency = \"EUR\"\n").unwrap();
        let programs = ProgramSet::new(vec![Arc::new(program)]).unwrap();
        Scorer::new(programs, Settings { retention_days }, 1024, MemoryStore::new())
    }

    fn purchase(id: &str, at: &str) -> String {
        format!(r#"{{"event_id":"{id}","member_id":"M","occurred_at":"{at}","currency":"EUR","total":"1"}}"#)
    }

    #[test]
    fn records_older_than_the_retention_window_are_swept() {
        let mut scorer = scorer(10).with_prune_interval(2);
        let mut sink = Kinds::default();
        for line in [
            purchase("A", "2026-01-01T00:00:00Z"),
            purchase("B", "2026-01-05T00:00:00Z"),
            purchase("C", "2026-01-20T00:00:00Z"),
            purchase("D", "2026-01-21T00:00:00Z"), // second new outcome: sweep at 01-21
            purchase("B", "2026-01-05T00:00:00Z"),
            purchase("C", "2026-01-20T00:00:00Z"),
        ] {
            scorer.score(1, line.as_bytes(), &mut sink).unwrap();
        }
        assert_eq!(sink.0, ["scored", "scored", "scored", "scored", "scored", "repeat"]);
    }

    #[test]
    fn one_members_far_future_event_does_not_sweep_anothers_history() {
        let mut scorer = scorer(10).with_prune_interval(2);
        let mut sink = Kinds::default();
        let other =
            r#"{"event_id":"Z","member_id":"N","occurred_at":"2999-01-01T00:00:00Z","currency":"EUR","total":"1"}"#;
        for line in [purchase("A", "2026-01-01T00:00:00Z"), other.to_owned(), purchase("A", "2026-01-01T00:00:00Z")] {
            scorer.score(1, line.as_bytes(), &mut sink).unwrap();
        }
        assert_eq!(sink.0, ["scored", "scored", "repeat"]);
    }

    #[test]
    fn blank_lines_and_crlf_are_not_events() {
        let mut scorer = scorer(90);
        let mut sink = Kinds::default();
        let input = format!("\n \t\r\n{}\r\n\n", purchase("A", "2026-01-01T00:00:00Z"));
        score_lines(&mut scorer, input.as_bytes(), &mut sink, |_| {}).unwrap();
        assert_eq!(sink.0, ["scored"]);
    }
}
