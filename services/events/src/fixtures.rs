//! A deterministic generator of realistic events, for tests and benchmarks: the same
//! seed gives the same corpus, so a brute-force check and a benchmark see one dataset.

use crate::model::{EventInput, Format, Price, Status, Venue, Visibility};
use uuid::Uuid;

/// Cities with coordinates, so geo queries have clusters to find.
pub const CITIES: [(&str, f64, f64); 8] = [
    ("Kazan", 55.79, 49.12),
    ("Moscow", 55.75, 37.62),
    ("Saint Petersburg", 59.94, 30.31),
    ("Novosibirsk", 55.03, 82.92),
    ("Yekaterinburg", 56.84, 60.61),
    ("Berlin", 52.52, 13.40),
    ("London", 51.51, -0.13),
    ("Almaty", 43.24, 76.89),
];

pub const TAGS: [&str; 12] =
    ["music", "tech", "art", "sport", "kids", "food", "science", "film", "theatre", "books", "running", "startup"];
pub const CATEGORIES: [&str; 6] = ["concert", "meetup", "workshop", "conference", "festival", "lecture"];

/// Title words: Russian and English, with forms that stemming must join.
const WORDS: [&str; 24] = [
    "концерт",
    "концерты",
    "органный",
    "джаз",
    "лекция",
    "выставка",
    "фестиваль",
    "марафон",
    "встреча",
    "мастер-класс",
    "running",
    "runners",
    "meetup",
    "rust",
    "conference",
    "workshop",
    "jazz",
    "gallery",
    "festival",
    "science",
    "open",
    "evening",
    "city",
    "community",
];

/// The seedable generator of the corpus (kit's, shared with the analytics seed).
pub use kit::fixture_rng::Rng;

/// `n` events spread over a year from `epoch` (Unix seconds), across `organizations`.
/// Every word of [`WORDS`] appears; "open" in about half of all events (a very common word).
pub fn corpus(seed: u64, n: usize, epoch: i64, organizations: &[Uuid]) -> Vec<(EventInput, Status)> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let (city, lat, lon) = CITIES[rng.below(CITIES.len() as u64) as usize];
            let mut title: Vec<&str> = (0..3).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
            if rng.below(2) == 0 {
                title.push("open");
            }
            let start = epoch + rng.below(365 * 24 * 3600) as i64;
            let format = match rng.below(4) {
                0 => Format::Online,
                1 => Format::Hybrid,
                _ => Format::Offline,
            };
            let tags: Vec<String> =
                (0..rng.below(4)).map(|_| TAGS[rng.below(TAGS.len() as u64) as usize].to_owned()).collect();
            let mut tags_unique: Vec<String> = Vec::new();
            for t in tags {
                if !tags_unique.contains(&t) {
                    tags_unique.push(t);
                }
            }
            let status = match rng.below(10) {
                0 => Status::Draft,
                1 => Status::Cancelled,
                _ => Status::Published,
            };
            let input = EventInput {
                title: format!("{} #{i}", title.join(" ")),
                description: format!("Event number {i} in {city}. {}", WORDS[rng.below(WORDS.len() as u64) as usize]),
                start: jiff::Timestamp::from_second(start).unwrap_or_default(),
                end: jiff::Timestamp::from_second(start + 3600 + rng.below(4 * 3600) as i64).unwrap_or_default(),
                time_zone: "Europe/Moscow".into(),
                format,
                venue: (format != Format::Online).then(|| Venue {
                    name: Some("Hall".into()),
                    address: None,
                    city: city.to_owned(),
                    latitude: Some(lat + (rng.unit() - 0.5) * 0.4),
                    longitude: Some(lon + (rng.unit() - 0.5) * 0.4),
                }),
                online_url: (format != Format::Offline).then(|| "https://meet.example.org/x".to_owned()),
                tags: tags_unique,
                category: Some(CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize].to_owned()),
                capacity: Some(10 + rng.below(500) as u32),
                price: (rng.below(3) == 0).then(|| Price { amount: "500.00".into(), currency: "RUB".into() }),
                visibility: if rng.below(20) == 0 { Visibility::Unlisted } else { Visibility::Public },
                cover_image_url: None,
                organization_id: organizations[rng.below(organizations.len() as u64) as usize],
                recurrence: None,
            };
            (input, status)
        })
        .collect()
}
