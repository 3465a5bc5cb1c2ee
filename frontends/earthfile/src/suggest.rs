//! "Did you mean ...?" for misspelt commands, flags and targets.

/// The candidate nearest to `word` (ignoring ASCII case) when it is a plausible typo: at most
/// one edit per three characters of `word`, and at least one.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word: Vec<char> = word.to_ascii_lowercase().chars().collect();
    let limit = (word.len() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let other: Vec<char> = candidate.to_ascii_lowercase().chars().collect();
        let distance = levenshtein(&word, &other);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Insertions, deletions and substitutions between `a` and `b`, one row at a time.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_only() {
        assert_eq!(closest("buld", &["build", "docker"]), Some("build"));
        assert_eq!(closest("COPPY", &["COPY", "RUN"]), Some("COPY"));
        assert_eq!(closest("zzz", &["build", "docker"]), None);
    }
}
