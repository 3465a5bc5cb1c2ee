//! Path helpers for artifacts and COPY sources: cleaning a relative path, base name and
//! parent, wildcard detection and matching one component, and `--dir` sources.
//!
//! Pure functions over strings: they must never depend on the converter's state.

/// A relative path, cleaned: no leading `/`, no `.`, `..` resolved (never above the top).
pub(super) fn clean_relative(p: &str) -> String {
    kiln_ir::join_path("/", p).trim_start_matches('/').to_string()
}

pub(super) fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

pub(super) fn base_name(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}

pub(super) fn parent(p: &str) -> &str {
    match p.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => "",
    }
}

/// Whether one path component matches a pattern of `*`, `?` and `[...]` (`[!...]` negates).
/// Greedy with one backtrack point, so it takes at most `pattern × name` steps.
pub(super) fn component_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // `[...]` at `at` against `c`: whether it matches, and where the pattern goes on; `None`
    // when the bracket is never closed (then it is an ordinary character).
    let class = |at: usize, c: char| -> Option<(bool, usize)> {
        let close = p[at + 1..].iter().position(|&x| x == ']').map(|k| at + 1 + k)?;
        let mut body = &p[at + 1..close];
        let negate = matches!(body.first(), Some('!' | '^'));
        if negate {
            body = &body[1..];
        }
        let mut hit = false;
        let mut k = 0;
        while k < body.len() {
            if k + 2 < body.len() && body[k + 1] == '-' {
                hit |= body[k] <= c && c <= body[k + 2];
                k += 3;
            } else {
                hit |= body[k] == c;
                k += 1;
            }
        }
        Some((hit != negate, close + 1))
    };
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(pi, n[ni]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (n[ni] == '[').then_some(pi + 1),
            },
            Some(&c) => (c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `--dir` copies each source directory itself: keep the last component of each source
/// under the destination (`--parents` with a `/./` pivot). A lone source copied to a named
/// destination becomes that destination, as `cp -r` does when it does not exist yet.
pub(super) fn dir_sources(sources: Vec<String>, dest: &str) -> (Vec<String>, bool) {
    let dir_dest = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    if sources.len() == 1 && !dir_dest && !has_wildcard(&sources[0]) {
        return (sources, false);
    }
    let pivoted = sources
        .into_iter()
        .map(|s| {
            let trimmed = s.trim_end_matches('/');
            match trimmed.rsplit_once('/') {
                Some((dir, last)) if !dir.is_empty() && dir != "." => format!("{dir}/./{last}"),
                Some(("", last)) => format!("/./{last}"),
                _ => trimmed.to_string(),
            }
        })
        .collect();
    (pivoted, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(kiln_ir::join_path("/src", "out/../bin/app"), "/src/bin/app");
        assert_eq!(kiln_ir::join_path("/src", "/abs"), "/abs");
        assert_eq!(clean_relative("/a/./b/"), "a/b");
        assert_eq!(parent("/out/app"), "/out");
        assert_eq!(parent("/app"), "/");
        assert_eq!(base_name("dist/"), "dist");
    }

    #[test]
    fn patterns() {
        assert!(component_matches("*.so", "libx.so"));
        assert!(component_matches("lib?.[ab]", "libz.a"));
        assert!(!component_matches("[!a]*", "abc"));
        assert!(!component_matches("*.so", "x.a"));
        assert!(component_matches("a*b*c", "aXXbYYc"));
        assert!(!component_matches("a*b*c", "aXXbYY"));
        assert!(component_matches("[x", "[x"));
        // Many stars over a long name stay fast.
        assert!(!component_matches(&"*a".repeat(200), &"a".repeat(199)));
    }
}
