//! The stream a drive offers, and what each of its lines must come back as.
//!
//! The lines are `loyalty_scorer::generate`'s (Zipf members, baskets,
//! refunds, redemptions, redeliveries, invalid lines). Each line's expected
//! output is found by scoring it with the library's own pipeline on the
//! embedded store before it is offered: a reward event (`reward_id` = `r:` +
//! its `event_id`; a redelivered line gets its first reward again), a dead
//! letter (the line unchanged), or nothing (an anonymous sale). Whether a
//! line is a reward, a dead letter or nothing depends on its decoding alone,
//! not on the state before it (a repeated `event_id` is a reward under that
//! id as the first was) nor on the order members' events are applied in, so
//! this holds for the daemon whatever its partitions and batches.
//!
//! A stream is held whole ([`Stream::generate`]) or generated as it is
//! offered ([`spawn_chunks`]): the generator is deterministic per seed and
//! its first N lines do not depend on how many follow, so a chunk of a long
//! stream holds the same lines as the same range of a whole one. Chunks
//! travel over a bounded channel, so only a few are in memory at once; each
//! is scored on a store of its own, so the driver's memory stays bounded
//! whatever the stream's length.
//!
//! [`Index`] answers, for an output read back, which input line it finishes:
//! the earliest line with that identity not yet finished. A line is held
//! there from before it is produced until its output is read, no longer.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::Context;
use loyalty_scorer::generate;
use loyalty_scorer::pipeline::{Disposition, Scorer, Sink};
use loyalty_scorer::rules::ProgramSet;
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::state::memory::MemoryStore;

/// Lines per chunk of a stream generated as it is offered: about 2 MB, under
/// a second's worth at the rates a soak offers.
pub const CHUNK_LINES: usize = 4_096;

/// Chunks generated ahead of the one being offered.
const CHUNKS_AHEAD: usize = 2;

/// What a line becomes in the daemon's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A reward event for this event id.
    Reward(Box<str>),
    DeadLetter,
    /// An anonymous sale: counted, never emitted.
    Nothing,
}

/// Lines of the stream: all of it, or one chunk.
#[derive(Debug)]
pub struct Stream {
    /// The number, in the whole stream, of this one's line 0.
    pub first: usize,
    /// Every line, back to back; `spans[i]` is line i.
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// The `member_id` of each line (the input key), when it has one.
    keys: Vec<Option<(usize, usize)>>,
    pub expect: Vec<Expect>,
}

impl Stream {
    pub fn generate(events: u64, members: u32, seed: u64) -> anyhow::Result<Stream> {
        let mut bytes = Vec::with_capacity(events as usize * 600);
        generate::write_stream(&generator(events, members, seed), &mut bytes).context("generating the stream")?;
        Ok(Stream::from_lines(bytes, 0))
    }

    /// The lines of `bytes`, each ending in a newline, numbered from `first`.
    fn from_lines(bytes: Vec<u8>, first: usize) -> Stream {
        let mut spans = Vec::with_capacity(bytes.len() / 400);
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                spans.push((start, i));
                start = i + 1;
            }
        }
        let keys =
            spans.iter().map(|&(s, e)| json_string(&bytes[s..e], "member_id").map(|(a, b)| (s + a, s + b))).collect();
        Stream { first, bytes, spans, keys, expect: Vec::new() }
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

    pub fn tally(&self) -> Tally {
        let lens = self.spans.iter().map(|(s, e)| e - s);
        Tally {
            lines: self.len(),
            bytes: lens.clone().sum(),
            smallest: lens.clone().min().unwrap_or(0),
            largest: lens.max().unwrap_or(0),
            rewards: self.expect.iter().filter(|e| matches!(e, Expect::Reward(_))).count(),
            dead_letters: self.expect.iter().filter(|e| **e == Expect::DeadLetter).count(),
            anonymous: self.expect.iter().filter(|e| **e == Expect::Nothing).count(),
        }
    }
}

