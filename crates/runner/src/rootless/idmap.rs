//! Subordinate id ranges (`/etc/subuid`, `/etc/subgid`) and the user namespace map made of them:
//! container id 0 is the user, ids 1..N the user's subordinate ranges in file order, as Podman
//! maps them.

/// One `NAME_OR_ID:START:COUNT` line that applies to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First host id of the range.
    pub start: u32,
    /// How many ids.
    pub count: u32,
}

/// The ranges of `/etc/subuid`-style `text` that belong to the user named `name` with id `id`
/// (lines may name the user or give the numeric id); malformed lines are skipped, as shadow's
/// `newuidmap` skips them.
pub fn ranges(text: &str, name: &str, id: u32) -> Vec<Range> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != name && who.parse::<u32>().ok() != Some(id) {
                return None;
            }
            let range = Range {
                start: start.trim().parse().ok()?,
                count: count.trim().parse().ok()?,
            };
            (range.count > 0).then_some(range)
        })
        .collect()
}

/// The total number of subordinate ids in `ranges`.
pub fn total(ranges: &[Range]) -> u64 {
    ranges.iter().map(|r| u64::from(r.count)).sum()
}

/// The arguments after the PID for `newuidmap`/`newgidmap`: `0 ID 1` then each range placed
/// after the previous one, from container id 1 on.
pub fn map_args(id: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_owned(), id.to_string(), "1".to_owned()];
    let mut next: u64 = 1;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next += u64::from(r.count);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "# comment\nalice:100000:65536\nbob:165536:65536\n1001:300000:10\nbad line\nalice:x:1\n";

    #[test]
    fn ranges_by_name_and_by_id() {
        assert_eq!(
            ranges(FILE, "alice", 1000),
            vec![Range {
                start: 100000,
                count: 65536
            }]
        );
        assert_eq!(
            ranges(FILE, "carol", 1001),
            vec![Range {
                start: 300000,
                count: 10
            }]
        );
        assert!(ranges(FILE, "dave", 1002).is_empty());
    }

    #[test]
    fn map_places_ranges_one_after_another() {
        let r = [
            Range {
                start: 100000,
                count: 10,
            },
            Range {
                start: 500000,
                count: 5,
            },
        ];
        assert_eq!(
            map_args(1000, &r).join(" "),
            "0 1000 1 1 100000 10 11 500000 5"
        );
        assert_eq!(total(&r), 15);
    }
}
