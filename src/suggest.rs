//! "Did you mean …?" for misspelled names.

/// The candidate closest to `input`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(input, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let names = ["premake", "retention", "interval"];
        assert_eq!(did_you_mean("premkae", &names), Some("premake"));
        assert_eq!(did_you_mean("intervall", &names), Some("interval"));
        assert_eq!(did_you_mean("colour", &names), None);
    }
}
