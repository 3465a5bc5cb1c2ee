//! `.dockerignore` parsing and matching on arbitrary input: it must never panic, and matching
//! must stay fast whatever the patterns and paths (the context walk asks about every file).
//!
//! The input is `IGNORE-FILE \0 PATH \0 PATH ...`; with no `\0`, the lines of the file are
//! also tried as paths, so patterns meet text that looks like them.
#![no_main]

use kiln::ignore::Matcher;
use libfuzzer_sys::fuzz_target;

/// Paths every input is tried on besides its own.
const FIXED: [&str; 5] = ["a", "a/b/c.go", "node_modules/x/y.js", ".git/HEAD", "/"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut pieces = text.split('\0');
    let file = pieces.next().unwrap_or_default();
    let mut paths: Vec<&str> = pieces.take(4).collect();
    if paths.is_empty() {
        paths.extend(file.lines().take(4));
    }
    paths.extend(FIXED);

    let Ok(matcher) = Matcher::from_dockerignore(file) else { return };
    let exceptions = matcher.has_exceptions();
    let empty = matcher.is_empty();
    for path in paths {
        let excluded = matcher.excludes(path);
        if empty {
            assert!(!excluded, "no patterns, yet {path:?} is excluded");
        }
        // A leading slash is dropped: the root is the context either way.
        assert_eq!(excluded, matcher.excludes(&format!("/{path}")), "{path:?} with and without a leading /");
        // Without exceptions, a pattern that matches a directory excludes all under it.
        let trimmed = path.trim_matches('/');
        if excluded && !exceptions && !trimmed.is_empty() && trimmed != "." {
            let child = format!("{trimmed}/child");
            assert!(matcher.excludes(&child), "{path:?} is excluded but {child:?} is not");
        }
    }
});
