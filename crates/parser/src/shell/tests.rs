//! Unit tests of the public entry points; the BuildKit vector tables are run by
//! `tests/shell_conformance.rs`.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn expands_defaults_and_alternatives() {
    let lexer = Lexer::default();
    let vars = env(&[("FOO", "xxx"), ("BAR", "")]);
    assert_eq!(
        lexer
            .process_word("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &vars)
            .unwrap(),
        "xxx  ccc"
    );
    assert_eq!(
        lexer
            .process_word("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &vars)
            .unwrap(),
        "xxx bbb ccc"
    );
    assert_eq!(
        lexer
            .process_word("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", &vars)
            .unwrap(),
        "aaa bbb "
    );
    assert_eq!(
        lexer
            .process_word("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", &vars)
            .unwrap(),
        "aaa  "
    );
}

#[test]
fn reports_matched_and_unmatched_names() {
    let lexer = Lexer::default();
    let vars = env(&[("FOO", "xxx"), ("BAR", "")]);
    let got = lexer
        .process_word_with_matches("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc} $1", &vars)
        .unwrap();
    assert_eq!(got.value, "xxx bbb ccc ");
    assert_eq!(got.matched, names(&["BAR", "FOO"]));
    assert_eq!(got.unmatched, names(&["1", "BAZ"]));
    let none = lexer
        .process_word_with_matches("x '$Q' \\$R", &vars)
        .unwrap();
    assert!(
        none.matched.is_empty() && none.unmatched.is_empty(),
        "{none:?}"
    );
}

#[test]
fn required_variables_fail_with_the_name_and_message() {
    let lexer = Lexer::default();
    let set = env(&[("VAR", "plain"), ("ARG", "x")]);
    let empty = env(&[("VAR", ""), ("ARG", "x")]);
    let unset = env(&[("ARG", "x")]);
    assert_eq!(
        lexer
            .process_word("${VAR:?message here$ARG}", &set)
            .unwrap(),
        "plain"
    );
    let err = lexer
        .process_word("ab${VAR:?message here$ARG}", &empty)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "VAR: message here$ARG".replace("$ARG", "x")
    );
    assert_eq!(err.offset(), 2);
    let err = lexer.process_word("${VAR:?}", &unset).unwrap_err();
    assert_eq!(err.to_string(), "VAR: is not allowed to be unset");
    let err = lexer.process_word("${VAR:?}", &empty).unwrap_err();
    assert_eq!(err.to_string(), "VAR: is not allowed to be empty");
    assert_eq!(lexer.process_word("${VAR?message}", &empty).unwrap(), "");
    let err = lexer.process_word("${VAR?message}", &unset).unwrap_err();
    assert!(
        matches!(&err, ShellError::Unset { name, message: Some(m), .. } if name == "VAR" && m == "message")
    );
}

#[test]
fn errors_carry_the_offset_of_the_construct() {
    let lexer = Lexer::default();
    let vars = env(&[]);
    let cases: &[(&str, usize)] = &[
        ("ab'cd", 2),
        ("ab\"cd", 2),
        ("x${A", 1),
        ("x${A:-b", 1),
        ("é${}", 2),
        ("${A:=b}", 0),
        ("..${A/b", 2),
        ("${A#\\x}", 0),
    ];
    for &(input, offset) in cases {
        let err = lexer.process_word(input, &vars).unwrap_err();
        assert_eq!(err.offset(), offset, "{input:?}: {err}");
    }
    assert!(
        matches!(lexer.process_word("${A=b}", &vars), Err(ShellError::UnsupportedModifier { modifier, .. }) if modifier == "=")
    );
    assert!(
        matches!(lexer.process_word("${A:=b}", &vars), Err(ShellError::UnsupportedModifier { modifier, .. }) if modifier == ":=")
    );
    assert!(matches!(
        lexer.process_word("${A//b}", &vars),
        Err(ShellError::MissingSlash { .. })
    ));
    assert!(matches!(
        lexer.process_word("${}", &vars),
        Err(ShellError::BadSubstitution { .. })
    ));
}

#[test]
fn backtick_escape() {
    let lexer = Lexer::new('`');
    let vars = env(&[("PWD", "/home")]);
    assert_eq!(
        lexer.process_word("C:\\dir`$PWD", &vars).unwrap(),
        "C:\\dir$PWD"
    );
    assert_eq!(lexer.process_word("\"a`\"b\"", &vars).unwrap(), "a\"b");
    assert_eq!(
        lexer.process_words("a` b c", &vars).unwrap(),
        vec!["a b", "c"]
    );
}

