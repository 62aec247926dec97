//! The parser: tokens to an [`Expr`], in pcap-filter's grammar for what a 5-tuple can
//! answer. As in tcpdump, `not` binds tightest and `and`/`or` have equal precedence,
//! associating left to right (`a or b and c` is `(a or b) and c`); a bare value repeats the
//! previous primitive's qualifiers (`port 80 or 443`).

use std::net::IpAddr;

use super::{
    FilterError,
    lex::{Tok, Token, shown},
};

/// Which end of the packet a host, net or port test looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The source (the peer, for a received packet).
    Src,
    /// The destination (this host).
    Dst,
    /// Either end (no qualifier, or `src or dst`).
    Either,
    /// Both ends (`src and dst`).
    Both,
}

/// An address and a prefix length (`host` is a full-length prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length: up to 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// IP protocol: `tcp` (6), `udp` (17), `icmp` (1), `icmp6` (58).
    Proto(u8),
    /// IP version: `ip` (4), `ip6` (6).
    Version(u8),
    /// `[dir] host ADDR` or `[dir] net CIDR`.
    Addr(Dir, Net),
    /// `[dir] port N` or `[dir] portrange A-B`.
    Port(Dir, u16, u16),
    /// `not e`.
    Not(Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    Portrange,
}

/// The qualifiers of the last primitive, which a bare value repeats.
#[derive(Clone, Copy, Debug)]
struct Qualifiers {
    proto: Option<Expr0>,
    dir: Dir,
    kind: Kind,
}

/// A protocol qualifier (`tcp port 80`): kept apart from `Expr` to be `Copy`.
#[derive(Clone, Copy, Debug)]
enum Expr0 {
    Proto(u8),
    Version(u8),
}

impl Expr0 {
    fn expr(self) -> Expr {
        match self {
            Self::Proto(p) => Expr::Proto(p),
            Self::Version(v) => Expr::Version(v),
        }
    }
}

/// Parses tokens into an expression (`None`: no tokens, no filter).
pub(super) fn parse(tokens: &[Token], end_column: usize) -> Result<Option<Expr>, FilterError> {
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end_column,
        last: None,
    };
    let expr = parser.expr()?;
    if let Some(token) = parser.peek() {
        return Err(FilterError::at(
            token.column,
            format!("expected 'and', 'or' or the end, found '{}'", token.text()),
        ));
    }
    Ok(Some(expr))
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    end_column: usize,
    last: Option<Qualifiers>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_word(&self) -> Option<String> {
        match self.peek().map(|token| &token.tok) {
            Some(Tok::Word(word)) => Some(word.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    /// An error at the current token, or at the end of the text.
    fn expected(&self, what: &str) -> FilterError {
        match self.peek() {
            Some(token) => FilterError::at(
                token.column,
                format!("expected {what}, found '{}'", token.text()),
            ),
            None => FilterError::at(self.end_column, format!("expected {what} at the end")),
        }
    }

    /// `unary ((and | or) unary)*`, left to right with equal precedence (pcap-filter).
    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().map(|token| &token.tok) {
                Some(Tok::And) => Tok::And,
                Some(Tok::Or) => Tok::Or,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = if op == Tok::And {
                Expr::And(Box::new(left), Box::new(right))
            } else {
                Expr::Or(Box::new(left), Box::new(right))
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek().map(|token| &token.tok) {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                let open = self.next().map_or(0, |token| token.column);
                let inner = self.expr()?;
                match self.peek().map(|token| &token.tok) {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(_) => Err(self.expected("')'")),
                    None => Err(FilterError::at(open, "this '(' is never closed".to_owned())),
                }
            }
            Some(Tok::Word(_)) => self.primitive(),
            _ => Err(self.expected("a primitive (tcp, udp, ip, ip6, host, net, port, ...)")),
        }
    }

    /// `[proto] [dir] kind value`, a protocol alone, or a bare value.
    fn primitive(&mut self) -> Result<Expr, FilterError> {
        let word = self.peek_word().unwrap_or_default();
        let proto = match word.as_str() {
            "tcp" => Some(Expr0::Proto(6)),
            "udp" => Some(Expr0::Proto(17)),
            "icmp" => Some(Expr0::Proto(1)),
            "icmp6" => Some(Expr0::Proto(58)),
            "ip" => Some(Expr0::Version(4)),
            "ip6" => Some(Expr0::Version(6)),
            _ => None,
        };
        if proto.is_some() {
            self.pos += 1;
            let qualified = self
                .peek_word()
                .is_some_and(|next| dir_word(&next) || kind_word(&next).is_some());
            if !qualified {
                return Ok(proto.map(Expr0::expr).unwrap_or(Expr::Proto(0)));
            }
        }
        let dir = self.dir();
        let kind = match self.peek_word().as_deref().and_then(kind_word) {
            Some(kind) => {
                self.pos += 1;
                kind
            }
            // `src 10.0.0.1`: host. A bare value repeats the last qualifiers.
            None if proto.is_none() && dir.is_none() => match self.last {
                Some(last) => return self.value(last),
                None => {
                    return match self.peek_word() {
                        Some(word) if word.parse::<IpAddr>().is_ok() => self.value(Qualifiers {
                            proto: None,
                            dir: Dir::Either,
                            kind: Kind::Host,
                        }),
                        _ => Err(self.expected(
                            "a primitive (tcp, udp, icmp, icmp6, ip, ip6, host, net, port, \
                             portrange, src, dst)",
                        )),
                    };
                }
            },
            None => Kind::Host,
        };
        self.value(Qualifiers {
            proto,
            dir: dir.unwrap_or(Dir::Either),
            kind,
        })
    }

    /// `src`, `dst`, `src or dst`, `src and dst`, or nothing.
    fn dir(&mut self) -> Option<Dir> {
        let first = match self.peek_word().as_deref() {
            Some("src") => Dir::Src,
            Some("dst") => Dir::Dst,
            _ => return None,
        };
        self.pos += 1;
        let joined = match (
            self.peek().map(|token| &token.tok),
            self.tokens.get(self.pos + 1),
        ) {
            (
                Some(Tok::Or),
                Some(Token {
                    tok: Tok::Word(w), ..
                }),
            ) if first == Dir::Src && w.eq_ignore_ascii_case("dst") => Some(Dir::Either),
            (
                Some(Tok::And),
                Some(Token {
                    tok: Tok::Word(w), ..
                }),
            ) if first == Dir::Src && w.eq_ignore_ascii_case("dst") => Some(Dir::Both),
            _ => None,
        };
        match joined {
            Some(dir) => {
                self.pos += 2;
                Some(dir)
            }
            None => Some(first),
        }
    }

    /// The value a primitive tests, under these qualifiers (remembered for bare values).
    fn value(&mut self, qualifiers: Qualifiers) -> Result<Expr, FilterError> {
        let what = match qualifiers.kind {
            Kind::Host => "an IPv4 or IPv6 address",
            Kind::Net => "a network (CIDR, e.g. 10.0.0.0/8 or fd00::/64)",
            Kind::Port => "a port number",
            Kind::Portrange => "a port range (e.g. 6000-6010)",
        };
        let Some(Token {
            tok: Tok::Word(word),
            column,
        }) = self.peek().cloned()
        else {
            return Err(self.expected(what));
        };
        let bad = |why: String| Err(FilterError::at(column, why));
        let word_shown = shown(&word);
        let test = match qualifiers.kind {
            Kind::Host => match word.parse::<IpAddr>() {
                Ok(addr) => Expr::Addr(qualifiers.dir, Net::host(addr)),
                Err(_) => {
                    return bad(format!(
                        "expected {what}, found '{word_shown}' (names are not resolved)"
                    ));
                }
            },
            Kind::Net => match parse_net(&word) {
                Ok(net) => Expr::Addr(qualifiers.dir, net),
                Err(why) => return bad(why),
            },
            Kind::Port => match word.parse::<u16>() {
                Ok(port) => Expr::Port(qualifiers.dir, port, port),
                Err(_) => {
                    return bad(format!(
                        "expected {what} (0-65535), found '{word_shown}' (names are not resolved)"
                    ));
                }
            },
            Kind::Portrange => {
                let range = word
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)));
                match range {
                    Some((lo, hi)) if lo <= hi => Expr::Port(qualifiers.dir, lo, hi),
                    Some(_) => {
                        return bad(format!("the range '{word_shown}' ends before it starts"));
                    }
                    None => return bad(format!("expected {what}, found '{word_shown}'")),
                }
            }
        };
        self.pos += 1;
        self.last = Some(qualifiers);
        Ok(match qualifiers.proto {
            Some(proto) => Expr::And(Box::new(proto.expr()), Box::new(test)),
            None => test,
        })
    }
}

