//! The packing list (`+CONTENTS`), parsed the way pkg_install's
//! `parse_plist` does, keeping only what `pkg_info -X` prints.

/// A packing-list entry that shows up in a summary record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// `@name`: `None` when the argument is empty (pkg_info prints
    /// `(null)` for it).
    Name(Option<&'a [u8]>),
    /// `@pkgdep`: a dependency pattern.
    Depends(Option<&'a [u8]>),
    /// `@pkgcfl`: a conflict pattern.
    Conflicts(Option<&'a [u8]>),
}

/// pkg_install's command table, in its order: the first command that is a
/// prefix of the word after `@` wins, so `@namefoo` is `@name foo`.
const COMMANDS: [&[u8]; 17] = [
    b"cwd", b"src", b"exec", b"unexec", b"mode", b"owner", b"group", b"comment", b"ignore",
    b"name", b"display", b"pkgdep", b"pkgcfl", b"pkgdir", b"dirrm", b"option", b"blddep",
];

/// C `isspace` in the C locale.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Yields the `@name`, `@pkgdep` and `@pkgcfl` entries of a packing list in
/// file order. Lines are split on `\n`, trailing whitespace is dropped and
/// blank lines skipped, as in `parse_plist`.
pub fn summary_entries(contents: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    contents.split(|&b| b == b'\n').filter_map(|line| {
        let line = trim_end(line);
        let command = line.strip_prefix(b"@")?;
        let (word, arg) = split_command(command)?;
        let arg = (!arg.is_empty()).then_some(arg);
        match word {
            b"name" => Some(Entry::Name(arg)),
            b"pkgdep" => Some(Entry::Depends(arg)),
            b"pkgcfl" => Some(Entry::Conflicts(arg)),
            _ => None,
        }
    })
}

fn trim_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., last] = line {
        if !is_c_space(*last) {
            break;
        }
        line = rest;
    }
    line
}

/// Matches a command word by prefix and returns it with its argument,
/// leading whitespace skipped. Unknown commands give `None` (pkg_install
/// warns and drops them).
fn split_command(command: &[u8]) -> Option<(&'static [u8], &[u8])> {
    let word = COMMANDS.iter().find(|c| command.starts_with(c))?;
    let mut arg = &command[word.len()..];
    while let [first, rest @ ..] = arg {
        if !is_c_space(*first) {
            break;
        }
        arg = rest;
    }
    Some((word, arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &[u8]) -> Vec<Entry<'_>> {
        summary_entries(text).collect()
    }

    #[test]
    fn keeps_file_order_and_ignores_other_commands() {
        let list = b"@cwd /usr/pkg\n@pkgcfl foo-[0-9]*\n@name bar-1.0\n@blddep x-1\n@pkgdep x>=1\nbin/bar\n@comment MD5:00\n";
        assert_eq!(
            entries(list),
            vec![
                Entry::Conflicts(Some(b"foo-[0-9]*")),
                Entry::Name(Some(b"bar-1.0")),
                Entry::Depends(Some(b"x>=1")),
            ]
        );
    }

    #[test]
    fn prefix_match_whitespace_and_empty_argument() {
        let list = b"@namefoo-1\n@name \t spaced-2 \r\n@name\n@pkgdep   \n\n@unknown x\n@ name-3\n";
        assert_eq!(
            entries(list),
            vec![
                Entry::Name(Some(b"foo-1")),
                Entry::Name(Some(b"spaced-2")),
                Entry::Name(None),
                Entry::Depends(None),
            ]
        );
    }

    #[test]
    fn pkgdep_is_not_taken_for_pkgdir() {
        assert_eq!(
            entries(b"@pkgdir share/x\n@pkgdepy\n"),
            vec![Entry::Depends(Some(b"y"))]
        );
    }
}
