//! Where variable values come from.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A source of variable values for expansion. Names are case-sensitive, as on Linux.
pub trait VarLookup {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> VarLookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl VarLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Ordered pairs, as a Dockerfile accumulates them: the last entry for a name wins.
impl VarLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Ordered pairs: the last entry for a name wins.
impl VarLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: VarLookup + ?Sized> VarLookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<(String, String)> {
        vec![
            ("car".into(), "hat".into()),
            ("foo".into(), String::new()),
            ("car".into(), "bike".into()),
        ]
    }

    #[test]
    fn last_pair_wins() {
        let env = pairs();
        assert_eq!(env.lookup("car"), Some("bike"));
        assert_eq!(env.as_slice().lookup("foo"), Some(""));
        assert_eq!(env.lookup("FOO"), None);
        let by_ref: &dyn VarLookup = &&env;
        assert_eq!(by_ref.lookup("car"), Some("bike"));
    }

    #[test]
    fn maps_look_up_by_exact_name() {
        let hash: HashMap<String, String> = pairs().into_iter().collect();
        let tree: BTreeMap<String, String> = pairs().into_iter().collect();
        assert_eq!(hash.lookup("car"), Some("bike"));
        assert_eq!(tree.lookup("foo"), Some(""));
        assert_eq!(tree.lookup("Car"), None);
    }
}
