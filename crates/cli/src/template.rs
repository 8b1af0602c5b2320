//! Go templates for `--format` and `inspect -f`, as the docker CLI runs them, through the
//! gtmpl crate (Go's `text/template` language in Rust).
//!
//! gtmpl prints arrays and maps in Rust's `Debug` form and ranges over maps in hash order;
//! Go prints a slice as `[a b]`, a map as `map[k:v]` and ranges over a map in key order.
//! So before parsing, each printing action gets a last pipeline stage that formats its value
//! Go's way (`{{.X}}` becomes `{{.X | rbuildPrint}}`), and each `range` goes over the values
//! in key order with the keys looked up by position (`{{range $k, $v := P}}` becomes
//! `{{$rbuildKeysN := P | rbuildKeys}}{{range $rbuildIN, $v := P | rbuildValues}}{{$k :=
//! index $rbuildKeysN $rbuildIN}}`). Docker's own functions (`json`, `join`, `split`, `lower`,
//! `upper`, `title`, `truncate`, `pad`) are added, and `len`, `index`, `print` and
//! `println` are replaced by versions that handle maps and print Go's way. Objects are
//! maps here (docker's raw-JSON view), so `{{json .State}}` lists keys sorted.

use std::collections::HashMap;

use anyhow::Context as _;
use gtmpl::{Context, Func, FuncError, Value};
use gtmpl_value::Number;

/// A parsed template.
pub struct Template {
    inner: gtmpl::Template,
    /// `table TEMPLATE`: a header line comes first and columns are aligned.
    pub table: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("table", &self.table)
            .finish()
    }
}

impl Template {
    /// Parse a docker `--format` value: a Go template, optionally after `table `. The
    /// docker CLI's `\t` and `\n` escapes in the text are honoured.
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, text),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let rewritten = rewrite(&body);
        let mut inner = gtmpl::Template::default();
        inner.add_funcs(FUNCS);
        inner
            .parse(rewritten)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("template parsing error in {text:?}"))?;
        Ok(Template { inner, table })
    }

    /// Execute the template on `data` (a JSON value, as docker's raw view of an object).
    pub fn render(&self, data: &serde_json::Value) -> anyhow::Result<String> {
        self.inner
            .render(&Context::from(to_gtmpl(data)))
            .map_err(|e| anyhow::anyhow!("template: {e}"))
    }
}

/// Render `rows` with `template`, one line each; with `table`, a first line from `header`
/// (docker's column titles for the fields) and columns aligned as docker's tabwriter does
/// (cells padded to the widest plus three spaces, at least ten wide).
pub fn render_rows(
    template: &Template,
    header: &serde_json::Value,
    rows: &[serde_json::Value],
) -> anyhow::Result<String> {
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.render(header)?);
    }
    for r in rows {
        lines.push(template.render(r)?);
    }
    let mut text = lines.join("\n");
    if !lines.is_empty() {
        text.push('\n');
    }
    if template.table {
        text = tabwriter(&text);
    }
    Ok(text)
}

/// Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)` as docker uses it, for the cells of one
/// block of lines: a cell ended by a tab is padded to its column's width (widest cell plus
/// three, at least ten); a line's last cell is not.
fn tabwriter(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = c.chars().count() + 3;
            if widths.len() <= i {
                widths.push(10);
            }
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i].saturating_sub(c.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

const FUNCS: &[(&str, Func)] = &[
    ("rbuildPrint", go_print as Func),
    ("rbuildKeys", keys as Func),
    ("rbuildValues", values as Func),
    ("rbuildLabel", label as Func),
    ("json", json as Func),
    ("join", join as Func),
    ("split", split as Func),
    ("lower", lower as Func),
    ("upper", upper as Func),
    ("title", title as Func),
    ("truncate", truncate as Func),
    ("pad", pad as Func),
    ("len", len as Func),
    ("index", index as Func),
    ("print", print as Func),
    ("println", println as Func),
];

/// A JSON value as gtmpl's: objects become maps (a missing key is `<no value>`, as in
/// docker's raw view).
fn to_gtmpl(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (_, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_gtmpl).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect())
        }
    }
}

