//! Which recordings a command line names: `tracer report A.trc 'host-*/*.trc' FILTER...`
//! takes leading words that name files (or patterns that match files) as recordings and the
//! rest as the filter expression. Patterns are matched here (`*`, `?`, `[...]` in any
//! component), so a quoted pattern works as the shell's would.

use std::{
    collections::HashSet,
    ffi::OsString,
    path::{Path, PathBuf},
};

/// Why the recordings of a command line cannot be named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathsError {
    /// A word that can only be a file (it has a `/` and no space, or ends in `.trc`) names
    /// none.
    #[error("{0}: No such file or directory")]
    Missing(String),
    /// A pattern matched no file.
    #[error("{0}: no file matches this pattern")]
    NoMatch(String),
    /// The first word names no file: no recording was given.
    #[error(
        "no recording given: {0:?} is not a file (recordings come first, then the filter expression)"
    )]
    NoRecording(String),
    /// No word at all.
    #[error("no recording given")]
    Empty,
    /// A word of the filter expression is not UTF-8 text.
    #[error("{0:?} is not text: a filter expression is UTF-8")]
    NotText(String),
}

/// Whether `word` is a pattern: it has `*`, `?` or `[` (no filter expression has them).
pub fn is_pattern(word: &str) -> bool {
    word.contains(['*', '?', '['])
}

/// Whether `word` can only mean a file: it ends in `.trc`, or has a `/` and no space (a
/// filter's `net 10.0.0.0/8` has a space, or is two words of which the first is `net`).
fn looks_like_file(word: &str) -> bool {
    word.ends_with(".trc") || (word.contains('/') && !word.contains(char::is_whitespace))
}

/// Splits `words` into recordings and the filter expression: each leading word that names
/// an existing file, can only mean a file, or is a pattern is a recording (a pattern stands
/// for the files it matches, in name order); the first other word and every word after it
/// are the filter. A file named twice is read once.
pub fn split_recordings(words: &[OsString]) -> Result<(Vec<PathBuf>, Vec<String>), PathsError> {
    let mut files = Vec::new();
    let mut at = 0;
    while let Some(word) = words.get(at) {
        let Some(word) = word.to_str() else {
            // Not UTF-8: no filter word, so a file's name (patterns are matched as text).
            if !Path::new(word).exists() {
                return Err(PathsError::Missing(word.to_string_lossy().into_owned()));
            }
            files.push(PathBuf::from(word));
            at += 1;
            continue;
        };
        if is_pattern(word) {
            let found = expand(word);
            if found.is_empty() {
                return Err(PathsError::NoMatch(word.to_owned()));
            }
            files.extend(found);
        } else if Path::new(word).exists() {
            files.push(PathBuf::from(word));
        } else if looks_like_file(word) {
            return Err(PathsError::Missing(word.to_owned()));
        } else {
            break;
        }
        at += 1;
    }
    if files.is_empty() {
        return Err(words.first().map_or(PathsError::Empty, |word| {
            PathsError::NoRecording(word.to_string_lossy().into_owned())
        }));
    }
    let filter = words[at..]
        .iter()
        .map(|word| {
            word.to_str()
                .map(str::to_owned)
                .ok_or_else(|| PathsError::NotText(word.to_string_lossy().into_owned()))
        })
        .collect::<Result<_, _>>()?;
    Ok((dedup(files), filter))
}

/// `files` without repeats of one file (the same device and inode), first kept.
fn dedup(files: Vec<PathBuf>) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = HashSet::new();
    files
        .into_iter()
        .filter(|file| match std::fs::metadata(file) {
            Ok(meta) => seen.insert((meta.dev(), meta.ino())),
            Err(_) => true, // opening it names the error
        })
        .collect()
}

/// The files (not directories) that `pattern` matches, in name order; a name beginning
/// with `.` is matched only by a component that begins with `.`.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        if !is_pattern(component) {
            found.iter_mut().for_each(|path| path.push(component));
            continue;
        }
        let wanted: Vec<char> = component.chars().collect();
        let mut next = Vec::new();
        for dir in &found {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            // A name that is not UTF-8 is matched as its lossy text (U+FFFD for the odd bytes).
            let mut names: Vec<std::ffi::OsString> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name())
                .filter(|name| {
                    let text = name.to_string_lossy();
                    (!text.starts_with('.') || component.starts_with('.'))
                        && matches(&wanted, &text.chars().collect::<Vec<_>>())
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| dir.join(name)));
        }
        found = next;
    }
    found.retain(|path| path.exists() && !path.is_dir());
    found
}

/// Whether `name` matches `pattern`: `*` any run of characters, `?` one, `[abc]`, `[a-z]`
/// and `[!abc]` one of (or not of) a set; anything else itself.
fn matches(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|skip| matches(rest, &name[skip..])),
        Some(('?', rest)) => !name.is_empty() && matches(rest, &name[1..]),
        Some(('[', rest)) => match (class(rest), name.split_first()) {
            (Some((set, after)), Some((c, name))) => set(*c) && matches(after, name),
            (None, Some((c, name))) => *c == '[' && matches(rest, name), // a lone `[`
            (_, None) => false,
        },
        Some((c, rest)) => name.first() == Some(c) && matches(rest, &name[1..]),
    }
}