fn dir_word(word: &str) -> bool {
    word == "src" || word == "dst"
}

fn kind_word(word: &str) -> Option<Kind> {
    match word {
        "host" => Some(Kind::Host),
        "net" => Some(Kind::Net),
        "port" => Some(Kind::Port),
        "portrange" => Some(Kind::Portrange),
        _ => None,
    }
}

impl Net {
    /// A single address.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }
}

/// `ADDR/LEN` or `ADDR`; host bits set are an error (as in tcpdump).
fn parse_net(word: &str) -> Result<Net, String> {
    let (addr, prefix) = match word.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (word, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!(
            "expected a network (CIDR, e.g. 10.0.0.0/8), found '{}'",
            shown(word)
        )
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(len) => match len.parse::<u8>() {
            Ok(len) if len <= max => len,
            _ => {
                return Err(format!(
                    "'{}': the prefix length must be 0-{max}",
                    shown(word)
                ));
            }
        },
    };
    let net = Net { addr, prefix };
    if net.masked() != addr {
        return Err(format!(
            "'{}' has host bits set (did you mean {}/{prefix}?)",
            shown(word),
            net.masked()
        ));
    }
    Ok(net)
}

impl Net {
    /// The address with its host bits cleared.
    pub fn masked(&self) -> IpAddr {
        let mask = self.mask_bytes();
        match self.addr {
            IpAddr::V4(v4) => {
                let mut bytes = v4.octets();
                for (byte, m) in bytes.iter_mut().zip(mask) {
                    *byte &= m;
                }
                IpAddr::from(bytes)
            }
            IpAddr::V6(v6) => {
                let mut bytes = v6.octets();
                for (byte, m) in bytes.iter_mut().zip(mask) {
                    *byte &= m;
                }
                IpAddr::from(bytes)
            }
        }
    }

    /// The prefix as a 16-byte mask (IPv4 in the first 4 bytes).
    pub fn mask_bytes(&self) -> [u8; 16] {
        let mut mask = [0u8; 16];
        for (i, byte) in mask.iter_mut().enumerate() {
            let bits = (self.prefix as usize).saturating_sub(i * 8).min(8);
            *byte = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        mask
    }

    /// The address's 16 bytes (IPv4 in the first 4).
    pub fn addr_bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        match self.addr {
            IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => bytes = v6.octets(),
        }
        bytes
    }
}