/// gtmpl's value as JSON (map keys sorted, as Go's encoder sorts them).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => number_json(n),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn number_json(n: &Number) -> serde_json::Value {
    if let Some(i) = n.as_i64() {
        i.into()
    } else if let Some(u) = n.as_u64() {
        u.into()
    } else {
        serde_json::Number::from_f64(n.as_f64().unwrap_or_default())
            .map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// A float as Go's `%v` prints a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the
/// shortest form, an exponent from 1e21 up or below 1e-4.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust writes `1e21`, `1.5e-5`; Go `1e+21`, `1.5e-05`.
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    format!("{f}")
}

/// A value as Go's `fmt` prints it with `%v`: slices `[a b]`, maps `map[k:v]` in key order,
/// nil `<nil>`.
fn go_format(v: &Value) -> String {
    match v {
        Value::NoValue => "<no value>".into(),
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => go_float(n.as_f64().unwrap_or_default()),
        },
        Value::Function(_) => "<func>".into(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_format).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) | Value::Map(m) => {
            let items: Vec<String> = sorted(m)
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

fn sorted(m: &HashMap<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.into_iter()
}

fn one<'a>(name: &str, args: &'a [Value]) -> Result<&'a Value, FuncError> {
    match args {
        [v] => Ok(v),
        _ => Err(FuncError::ExactlyXArgs(name.into(), 1)),
    }
}

fn string_arg(name: &str, v: &Value) -> Result<String, FuncError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(FuncError::Generic(format!(
            "{name}: expected a string, got {}",
            go_format(other)
        ))),
    }
}

fn int_arg(name: &str, v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| FuncError::Generic(format!("{name}: expected an integer"))),
        other => Err(FuncError::Generic(format!(
            "{name}: expected an integer, got {}",
            go_format(other)
        ))),
    }
}

fn go_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_format(one("print", args)?)))
}

/// The keys a `range` gives, in its order: a map's sorted, an array's indexes.
fn keys(args: &[Value]) -> Result<Value, FuncError> {
    Ok(match one("range", args)? {
        Value::Map(m) | Value::Object(m) => {
            Value::Array(sorted(m).map(|(k, _)| Value::String(k.clone())).collect())
        }
        Value::Array(a) => Value::Array((0..a.len()).map(Value::from).collect()),
        _ => Value::Array(Vec::new()),
    })
}

/// The values a `range` goes over, in its order (a map's by sorted key). Nothing (Go's
/// `range` over nil) for nil and absent values.
fn values(args: &[Value]) -> Result<Value, FuncError> {
    Ok(match one("range", args)? {
        Value::Map(m) | Value::Object(m) => {
            Value::Array(sorted(m).map(|(_, v)| v.clone()).collect())
        }
        Value::Array(a) => Value::Array(a.clone()),
        Value::Nil | Value::NoValue => Value::Array(Vec::new()),
        Value::Number(n) if n.as_i64().is_some_and(|i| i >= 0) => Value::Array(
            (0..n.as_i64().unwrap_or_default())
                .map(Value::from)
                .collect(),
        ),
        other => {
            return Err(FuncError::Generic(format!(
                "range can't iterate over {}",
                go_format(other)
            )));
        }
    })
}

