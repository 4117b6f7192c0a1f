//! Memory over a mode, sampled every [`EVERY`]: the daemon's resident set
//! (VmRSS), the `used_memory` of the redis-server started for the mode, and
//! the driver's own VmRSS. The sampler runs on a thread of its own, so that
//! a slow answer from Redis delays neither the producer, the reader nor the
//! mode's checks; it takes one sample when it starts and one when the mode
//! ends, so even a short mode has two.
//!
//! [`trend`] reduces a series to what a soak run is judged by: the value
//! once warmed up, at the end, the peak, and the slope over the second half.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::measure::Clock;
use super::services::usage;
use crate::resp::{Conn, info_field};

/// How often memory is sampled.
pub const EVERY: Duration = Duration::from_secs(2);

/// How often the sampler looks at its stop flag between samples.
const POLL: Duration = Duration::from_millis(50);

/// Where the settled value is read in a run of at least twice this long;
/// in a shorter one, a quarter of the way through.
const SETTLED_AT_SECONDS: f64 = 60.0;

/// One sample; a value is `None` when it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// [`Clock`] time.
    pub at_us: u64,
    /// The daemon's VmRSS, bytes.
    pub rss: Option<u64>,
    /// Redis `used_memory`, bytes.
    pub redis: Option<u64>,
    /// The driver's VmRSS, bytes.
    pub driver_rss: Option<u64>,
}

/// Samples until `stop` is set, then once more; returns the samples in time order.
pub fn spawn(
    daemon: Option<u32>,
    redis_port: Option<u16>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<Vec<Sample>>> {
    std::thread::Builder::new()
        .name("memory-sampler".into())
        .spawn(move || {
            let mut redis = RedisInfo { port: redis_port, conn: None };
            let mut take = || Sample {
                at_us: clock.now_us(),
                rss: daemon.and_then(usage).map(|u| u.rss),
                redis: redis.used_memory(),
                driver_rss: usage(std::process::id()).map(|u| u.rss),
            };
            let mut samples = vec![take()];
            let mut next = Instant::now() + EVERY;
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                if stopping || Instant::now() >= next {
                    samples.push(take());
                    next += EVERY;
                }
                if stopping {
                    return samples;
                }
                std::thread::sleep(POLL.min(next.saturating_duration_since(Instant::now())));
            }
        })
        .context("starting the memory sampler")
}

/// `INFO memory` of the mode's redis-server, over one connection opened
/// on first use and again after an error.
struct RedisInfo {
    port: Option<u16>,
    conn: Option<Conn>,
}

impl RedisInfo {
    fn used_memory(&mut self) -> Option<u64> {
        let port = self.port?;
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => Conn::open("127.0.0.1", port).ok()?,
        };
        let info = conn.must(&[b"INFO", b"memory"]).ok()?.text()?;
        let bytes = info_field(&info, "used_memory")?.parse().ok()?;
        self.conn = Some(conn);
        Some(bytes)
    }
}

/// A series reduced to what a soak is judged by. Times are seconds since
/// the first event was produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// The first sample at or after [`SETTLED_AT_SECONDS`] (a quarter of the
    /// run when it lasted less than twice that): the value once warmed up.
    pub settled_at: f64,
    pub settled: u64,
    /// The last sample.
    pub end_at: f64,
    pub end: u64,
    pub peak: u64,
    /// Least-squares slope over the samples of the second half, bytes per
    /// minute; `None` with fewer than two there.
    pub slope_per_minute: Option<f64>,
}

/// The trend of `(seconds, bytes)` points in time order; `None` without any.
pub fn trend(points: &[(f64, u64)]) -> Option<Trend> {
    let &(end_at, end) = points.last()?;
    let target = if end_at >= 2.0 * SETTLED_AT_SECONDS { SETTLED_AT_SECONDS } else { end_at / 4.0 };
    let &(settled_at, settled) = points.iter().find(|(t, _)| *t >= target).unwrap_or(&points[0]);
    let peak = points.iter().map(|(_, v)| *v).max().unwrap_or(end);
    let second_half: Vec<(f64, f64)> =
        points.iter().filter(|(t, _)| *t >= end_at / 2.0).map(|&(t, v)| (t, v as f64)).collect();
    Some(Trend { settled_at, settled, end_at, end, peak, slope_per_minute: slope(&second_half).map(|s| s * 60.0) })
}

/// Least-squares slope of y over x; `None` when x does not vary.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// One of a sample's values.
pub type Field = fn(&Sample) -> Option<u64>;

/// `(seconds since first_us, value)` of the samples that have the value.
pub fn series(samples: &[Sample], first_us: u64, value: Field) -> Vec<(f64, u64)> {
    samples.iter().filter_map(|s| Some(((s.at_us as f64 - first_us as f64) / 1e6, value(s)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_flat_series_after_its_warm_up() {
        // Growing for the first 30 s, flat at 40 MiB after, one spike.
        let points: Vec<(f64, u64)> = (0..=300)
            .step_by(2)
            .map(|t| {
                let v = if t < 30 { 20 * MIB + t as u64 * MIB * 2 / 3 } else { 40 * MIB };
                (f64::from(t), if t == 200 { 55 * MIB } else { v })
            })
            .collect();
        let trend = trend(&points).expect("a trend");
        assert_eq!((trend.settled_at, trend.settled), (60.0, 40 * MIB));
        assert_eq!((trend.end_at, trend.end, trend.peak), (300.0, 40 * MIB, 55 * MIB));
        // The spike is one sample of the second half: a small slope, not none.
        let slope = trend.slope_per_minute.expect("a slope");
        assert!(slope.abs() < 0.2 * MIB as f64, "{slope}");
    }

    #[test]
    fn a_growing_series_and_a_short_one() {
        // 1 MiB a minute, sampled every 2 s for 10 minutes.
        let points: Vec<(f64, u64)> =
            (0..=600).step_by(2).map(|t| (f64::from(t), 30 * MIB + t as u64 * MIB / 60)).collect();
        let slope = trend(&points).and_then(|t| t.slope_per_minute).expect("a slope");
        assert!((slope / MIB as f64 - 1.0).abs() < 1e-6, "{slope}");
        // A 10 s run is read a quarter of the way in; one point has no slope.
        let short = [(0.0, 5), (2.0, 6), (4.0, 7), (10.0, 9)];
        let t = trend(&short).expect("a trend");
        assert_eq!((t.settled_at, t.settled, t.end, t.peak), (4.0, 7, 9, 9));
        assert!(trend(&[(0.0, 1)]).expect("a trend").slope_per_minute.is_none());
        assert!(trend(&[]).is_none());
    }

    #[test]
    fn samples_until_stopped() {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = spawn(Some(std::process::id()), None, Clock::start(), stop.clone()).expect("sampler");
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().expect("sampler thread");
        assert!(samples.len() >= 2, "{samples:?}");
        assert!(samples.iter().all(|s| s.rss.is_some_and(|r| r > 0) && s.redis.is_none() && s.driver_rss.is_some()));
        assert!(samples.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    }
}