/// The class after a `[`: a test of one character and the pattern after the `]`; `None`
/// when no `]` closes it.
fn class(pattern: &[char]) -> Option<(impl Fn(char) -> bool + '_, &[char])> {
    let (negated, body) = match pattern.first() {
        Some('!' | '^') => (true, &pattern[1..]),
        _ => (false, pattern),
    };
    // A `]` first in the class is a member, not its end.
    let end = 1 + body.get(1..)?.iter().position(|c| *c == ']')?;
    let set = &body[..end];
    let test = move |c: char| {
        let mut i = 0;
        let mut hit = false;
        while i < set.len() {
            if i + 2 < set.len() && set[i + 1] == '-' {
                hit |= (set[i]..=set[i + 2]).contains(&c);
                i += 3;
            } else {
                hit |= set[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((test, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        matches(&chars(pattern), &chars(name))
    }

    #[test]
    fn patterns_match_as_the_shell_does() {
        assert!(m("*.trc", "a.trc"));
        assert!(m("*.trc", ".trc"));
        assert!(!m("*.trc", "a.trc.1"));
        assert!(m("host-?.trc", "host-a.trc"));
        assert!(!m("host-?.trc", "host-ab.trc"));
        assert!(m("h[ab]*", "hb-1"));
        assert!(!m("h[ab]*", "hc-1"));
        assert!(m("h[!ab]*", "hc-1"));
        assert!(m("n[0-9][0-9]", "n42"));
        assert!(!m("n[0-9]", "nx"));
        assert!(m("[]]x", "]x"));
        assert!(m("a[", "a["), "an unclosed class is a `[`");
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
        assert!(m("ü*", "über"));
    }

    fn words(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn recordings_come_first_then_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        for name in ["a.trc", "b.trc", "c.dat", ".hidden.trc"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.trc")).unwrap();
        std::fs::create_dir(dir.path().join("h1")).unwrap();
        std::fs::write(dir.path().join("h1/x.trc"), b"x").unwrap();
        let path = |name: &str| dir.path().join(name);

        let (files, filter) = split_recordings(&words(&format!(
            "{root}/a.trc {root}/c.dat udp and port 53"
        )))
        .unwrap();
        assert_eq!(files, [path("a.trc"), path("c.dat")]);
        assert_eq!(filter, ["udp", "and", "port", "53"]);

        // A pattern: files only, in name order, no hidden ones; a file named twice once.
        let (files, filter) =
            split_recordings(&words(&format!("{root}/*.trc {root}/a.trc"))).unwrap();
        assert_eq!(files, [path("a.trc"), path("b.trc")]);
        assert!(filter.is_empty());
        let (files, _) = split_recordings(&words(&format!("{root}/h?/*.trc"))).unwrap();
        assert_eq!(files, [path("h1/x.trc")]);

        assert_eq!(
            split_recordings(&words(&format!("{root}/a.trc {root}/nope.trc udp"))),
            Err(PathsError::Missing(format!("{root}/nope.trc")))
        );
        assert_eq!(
            split_recordings(&words("nope.trc")),
            Err(PathsError::Missing("nope.trc".into()))
        );
        assert_eq!(
            split_recordings(&words(&format!("{root}/*.pcap"))),
            Err(PathsError::NoMatch(format!("{root}/*.pcap")))
        );
        assert_eq!(
            split_recordings(&words("udp port 53")),
            Err(PathsError::NoRecording("udp".into()))
        );
        assert_eq!(split_recordings(&[]), Err(PathsError::Empty));
        // A name that is not UTF-8 is a file's; a filter word must be text.
        use std::os::unix::ffi::OsStrExt as _;
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"\xff.rec"));
        std::fs::write(&odd, b"x").unwrap();
        let (files, _) = split_recordings(&[odd.clone().into()]).unwrap();
        assert_eq!(files, std::slice::from_ref(&odd));
        let (files, _) = split_recordings(&words(&format!("{root}/*.rec"))).unwrap();
        assert_eq!(
            files,
            std::slice::from_ref(&odd),
            "a pattern matches it too"
        );
        let bad_word = OsString::from(std::ffi::OsStr::from_bytes(b"udp\xff"));
        assert!(matches!(
            split_recordings(&[odd.into(), "udp".into(), bad_word]),
            Err(PathsError::NotText(_))
        ));
        // A filter word with a `/` after the first filter word, or with a space, is filter.
        let (_, filter) =
            split_recordings(&[format!("{root}/a.trc").into(), "net 10.0.0.0/8".into()]).unwrap();
        assert_eq!(filter, ["net 10.0.0.0/8"]);
        let (_, filter) =
            split_recordings(&words(&format!("{root}/a.trc net 10.0.0.0/8"))).unwrap();
        assert_eq!(filter, ["net", "10.0.0.0/8"]);
    }
}
