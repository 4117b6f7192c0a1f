//! Programs: the rules file ([`load`]), the validated model ([`model`]).

pub mod load;
pub mod model;

pub use model::{Program, ProgramSet};
