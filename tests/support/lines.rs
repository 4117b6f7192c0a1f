//! A [`Sink`] that keeps a batch's reward events and dead letters as JSON
//! values, in input order, each checked against its schema.

use std::io;

use loyalty_scorer::output::write_dead_letter;
use loyalty_scorer::pipeline::{Disposition, Sink};
use serde_json::Value;

use super::schema::{assert_dead_letter_valid, assert_reward_valid};

/// Reward lines and dead letters as JSON values, in input order.
#[derive(Debug, Default)]
pub struct Lines {
    pub rewards: Vec<Value>,
    pub dead: Vec<Value>,
}

impl Sink for Lines {
    fn accept(&mut self, position: u64, message: &[u8], d: Disposition<'_>) -> io::Result<()> {
        match d {
            Disposition::Scored { reward, .. } | Disposition::Repeat { reward, .. } => {
                let value = serde_json::from_slice(reward).expect("reward JSON");
                assert_reward_valid(&value);
                self.rewards.push(value);
            }
            Disposition::Anonymous { .. } => {}
            Disposition::Dead(error) => {
                let mut line = Vec::new();
                write_dead_letter(&mut line, position, message, &error);
                let value = serde_json::from_slice(&line).expect("dead letter JSON");
                assert_dead_letter_valid(&value);
                self.dead.push(value);
            }
        }
        Ok(())
    }
}
