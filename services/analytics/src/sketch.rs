//! Unique visitors as HyperLogLog sketches, one per scope and hour.
//!
//! Counting distinct visitors exactly means reading every (visitor, hour) row of a scope
//! for every report: a busy event's 30 days are hundreds of thousands of rows. A sketch
//! of 2^14 registers answers within about 1% (simple_hll's estimator, Redis's), merges
//! hours into days, weeks or a whole window by taking register maxima, and is exact for
//! counts up to about a hundred, within one or two visitors up to a few hundred.
//!
//! Stored form (a BLOB): `0` then (register index u16 LE, rank u8) for each set
//! register in index order, while that is smaller than `1` then all 2^14 register
//! bytes. Visitors are hashed with xxh3, which is the same on every machine and version:
//! a sketch written today merges with one written next year.

use simple_hll::HyperLogLog;

/// Register index bits: 2^14 registers, 16 KiB dense, about 0.8% standard error.
const P: usize = 14;
const REGISTERS: usize = 1 << P;
const SPARSE: u8 = 0;
const DENSE: u8 = 1;
/// Above this many set registers the dense form is smaller.
const SPARSE_MAX: usize = REGISTERS / 3;
/// The highest rank a 64-bit hash gives; anything above it in a blob is damage.
const MAX_RANK: u8 = (64 - P + 1) as u8;

/// The register and rank a visitor sets, as `HyperLogLog::add_hash` computes them.
pub fn register_of(visitor: &str) -> (u16, u8) {
    register_of_parts(&[visitor.as_bytes()])
}

/// [`register_of`] the parts joined, without joining them.
pub fn register_of_parts(parts: &[&[u8]]) -> (u16, u8) {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(part);
    }
    let hash = hasher.digest();
    let index = (hash & (REGISTERS as u64 - 1)) as u16;
    let rank = (((hash >> P) | (1u64 << (64 - P))).trailing_zeros() + 1) as u8;
    (index, rank)
}

/// A stored sketch with registers raised: `stored` (none for a new one) with `sets`
/// applied, in its stored form.
pub fn raise(stored: Option<&[u8]>, sets: impl IntoIterator<Item = (u16, u8)>) -> Vec<u8> {
    // Registers from a damaged log entry (out of range) are left out rather than panic.
    let sets = sets.into_iter().filter(|(index, _)| (*index as usize) < REGISTERS);
    match stored {
        Some([DENSE, registers @ ..]) if registers.len() == REGISTERS => {
            let mut registers = registers.to_vec();
            for (index, rank) in sets {
                let r = &mut registers[index as usize];
                *r = (*r).max(rank);
            }
            encode_dense(&registers)
        }
        other => {
            let mut pairs: std::collections::BTreeMap<u16, u8> =
                other.map(sparse_pairs).into_iter().flatten().collect();
            for (index, rank) in sets {
                let r = pairs.entry(index).or_default();
                *r = (*r).max(rank);
            }
            if pairs.len() > SPARSE_MAX {
                let mut registers = vec![0u8; REGISTERS];
                for (index, rank) in pairs {
                    registers[index as usize] = rank;
                }
                return encode_dense(&registers);
            }
            let mut out = Vec::with_capacity(1 + 3 * pairs.len());
            out.push(SPARSE);
            for (index, rank) in pairs {
                out.extend_from_slice(&index.to_le_bytes());
                out.push(rank);
            }
            out
        }
    }
}

fn encode_dense(registers: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + REGISTERS);
    out.push(DENSE);
    out.extend_from_slice(registers);
    out
}

/// The (index, rank) pairs of a sparse sketch; nothing for anything else.
fn sparse_pairs(stored: &[u8]) -> impl Iterator<Item = (u16, u8)> + '_ {
    let body = match stored {
        [SPARSE, body @ ..] => body,
        _ => &[],
    };
    body.chunks_exact(3)
        .map(|c| (u16::from_le_bytes([c[0], c[1]]), c[2]))
        .filter(|(index, rank)| (*index as usize) < REGISTERS && *rank <= MAX_RANK)
}

/// Registers merged from any number of stored sketches.
#[derive(Clone)]
pub struct Union(Vec<u8>);