/// Docker's `json`: the value as JSON, without a trailing newline.
/// `rbuildLabel LABELS KEY`: the value of label KEY in a row's labels (docker's `k=v,k=v`
/// text, a value holding commas kept whole, or a map), empty when it has none.
fn label(args: &[Value]) -> Result<Value, FuncError> {
    let [labels, key] = args else {
        return Err(FuncError::ExactlyXArgs("Label".into(), 1));
    };
    let key = string_arg("Label", key)?;
    let found = match labels {
        Value::Map(m) => m.get(&key).map(go_format),
        Value::String(text) => {
            let mut pairs: Vec<(String, String)> = Vec::new();
            for part in text.split(',') {
                match (part.split_once('='), pairs.last_mut()) {
                    (Some((k, v)), _) => pairs.push((k.to_owned(), v.to_owned())),
                    (None, Some((_, v))) => {
                        v.push(',');
                        v.push_str(part);
                    }
                    (None, None) => {}
                }
            }
            pairs.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
        }
        _ => None,
    };
    Ok(Value::String(found.unwrap_or_default()))
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(to_json(one("json", args)?).to_string()))
}

/// Docker's `join LIST SEP`.
fn join(args: &[Value]) -> Result<Value, FuncError> {
    let [list, sep] = args else {
        return Err(FuncError::ExactlyXArgs("join".into(), 2));
    };
    let sep = string_arg("join", sep)?;
    let items: Vec<String> = match list {
        Value::Array(a) => a.iter().map(go_format).collect(),
        Value::Nil | Value::NoValue => Vec::new(),
        other => vec![go_format(other)],
    };
    Ok(Value::String(items.join(&sep)))
}

/// Docker's `split STRING SEP`.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    let [s, sep] = args else {
        return Err(FuncError::ExactlyXArgs("split".into(), 2));
    };
    let (s, sep) = (string_arg("split", s)?, string_arg("split", sep)?);
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    ))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_format(one("lower", args)?).to_lowercase()))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_format(one("upper", args)?).to_uppercase()))
}

/// Docker's `title`: each word's first letter upper case.
fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = go_format(one("title", args)?);
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}

/// Docker's `truncate STRING N`: the first N characters.
fn truncate(args: &[Value]) -> Result<Value, FuncError> {
    let [s, n] = args else {
        return Err(FuncError::ExactlyXArgs("truncate".into(), 2));
    };
    let n = usize::try_from(int_arg("truncate", n)?).unwrap_or(0);
    Ok(Value::String(go_format(s).chars().take(n).collect()))
}

/// Docker's `pad STRING LEFT RIGHT`: spaces around.
fn pad(args: &[Value]) -> Result<Value, FuncError> {
    let [s, l, r] = args else {
        return Err(FuncError::ExactlyXArgs("pad".into(), 3));
    };
    let l = usize::try_from(int_arg("pad", l)?).unwrap_or(0);
    let r = usize::try_from(int_arg("pad", r)?).unwrap_or(0);
    Ok(Value::String(format!(
        "{}{}{}",
        " ".repeat(l),
        go_format(s),
        " ".repeat(r)
    )))
}

fn len(args: &[Value]) -> Result<Value, FuncError> {
    let n = match one("len", args)? {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::Map(m) | Value::Object(m) => m.len(),
        Value::Nil => 0,
        other => {
            return Err(FuncError::Generic(format!(
                "len of type {}",
                go_format(other)
            )));
        }
    };
    Ok(Value::from(n))
}

/// Go's `index`: a map's missing key is its zero value, an array's index out of range an
/// error.
fn index(args: &[Value]) -> Result<Value, FuncError> {
    let Some((first, keys)) = args.split_first() else {
        return Err(FuncError::AtLeastXArgs("index".into(), 1));
    };
    let mut cur = first.clone();
    for k in keys {
        cur = match (&cur, k) {
            // Go gives the element type's zero value: docker's maps hold strings (labels,
            // options), so "" unless the map holds something else.
            (Value::Map(m) | Value::Object(m), Value::String(s)) => match m.get(s) {
                Some(v) => v.clone(),
                None if m.values().all(|v| matches!(v, Value::String(_))) => {
                    Value::String(String::new())
                }
                None => Value::NoValue,
            },
            (Value::Array(a), Value::Number(n)) => {
                let i = n.as_i64().unwrap_or(-1);
                usize::try_from(i)
                    .ok()
                    .and_then(|i| a.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        FuncError::Generic(format!("error calling index: index out of range: {i}"))
                    })?
            }
            (Value::Nil | Value::NoValue, _) => Value::NoValue,
            (c, k) => {
                return Err(FuncError::Generic(format!(
                    "error calling index: can't index item of type {} with {}",
                    go_format(c),
                    go_format(k)
                )));
            }
        };
    }
    Ok(cur)
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn print(args: &[Value]) -> Result<Value, FuncError> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&go_format(a));
    }
    Ok(Value::String(out))
}

