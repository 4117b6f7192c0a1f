//! Decoding (placeholder, replaced by the real decoder).

use crate::event::Event;
use crate::rules::ProgramSet;

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

/// Default maximum message size (64 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Decodes messages one at a time, reusing its buffers.
#[derive(Debug, Default)]
pub struct Decoder {}

impl Decoder {
    pub fn new(max_message_bytes: usize) -> Self {
        let _ = max_message_bytes;
        Self {}
    }

    pub fn decode<'a>(&'a mut self, message: &[u8], programs: &ProgramSet) -> Result<Event<'a>, DecodeError> {
        let _ = (message, programs);
        Err(DecodeError { reason: Reason::InvalidJson, detail: String::new() })
    }
}
