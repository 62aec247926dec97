//! Tokens of a filter expression, each with the column it starts at (1-based, in
//! characters) so that an error can point at it.

/// One token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    LParen,
    RParen,
    Not,
    And,
    Or,
    /// A keyword or a value: `tcp`, `port`, `6379`, `10.0.0.0/8`, `fd00::1`.
    Word(String),
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub tok: Tok,
    pub column: usize,
}

impl Token {
    /// How the token reads in an error message (control characters escaped).
    pub fn text(&self) -> String {
        match &self.tok {
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Not => "not".into(),
            Tok::And => "and".into(),
            Tok::Or => "or".into(),
            Tok::Word(word) => shown(word),
        }
    }
}

/// Splits an expression into tokens: parentheses, `!`, `&&` and `||` stand alone, words end
/// at whitespace or one of those; `and`, `or`, `not` are operators whatever their case.
pub(super) fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '!' => Some(Tok::Not),
            _ => None,
        };
        if c.is_whitespace() {
            i += 1;
        } else if let Some(tok) = single {
            out.push(Token { tok, column });
            i += 1;
        } else if (c == '&' || c == '|') && chars.get(i + 1) == Some(&c) {
            let tok = if c == '&' { Tok::And } else { Tok::Or };
            out.push(Token { tok, column });
            i += 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()!".contains(chars[i]) {
                if (chars[i] == '&' || chars[i] == '|') && chars.get(i + 1) == Some(&chars[i]) {
                    break;
                }
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                _ => Tok::Word(word),
            };
            out.push(Token { tok, column });
        }
    }
    out
}

/// A word as an error message shows it: control characters escaped (the text may come from
/// anywhere, and the message goes to a terminal).
pub(super) fn shown(word: &str) -> String {
    word.escape_debug().to_string()
}
