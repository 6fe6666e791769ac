//! A HyperLogLog sketch: the count of distinct (client, User-Agent) pairs for one feed on one
//! day, once there are too many pairs to keep one by one.
//!
//! Past 100,000 pairs for a feed in a day the exact set would grow without bound; the sketch
//! stays 4 KiB (one byte per register, 2¹² registers) whatever the count, with a standard error
//! of about 1.6% (1.04 / √4096). Its inputs are already uniform 64-bit hashes (from the day's
//! HMAC-SHA256 of the pair), so it does no hashing of its own, and two sketches of the same
//! day's hashes merge into the sketch of their union: replicas' batches and stored rows combine
//! without knowing which pairs they share.
//!
//! The estimator is the original HyperLogLog one (Flajolet, Fusy, Gandouet and Meunier, 2007)
//! with linear counting for small counts. With 64-bit hashes collisions are negligible at any
//! count a feed sees, so the original's large-range correction for 32-bit hashes is left out.
//! Measured over 400 streams each (`measure_accuracy` below): no bias to speak of and an RMS
//! error of 1.1–1.6% from 100 to 1,000,000 distinct hashes, except just above the switch from
//! linear counting (about 10,000 to 13,000), where the raw estimate reads up to 2.4% high
//! (RMS 3%). A feed's sketch starts at 100,000 pairs, far above that range, so the simpler
//! estimator is kept over Ertl's (2017) bias-free one.

use std::fmt;

/// Bits of a hash that choose its register; the rest give its rank.
const PRECISION: u32 = 12;

/// The number of registers, and of bytes in a stored sketch.
pub const REGISTERS: usize = 1 << PRECISION;

/// The largest register value: one more than the number of hash bits left after the register
/// index, reached when all of them are zero. A stored register above it is corrupt.
const MAX_RANK: u8 = (64 - PRECISION + 1) as u8;

/// Below this many times the register count the raw estimate is biased upwards, and linear
/// counting over the empty registers is the better one (the paper's 5/2 m).
const LINEAR_COUNTING_BELOW: f64 = 2.5;

/// A HyperLogLog sketch of 64-bit hashes with 2¹² one-byte registers.
#[derive(Clone, PartialEq, Eq)]
pub struct Sketch {
    /// For each register, the largest rank of the hashes that chose it (0 when none did).
    /// Boxed so that moving a sketch moves a pointer, not 4 KiB; every value is at most
    /// [`MAX_RANK`].
    registers: Box<[u8; REGISTERS]>,
}

impl Sketch {
    /// An empty sketch, which estimates 0.
    pub fn new() -> Self {
        Self {
            registers: Box::new([0; REGISTERS]),
        }
    }

    /// Adds one hash. Inserting the same hash again changes nothing.
    pub fn insert(&mut self, hash: u64) {
        // The high bits choose the register; the low bits, shifted up, give the rank: the
        // position of their first set bit, capped for hashes whose low bits are all zero.
        let index = (hash >> (64 - PRECISION)) as usize;
        let rank = ((hash << PRECISION).leading_zeros().min(64 - PRECISION) + 1) as u8;
        if let Some(register) = self.registers.get_mut(index) {
            *register = (*register).max(rank);
        }
    }

