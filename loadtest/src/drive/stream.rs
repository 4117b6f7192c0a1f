//! The stream a drive offers, held in memory, and what each of its lines
//! must come back as.
//!
//! The lines are `loyalty_scorer::generate`'s (Zipf members, baskets,
//! refunds, redemptions, redeliveries, invalid lines). Each line's expected
//! output is found by scoring the stream once with the library's own
//! pipeline on the embedded store before anything is timed: a reward event
//! (`reward_id` = `r:` + its `event_id`; a redelivered line gets its first
//! reward again), a dead letter (the line unchanged), or nothing (an
//! anonymous sale). Whether a line is a reward, a dead letter or nothing does
//! not depend on the order members' events are applied in, so this holds for
//! the daemon whatever its partitions and batches.
//!
//! [`Index`] answers, for an output read back, which input line it finishes:
//! the earliest line with that identity not yet finished.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::path::PathBuf;

use anyhow::Context;
use loyalty_scorer::generate;
use loyalty_scorer::pipeline::{Disposition, Scorer, Sink};
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::state::memory::MemoryStore;

/// What a line becomes in the daemon's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A reward event for this event id.
    Reward(Box<str>),
    DeadLetter,
    /// An anonymous sale: counted, never emitted.
    Nothing,
}

#[derive(Debug)]
pub struct Stream {
    /// Every line, back to back; `spans[i]` is line i.
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// The `member_id` of each line (the input key), when it has one.
    keys: Vec<Option<(usize, usize)>>,
    pub expect: Vec<Expect>,
}

impl Stream {
    pub fn generate(events: u64, members: u32, seed: u64) -> anyhow::Result<Stream> {
        let options = generate::Options {
            events,
            members,
            zipf: 1.1,
            seed,
            interval_ms: 2_600,
            currency: "EUR".into(),
            output: None,
        };
        let mut bytes = Vec::with_capacity(events as usize * 600);
        generate::write_stream(&options, &mut bytes).context("generating the stream")?;
        let mut spans = Vec::with_capacity(events as usize);
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                spans.push((start, i));
                start = i + 1;
            }
        }
        let keys =
            spans.iter().map(|&(s, e)| json_string(&bytes[s..e], "member_id").map(|(a, b)| (s + a, s + b))).collect();
        Ok(Stream { bytes, spans, keys, expect: Vec::new() })
    }

    /// Scores the stream once, in order, under `rules`, to learn each line's output.
    pub fn classify(&mut self, rules: &[PathBuf], settings: Settings, max_message_bytes: usize) -> anyhow::Result<()> {
        let programs = loyalty_scorer::commands::load_programs(rules)?;
        let mut scorer = Scorer::new(programs, settings, max_message_bytes, MemoryStore::new());
        let mut sink = Expectations(Vec::with_capacity(self.len()));
        for i in 0..self.len() {
            scorer.score(i as u64 + 1, self.line(i), &mut sink).context("scoring the stream in memory")?;
        }
        self.expect = sink.0;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn line(&self, i: usize) -> &[u8] {
        let (s, e) = self.spans[i];
        &self.bytes[s..e]
    }

    pub fn key(&self, i: usize) -> Option<&[u8]> {
        self.keys[i].map(|(s, e)| &self.bytes[s..e])
    }

    pub fn bytes_total(&self) -> usize {
        self.spans.iter().map(|(s, e)| e - s).sum()
    }

    /// (smallest, mean, largest) line in bytes.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let lens = self.spans.iter().map(|(s, e)| e - s);
        let min = lens.clone().min().unwrap_or(0);
        let max = lens.max().unwrap_or(0);
        (min, self.bytes_total() / self.len().max(1), max)
    }

    pub fn count(&self, want: fn(&Expect) -> bool) -> usize {
        self.expect.iter().filter(|e| want(e)).count()
    }
}

struct Expectations(Vec<Expect>);

impl Sink for Expectations {
    fn accept(&mut self, _position: u64, _message: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        self.0.push(match disposition {
            Disposition::Scored { event, .. } | Disposition::Repeat { event, .. } => {
                Expect::Reward(event.event_id.into())
            }
            Disposition::Dead(_) => Expect::DeadLetter,
            Disposition::Anonymous { .. } => Expect::Nothing,
        });
        Ok(())
    }
}

/// The byte range of the value of the JSON string field `name`, found by its
/// exact `"name":"` prefix (the generator's and the scorer's layout: no
/// spaces, no escapes in ids).
pub fn json_string(line: &[u8], name: &str) -> Option<(usize, usize)> {
    let mut prefix = Vec::with_capacity(name.len() + 4);
    prefix.push(b'"');
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(b"\":\"");
    let start = line.windows(prefix.len()).position(|w| w == prefix.as_slice())? + prefix.len();
    let len = line[start..].iter().position(|b| *b == b'"')?;
    Some((start, start + len))
}

