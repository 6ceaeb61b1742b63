//! What the native engine sends: key distributions, value sizes and `--command` templates.
//!
//! The shapes follow memtier_benchmark's options (`--key-pattern` R/S/G/Z, `--data-size-range`,
//! `--data-size-list`, `--command` with `__key__` and `__data__`), so a run can be set up the
//! same way in either tool.
use std::fmt;

/// xorshift64*: fast, and good enough to spread keys.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A float in (0, 1): never 0, so logarithms and powers stay finite.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// How keys are chosen among the key range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely (redis-benchmark's `-r`, memtier's R).
    Uniform,
    /// One key after the other, wrapping around (memtier's S): a SET run fills the range.
    Sequential,
    /// Normal around the middle of the range; the standard deviation defaults to a sixth of
    /// the range, as memtier's G.
    Gaussian { stddev: Option<f64> },
    /// Key k (counted from the start of the range) with a weight of 1/(k+1)^s (memtier's Z).
    Zipf { exponent: f64 },
}

impl KeyDist {
    pub fn name(&self) -> &'static str {
        match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Sequential => "sequential",
            KeyDist::Gaussian { .. } => "gaussian",
            KeyDist::Zipf { .. } => "zipf",
        }
    }
}

/// Draws key numbers in `[min, min + count)`.
#[derive(Debug, Clone)]
pub struct Keys {
    dist: KeyDist,
    min: u64,
    count: u64,
    next_seq: u64,
    /// Zipf's inverse-CDF constants: `a^(1-s)`, `b^(1-s) - a^(1-s)` and `1/(1-s)` for the
    /// power law on `[a, b) = [0.5, count + 0.5)`, or for s = 1, `b/a`.
    zipf: (f64, f64, f64),
}

impl Keys {
    /// `start` spreads the sequential walks of several engine threads over the range.
    pub fn new(dist: KeyDist, min: u64, count: u64, start: u64) -> Keys {
        let count = count.max(1);
        let (a, b) = (0.5f64, count as f64 + 0.5);
        let zipf = match dist {
            KeyDist::Zipf { exponent } if (exponent - 1.0).abs() > 1e-9 => {
                let e = 1.0 - exponent;
                (a.powf(e), b.powf(e) - a.powf(e), 1.0 / e)
            }
            _ => (0.0, b / a, 0.0),
        };
        Keys {
            dist,
            min,
            count,
            next_seq: start % count,
            zipf,
        }
    }

    #[inline]
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        if self.count == 1 {
            return self.min;
        }
        let off = match self.dist {
            KeyDist::Uniform => rng.next_u64() % self.count,
            KeyDist::Sequential => {
                let k = self.next_seq;
                self.next_seq = if k + 1 == self.count { 0 } else { k + 1 };
                k
            }
            KeyDist::Gaussian { stddev } => {
                let n = self.count as f64;
                let sd = stddev.unwrap_or(n / 6.0).max(1e-9);
                let mid = (n - 1.0) / 2.0;
                // Box–Muller; draws outside the range are drawn again, so the range's ends are
                // not heaped with the clipped tails.
                loop {
                    let (u1, u2) = (rng.unit(), rng.unit());
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    let x = (mid + z * sd).round();
                    if (0.0..n).contains(&x) {
                        break x as u64;
                    }
                }
            }
            KeyDist::Zipf { exponent } => {
                // Inverse CDF of the continuous power law on [0.5, count + 0.5), rank k taking
                // [k + 0.5, k + 1.5): cheap, with no table, and within a few percent of the
                // discrete Zipf's weights.
                let u = rng.unit();
                let (lo, span, inv) = self.zipf;
                let x = if (exponent - 1.0).abs() <= 1e-9 {
                    0.5 * span.powf(u)
                } else {
                    (lo + u * span).powf(inv)
                };
                ((x - 0.5).floor().max(0.0) as u64).min(self.count - 1)
            }
        };
        self.min + off
    }
}

/// Sizes of the values SET (and `__data__`) writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Sizes {
    Fixed(usize),
    /// Uniform in `[min, max]`.
    Range(usize, usize),
    /// Sizes with weights.
    List(Vec<(usize, u32)>),
}