impl Default for Union {
    fn default() -> Self {
        Self(vec![0; REGISTERS])
    }
}

impl Union {
    pub fn add(&mut self, stored: &[u8]) {
        match stored {
            [DENSE, registers @ ..] if registers.len() == REGISTERS => {
                for (mine, theirs) in self.0.iter_mut().zip(registers) {
                    *mine = (*mine).max((*theirs).min(MAX_RANK));
                }
            }
            _ => {
                for (index, rank) in sparse_pairs(stored) {
                    let r = &mut self.0[index as usize];
                    *r = (*r).max(rank);
                }
            }
        }
    }

    /// Raises registers as visitors set them ([`register_of`]).
    pub fn raise(&mut self, registers: impl IntoIterator<Item = (u16, u8)>) {
        for (index, rank) in registers {
            if let Some(r) = self.0.get_mut(index as usize) {
                *r = (*r).max(rank.min(MAX_RANK));
            }
        }
    }

    /// The estimated number of distinct visitors.
    pub fn count(self) -> i64 {
        HyperLogLog::<P>::with_registers(self.0).count() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(visitors: impl Iterator<Item = String>) -> Vec<u8> {
        let mut stored: Option<Vec<u8>> = None;
        let visitors: Vec<String> = visitors.collect();
        // In batches, as ingest writes them.
        for batch in visitors.chunks(700) {
            stored = Some(raise(stored.as_deref(), batch.iter().map(|v| register_of(v))));
        }
        stored.unwrap_or_else(|| raise(None, []))
    }

    fn count(sketches: &[Vec<u8>]) -> i64 {
        let mut union = Union::default();
        for s in sketches {
            union.add(s);
        }
        union.count()
    }

    #[test]
    fn registers_are_the_librarys() {
        let mut theirs = HyperLogLog::<P>::new();
        let mut mine = Union::default();
        for i in 0..5000 {
            let v = format!("visitor-{i}");
            theirs.add_hash(xxhash_rust::xxh3::xxh3_64(v.as_bytes()));
            mine.add(&raise(None, [register_of(&v)]));
        }
        assert_eq!(mine.0, theirs.get_registers());
    }

    #[test]
    fn small_counts_are_exact_and_repeats_count_once() {
        for n in [0, 1, 2, 7, 50, 100] {
            let s = sketch_of((0..n).chain(0..n).map(|i| format!("v{i}")));
            assert_eq!(count(&[s]), n as i64, "{n}");
        }
        let two_hundred = count(&[sketch_of((0..200).map(|i| format!("v{i}")))]);
        assert!((198..=202).contains(&two_hundred), "{two_hundred}");
        let thousand = count(&[sketch_of((0..1000).map(|i| format!("v{i}")))]);
        assert!((990..=1010).contains(&thousand), "{thousand}");
    }

    #[test]
    fn large_counts_are_within_two_percent_dense_or_not() {
        for n in [10_000u32, 100_000, 400_000] {
            let s = sketch_of((0..n).map(|i| format!("visitor-{i}")));
            assert_eq!(s[0] == DENSE, n as usize > SPARSE_MAX, "{n}: the form follows the size");
            let got = count(&[s]) as f64;
            assert!((got - n as f64).abs() / n as f64 <= 0.02, "{n}: {got}");
        }
    }

    #[test]
    fn unions_count_the_overlap_once() {
        // Three hours with overlapping visitors: 0..3000, 2000..5000, 4000..60000.
        let hours = [0..3000, 2000..5000, 4000..60000].map(|r| sketch_of(r.map(|i| format!("v{i}"))));
        let got = count(&hours) as f64;
        assert!((got - 60_000.0).abs() / 60_000.0 <= 0.02, "{got}");
        let first = count(&hours[..1]);
        assert!((2970..=3030).contains(&first), "{first}");
    }

    #[test]
    fn a_damaged_blob_counts_as_empty_not_a_panic() {
        for junk in [&[][..], &[7, 1, 2], &[DENSE, 1, 2, 3], &[SPARSE, 0xff, 0xff]] {
            let mut union = Union::default();
            union.add(junk);
            assert!(union.count() <= 1);
            let _ = raise(Some(junk), [register_of("x")]);
        }
    }
}
