//! Quotes for the RFC 865 service: the built-in set, and the parser for `--quotes FILE`
//! (fortune's `%` lines, or paragraphs separated by blank lines).
//!
//! RFC 865 asks that a quote stay under 512 characters. Each entry is counted as the user
//! sees it in the file (a line break is one character, the final one not counted), and
//! entries at or over the limit are refused when the file is loaded. On the wire each line
//! ends in CRLF.

/// A quote must be shorter than this many characters on the wire (RFC 865).
pub const LIMIT: usize = 512;

/// The built-in quotes: public-domain words, with their authors.
pub const BUILT_IN: &[&str] = &[
    "Well done is better than well said.\n\t-- Benjamin Franklin, Poor Richard's Almanack",
    "Lost time is never found again.\n\t-- Benjamin Franklin, Poor Richard's Almanack",
    "Early to bed and early to rise, makes a man healthy, wealthy and wise.\n\t-- Benjamin Franklin, Poor Richard's Almanack",
    "Brevity is the soul of wit.\n\t-- William Shakespeare, Hamlet",
    "All the world's a stage, and all the men and women merely players.\n\t-- William Shakespeare, As You Like It",
    "The better part of valour is discretion.\n\t-- William Shakespeare, Henry IV, Part 1",
    "Be not afraid of greatness: some are born great, some achieve greatness, and some have greatness thrust upon 'em.\n\t-- William Shakespeare, Twelfth Night",
    "The mass of men lead lives of quiet desperation.\n\t-- Henry David Thoreau, Walden",
    "Our life is frittered away by detail. Simplify, simplify.\n\t-- Henry David Thoreau, Walden",
    "A foolish consistency is the hobgoblin of little minds.\n\t-- Ralph Waldo Emerson, Self-Reliance",
    "Nothing can bring you peace but yourself.\n\t-- Ralph Waldo Emerson, Self-Reliance",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.\n\t-- Jane Austen, Pride and Prejudice",
    "It was the best of times, it was the worst of times.\n\t-- Charles Dickens, A Tale of Two Cities",
    "Call me Ishmael.\n\t-- Herman Melville, Moby-Dick",
    "The unexamined life is not worth living.\n\t-- Socrates, in Plato's Apology",
    "The report of my death was an exaggeration.\n\t-- Mark Twain, 1897",
    "If you tell the truth you don't have to remember anything.\n\t-- Mark Twain, notebook, 1894",
    "'Tis better to have loved and lost than never to have loved at all.\n\t-- Alfred, Lord Tennyson, In Memoriam A. H. H.",
    "The only way to get rid of a temptation is to yield to it.\n\t-- Oscar Wilde, The Picture of Dorian Gray",
    "Experience is the name every one gives to their mistakes.\n\t-- Oscar Wilde, Lady Windermere's Fan",
    "Man is born free, and everywhere he is in chains.\n\t-- Jean-Jacques Rousseau, The Social Contract",
    "I think, therefore I am.\n\t-- Rene Descartes, Discourse on the Method",
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.\n\t-- Abraham Lincoln, Gettysburg Address",
    "Hope is the thing with feathers that perches in the soul.\n\t-- Emily Dickinson",
];

/// An entry of a quotes file that was refused, for the warning that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1 for the file's first entry.
    pub entry: usize,
    /// The line it starts on.
    pub line: usize,
    /// Its length in characters.
    pub chars: usize,
    /// Its first words.
    pub preview: String,
}

/// Splits a quotes file into entries (fortune format when a line holds only `%`, paragraphs
/// otherwise), keeping those under [`LIMIT`] and listing the others.
pub fn parse(text: &str) -> (Vec<String>, Vec<Refused>) {
    let fortune = text.lines().any(|l| l.trim_end() == "%");
    let mut entries: Vec<(usize, String)> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut start = 1;
    let mut flush = |current: &mut Vec<&str>, start: usize| {
        if !current.is_empty() {
            entries.push((start, current.join("\n")));
            current.clear();
        }
    };
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let separator = if fortune {
            line == "%"
        } else {
            line.is_empty()
        };
        if separator {
            flush(&mut current, start);
            continue;
        }
        if current.is_empty() {
            if line.is_empty() {
                continue;
            }
            start = index + 1;
        }
        current.push(line);
    }
    flush(&mut current, start);

    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for (number, (line, entry)) in entries.into_iter().enumerate() {
        let entry = entry.trim_end().to_string();
        let chars = entry.chars().count();
        if chars >= LIMIT {
            let words = entry
                .split_whitespace()
                .take(6)
                .collect::<Vec<_>>()
                .join(" ");
            let preview: String = words.chars().take(PREVIEW).collect();
            refused.push(Refused {
                entry: number + 1,
                line,
                chars,
                preview,
            });
        } else {
            kept.push(entry);
        }
    }
    (kept, refused)
}

/// A quote as sent: CRLF line ends and a final CRLF.
pub fn to_wire(quote: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(quote.len() + 8);
    for line in quote.lines() {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Characters of a refused entry quoted in the warning.
const PREVIEW: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_is_large_enough_and_each_fits() {
        assert!(BUILT_IN.len() >= 20);
        for quote in BUILT_IN {
            assert!(quote.chars().count() < LIMIT, "{quote}");
        }
    }

    #[test]
    fn fortune_files_split_on_percent_lines() {
        let (kept, refused) = parse("one\nline two\n%\n\nthree\n%\n%\nfour");
        assert_eq!(kept, ["one\nline two", "three", "four"]);
        assert!(refused.is_empty());
    }

    #[test]
    fn paragraph_files_split_on_blank_lines() {
        let (kept, _) = parse("\n\nfirst\nstill first\n\n  \nsecond\r\n");
        assert_eq!(kept, ["first\nstill first", "second"]);
    }

    #[test]
    fn long_entries_are_refused_and_named() {
        let long = "word ".repeat(120);
        let text = format!("short\n\n{long}\n\nlast");
        let (kept, refused) = parse(&text);
        assert_eq!(kept, ["short", "last"]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].entry, 2);
        assert_eq!(refused[0].line, 3);
        assert_eq!(refused[0].chars, 599);
        assert_eq!(refused[0].preview, "word word word word word word");
        let (kept, _) = parse(&"x".repeat(511));
        assert_eq!(kept.len(), 1);
        let (kept, refused) = parse(&"x".repeat(512));
        assert!(kept.is_empty());
        assert_eq!(refused[0].preview.len(), PREVIEW);
        // Line breaks count once, as in the file.
        let (kept, _) = parse(&format!("{}\n{}", "x".repeat(300), "y".repeat(210)));
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn the_wire_form_uses_crlf() {
        assert_eq!(to_wire("a\nb"), b"a\r\nb\r\n");
    }
}