impl Sizes {
    pub fn max(&self) -> usize {
        match self {
            Sizes::Fixed(n) => *n,
            Sizes::Range(_, b) => *b,
            Sizes::List(v) => v.iter().map(|x| x.0).max().unwrap_or(0),
        }
    }

    /// The size a run reports as its value size: the fixed one, or the mean.
    pub fn mean(&self) -> usize {
        match self {
            Sizes::Fixed(n) => *n,
            Sizes::Range(a, b) => (a + b) / 2,
            Sizes::List(v) => {
                let w: u64 = v.iter().map(|x| x.1 as u64).sum();
                let s: u64 = v.iter().map(|x| x.0 as u64 * x.1 as u64).sum();
                (s / w.max(1)) as usize
            }
        }
    }

    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> usize {
        match self {
            Sizes::Fixed(n) => *n,
            Sizes::Range(a, b) => a + (rng.next_u64() % (b - a + 1) as u64) as usize,
            Sizes::List(v) => {
                let total: u64 = v.iter().map(|x| x.1 as u64).sum();
                let mut r = rng.next_u64() % total.max(1);
                for &(size, w) in v {
                    if r < w as u64 {
                        return size;
                    }
                    r -= w as u64;
                }
                v[0].0
            }
        }
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sizes::Fixed(n) => write!(f, "{n}"),
            Sizes::Range(a, b) => write!(f, "{a}-{b}"),
            Sizes::List(v) => {
                let parts: Vec<String> = v.iter().map(|(s, w)| format!("{s}:{w}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// Parse `-d`: `256`, a range `100-1000`, or a weighted list `100:8,1000:2`.
pub fn parse_sizes(s: &str) -> Result<Sizes, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("{t:?}: a size is a whole number of bytes"))
    };
    let s = s.trim();
    if s.contains(':') {
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, w) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?}: expected SIZE:WEIGHT, as in 100:8,1000:2"))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
            if w > 0 {
                v.push((num(size)?, w));
            }
        }
        if v.is_empty() {
            return Err("the size list needs at least one size with a weight above 0".into());
        }
        Ok(Sizes::List(v))
    } else if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("{s:?}: the range's first size is above its last"));
        }
        Ok(if a == b {
            Sizes::Fixed(a)
        } else {
            Sizes::Range(a, b)
        })
    } else {
        num(s).map(Sizes::Fixed)
    }
}

/// One piece of a `--command` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Key,
    Data,
}

/// A `--command` template: its arguments, each a sequence of pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub text: String,
    pub args: Vec<Vec<Piece>>,
}

impl Template {
    /// The command's name (its first word, upper case), for reports.
    pub fn name(&self) -> String {
        self.text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase()
    }

    pub fn uses_key(&self) -> bool {
        self.args.iter().flatten().any(|p| *p == Piece::Key)
    }
}