/// The generator's options for a stream of `events` lines.
fn generator(events: u64, members: u32, seed: u64) -> generate::Options {
    generate::Options { events, members, zipf: 1.1, seed, interval_ms: 2_600, currency: "EUR".into(), output: None }
}

/// What a stream, or the part of it generated so far, holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub lines: usize,
    pub bytes: usize,
    pub smallest: usize,
    pub largest: usize,
    pub rewards: usize,
    pub dead_letters: usize,
    pub anonymous: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.smallest = if self.lines == 0 { other.smallest } else { self.smallest.min(other.smallest) };
        self.largest = self.largest.max(other.largest);
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.rewards += other.rewards;
        self.dead_letters += other.dead_letters;
        self.anonymous += other.anonymous;
    }

    pub fn mean(&self) -> usize {
        self.bytes / self.lines.max(1)
    }
}

/// Learns each line's expected output under a set of rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    programs: ProgramSet,
    settings: Settings,
    max_message_bytes: usize,
}

impl Classifier {
    pub fn new(rules: &[PathBuf], settings: Settings, max_message_bytes: usize) -> anyhow::Result<Classifier> {
        let programs = loyalty_scorer::commands::load_programs(rules)?;
        Ok(Classifier { programs, settings, max_message_bytes })
    }

    /// Scores `stream` once, in order, on a fresh embedded store.
    pub fn classify(&self, stream: &mut Stream) -> anyhow::Result<()> {
        let mut scorer = Scorer::new(self.programs.clone(), self.settings, self.max_message_bytes, MemoryStore::new());
        let mut sink = Expectations(Vec::with_capacity(stream.len()));
        for i in 0..stream.len() {
            scorer.score(i as u64 + 1, stream.line(i), &mut sink).context("scoring the stream in memory")?;
        }
        stream.expect = sink.0;
        Ok(())
    }
}

/// Generates `events` lines on a thread of its own, in classified chunks of
/// [`CHUNK_LINES`], in order. The thread ends when the stream is complete
/// or when the receiver is dropped (the offer stopped early), and returns
/// what it generated.
pub fn spawn_chunks(
    events: u64,
    members: u32,
    seed: u64,
    classifier: Classifier,
) -> anyhow::Result<(Receiver<Stream>, JoinHandle<anyhow::Result<Tally>>)> {
    let (sender, receiver) = sync_channel(CHUNKS_AHEAD);
    let thread = std::thread::Builder::new()
        .name("stream-generator".into())
        .spawn(move || {
            let mut chunks = ChunkWriter {
                pending: Vec::with_capacity(CHUNK_LINES * 700),
                newlines: 0,
                first: 0,
                classifier,
                sender,
                tally: Tally::default(),
                receiver_gone: false,
            };
            let written =
                generate::write_stream(&generator(events, members, seed), &mut chunks).and_then(|()| chunks.flush());
            match written {
                Ok(()) => Ok(chunks.tally),
                Err(_) if chunks.receiver_gone => Ok(chunks.tally),
                Err(error) => Err(error).context("generating the stream"),
            }
        })
        .context("starting the stream generator")?;
    Ok((receiver, thread))
}

/// The generator's output, cut into chunks at line ends.
struct ChunkWriter {
    pending: Vec<u8>,
    /// Newlines in `pending`.
    newlines: usize,
    /// The number of the next chunk's first line.
    first: usize,
    classifier: Classifier,
    /// To the load producer, which takes every chunk in order; when it
    /// drops its end, the generator stops.
    sender: SyncSender<Stream>,
    tally: Tally,
    receiver_gone: bool,
}

