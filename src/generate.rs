//! A generated retail event stream (for `demo` and `loadtest generate`):
//! members with Zipf-like popularity, baskets, refunds, redemptions,
//! duplicates and a few invalid lines. Uses its own small PRNG (SplitMix64) so a
//! seed gives the same stream on every platform and version.

use std::io::{self, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Number of lines to write.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Number of distinct members.
    #[arg(long, default_value_t = 50_000)]
    pub members: u32,
    /// Zipf exponent of member popularity.
    #[arg(long, default_value_t = 1.1)]
    pub zipf: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Event time between two events, in milliseconds.
    #[arg(long, default_value_t = 2_600)]
    pub interval_ms: u64,
    /// Currency of the events (the program's).
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// Where to write (`-`: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Zipf sampling by inverse CDF over precomputed cumulative weights.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n.max(1) {
            sum += 1.0 / f64::from(k).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

const CATEGORIES: [(&str, u32, u32); 10] = [
    // (category, min cents, max cents)
    ("grocery", 49, 2_500),
    ("coffee", 180, 1_200),
    ("bakery", 60, 900),
    ("produce", 40, 1_500),
    ("dairy", 50, 800),
    ("household", 150, 4_000),
    ("breakfast", 200, 1_800),
    ("electronics", 1_999, 120_000),
    ("tobacco", 650, 9_000),
    ("gift-cards", 1_000, 10_000),
];
const MERCHANTS: [&str; 5] = ["acme", "acme-express", "fuel-co", "pharma", "bistro"];
const CHANNELS: [&str; 3] = ["store", "online", "app"];

struct Purchase {
    id: String,
    member: usize,
    cents: u64,
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Writes `options.events` lines.
pub fn write_stream(options: &Options, out: &mut impl Write) -> io::Result<()> {
    let mut rng = Rng(options.seed);
    let zipf = Zipf::new(options.members, options.zipf);
    // Recent purchases, for refunds that name a real original.
    let mut recent: Vec<Purchase> = Vec::with_capacity(4096);
    let mut previous: Vec<String> = Vec::with_capacity(256);
    // From 2026-11-01T00:00:00Z; at the default 2.6 s per event a million
    // events span a month.
    let start: i64 = 1_793_491_200;
    let mut line = String::with_capacity(2048);
    for n in 0..options.events {
        line.clear();
        let secs = start + (u128::from(n) * u128::from(options.interval_ms) / 1000) as i64;
        let at = timestamp(secs, rng.chance(0.3));
        let roll = rng.unit();
        if roll < 0.02 && !previous.is_empty() {
            // A redelivery: the same bytes again.
            let i = rng.below(previous.len() as u64) as usize;
            line.push_str(&previous[i]);
        } else if roll < 0.03 {
            invalid(&mut rng, n, &at, &options.currency, &mut line);
        } else if roll < 0.08 && !recent.is_empty() {
            let p = &recent[rng.below(recent.len() as u64) as usize];
            let cents = if rng.chance(0.5) { p.cents } else { 1 + rng.below(p.cents.max(1)) };
            line.push_str(&format!(
                r#"{{"event_id":"ev-{n:09}","kind":"refund","original_event_id":"{}","member_id":"M{:07}","store_id":"S{:03}","channel":"store","occurred_at":"{at}","currency":"{}","total":"{}","reason_code":"customer_return","operator":"till-{}"}}"#,
                p.id,
                p.member,
                rng.below(200),
                options.currency,
                money(cents),
                rng.below(40)
            ));
        } else if roll < 0.13 {
            line.push_str(&format!(
                r#"{{"event_id":"ev-{n:09}","kind":"redeem","member_id":"M{:07}","channel":"{}","store_id":"S{:03}","occurred_at":"{at}","points":{},"pos":{{"terminal":"T{:02}","operator":"op-{}"}}}}"#,
                zipf.sample(&mut rng),
                CHANNELS[rng.below(3) as usize],
                rng.below(200),
                100 * (1 + rng.below(20)),
                rng.below(20),
                rng.below(500)
            ));
        } else {
            purchase(&mut rng, &zipf, n, &at, &options.currency, &mut line, &mut recent);
        }
        if previous.len() < 256 {
            previous.push(line.clone());
        } else {
            let i = rng.below(256) as usize;
            previous[i].clone_from(&line);
        }
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn purchase(
    rng: &mut Rng,
    zipf: &Zipf,
    n: u64,
    at: &str,
    currency: &str,
    line: &mut String,
    recent: &mut Vec<Purchase>,
) {
    // Mostly small baskets, now and then a big shop.
    let lines = if rng.chance(0.8) { 1 + rng.below(5) } else { 1 + rng.below(20) };
    let mut items = String::new();
    let mut total = 0u64;
    for i in 0..lines {
        let (category, lo, hi) = CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
        let quantity = if rng.chance(0.8) { 1 } else { 1 + rng.below(4) };
        let cents = (u64::from(lo) + rng.below(u64::from(hi - lo))) * quantity;
        total += cents;
        if i > 0 {
            items.push(',');
        }
        items.push_str(&format!(
            r#"{{"sku":"{}-{:05}","category":"{category}","quantity":{quantity},"amount":"{}"}}"#,
            &category[..3].to_ascii_uppercase(),
            rng.below(100_000),
            money(cents)
        ));
    }
    let member = zipf.sample(rng);
    let anonymous = rng.chance(0.03);
    let member_field = if anonymous { String::new() } else { format!(r#""member_id":"M{member:07}","#) };
    let id = format!("ev-{n:09}");
    // A share of tills send the total as a JSON number.
    let total_field = if rng.chance(0.1) { money(total) } else { format!("\"{}\"", money(total)) };
    line.push_str(&format!(
        r#"{{"event_id":"{id}",{member_field}"merchant_id":"{}","store_id":"S{:03}","channel":"{}","occurred_at":"{at}","currency":"{currency}","total":{total_field},"items":[{items}],"pos":{{"terminal":"T{:02}","receipt":"R{:08}"}}}}"#,
        MERCHANTS[rng.below(MERCHANTS.len() as u64) as usize],
        rng.below(200),
        CHANNELS[rng.below(3) as usize],
        rng.below(20),
        rng.below(100_000_000),
    ));
    if !anonymous {
        if recent.len() < 4096 {
            recent.push(Purchase { id, member, cents: total });
        } else {
            let i = rng.below(4096) as usize;
            recent[i] = Purchase { id, member, cents: total };
        }
    }
}

fn invalid(rng: &mut Rng, n: u64, at: &str, currency: &str, line: &mut String) {
    let text = match rng.below(6) {
        0 => format!(
            r#"{{"event_id":"ev-{n:09}","member_id":"M1","occurred_at":"{at}","currency":"{currency}","total":"12.5"#
        ),
        1 => format!(r#"{{"event_id":"ev-{n:09}","kind":"gift","member_id":"M1","occurred_at":"{at}"}}"#),
        2 => format!(r#"{{"member_id":"M1","occurred_at":"{at}","currency":"{currency}","total":"3.00"}}"#),
        3 => format!(
            r#"{{"event_id":"ev-{n:09}","member_id":"M1","occurred_at":"{at}","currency":"{currency}","total":"-4.00"}}"#
        ),
        4 => format!(
            r#"{{"event_id":"ev-{n:09}","member_id":"M1","occurred_at":"{at}","currency":"XXX","total":"4.00"}}"#
        ),
        _ => format!(
            r#"{{"event_id":"ev-{n:09}","member_id":"M1","occurred_at":"yesterday","currency":"{currency}","total":"4.00"}}"#
        ),
    };
    line.push_str(&text);
}

/// RFC 3339 for a Unix time, in UTC or at +01:00.
fn timestamp(secs: i64, offset: bool) -> String {
    let local = if offset { secs + 3600 } else { secs };
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let suffix = if offset { "+01:00" } else { "Z" };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{suffix}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(timestamp(1_793_491_200, false), "2026-11-01T00:00:00Z");
        assert_eq!(timestamp(1_793_491_200, true), "2026-11-01T01:00:00+01:00");
    }

    #[test]
    fn same_seed_same_stream() {
        let options = Options {
            events: 500,
            members: 100,
            zipf: 1.1,
            seed: 7,
            interval_ms: 2_600,
            currency: "EUR".into(),
            output: None,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_stream(&options, &mut a).unwrap();
        write_stream(&options, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 500);
    }
}