/// Which input line an output finishes. Built per mode, consumed as outputs
/// arrive; owned by the output reader.
#[derive(Debug)]
pub struct Index {
    /// Lines awaiting a reward, by event id, earliest first.
    rewards: HashMap<Box<[u8]>, VecDeque<u32>>,
    /// Lines awaiting their own bytes back (dead letters; every line through
    /// the passthrough), by a hash of the bytes, earliest first.
    echoes: HashMap<u64, VecDeque<u32>>,
    hasher: RandomState,
    /// Outputs still to come.
    pub expected: usize,
}

/// What an output is, to match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Reward,
    /// The input bytes, unchanged.
    Echo,
}

impl Index {
    /// For the daemon, over the first `lines` lines: rewards by event id,
    /// dead letters by their bytes.
    pub fn scorer(stream: &Stream, lines: usize) -> Index {
        let mut index = Index::empty();
        for (i, expect) in stream.expect.iter().enumerate().take(lines) {
            match expect {
                Expect::Reward(id) => {
                    index.rewards.entry(id.as_bytes().into()).or_default().push_back(i as u32);
                    index.expected += 1;
                }
                Expect::DeadLetter => index.add_echo(stream.line(i), i),
                Expect::Nothing => {}
            }
        }
        index
    }

    /// For the passthrough, over the first `lines` lines: every line comes
    /// back as it went in.
    pub fn passthrough(stream: &Stream, lines: usize) -> Index {
        let mut index = Index::empty();
        for i in 0..lines.min(stream.len()) {
            index.add_echo(stream.line(i), i);
        }
        index
    }

    fn empty() -> Index {
        Index { rewards: HashMap::new(), echoes: HashMap::new(), hasher: RandomState::new(), expected: 0 }
    }

    fn add_echo(&mut self, line: &[u8], i: usize) {
        let hash = self.hasher.hash_one(line);
        self.echoes.entry(hash).or_default().push_back(i as u32);
        self.expected += 1;
    }

    /// The line `payload` finishes, if it was awaited (`None`: a repeated
    /// output, e.g. after a redelivery, or something not from this stream).
    pub fn finish(&mut self, kind: OutputKind, payload: &[u8]) -> Option<u32> {
        let queue = match kind {
            OutputKind::Reward => {
                let (s, e) = json_string(payload, "reward_id")?;
                let id = payload[s..e].strip_prefix(b"r:")?;
                self.rewards.get_mut(id)?
            }
            OutputKind::Echo => {
                let hash = self.hasher.hash_one(payload);
                self.echoes.get_mut(&hash)?
            }
        };
        let line = queue.pop_front()?;
        self.expected -= 1;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<PathBuf> {
        vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/rules/acme.toml")]
    }

    #[test]
    fn every_line_is_classified_and_matched_once() {
        let mut stream = Stream::generate(3_000, 300, 5).expect("generate");
        stream.classify(&rules(), Settings { retention_days: 90 }, 65_536).expect("classify");
        assert_eq!(stream.expect.len(), 3_000);
        let rewards = stream.count(|e| matches!(e, Expect::Reward(_)));
        let dead = stream.count(|e| *e == Expect::DeadLetter);
        let nothing = stream.count(|e| *e == Expect::Nothing);
        // The generator's shares: about 1% invalid, 3% of purchases anonymous.
        assert!(dead > 0 && nothing > 0 && rewards > 2_700, "{rewards} {dead} {nothing}");

        let mut index = Index::scorer(&stream, stream.len());
        assert_eq!(index.expected, rewards + dead);
        // A redelivered line's reward comes back twice and finishes both lines, in order.
        let mut seen = std::collections::HashMap::<&str, Vec<u32>>::new();
        for (i, expect) in stream.expect.iter().enumerate() {
            match expect {
                Expect::Reward(id) => {
                    let reward = format!(r#"{{"reward_id":"r:{id}","event_id":"{id}"}}"#);
                    let line = index.finish(OutputKind::Reward, reward.as_bytes()).expect("awaited reward");
                    seen.entry(id).or_default().push(line);
                }
                Expect::DeadLetter => {
                    assert!(index.finish(OutputKind::Echo, stream.line(i)).is_some(), "dead letter {i}");
                }
                Expect::Nothing => {}
            }
        }
        assert_eq!(index.expected, 0);
        assert!(seen.values().any(|lines| lines.len() > 1), "the stream holds redeliveries");
        assert!(seen.values().all(|lines| lines.windows(2).all(|w| w[0] < w[1])));
        assert_eq!(index.finish(OutputKind::Reward, br#"{"reward_id":"r:ev-000000001"}"#), None);
    }

    #[test]
    fn passthrough_awaits_every_line() {
        let stream = Stream::generate(500, 50, 1).expect("generate");
        let mut index = Index::passthrough(&stream, 500);
        assert_eq!(index.expected, 500);
        for i in (0..500).rev() {
            assert!(index.finish(OutputKind::Echo, stream.line(i)).is_some());
        }
        assert_eq!(index.finish(OutputKind::Echo, stream.line(0)), None);
        let (min, mean, max) = stream.sizes();
        assert!(min > 50 && (300..1000).contains(&mean) && max < 4096, "{min} {mean} {max}");
    }
}