/// Parse `SET __key__ __data__`: words split at blanks, `"…"` or `'…'` quote a word with
/// blanks; `__key__` and `__data__` may stand anywhere inside a word.
pub fn parse_template(s: &str) -> Result<Template, String> {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("{s:?}: a quote is not closed"));
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    let args = words
        .iter()
        .map(|w| {
            let mut pieces = Vec::new();
            let mut rest = w.as_str();
            while !rest.is_empty() {
                let k = rest.find("__key__");
                let d = rest.find("__data__");
                let (at, piece, len) = match (k, d) {
                    (Some(k), Some(d)) if d < k => (d, Piece::Data, 8),
                    (Some(k), _) => (k, Piece::Key, 7),
                    (None, Some(d)) => (d, Piece::Data, 8),
                    (None, None) => {
                        pieces.push(Piece::Text(rest.as_bytes().to_vec()));
                        break;
                    }
                };
                if at > 0 {
                    pieces.push(Piece::Text(rest.as_bytes()[..at].to_vec()));
                }
                pieces.push(piece);
                rest = &rest[at + len..];
            }
            if pieces.is_empty() {
                pieces.push(Piece::Text(Vec::new()));
            }
            pieces
        })
        .collect();
    Ok(Template {
        text: words.join(" "),
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(dist: KeyDist, n: u64, draws: usize) -> Vec<u64> {
        let mut k = Keys::new(dist, 0, n, 0);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut c = vec![0u64; n as usize];
        for _ in 0..draws {
            c[k.next(&mut rng) as usize] += 1;
        }
        c
    }

    #[test]
    fn sequential_walks_the_range_in_order_and_wraps() {
        let mut k = Keys::new(KeyDist::Sequential, 100, 5, 3);
        let mut rng = Rng(1);
        let got: Vec<u64> = (0..7).map(|_| k.next(&mut rng)).collect();
        assert_eq!(got, vec![103, 104, 100, 101, 102, 103, 104]);
    }

    #[test]
    fn uniform_keys_stay_in_the_range_and_cover_it() {
        let mut k = Keys::new(KeyDist::Uniform, 1000, 10, 0);
        let mut rng = Rng(7);
        let seen: std::collections::BTreeSet<u64> = (0..1000).map(|_| k.next(&mut rng)).collect();
        assert_eq!(seen, (1000..1010).collect());
    }

    #[test]
    fn gaussian_keys_gather_around_the_middle() {
        let c = counts(KeyDist::Gaussian { stddev: None }, 600, 200_000);
        let total: u64 = c.iter().sum();
        assert_eq!(total, 200_000);
        // Within one standard deviation (100 keys each side of 299.5): about 68 %.
        let inner: u64 = c[200..400].iter().sum();
        let share = inner as f64 / total as f64;
        assert!((0.66..0.70).contains(&share), "{share}");
        // The ends are rare, the middle common.
        assert!(c[299] > 20 * (c[0] + 1), "{} vs {}", c[299], c[0]);
        let c = counts(KeyDist::Gaussian { stddev: Some(10.0) }, 600, 50_000);
        let inner: u64 = c[290..310].iter().sum();
        assert!(inner as f64 / 50_000.0 > 0.6);
    }

    #[test]
    fn zipf_keys_fall_off_as_a_power_of_their_rank() {
        for s in [1.0, 0.8] {
            let c = counts(KeyDist::Zipf { exponent: s }, 1000, 400_000);
            // Key 0 is the most common; key k about (k+1)^-s of it.
            assert_eq!(c.iter().enumerate().max_by_key(|x| x.1).unwrap().0, 0);
            for k in [1usize, 3, 9] {
                let want = ((k + 1) as f64).powf(-s);
                let got = c[k] as f64 / c[0] as f64;
                assert!(
                    (got - want).abs() < want * 0.12,
                    "s={s} k={k}: {got} vs {want}"
                );
            }
            assert!(c[999] > 0 || s == 1.0);
        }
    }

    #[test]
    fn sizes_parse_and_follow_their_weights() {
        assert_eq!(parse_sizes("256"), Ok(Sizes::Fixed(256)));
        assert_eq!(parse_sizes("10-20"), Ok(Sizes::Range(10, 20)));
        assert_eq!(parse_sizes("7-7"), Ok(Sizes::Fixed(7)));
        assert_eq!(
            parse_sizes("100:8, 1000:2"),
            Ok(Sizes::List(vec![(100, 8), (1000, 2)]))
        );
        assert!(parse_sizes("20-10").is_err());
        assert!(parse_sizes("x").is_err());
        assert!(parse_sizes("100:0").is_err());
        let mut rng = Rng(3);
        let l = parse_sizes("100:8,1000:2").unwrap();
        let big = (0..10_000).filter(|_| l.pick(&mut rng) == 1000).count();
        assert!((1800..2200).contains(&big), "{big}");
        assert_eq!(l.mean(), 280);
        let r = Sizes::Range(10, 20);
        let seen: std::collections::BTreeSet<usize> = (0..1000).map(|_| r.pick(&mut rng)).collect();
        assert_eq!(seen, (10..=20).collect());
    }

    #[test]
    fn templates_split_words_and_find_placeholders() {
        let t = parse_template("hset 'my hash' f:__key__ __data__").unwrap();
        assert_eq!(t.name(), "HSET");
        assert_eq!(t.args.len(), 4);
        assert_eq!(t.args[1], vec![Piece::Text(b"my hash".to_vec())]);
        assert_eq!(t.args[2], vec![Piece::Text(b"f:".to_vec()), Piece::Key]);
        assert_eq!(t.args[3], vec![Piece::Data]);
        assert!(t.uses_key());
        assert!(parse_template("  ").is_err());
        assert!(parse_template("set 'x").is_err());
        assert!(!parse_template("PING").unwrap().uses_key());
    }
}
