//! Placeholder: the Redis path benchmark.
fn main() {}
