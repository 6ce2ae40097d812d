//! What new facts add to the rollups, the organizations' days and the visitor sketches,
//! summed per key before anything is written.

use crate::model::{Fact, FactKind, Scope, Window, hour_of, metric};
use crate::sketch;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Seconds in a (UTC) day, the unit of `organization_days`.
pub const DAY: i64 = 86_400;

/// The start of every organization's scope key.
pub const ORGANIZATION_PREFIX: &str = "organization:";

/// What a row is counted under: a report's scope, or everybody who acted (for active
/// users). Ordered as the stored keys are, so the additions are written in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    Scope(Scope),
    Users,
}

impl Key {
    /// As stored: `event:<id>`, `organization:<id>`, `platform`, `users`.
    pub fn text(self) -> String {
        match self {
            Self::Scope(scope) => scope.key(),
            Self::Users => "users".to_owned(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let id = |rest: &str| Uuid::parse_str(rest).ok();
        Some(match text {
            "platform" => Self::Scope(Scope::Platform),
            "users" => Self::Users,
            _ => match text.split_once(':')? {
                ("event", rest) => Self::Scope(Scope::Event(id(rest)?)),
                ("organization", rest) => Self::Scope(Scope::Organization(id(rest)?)),
                _ => return None,
            },
        })
    }
}

/// Counter bumps and sketch registers, keyed as they are stored.
#[derive(Debug, Default, Clone)]
pub struct Additions {
    /// (scope, metric, hour) → how many.
    pub bumps: BTreeMap<(Key, &'static str, i64), i64>,
    /// (scope, hour) → the sketch registers its visitors set.
    pub visits: BTreeMap<(Key, i64), Registers>,
}

/// [`Additions`] as the `unfolded` log keeps them (bincode: ids as 16 bytes, counts as
/// varints).
#[derive(Serialize, Deserialize)]
struct Logged<'a> {
    #[serde(borrow)]
    bumps: Vec<(Key, &'a str, i64, i64)>,
    visits: Vec<(Key, i64, Registers)>,
}

/// A sketch's registers as visitors set them: (index, rank).
type Registers = Vec<(u16, u8)>;

/// The smallest key of each kind of scope, where a range over that kind starts.
fn first(of: fn(Uuid) -> Scope) -> Key {
    Key::Scope(of(Uuid::nil()))
}

impl Additions {
    pub fn is_empty(&self) -> bool {
        self.bumps.is_empty() && self.visits.is_empty()
    }

    /// Adds what a new fact counts.
    pub fn count(&mut self, f: &Fact) {
        let hour = hour_of(f.occurred_at);
        for (scope, metric) in f.counters() {
            *self.bumps.entry((Key::Scope(scope), metric, hour)).or_default() += 1;
        }
        if let Some(user) = f.user_id {
            let register = sketch::register_of(user.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
            self.visits.entry((Key::Users, hour)).or_default().push(register);
        }
        if let Some(register) = visitor_register(f) {
            for scope in f.visitor_scopes() {
                self.visits.entry((Key::Scope(scope), hour)).or_default().push(register);
            }
        }
    }

    /// Adds everything `other` adds.
    pub fn merge(&mut self, other: Additions) {
        for (key, n) in other.bumps {
            *self.bumps.entry(key).or_default() += n;
        }
        for (key, registers) in other.visits {
            let mine = self.visits.entry(key).or_default();
            let before = mine.len();
            mine.extend(registers);
            // A busy hour's visitors repeat: each time the list grows past another
            // thousand, keep each register once at its highest rank, so memory follows
            // the sketch's registers (at most 2^14), not the visits.
            if mine.len() / COMPACT_EVERY > before / COMPACT_EVERY {
                compact(mine);
            }
        }
    }

    /// The counters of `key` in `window`: (metric, hour, how many).
    pub fn bumps_of(&self, key: Key, window: Window) -> Vec<(&'static str, i64, i64)> {
        self.bumps
            .range((key, "", i64::MIN)..)
            .take_while(|((k, _, _), _)| *k == key)
            .filter(|((_, _, hour), _)| (window.start..window.end).contains(hour))
            .map(|((_, metric, hour), n)| (*metric, *hour, *n))
            .collect()
    }

    /// The sums of `metric` in `window` per scope of one kind (events or organizations),
    /// by stored key.
    pub fn sums_of(&self, kind: fn(Uuid) -> Scope, metric: &str, window: Window) -> BTreeMap<String, i64> {
        let mut sums: BTreeMap<Key, i64> = BTreeMap::new();
        let start = first(kind);
        let same_kind = |k: &Key| matches!((k, start), (Key::Scope(a), Key::Scope(b)) if std::mem::discriminant(a) == std::mem::discriminant(&b));
        let keys = self.bumps.range((start, "", i64::MIN)..).take_while(|((k, _, _), _)| same_kind(k));
        for ((key, m, hour), n) in keys {
            if *m == metric && (window.start..window.end).contains(hour) {
                *sums.entry(*key).or_default() += n;
            }
        }
        sums.into_iter().map(|(key, n)| (key.text(), n)).collect()
    }

    /// The sums of `metric` in `window` of each of `keys` that has any, by stored key.
    pub fn sums_for(&self, keys: &[Key], metric: &'static str, window: Window) -> Vec<(String, i64)> {
        keys.iter()
            .filter_map(|&key| {
                let n: i64 =
                    self.bumps.range((key, metric, window.start)..(key, metric, window.end)).map(|(_, n)| n).sum();
                (n != 0).then(|| (key.text(), n))
            })
            .collect()
    }

    /// The sketch registers of `key` in `window`: (hour, registers).
    pub fn visits_of(&self, key: Key, window: Window) -> Vec<(i64, Registers)> {
        self.visits.range((key, window.start)..(key, window.end)).map(|((_, hour), r)| (*hour, r.clone())).collect()
    }

    /// As the `unfolded` log keeps them.
    pub fn to_log(&self) -> Vec<u8> {
        let logged = Logged {
            bumps: self.bumps.iter().map(|((k, m, h), n)| (*k, *m, *h, *n)).collect(),
            visits: self.visits.iter().map(|((k, h), r)| (*k, *h, r.clone())).collect(),
        };
        bincode::serde::encode_to_vec(&logged, bincode::config::standard()).unwrap_or_default()
    }

    /// Read back from the `unfolded` log; `None` for an entry this version cannot read.
    pub fn from_log(bytes: &[u8]) -> Option<Self> {
        let (logged, _): (Logged, _) =
            bincode::serde::borrow_decode_from_slice(bytes, bincode::config::standard()).ok()?;
        let mut out = Self::default();
        for (key, name, hour, n) in logged.bumps {
            *out.bumps.entry((key, metric::known(name)?, hour)).or_default() += n;
        }
        for (key, hour, registers) in logged.visits {
            out.visits.entry((key, hour)).or_default().extend(registers);
        }
        Some(out)
    }

    /// Writes the additions into the rollups, the organizations' days and the sketches,
    /// once per key in key order: neighbouring keys share their pages.
    pub fn write(&self, tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
        let mut bump = tx.prepare_cached(
            "INSERT INTO rollups (scope, metric, hour, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (scope, metric, hour) DO UPDATE SET value = value + excluded.value",
        )?;
        let mut days: BTreeMap<(&'static str, i64, String), i64> = BTreeMap::new();
        for ((key, metric, hour), n) in &self.bumps {
            let scope = key.text();
            bump.execute(params![scope, metric, hour, n])?;
            if matches!(key, Key::Scope(Scope::Organization(_))) {
                *days.entry((metric, hour - hour.rem_euclid(DAY), scope)).or_default() += n;
            }
        }
        let mut day = tx.prepare_cached(
            "INSERT INTO organization_days (metric, day, scope, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (metric, day, scope) DO UPDATE SET value = value + excluded.value",
        )?;
        for ((metric, d, scope), n) in days {
            day.execute(params![metric, d, scope, n])?;
        }
        let mut stored = tx.prepare_cached("SELECT sketch FROM visitor_sketches WHERE scope = ?1 AND hour = ?2")?;
        let mut store = tx.prepare_cached(
            "INSERT INTO visitor_sketches (scope, hour, sketch) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope, hour) DO UPDATE SET sketch = excluded.sketch",
        )?;
        for ((key, hour), registers) in &self.visits {
            let scope = key.text();
            let old: Option<Vec<u8>> = stored.query_row(params![scope, hour], |r| r.get(0)).optional()?;
            store.execute(params![scope, hour, sketch::raise(old.as_deref(), registers.iter().copied())])?;
        }
        Ok(())
    }
}

/// The register [`Fact::visitor`] sets, hashed without building its text (a fact at a
/// time, this is most of what counting allocates).
fn visitor_register(f: &Fact) -> Option<(u16, u8)> {
    if !matches!(f.kind, FactKind::EventViewed | FactKind::PageViewed) {
        return None;
    }
    match (&f.visitor_id, f.user_id) {
        (Some(visitor), _) => Some(sketch::register_of_parts(&[b"v:", visitor.as_bytes()])),
        (None, Some(user)) => {
            let mut buffer = Uuid::encode_buffer();
            Some(sketch::register_of_parts(&[b"u:", user.hyphenated().encode_lower(&mut buffer).as_bytes()]))
        }
        (None, None) => None,
    }
}

/// How many more registers a list may gather before it is compacted.
const COMPACT_EVERY: usize = 1024;

/// Keeps each register once, at its highest rank.
fn compact(registers: &mut Registers) {
    registers.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    registers.dedup_by_key(|r| r.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BucketSize, FactKind};
    use uuid::Uuid;

    fn fact(kind: FactKind, hour: i64, visitor: &str) -> Fact {
        Fact {
            id: Uuid::new_v4(),
            kind,
            occurred_at: hour + 60,
            event_id: Some(Uuid::from_u128(7)),
            organization_id: Some(Uuid::from_u128(9)),
            user_id: None,
            visitor_id: Some(visitor.to_owned()),
            imported: false,
        }
    }

    #[test]
    fn the_log_gives_back_what_was_added_and_merging_sums() {
        let hour = 1_800_000_000; // a whole hour
        let mut a = Additions::default();
        a.count(&fact(FactKind::EventViewed, hour, "v1"));
        a.count(&fact(FactKind::RegistrationMade, hour + 3600, "v2"));
        let back = Additions::from_log(&a.to_log()).expect("readable");
        assert_eq!(back.bumps, a.bumps);
        assert_eq!(back.visits, a.visits);
        let mut twice = Additions::from_log(&a.to_log()).unwrap();
        twice.merge(back);
        let window = Window { size: BucketSize::Day, start: hour, end: hour + 7200 };
        let event = Key::Scope(Scope::Event(Uuid::from_u128(7)));
        assert_eq!(twice.bumps_of(event, window), vec![("registrations", hour + 3600, 2), ("views", hour, 2)]);
        let orgs = twice.sums_of(Scope::Organization, metric::REGISTRATIONS, window);
        assert_eq!(orgs.into_iter().collect::<Vec<_>>(), vec![(format!("organization:{}", Uuid::from_u128(9)), 2)]);
        let early = Window { size: BucketSize::Day, start: hour, end: hour + 3600 };
        assert!(twice.sums_of(Scope::Organization, metric::REGISTRATIONS, early).is_empty(), "outside the window");
        let events = [event, Key::Scope(Scope::Event(Uuid::from_u128(8)))];
        assert_eq!(twice.sums_for(&events, metric::VIEWS, window), vec![(format!("event:{}", Uuid::from_u128(7)), 2)]);
        let unknown = Logged { bumps: vec![(Key::Users, "no such metric", 0, 1)], visits: Vec::new() };
        let unknown = bincode::serde::encode_to_vec(&unknown, bincode::config::standard()).unwrap();
        assert!(Additions::from_log(&unknown).is_none(), "a metric this version does not know");
        assert!(Additions::from_log(b"damaged").is_none());
    }

    #[test]
    fn a_visitor_sets_the_register_of_its_text() {
        let hour = 1_800_000_000;
        let anonymous = fact(FactKind::EventViewed, hour, "v1");
        let signed_in = Fact { visitor_id: None, user_id: Some(Uuid::new_v4()), ..anonymous.clone() };
        for f in [&anonymous, &signed_in] {
            assert_eq!(visitor_register(f), Some(sketch::register_of(&f.visitor().unwrap())), "{f:?}");
        }
        let registration = Fact { kind: FactKind::RegistrationMade, ..signed_in };
        assert_eq!((visitor_register(&registration), registration.visitor()), (None, None));
    }

    #[test]
    fn compacting_keeps_the_highest_rank_of_each_register() {
        let mut registers = vec![(3, 1), (1, 4), (3, 7), (1, 2), (2, 2)];
        compact(&mut registers);
        assert_eq!(registers, vec![(1, 4), (2, 2), (3, 7)]);
    }
}