impl ChunkWriter {
    /// Classifies and hands over the complete lines of `pending`.
    fn send(&mut self) -> io::Result<()> {
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else { return Ok(()) };
        let rest = self.pending.split_off(end + 1);
        let mut chunk = Stream::from_lines(std::mem::replace(&mut self.pending, rest), self.first);
        self.newlines = 0;
        self.classifier.classify(&mut chunk).map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.first += chunk.len();
        self.tally.add(&chunk.tally());
        if self.sender.send(chunk).is_err() {
            self.receiver_gone = true;
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the load producer stopped"));
        }
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(data);
        self.newlines += data.iter().filter(|b| **b == b'\n').count();
        if self.newlines >= CHUNK_LINES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
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

/// Which input line an output finishes. Built before a mode's stream when
/// it is held whole; filled by the load producer line by line when it is
/// generated as offered. Emptied by the output reader as outputs arrive.
#[derive(Debug)]
pub struct Index {
    awaits: Awaits,
    /// Lines awaiting a reward, by event id, earliest first.
    rewards: HashMap<Box<[u8]>, VecDeque<u32>>,
    /// Lines awaiting their own bytes back (dead letters; every line through
    /// the passthrough), by a hash of the bytes, earliest first.
    echoes: HashMap<u64, VecDeque<u32>>,
    hasher: RandomState,
    /// Outputs still to come.
    pub expected: usize,
    /// Outputs awaited so far, finished or not.
    pub awaited: usize,
    /// More lines may be added: the load producer has not finished.
    open: bool,
}

/// What the system under test makes of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaits {
    /// The daemon: a reward by event id, a dead letter by its bytes, or nothing.
    Scorer,
    /// The passthrough: every line back as it went in.
    Passthrough,
}

/// What an output is, to match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Reward,
    /// The input bytes, unchanged.
    Echo,
}

impl Index {
    /// The first `lines` lines of a stream held whole, every one awaited.
    pub fn whole(awaits: Awaits, stream: &Stream, lines: usize) -> Index {
        let mut index = Index::open(awaits);
        for i in 0..lines.min(stream.len()) {
            index.add(stream, i);
        }
        index.close();
        index
    }

    /// Empty, awaiting the lines the load producer adds until it closes it.
    pub fn open(awaits: Awaits) -> Index {
        Index {
            awaits,
            rewards: HashMap::new(),
            echoes: HashMap::new(),
            hasher: RandomState::new(),
            expected: 0,
            awaited: 0,
            open: true,
        }
    }

    /// Awaits the output of line `i` of `stream` (a chunk or the whole).
    pub fn add(&mut self, stream: &Stream, i: usize) {
        let number = (stream.first + i) as u32;
        let expect = match self.awaits {
            Awaits::Passthrough => &Expect::DeadLetter,
            Awaits::Scorer => &stream.expect[i],
        };
        match expect {
            Expect::Reward(id) => self.rewards.entry(id.as_bytes().into()).or_default().push_back(number),
            Expect::DeadLetter => {
                let hash = self.hasher.hash_one(stream.line(i));
                self.echoes.entry(hash).or_default().push_back(number);
            }
            Expect::Nothing => return,
        }
        self.expected += 1;
        self.awaited += 1;
    }

    /// No more lines will be added.
    pub fn close(&mut self) {
        self.open = false;
    }

    /// Every line that will be awaited has its output.
    pub fn done(&self) -> bool {
        !self.open && self.expected == 0
    }

    /// The line `payload` finishes, if it was awaited (`None`: a repeated
    /// output, e.g. after a redelivery, or something not from this stream).
    pub fn finish(&mut self, kind: OutputKind, payload: &[u8]) -> Option<u32> {
        // A finished identity's entry goes, so that what is held is what is in flight.
        let line = match kind {
            OutputKind::Reward => {
                let (s, e) = json_string(payload, "reward_id")?;
                let id = payload[s..e].strip_prefix(b"r:")?;
                pop(&mut self.rewards, id)?
            }
            OutputKind::Echo => {
                let hash = self.hasher.hash_one(payload);
                pop(&mut self.echoes, &hash)?
            }
        };
        self.expected -= 1;
        Some(line)
    }
}

