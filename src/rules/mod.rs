//! Programs: the rules file ([`load`]), the validated model ([`model`]).

pub mod engine;
pub mod load;
pub mod model;
pub mod round;
pub mod time;

pub use model::{Program, ProgramSet};