#[test]
fn words_split_only_unquoted_expansions() {
    let lexer = Lexer::default();
    let vars = env(&[("leading", "  ab c")]);
    assert_eq!(
        lexer.process_words("hello${leading}def", &vars).unwrap(),
        vec!["hello", "ab", "cdef"]
    );
    assert_eq!(lexer.process_words("\"\" '' x", &vars).unwrap(), vec!["x"]);
    assert_eq!(
        lexer.process_words("", &vars).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn words_drop_the_partial_word_before_an_operator_like_buildkit() {
    let lexer = Lexer::default();
    let vars = env(&[("B", "1 2")]);
    assert_eq!(
        lexer.process_words("a${X:-c} d", &vars).unwrap(),
        vec!["c", "d"]
    );
    assert_eq!(lexer.process_word("a${X:-c} d", &vars).unwrap(), "ac d");
    assert_eq!(
        lexer.process_words("x$B${X:-y}z", &vars).unwrap(),
        vec!["x1", "yz"]
    );
    // `$VAR` and `${VAR}` do not reset anything.
    assert_eq!(
        lexer.process_words("a${B}c", &vars).unwrap(),
        vec!["a1", "2c"]
    );
}

#[test]
fn heredoc_marker_keeps_its_blanks_in_one_word() {
    let lexer = Lexer::default();
    let vars = env(&[]);
    assert_eq!(
        lexer.process_words("cat << \tEOF >x", &vars).unwrap(),
        vec!["cat", "<< \tEOF", ">x"]
    );
    assert_eq!(
        lexer.process_words("a<b <", &vars).unwrap(),
        vec!["a<b", "<"]
    );
}

#[test]
fn options() {
    let vars = env(&[("SET", "v")]);
    let lexer = Lexer {
        skip_unset_env: true,
        ..Lexer::default()
    };
    assert_eq!(
        lexer
            .process_word(
                "$SET $UNSET ${UNSET} ${UNSET:-d} ${UNSET//a/b} ${SET:-d}",
                &vars
            )
            .unwrap(),
        "v $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b} v"
    );
    let lexer = Lexer {
        raw_quotes: true,
        ..Lexer::default()
    };
    assert_eq!(
        lexer.process_word("'a' \"$SET\"", &vars).unwrap(),
        "'a' \"v\""
    );
    let lexer = Lexer {
        skip_process_quotes: true,
        ..Lexer::default()
    };
    assert_eq!(lexer.process_word("'$SET'", &vars).unwrap(), "'v'");
    // Raw escapes keep `\` before `$`; inside double quotes an escape that escapes nothing
    // is then written twice, as BuildKit does.
    let lexer = Lexer {
        raw_escapes: true,
        ..Lexer::default()
    };
    assert_eq!(
        lexer.process_word(r#"a\$SET "\a""#, &vars).unwrap(),
        r"a\$SET \\a"
    );
}

#[test]
fn leading_byte_order_mark_is_dropped() {
    assert_eq!(
        Lexer::default()
            .process_word("\u{feff}a\u{feff}", &env(&[]))
            .unwrap(),
        "a\u{feff}"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let depth = expand::MAX_NESTING + 10;
    let input = "${A:-".repeat(depth) + &"}".repeat(depth);
    let err = Lexer::default()
        .process_word(&input, &env(&[]))
        .unwrap_err();
    assert!(matches!(err, ShellError::TooDeep { .. }), "{err}");
    let ok = "${A:-".repeat(100) + "x" + &"}".repeat(100);
    assert_eq!(Lexer::default().process_word(&ok, &env(&[])).unwrap(), "x");
}

#[test]
fn long_words_expand_in_linear_time() {
    let vars = env(&[("V", "0123456789")]);
    let input = "$V ".repeat(100_000);
    let words = Lexer::default().process_words(&input, &vars).unwrap();
    assert_eq!(words.len(), 100_000);
    let value = "ab".repeat(100_000);
    let vars = env(&[("V", value.as_str())]);
    assert_eq!(
        Lexer::default().process_word("${V//b/c}", &vars).unwrap(),
        "ac".repeat(100_000)
    );
    assert_eq!(
        Lexer::default().process_word("${V%%b*}", &vars).unwrap(),
        "a"
    );
}

proptest! {
    #[test]
    fn random_input_never_panics(input in "[-a-cA-C$\\\\`'\"{}:?+#%/*\\[\\] \\n\\t0-9_@é]{0,40}") {
        let vars = env(&[("a", "x y"), ("A", ""), ("b", "*"), ("c", "\\")]);
        for lexer in [Lexer::default(), Lexer::new('`'), Lexer { raw_quotes: true, skip_unset_env: true, ..Lexer::default() }] {
            let word = lexer.process_word(&input, &vars);
            let words = lexer.process_words(&input, &vars);
            prop_assert_eq!(word.is_ok(), words.is_ok());
            if let Err(err) = word {
                prop_assert!(err.offset() <= input.len());
            }
        }
    }

    #[test]
    fn any_string_never_panics(input in any::<String>()) {
        let _ = Lexer::default().process_words(&input, &env(&[("a", "b")]));
    }
}
