//! The `--flag` parser behind every instruction (BuildKit's `BFlags`).
//!
//! An instruction declares the flags it takes; [`Flags::parse`] then checks what the user
//! wrote against them: unknown flags, repeats of single-valued flags, missing values and
//! malformed booleans are errors with BuildKit's wording (and a "did you mean" hint).

use std::collections::BTreeMap;

use crate::suggest::closest;

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--name`, `--name=true|false`.
    Bool,
    /// `--name=value`, once.
    String,
    /// `--name=value`, repeatable.
    Strings,
}

#[derive(Debug, Clone)]
struct Flag {
    kind: Kind,
    default: String,
    value: Option<String>,
    values: Vec<String>,
}

/// A flag-parsing failure: the message, and a hint when one helps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    /// BuildKit's wording.
    pub message: String,
    /// A suggestion, such as the closest known flag.
    pub hint: Option<String>,
}

/// The flags an instruction was given, checked against the flags it accepts.
#[derive(Debug, Clone)]
pub struct Flags {
    args: Vec<String>,
    defined: BTreeMap<String, Flag>,
    used: Vec<String>,
}

impl Flags {
    /// Flags as written on the instruction (`--from=builder`).
    pub fn new(args: Vec<String>) -> Self {
        Flags { args, defined: BTreeMap::new(), used: Vec::new() }
    }

    /// Accept `--name` of `kind`, with `default` when absent.
    pub fn define(&mut self, name: &str, kind: Kind, default: &str) {
        self.defined
            .insert(name.to_string(), Flag { kind, default: default.to_string(), value: None, values: Vec::new() });
    }

    /// Check the written flags against the defined ones and record their values.
    ///
    /// # Errors
    /// The first bad flag: `arg should start with -- : X`, `unknown flag: --X`,
    /// `duplicate flag specified: --X`, `missing a value on flag: --X`,
    /// `expecting boolean value for flag --X, not: V`.
    pub fn parse(&mut self) -> Result<(), FlagError> {
        let err = |message: String| FlagError { message, hint: None };
        for arg in self.args.clone() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(err(format!("arg should start with -- : {arg}")));
            };
            if body.is_empty() {
                return Ok(());
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if !self.defined.contains_key(name) {
                let known: Vec<&str> = self.defined.keys().map(String::as_str).collect();
                let hint = closest(name, &known).map(|s| format!("did you mean --{s}?"));
                let hint = hint.or_else(|| {
                    Some(if known.is_empty() {
                        "this instruction takes no flags".to_string()
                    } else {
                        format!(
                            "this instruction takes {}",
                            known.iter().map(|k| format!("--{k}")).collect::<Vec<_>>().join(", ")
                        )
                    })
                });
                return Err(FlagError { message: format!("unknown flag: --{name}"), hint });
            }
            let flag = self.defined.get_mut(name).expect("checked above");
            if self.used.iter().any(|u| u == name) && flag.kind != Kind::Strings {
                return Err(err(format!("duplicate flag specified: --{name}")));
            }
            self.used.push(name.to_string());
            match flag.kind {
                Kind::Bool => match value {
                    Some("") => return Err(err(format!("missing a value on flag: --{name}"))),
                    None => flag.value = Some("true".into()),
                    Some(v) if v.eq_ignore_ascii_case("true") => flag.value = Some("true".into()),
                    Some(v) if v.eq_ignore_ascii_case("false") => flag.value = Some("false".into()),
                    Some(v) => {
                        return Err(err(format!("expecting boolean value for flag --{name}, not: {v}")));
                    }
                },
                Kind::String => match value {
                    None => return Err(err(format!("missing a value on flag: --{name}"))),
                    Some(v) => flag.value = Some(v.to_string()),
                },
                Kind::Strings => match value {
                    None => return Err(err(format!("missing a value on flag: --{name}"))),
                    Some(v) => flag.values.push(v.to_string()),
                },
            }
        }
        Ok(())
    }

    /// The value of a string flag (its default when absent).
    pub fn string(&self, name: &str) -> String {
        self.defined.get(name).map(|f| f.value.clone().unwrap_or_else(|| f.default.clone())).unwrap_or_default()
    }

    /// The value of a string flag, `None` when it was not written.
    pub fn opt_string(&self, name: &str) -> Option<String> {
        self.defined.get(name).and_then(|f| f.value.clone())
    }

    /// The value of a boolean flag.
    pub fn bool(&self, name: &str) -> bool {
        self.string(name) == "true"
    }

    /// Whether a boolean flag was written, and its value.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.opt_string(name).map(|v| v == "true")
    }

    /// All values of a repeatable flag.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.defined.get(name).map(|f| f.values.clone()).unwrap_or_default()
    }

    /// The names of the flags that were written, in order, without repeats.
    pub fn used(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in &self.used {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(defs: &[(&str, Kind, &str)], args: &[&str]) -> (Flags, Result<(), FlagError>) {
        let mut f = Flags::new(args.iter().map(|s| s.to_string()).collect());
        for (name, kind, default) in defs {
            f.define(name, *kind, default);
        }
        let r = f.parse();
        (f, r)
    }

    // GO_TEST_CASES.md I9 (TestBuilderFlags).
    #[test]
    fn builder_flags_table() {
        assert!(flags(&[], &[]).1.is_ok());
        assert!(flags(&[], &["--"]).1.is_ok());
        let (f, r) = flags(&[("str1", Kind::String, "HI"), ("bool1", Kind::Bool, "false")], &[]);
        assert!(r.is_ok());
        assert_eq!((f.string("str1"), f.bool("bool1"), f.used().len()), ("HI".into(), false, 0));
        assert!(flags(&[("str1", Kind::String, "HI")], &["--str1"]).1.is_err());
        assert_eq!(flags(&[("str1", Kind::String, "HI")], &["--str1="]).0.string("str1"), "");
        assert_eq!(flags(&[("str1", Kind::String, "HI")], &["--str1=BYE"]).0.string("str1"), "BYE");
        assert!(flags(&[("bool1", Kind::Bool, "false")], &["--bool1"]).0.bool("bool1"));
        assert!(flags(&[("bool1", Kind::Bool, "false")], &["--bool1=true"]).0.bool("bool1"));
        assert!(!flags(&[("bool1", Kind::Bool, "false")], &["--bool1=false"]).0.bool("bool1"));
        assert_eq!(
            flags(&[("bool1", Kind::Bool, "false")], &["--bool1=false1"]).1.unwrap_err().message,
            "expecting boolean value for flag --bool1, not: false1"
        );
        assert_eq!(
            flags(&[("bool1", Kind::Bool, "false")], &["--bool2"]).1.unwrap_err().message,
            "unknown flag: --bool2"
        );
        let (f, r) = flags(&[("str1", Kind::String, "HI"), ("bool1", Kind::Bool, "false")], &["--bool1", "--str1=BYE"]);
        assert!(r.is_ok());
        assert_eq!((f.string("str1"), f.bool("bool1")), ("BYE".into(), true));
        let defs = [
            ("bool1", Kind::Bool, "false"),
            ("bool2", Kind::Bool, "false"),
            ("bool3", Kind::Bool, "false"),
            ("bool4", Kind::Bool, "true"),
            ("bool5", Kind::Bool, "true"),
            ("str1", Kind::String, ""),
            ("str2", Kind::String, ""),
            ("str3", Kind::String, "def3"),
            ("str4", Kind::String, "def4"),
        ];
        let args = ["--bool2=false", "--bool3", "--bool4=true", "--bool5", "--str2= ", "--str3=def3", "--str4=my-val"];
        let (f, r) = flags(&defs, &args);
        assert!(r.is_ok());
        let mut used = f.used();
        used.sort();
        assert_eq!(used, vec!["bool2", "bool3", "bool4", "bool5", "str2", "str3", "str4"]);
    }

    #[test]
    fn errors_and_hints() {
        let (_, r) = flags(&[("from", Kind::String, "")], &["--from=a", "--from=b"]);
        assert_eq!(r.unwrap_err().message, "duplicate flag specified: --from");
        let (f, r) = flags(&[("mount", Kind::Strings, "")], &["--mount=a", "--mount=b"]);
        assert!(r.is_ok());
        assert_eq!(f.strings("mount"), vec!["a", "b"]);
        let (_, r) = flags(&[("bool1", Kind::Bool, "false")], &["--bool1="]);
        assert_eq!(r.unwrap_err().message, "missing a value on flag: --bool1");
        let (_, r) = flags(&[("from", Kind::String, "")], &["--form=x"]);
        assert_eq!(r.unwrap_err().hint.as_deref(), Some("did you mean --from?"));
        let (_, r) = flags(&[], &["-x"]);
        assert_eq!(r.unwrap_err().message, "arg should start with -- : -x");
    }
}
