//! What a batch sends to Kafka: reward events to the rewards topic and dead
//! letters to the dead-letter topic, gathered from the batch's dispositions
//! (a [`Sink`]) and produced once the batch's state is written.
//!
//! Reward events are keyed by `member_id` (a member's rewards stay in one
//! partition, in order) and carry the headers `program`, `kind` and
//! `rules_version`. Dead letters are the input message unchanged, with its
//! key, and the headers `reason`, `detail`, `source_topic`,
//! `source_partition` and `source_offset`.

use std::io;

use crate::decode::DecodeError;
use crate::event::Event;
use crate::outcome::Line;
use crate::pipeline::{Disposition, Sink};
use crate::rules::Program;
use crate::telemetry::metric::EventOutcome;

/// Where one message of the batch came from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'m> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'m [u8]>,
}

/// One record to produce.
#[derive(Debug, Clone)]
pub struct Output {
    /// Index of the input message in the batch.
    pub message: usize,
    pub kind: OutputKind,
}

#[derive(Debug, Clone)]
pub enum OutputKind {
    /// A reward event. `payload`, `key`, `program` and `rules_version` are
    /// ranges of [`Outputs::bytes`]: a batch's outputs take no allocation
    /// per event once its buffers have grown.
    Reward {
        payload: (usize, usize),
        key: (usize, usize),
        program: (usize, usize),
        kind: &'static str,
        rules_version: (usize, usize),
    },
    /// The input message, unchanged: `payload` and `key` are ranges of
    /// [`Outputs::bytes`] (a batch's outputs outlive its messages while
    /// they wait for their acknowledgements), with where it came from.
    DeadLetter { error: DecodeError, payload: (usize, usize), key: Option<(usize, usize)>, partition: i32, offset: i64 },
}

/// Counts of a batch's outcomes, for the metrics (counted once per batch).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub scored: u64,
    pub rejected: u64,
    pub duplicate: u64,
    pub anonymous: u64,
    pub dead_lettered: u64,
}

impl Tally {
    pub fn get(&self, outcome: EventOutcome) -> u64 {
        match outcome {
            EventOutcome::Scored => self.scored,
            EventOutcome::Rejected => self.rejected,
            EventOutcome::Duplicate => self.duplicate,
            EventOutcome::Anonymous => self.anonymous,
            EventOutcome::DeadLettered => self.dead_lettered,
        }
    }
}

/// A batch's outputs, in input order; reward bytes in one buffer.
#[derive(Debug, Default)]
pub struct Outputs {
    pub records: Vec<Output>,
    pub bytes: Vec<u8>,
    pub tally: Tally,
    /// Points by (program, rule or line, event kind), positive and negative,
    /// summed over the batch.
    pub points: Vec<(String, String, &'static str, i64)>,
    /// The breakdown line of each entry of `points`: entries are found by
    /// it, so a batch names each line once, not once per event.
    lines: Vec<Line>,
}

impl Outputs {
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes.clear();
        self.tally = Tally::default();
        self.points.clear();
        self.lines.clear();
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> (usize, usize) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        (start, self.bytes.len())
    }

    /// A reward event to produce, keyed by the event's member.
    fn push_reward(
        &mut self,
        message: usize,
        reward: &[u8],
        program: &Program,
        event: &Event<'_>,
        rules_version: &str,
    ) {
        let payload = self.push_bytes(reward);
        let key = self.push_bytes(event.member_id.unwrap_or_default().as_bytes());
        let program = self.push_bytes(program.id.as_bytes());
        let rules_version = self.push_bytes(rules_version.as_bytes());
        let kind = OutputKind::Reward { payload, key, program, kind: event.kind.as_str(), rules_version };
        self.records.push(Output { message, kind });
    }

    pub fn slice(&self, range: (usize, usize)) -> &[u8] {
        self.bytes.get(range.0..range.1).unwrap_or_default()
    }

    /// Fills in where each dead letter came from: its message's partition,
    /// offset and key (copied, as the payload is).
    pub fn attach_sources(&mut self, sources: &[Source<'_>]) {
        for i in 0..self.records.len() {
            let Some(source) = sources.get(self.records[i].message).copied() else { continue };
            if !matches!(self.records[i].kind, OutputKind::DeadLetter { .. }) {
                continue;
            }
            let copied = source.key.map(|k| self.push_bytes(k));
            if let OutputKind::DeadLetter { key, partition, offset, .. } = &mut self.records[i].kind {
                *key = copied;
                *partition = source.partition;
                *offset = source.offset;
            }
        }
    }

    /// A range that holds text (a program id, a rules version).
    pub fn text(&self, range: (usize, usize)) -> &str {
        std::str::from_utf8(self.slice(range)).unwrap_or_default()
    }
}

impl Sink for Outputs {
    fn accept(&mut self, position: u64, message_bytes: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        // Positions are the batch's indices + 1 (see `Daemon::score`).
        let message = usize::try_from(position.saturating_sub(1)).map_err(io::Error::other)?;
        match disposition {
            Disposition::Scored { program, event, outcome, reward } => {
                if outcome.status == crate::outcome::Status::Rejected {
                    self.tally.rejected += 1;
                } else {
                    self.tally.scored += 1;
                }
                let kind = event.kind.as_str();
                for &(line, points) in outcome.lines.iter().filter(|(_, p)| *p != 0) {
                    let same = |(i, (p, _, k, _)): &(usize, &(String, String, &str, i64))| {
                        self.lines[*i] == line && *k == kind && *p == program.id
                    };
                    match self.points.iter().enumerate().find(same).map(|(i, _)| i) {
                        Some(i) => self.points[i].3 += points,
                        None => {
                            let name = crate::output::line_name(program, line);
                            self.points.push((program.id.clone(), name, kind, points));
                            self.lines.push(line);
                        }
                    }
                }
                self.push_reward(message, reward, program, event, &program.version);
            }
            Disposition::Repeat { program, event, rules_version, reward } => {
                self.tally.duplicate += 1;
                self.push_reward(message, reward, program, event, rules_version);
            }
            Disposition::Anonymous { .. } => self.tally.anonymous += 1,
            Disposition::Dead(error) => {
                self.tally.dead_lettered += 1;
                let payload = self.push_bytes(message_bytes);
                let kind = OutputKind::DeadLetter { error, payload, key: None, partition: -1, offset: -1 };
                self.records.push(Output { message, kind });
            }
        }
        Ok(())
    }
}
