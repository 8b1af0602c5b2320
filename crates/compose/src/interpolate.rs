//! Variable interpolation as the Compose Specification defines it: `$VAR`, `${VAR}`,
//! `${VAR:-default}` / `${VAR-default}` (unset or empty / unset), `${VAR:?err}` / `${VAR?err}`
//! (required), `${VAR:+alt}` / `${VAR+alt}` (replacement), nested values in defaults, and `$$`
//! for a literal `$`. Applied to every string value of a file (keys are left as written).

use serde_yaml::Value;

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${VAR:?message}` (or `?`) with the variable missing.
    #[error("required variable {name} is missing a value: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The file's message (or a default one).
        message: String,
    },
    /// A `$` that starts nothing valid (`${`, `${}`, `${VAR` …).
    #[error(
        "invalid interpolation format for {at}: {value:?}; you may need to escape any $ with another $"
    )]
    Format {
        /// Where the value is (`services.web.image`).
        at: String,
        /// The value as written.
        value: String,
    },
}

/// Interpolate one string, looking variables up with `lookup`.
pub fn interpolate_str(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    let format = || InterpolateError::Format {
        at: String::new(),
        value: value.to_string(),
    };
    let chars: Vec<char> = value.chars().collect();
    let (out, end) = expand(&chars, 0, None, lookup).map_err(|e| e.unwrap_or_else(format))?;
    debug_assert_eq!(end, chars.len());
    Ok(out)
}

/// Expand from `i` until the end, or until an unnested `stop` character (a closing brace
/// of the enclosing `${…}`); returns the text and where it stopped. `Err(None)` is a
/// format error, filled in by the caller.
fn expand(
    s: &[char],
    mut i: usize,
    stop: Option<char>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, usize), Option<InterpolateError>> {
    let mut out = String::new();
    while i < s.len() {
        let c = s[i];
        if Some(c) == stop {
            return Ok((out, i));
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match s.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let (text, next) = braced(s, i + 2, lookup)?;
                out.push_str(&text);
                i = next;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = i + 1;
                let mut j = start;
                while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == '_') {
                    j += 1;
                }
                let name: String = s[start..j].iter().collect();
                out.push_str(&lookup(&name).unwrap_or_default());
                i = j;
            }
            // A lone `$` (end of value, before a space or digit) stays as written.
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    if stop.is_some() {
        return Err(None);
    }
    Ok((out, i))
}

/// `${…}` starting after the `{` at `i`; returns the value and the index after `}`.
fn braced(
    s: &[char],
    i: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, usize), Option<InterpolateError>> {
    let mut j = i;
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == '_') {
        j += 1;
    }
    let name: String = s[i..j].iter().collect();
    if name.is_empty() || !(name.as_bytes()[0].is_ascii_alphabetic() || name.starts_with('_')) {
        return Err(None);
    }
    let value = lookup(&name);
    match s.get(j) {
        Some('}') => Ok((value.unwrap_or_default(), j + 1)),
        Some(':') | Some('-') | Some('?') | Some('+') => {
            let colon = s[j] == ':';
            let op_at = if colon { j + 1 } else { j };
            let op = *s.get(op_at).ok_or(None)?;
            if !matches!(op, '-' | '?' | '+') {
                return Err(None);
            }
            let (word, end) = expand(s, op_at + 1, Some('}'), lookup)?;
            // With a colon an empty value counts as missing.
            let present = match &value {
                Some(v) => !(colon && v.is_empty()),
                None => false,
            };
            let result = match op {
                '-' if present => value.unwrap_or_default(),
                '-' => word,
                '+' if present => word,
                '+' => String::new(),
                _ if present => value.unwrap_or_default(),
                _ => {
                    let message = if word.is_empty() {
                        format!("variable {name} is not set")
                    } else {
                        word
                    };
                    return Err(Some(InterpolateError::Required { name, message }));
                }
            };
            Ok((result, end + 1))
        }
        _ => Err(None),
    }
}

/// Interpolate every string value of `doc` in place; `at` names the position for errors.
pub fn interpolate_value(
    doc: &mut Value,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), InterpolateError> {
    match doc {
        Value::String(s) => {
            *s = interpolate_str(s, lookup).map_err(|e| match e {
                InterpolateError::Format { value, .. } => InterpolateError::Format {
                    at: at.to_string(),
                    value,
                },
                other => other,
            })?;
        }
        Value::Sequence(items) => {
            for (n, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{at}[{n}]"), lookup)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
                let path = if at.is_empty() {
                    key
                } else {
                    format!("{at}.{key}")
                };
                interpolate_value(v, &path, lookup)?;
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, at, lookup)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "TAG" => Some("1.2".into()),
            _ => None,
        }
    }

    fn i(s: &str) -> Result<String, InterpolateError> {
        interpolate_str(s, &env)
    }

    #[test]
    fn the_specs_forms() {
        assert_eq!(i("$SET ${SET} x${SET}y").unwrap(), "value value xvaluey");
        assert_eq!(i("${UNSET}|$UNSET|").unwrap(), "||");
        assert_eq!(
            i("${UNSET:-dflt} ${EMPTY:-dflt} ${EMPTY-dflt}").unwrap(),
            "dflt dflt "
        );
        assert_eq!(
            i("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${UNSET+alt}").unwrap(),
            "alt  alt "
        );
        assert_eq!(i("$$SET $$ ${SET:?boom}").unwrap(), "$SET $ value");
        assert_eq!(i("cost: 5$").unwrap(), "cost: 5$");
        assert_eq!(i("${UNSET:-${TAG:-x}-suffix}").unwrap(), "1.2-suffix");
        assert_eq!(i("${UNSET:-a b {c}").unwrap(), "a b {c");
    }

    #[test]
    fn required_variables_name_themselves() {
        let e = i("${UNSET:?set UNSET to the image tag}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "required variable UNSET is missing a value: set UNSET to the image tag"
        );
        assert!(i("${EMPTY:?x}").is_err());
        assert_eq!(i("${EMPTY?x}").unwrap(), "");
        assert!(
            i("${UNSET?}")
                .unwrap_err()
                .to_string()
                .contains("UNSET is not set")
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        for bad in ["${", "${}", "${SET", "${1X}", "${SET:x}", "${SET:-unclosed"] {
            assert!(
                matches!(i(bad), Err(InterpolateError::Format { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn values_not_keys_and_errors_name_the_path() {
        let mut doc: Value =
            serde_yaml::from_str("services:\n  web:\n    image: app:${TAG}\n    $SET: 1\n")
                .unwrap();
        interpolate_value(&mut doc, "", &env).unwrap();
        assert_eq!(doc["services"]["web"]["image"], "app:1.2");
        assert!(doc["services"]["web"].get("$SET").is_some(), "keys stay");
        let mut bad: Value = serde_yaml::from_str("services:\n  web:\n    image: ${\n").unwrap();
        let e = interpolate_value(&mut bad, "", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("services.web.image"), "{e}");
    }
}