    /// Folds `other` in: afterwards this is the sketch of the union of both sketches' hashes.
    pub fn merge(&mut self, other: &Sketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The estimated number of distinct hashes inserted: 0 for an empty sketch, exact or
    /// nearly so for small counts, within about 1.6% (one standard error) for large ones.
    pub fn estimate(&self) -> u64 {
        let registers = REGISTERS as f64;
        let mut harmonic_sum = 0.0;
        let mut empty = 0_u32;
        for &rank in self.registers.iter() {
            harmonic_sum += (-f64::from(rank)).exp2();
            if rank == 0 {
                empty += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / registers);
        let raw = alpha * registers * registers / harmonic_sum;
        let estimate = if raw <= LINEAR_COUNTING_BELOW * registers && empty > 0 {
            registers * (registers / f64::from(empty)).ln()
        } else {
            raw
        };
        // At most about 2⁵³ · 4096, so the conversion saturates at worst and never wraps.
        estimate.round() as u64
    }

    /// The registers, exactly [`REGISTERS`] bytes, for storing; [`Sketch::from_bytes`] reads
    /// them back.
    pub fn as_bytes(&self) -> &[u8] {
        self.registers.as_slice()
    }

    /// Reads back what [`Sketch::as_bytes`] gave: `None` unless `bytes` is exactly
    /// [`REGISTERS`] long with every register at most 53 (64 hash bits − 12 index bits + 1),
    /// so a truncated or corrupt row is refused rather than counted.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let registers: [u8; REGISTERS] = bytes.try_into().ok()?;
        if registers.iter().any(|&rank| rank > MAX_RANK) {
            return None;
        }
        Some(Self {
            registers: Box::new(registers),
        })
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new()
    }
}

// 4096 raw registers would drown any assertion message; the estimate is what a reader wants.
impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sketch")
            .field("estimate", &self.estimate())
            .field(
                "registers_set",
                &self.registers.iter().filter(|&&rank| rank != 0).count(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of uniform 64-bit values (Steele, Lea and Flood's SplitMix64),
    /// standing in for the HMAC hashes.
    struct SplitMix64(u64);

    impl Iterator for SplitMix64 {
        type Item = u64;

        fn next(&mut self) -> Option<u64> {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Some(z ^ (z >> 31))
        }
    }

    fn sketch_of(hashes: impl IntoIterator<Item = u64>) -> Sketch {
        let mut sketch = Sketch::new();
        for hash in hashes {
            sketch.insert(hash);
        }
        sketch
    }

    fn relative_error(estimate: u64, actual: u64) -> f64 {
        (estimate as f64 - actual as f64).abs() / actual as f64
    }

    fn assert_within_five_percent(distinct: usize) {
        let sketch = sketch_of(SplitMix64(distinct as u64).take(distinct));
        let error = relative_error(sketch.estimate(), distinct as u64);
        assert!(
            error < 0.05,
            "{distinct} distinct hashes estimated as {} ({:.2}% off)",
            sketch.estimate(),
            error * 100.0
        );
    }

    #[test]
    fn can_estimate_zero_for_an_empty_sketch() {
        let sketch = Sketch::new();
        assert_eq!(sketch.estimate(), 0);
        assert_eq!(Sketch::default(), sketch);
    }

    #[test]
    fn can_count_one_hash_inserted_many_times_once() {
        let mut sketch = Sketch::new();
        for _ in 0..10_000 {
            sketch.insert(0x0123_4567_89AB_CDEF);
        }
        assert_eq!(sketch.estimate(), 1);
    }

    #[test]
    fn can_insert_hashes_at_the_edges_of_the_rank_range() {
        // Register 0 and 1 see all-zero rank bits, register 2 a single set lowest bit,
        // register 4095 a set highest bit.
        let sketch = sketch_of([0, 1 << 52, (2 << 52) | 1, u64::MAX]);
        let bytes = sketch.as_bytes();
        assert_eq!(bytes[..3], [MAX_RANK, MAX_RANK, MAX_RANK - 1]);
        assert_eq!(bytes[REGISTERS - 1], 1);
        assert_eq!(sketch.estimate(), 4);
    }

    #[test]
    fn can_estimate_a_thousand_within_five_percent() {
        assert_within_five_percent(1_000);
    }

    #[test]
    fn can_estimate_a_hundred_thousand_within_five_percent() {
        assert_within_five_percent(100_000);
    }

    #[test]
    fn can_estimate_a_million_within_five_percent() {
        assert_within_five_percent(1_000_000);
    }

    #[test]
    fn can_estimate_small_counts_by_linear_counting_within_five_percent() {
        for distinct in [2, 10, 100, 5_000] {
            assert_within_five_percent(distinct);
        }
    }

    #[test]
    fn can_merge_two_disjoint_halves_into_the_sketch_of_the_whole() {
        let hashes: Vec<u64> = SplitMix64(18).take(200_000).collect();
        let (first, second) = hashes.split_at(hashes.len() / 2);
        let mut merged = sketch_of(first.iter().copied());
        merged.merge(&sketch_of(second.iter().copied()));
        assert_eq!(merged, sketch_of(hashes.iter().copied()));
    }

    #[test]
    fn can_merge_overlapping_sketches_without_counting_twice() {
        let hashes: Vec<u64> = SplitMix64(7).take(50_000).collect();
        let mut merged = sketch_of(hashes[..30_000].iter().copied());
        merged.merge(&sketch_of(hashes[20_000..].iter().copied()));
        assert_eq!(merged, sketch_of(hashes.iter().copied()));
    }

    #[test]
    fn can_round_trip_through_bytes() {
        let sketch = sketch_of(SplitMix64(3).take(123_456));
        assert_eq!(sketch.as_bytes().len(), REGISTERS);
        assert_eq!(Sketch::from_bytes(sketch.as_bytes()), Some(sketch.clone()));
        assert_eq!(
            Sketch::from_bytes(Sketch::new().as_bytes()),
            Some(Sketch::new())
        );
    }

    #[test]
    fn errors_when_bytes_are_not_exactly_one_per_register() {
        assert_eq!(Sketch::from_bytes(&[]), None);
        assert_eq!(Sketch::from_bytes(&[0; REGISTERS - 1]), None);
        assert_eq!(Sketch::from_bytes(&[0; REGISTERS + 1]), None);
    }

    #[test]
    fn errors_when_a_register_is_above_the_largest_rank() {
        let mut bytes = [0; REGISTERS];
        bytes[REGISTERS - 1] = MAX_RANK;
        assert!(Sketch::from_bytes(&bytes).is_some());
        bytes[REGISTERS - 1] = MAX_RANK + 1;
        assert_eq!(Sketch::from_bytes(&bytes), None);
        bytes[REGISTERS - 1] = u8::MAX;
        assert_eq!(Sketch::from_bytes(&bytes), None);
    }

    /// Not a specification: prints the error over many streams, for the numbers in the docs.
    /// Run with `cargo test --release -- --ignored --nocapture measure_accuracy`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn measure_accuracy() {
        for distinct in [
            100, 1_000, 5_000, 8_000, 10_000, 10_240, 11_000, 12_000, 15_000, 20_000, 30_000,
            100_000, 1_000_000,
        ] {
            let trials: u64 = if distinct >= 1_000_000 { 50 } else { 400 };
            let errors: Vec<f64> = (0..trials)
                .map(|seed| {
                    let sketch = sketch_of(SplitMix64(seed * 1_000_003 + 17).take(distinct));
                    (sketch.estimate() as f64 - distinct as f64) / distinct as f64
                })
                .collect();
            let mean = errors.iter().sum::<f64>() / trials as f64;
            let rms = (errors.iter().map(|e| e * e).sum::<f64>() / trials as f64).sqrt();
            let worst = errors.iter().fold(0.0_f64, |worst, e| worst.max(e.abs()));
            println!(
                "{distinct:>9}: bias {:+.2}%  rms {:.2}%  worst {:.2}%  ({trials} streams)",
                mean * 100.0,
                rms * 100.0,
                worst * 100.0
            );
        }
    }
}