/// Go's `fmt.Sprintln`: operands separated by spaces, then a newline.
fn println(args: &[Value]) -> Result<Value, FuncError> {
    let items: Vec<String> = args.iter().map(go_format).collect();
    Ok(Value::String(format!("{}\n", items.join(" "))))
}

/// One `{{...}}` action of a template: its text between the delimiters.
struct Action<'a> {
    /// `{{-`: trims the space before.
    trim_left: bool,
    /// `-}}`: trims the space after.
    trim_right: bool,
    /// The action's content.
    body: &'a str,
}

/// Split `text` into literal text and actions, as Go's lexer finds `}}` (not inside quotes
/// or raw strings, nor inside a comment).
fn actions(text: &str) -> Vec<Result<&str, Action<'_>>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Ok(&rest[..start]));
        }
        let inner = &rest[start + 2..];
        let b = inner.as_bytes();
        let mut i = 0;
        let mut end = None;
        let comment = inner.trim_start_matches('-').trim_start().starts_with("/*");
        while i < b.len() {
            match b[i] {
                b'"' | b'\'' if !comment => {
                    let q = b[i];
                    i += 1;
                    while i < b.len() && b[i] != q {
                        if b[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                b'`' if !comment => {
                    i += 1;
                    while i < b.len() && b[i] != b'`' {
                        i += 1;
                    }
                }
                b'}' if b.get(i + 1) == Some(&b'}')
                    && (!comment
                        || inner[..i].trim_end_matches('-').trim_end().ends_with("*/")) =>
                {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            // Unterminated: left as it is, for the parser's error.
            out.push(Ok(&rest[start..]));
            return out;
        };
        let mut body = &inner[..end];
        let trim_left =
            body.starts_with("- ") || body.starts_with("-\t") || body.starts_with("-\n");
        if trim_left {
            body = &body[1..];
        }
        let trim_right = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
        if trim_right {
            body = &body[..body.len() - 1];
        }
        out.push(Err(Action {
            trim_left,
            trim_right,
            body,
        }));
        rest = &inner[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Ok(rest));
    }
    out
}

/// The template with printing actions formatted Go's way and `range` in Go's order (see
/// the module's documentation).
/// docker's `.Label "KEY"` method of `ps`, `images`, `volume ls` and `network ls` rows, as a
/// call of [`label`] on the row's `Labels` (gtmpl has no methods): `(rbuildLabel .Labels "KEY")`.
fn label_calls(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find(".Label") {
        let after = &rest[at + ".Label".len()..];
        let starts_token =
            at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let arg = after.trim_start();
        let quoted = arg.starts_with('"') && after.starts_with(char::is_whitespace);
        let end = quoted.then(|| arg[1..].find('"')).flatten();
        match end {
            Some(end) if starts_token => {
                out.push_str(&rest[..at]);
                out.push_str(&format!("(rbuildLabel .Labels {})", &arg[..end + 2]));
                rest = &arg[end + 2..];
            }
            _ => {
                out.push_str(&rest[..at + ".Label".len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn rewrite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut ranges = 0;
    for part in actions(text) {
        let a = match part {
            Ok(literal) => {
                out.push_str(literal);
                continue;
            }
            Err(a) => a,
        };
        let open = if a.trim_left { "{{- " } else { "{{" };
        let close = if a.trim_right { " -}}" } else { "}}" };
        let label_calls = label_calls(a.body.trim());
        let body = label_calls.as_str();
        let word = body
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        let is_assignment = body.starts_with('$')
            && body
                .split_once(":=")
                .or_else(|| body.split_once('='))
                .is_some_and(|(lhs, _)| {
                    lhs.split(',')
                        .all(|v| v.trim().starts_with('$') && !v.trim().contains(' '))
                });
        if word == "range" {
            let pipe = body["range".len()..].trim();
            // `$k, $v := P`, `$v := P`, or `P`.
            let (vars, pipe) = match pipe.split_once(":=") {
                Some((vars, p))
                    if vars
                        .split(',')
                        .all(|v| v.trim().starts_with('$') && !v.trim().contains(' ')) =>
                {
                    (
                        vars.split(',').map(|v| v.trim().to_owned()).collect(),
                        p.trim(),
                    )
                }
                _ => (Vec::<String>::new(), pipe),
            };
            ranges += 1;
            match vars.as_slice() {
                [k, v] => {
                    let (keys, i) = (format!("$rbuildKeys{ranges}"), format!("$rbuildI{ranges}"));
                    out.push_str(&format!(
                        "{open}{keys} := {pipe} | rbuildKeys}}}}{{{{range {i}, {v} := {pipe} | rbuildValues}}}}{{{{{k} := index {keys} {i}{close}"
                    ));
                }
                [v] => out.push_str(&format!("{open}range {v} := {pipe} | rbuildValues{close}")),
                _ => out.push_str(&format!("{open}range {pipe} | rbuildValues{close}")),
            }
            continue;
        }
        let control = matches!(
            word,
            "if" | "else" | "end" | "with" | "define" | "template" | "block" | "break" | "continue"
        ) || body.starts_with("/*")
            || body.is_empty()
            || is_assignment;
        if control {
            out.push_str(&format!("{open}{body}{close}"));
        } else {
            out.push_str(&format!("{open}{body} | rbuildPrint{close}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: serde_json::Value) -> String {
        Template::parse(t).unwrap().render(&v).unwrap()
    }

    #[test]
    fn label_method_of_list_rows() {
        let row = json!({"Labels": "a=1,com.x.svc=web,list=x,y", "Names": "c"});
        assert_eq!(run(r#"{{.Label "a"}}"#, row.clone()), "1");
        assert_eq!(
            run(r#"{{.Label "com.x.svc"}}|{{.Names}}"#, row.clone()),
            "web|c"
        );
        assert_eq!(run(r#"{{.Label "list"}}"#, row.clone()), "x,y");
        assert_eq!(run(r#"{{.Label "missing"}}"#, row.clone()), "");
        assert_eq!(
            run(r#"{{if eq (.Label "a") "1"}}yes{{end}}"#, row.clone()),
            "yes"
        );
        assert_eq!(
            run("{{.Labels}}", row.clone()),
            "a=1,com.x.svc=web,list=x,y"
        );
        assert_eq!(run(r#"{{.Label "b"}}"#, json!({"Labels": {"b": "2"}})), "2");
    }

    #[test]
    fn fields_slices_maps_and_json_print_as_go() {
        let v = json!({
            "Name": "/web",
            "State": {"Running": true, "Pid": 42, "Health": null},
            "Config": {"Cmd": ["sh", "-c", "echo hi"], "Labels": {"b": "2", "a": "1"}},
            "Mounts": [{"Source": "/x"}, {"Source": "/y"}],
            "Size": 1.5,
        });
        assert_eq!(run("{{.Name}}", v.clone()), "/web");
        assert_eq!(
            run("{{.State.Running}} {{.State.Pid}}", v.clone()),
            "true 42"
        );
        assert_eq!(run("{{.Config.Cmd}}", v.clone()), "[sh -c echo hi]");
        assert_eq!(run("{{.Config.Labels}}", v.clone()), "map[a:1 b:2]");
        assert_eq!(run("{{.State.Health}}", v.clone()), "<nil>");
        assert_eq!(run("{{.Nope}}", v.clone()), "<no value>");
        assert_eq!(run("{{.Size}}", v.clone()), "1.5");
        assert_eq!(
            run("{{json .Config.Labels}}", v.clone()),
            r#"{"a":"1","b":"2"}"#
        );
        assert_eq!(
            run("{{json .Config.Cmd}}", v.clone()),
            r#"["sh","-c","echo hi"]"#
        );
        assert_eq!(run(r#"{{index .Config.Labels "b"}}"#, v.clone()), "2");
        assert_eq!(run(r#"{{index .Config.Cmd 2}}"#, v.clone()), "echo hi");
        assert_eq!(run("{{len .Config.Labels}}", v.clone()), "2");
        assert_eq!(
            run(r#"{{join .Config.Cmd ","}}"#, v.clone()),
            "sh,-c,echo hi"
        );
        assert_eq!(
            run(r#"{{upper .Name}}|{{title "a b"}}"#, v.clone()),
            "/WEB|A B"
        );
        assert_eq!(run(r#"{{truncate .Name 3}}"#, v.clone()), "/we");
    }

    #[test]
    fn range_goes_in_key_order_with_keys_and_values() {
        let v = json!({"L": {"z": "26", "a": "1", "m": "13"}, "A": ["x", "y"]});
        assert_eq!(
            run("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", v.clone()),
            "a=1;m=13;z=26;"
        );
        assert_eq!(run("{{range .L}}{{.}} {{end}}", v.clone()), "1 13 26 ");
        assert_eq!(
            run("{{range $i, $e := .A}}{{$i}}:{{$e}} {{end}}", v.clone()),
            "0:x 1:y "
        );
        assert_eq!(
            run("{{range $e := .A}}[{{$e}}]{{end}}", v.clone()),
            "[x][y]"
        );
        assert_eq!(
            run("{{range .Missing}}x{{else}}none{{end}}", v.clone()),
            "none"
        );
        // Nested, and the outer dot still reachable through `$`.
        let v = json!({"N": "n", "M": [{"K": {"b": 2, "a": 1}}]});
        assert_eq!(
            run(
                "{{range .M}}{{range $k, $v := .K}}{{$.N}}{{$k}}{{$v}}{{end}}{{end}}",
                v
            ),
            "na1nb2"
        );
    }

    #[test]
    fn control_actions_trim_markers_and_comments_are_kept() {
        let v = json!({"R": true, "S": "s"});
        assert_eq!(
            run("{{if .R}}yes{{else}}no{{end}} {{- /* c */ -}} !", v.clone()),
            "yes!"
        );
        assert_eq!(run("{{with .S}}{{.}}{{end}}", v.clone()), "s");
        assert_eq!(run("{{$x := .S}}{{$x}}", v.clone()), "s");
        assert_eq!(run(r#"{{"}}"}}"#, v.clone()), "}}");
        assert_eq!(run(r#"{{printf "%s-%d" .S 3}}"#, v.clone()), "s-3");
        assert_eq!(run(r#"{{println .S 1}}"#, v.clone()), "s 1\n");
        assert!(Template::parse("{{.S").is_err());
        assert!(Template::parse("{{nofunc .S}}").is_err());
    }

    #[test]
    fn table_aligns_columns_like_docker() {
        let t = Template::parse("table {{.A}}\\t{{.B}}").unwrap();
        let out = render_rows(
            &t,
            &json!({"A": "NAME", "B": "STATE"}),
            &[
                json!({"A": "a-long-name", "B": "x"}),
                json!({"A": "b", "B": "y"}),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "NAME          STATE\na-long-name   x\nb             y\n"
        );
    }

    #[test]
    fn floats_print_as_go() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(100.0), "100");
    }
}