/// The earliest line under `key`; the key is removed with its last line.
fn pop<K, Q>(map: &mut HashMap<K, VecDeque<u32>>, key: &Q) -> Option<u32>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let queue = map.get_mut(key)?;
    let line = queue.pop_front()?;
    if queue.is_empty() {
        map.remove(key);
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> Classifier {
        let rules = [PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/rules/acme.toml")];
        Classifier::new(&rules, Settings { retention_days: 90 }, 65_536).expect("the acme rules")
    }

    #[test]
    fn every_line_is_classified_and_matched_once() {
        let mut stream = Stream::generate(3_000, 300, 5).expect("generate");
        classifier().classify(&mut stream).expect("classify");
        assert_eq!(stream.expect.len(), 3_000);
        let Tally { rewards, dead_letters: dead, anonymous: nothing, .. } = stream.tally();
        // The generator's shares: about 1% invalid, 3% of purchases anonymous.
        assert!(dead > 0 && nothing > 0 && rewards > 2_700, "{rewards} {dead} {nothing}");

        let mut index = Index::whole(Awaits::Scorer, &stream, stream.len());
        assert_eq!(index.expected, rewards + dead);
        assert!(!index.done());
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
        assert!(index.done());
        assert!(index.rewards.is_empty() && index.echoes.is_empty(), "finished lines are not held");
        assert!(seen.values().any(|lines| lines.len() > 1), "the stream holds redeliveries");
        assert!(seen.values().all(|lines| lines.windows(2).all(|w| w[0] < w[1])));
        assert_eq!(index.finish(OutputKind::Reward, br#"{"reward_id":"r:ev-000000001"}"#), None);
    }

    #[test]
    fn passthrough_awaits_every_line() {
        let stream = Stream::generate(500, 50, 1).expect("generate");
        let mut index = Index::whole(Awaits::Passthrough, &stream, 500);
        assert_eq!(index.expected, 500);
        for i in (0..500).rev() {
            assert!(index.finish(OutputKind::Echo, stream.line(i)).is_some());
        }
        assert_eq!(index.finish(OutputKind::Echo, stream.line(0)), None);
        let tally = stream.tally();
        let (min, mean, max) = (tally.smallest, tally.mean(), tally.largest);
        assert!(min > 50 && (300..1000).contains(&mean) && max < 4096, "{min} {mean} {max}");
    }

    /// Generated as offered, the stream is the same lines with the same
    /// expectations as held whole, numbered on across chunks.
    #[test]
    fn chunks_are_the_whole_stream() {
        let events = CHUNK_LINES * 2 + 123;
        let mut whole = Stream::generate(events as u64, 400, 9).expect("generate");
        classifier().classify(&mut whole).expect("classify");
        let (chunks, generator) = spawn_chunks(events as u64, 400, 9, classifier()).expect("generator");
        let mut next = 0;
        let mut index = Index::open(Awaits::Scorer);
        for chunk in chunks {
            assert_eq!(chunk.first, next);
            for i in 0..chunk.len() {
                assert_eq!(chunk.line(i), whole.line(next + i), "line {}", next + i);
                assert_eq!(chunk.key(i), whole.key(next + i));
                assert_eq!(chunk.expect[i], whole.expect[next + i]);
                index.add(&chunk, i);
            }
            next += chunk.len();
        }
        assert_eq!(next, events);
        assert_eq!(generator.join().expect("generator thread").expect("generated"), whole.tally());
        index.close();
        assert_eq!(index.awaited, Index::whole(Awaits::Scorer, &whole, events).expected);

        // The generator stops when its receiver goes, with what it made.
        let (chunks, generator) = spawn_chunks(10_000_000, 400, 9, classifier()).expect("generator");
        let first = chunks.recv().expect("a first chunk");
        assert_eq!(first.len(), CHUNK_LINES);
        drop(chunks);
        let made = generator.join().expect("generator thread").expect("stopped, not failed");
        assert!(made.lines < 10 * CHUNK_LINES, "{made:?}");
    }
}
