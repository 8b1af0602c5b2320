//! Docker-style generated container names (`adjective_surname`) and name validation.

const LEFT: [&str; 48] = [
    "admiring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "boring",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "distracted",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "eloquent",
    "epic",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "modest",
    "nifty",
    "peaceful",
    "quirky",
    "serene",
];

const RIGHT: [&str; 48] = [
    "agnesi",
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bell",
    "bhabha",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "cannon",
    "carson",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "leavitt",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
];

/// A name from two random bytes; `retry > 0` appends a digit, as docker does on collisions.
pub fn generate(random: &[u8], retry: u32) -> String {
    let a = random.first().copied().unwrap_or(0) as usize % LEFT.len();
    let b = random.get(1).copied().unwrap_or(0) as usize % RIGHT.len();
    let mut name = format!("{}_{}", LEFT[a], RIGHT[b]);
    if retry > 0 {
        name.push_str(&(random.get(2).copied().unwrap_or(0) % 10).to_string());
    }
    name
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (a leading `/` is allowed and dropped).
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid("web-1.a_b"));
        assert!(!valid("a"), "at least two characters");
        assert!(!valid("-web"));
        assert!(!valid("we/b"));
        let n = generate(&[3, 5, 7], 0);
        assert_eq!(n, "amazing_banach");
        assert!(valid(&n));
        assert_eq!(generate(&[3, 5, 7], 1), "amazing_banach7");
    }
}
