//! `--where` of `aethermart sync resync`: a small predicate language over one table's own
//! columns, turned into SQL whose every literal is a bound parameter.
//!
//! ```text
//! predicate  := or
//! or         := and ("OR" and)*
//! and        := not ("AND" not)*
//! not        := "NOT" not | "(" predicate ")" | test
//! test       := column ( op literal
//!                      | ["NOT"] "IN" "(" literal ("," literal)* ")"
//!                      | ["NOT"] "BETWEEN" literal "AND" literal
//!                      | "IS" ["NOT"] "NULL" )
//! op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! literal    := integer | decimal | 'text' ('' inside is a quote) | TRUE | FALSE
//! column     := letters, digits and _, one of the table's columns
//! ```
//!
//! Keywords are case-insensitive. Nothing else is accepted: no functions, subqueries,
//! comments, semicolons, quoted identifiers or other tables; the error names the position and
//! what was expected there.

use std::collections::BTreeSet;
use std::fmt;

/// Longest predicate accepted, in bytes.
pub const MAX_LENGTH: usize = 4096;
/// Deepest nesting of parentheses and `NOT`s accepted.
pub const MAX_DEPTH: usize = 32;
/// Most values in one `IN (…)` list.
pub const MAX_IN_LIST: usize = 1000;

/// A literal, bound as a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer.
    Int(i64),
    /// A decimal number, kept as written (bound as text; MariaDB compares it numerically).
    Decimal(String),
    /// Text.
    Text(String),
    /// `TRUE` or `FALSE`.
    Bool(bool),
}

/// A parsed predicate: SQL with `?` placeholders and the values to bind, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// The condition, columns quoted with backticks, literals as `?`.
    pub sql: String,
    /// One per `?`, in order.
    pub binds: Vec<Literal>,
}

/// Why a predicate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--where refused at character {position}: {reason}")]
pub struct PredicateError {
    /// 1-based character position in the predicate.
    pub position: usize,
    /// What was wrong there.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Int(i64),
    Decimal(String),
    Text(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Int(_) | Token::Decimal(_) => f.write_str("a number"),
            Token::Text(_) => f.write_str("a text literal"),
            Token::Op(op) => write!(f, "`{op}`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::Comma => f.write_str("`,`"),
            Token::End => f.write_str("the end"),
        }
    }
}

/// Parses `input` over `columns` (the table's column names).
pub fn parse(input: &str, columns: &BTreeSet<String>) -> Result<Predicate, PredicateError> {
    if input.len() > MAX_LENGTH {
        return Err(PredicateError {
            position: MAX_LENGTH + 1,
            reason: format!("longer than {MAX_LENGTH} bytes"),
        });
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        columns,
        out: Predicate {
            sql: String::new(),
            binds: Vec::new(),
        },
        depth: 0,
    };
    parser.or()?;
    match parser.peek() {
        Token::End => Ok(parser.out),
        other => Err(parser.error(format!("expected AND, OR or the end, found {other}"))),
    }
}

fn tokenize(input: &str) -> Result<Vec<(Token, usize)>, PredicateError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let fail = |at: usize, reason: String| PredicateError {
        position: at + 1,
        reason,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let token = match c {
            '(' => {
                i += 1;
                Token::Open
            }
            ')' => {
                i += 1;
                Token::Close
            }
            ',' => {
                i += 1;
                Token::Comma
            }
            '=' => {
                i += 1;
                Token::Op("=")
            }
            '<' | '>' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("<>", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return Err(fail(start, "`!` must be followed by `=`".into())),
                };
                i += len;
                Token::Op(op)
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(fail(start, "unterminated text literal".into())),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                Token::Text(text)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                i += 1;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                let mut decimal = false;
                if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                {
                    decimal = true;
                    i += 1;
                    while chars.get(i).is_some_and(char::is_ascii_digit) {
                        i += 1;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                if decimal {
                    Token::Decimal(text)
                } else {
                    Token::Int(
                        text.parse()
                            .map_err(|_| fail(start, "integer out of range".into()))?,
                    )
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                {
                    i += 1;
                }
                Token::Word(chars[start..i].iter().collect())
            }
            other => {
                return Err(fail(
                    start,
                    format!(
                        "unexpected character {other:?} (only columns, literals, comparisons, IN, BETWEEN, IS NULL, AND, OR, NOT and parentheses)"
                    ),
                ));
            }
        };
        tokens.push((token, start));
    }
    tokens.push((Token::End, chars.len()));
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<(Token, usize)>,
    at: usize,
    columns: &'a BTreeSet<String>,
    out: Predicate,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.at].0
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.at].0.clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        token
    }

    fn error(&self, reason: String) -> PredicateError {
        PredicateError {
            position: self.tokens[self.at].1 + 1,
            reason,
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), PredicateError> {
        if self.peek() == token {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.peek())))
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), PredicateError> {
        if self.keyword(word) {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {word}, found {}", self.peek())))
        }
    }

    fn deeper(&mut self) -> Result<(), PredicateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<(), PredicateError> {
        self.out.sql.push('(');
        self.and()?;
        while self.keyword("OR") {
            self.next();
            self.out.sql.push_str(" OR ");
            self.and()?;
        }
        self.out.sql.push(')');
        Ok(())
    }

    fn and(&mut self) -> Result<(), PredicateError> {
        self.out.sql.push('(');
        self.not()?;
        while self.keyword("AND") {
            self.next();
            self.out.sql.push_str(" AND ");
            self.not()?;
        }
        self.out.sql.push(')');
        Ok(())
    }

    fn not(&mut self) -> Result<(), PredicateError> {
        if self.keyword("NOT") {
            self.deeper()?;
            self.next();
            // Parenthesised: the meaning must not hang on the server's NOT precedence
            // (`HIGH_NOT_PRECEDENCE` would read `NOT a = 5` as `(NOT a) = 5`).
            self.out.sql.push_str("NOT (");
            self.not()?;
            self.out.sql.push(')');
            self.depth -= 1;
            return Ok(());
        }
        if *self.peek() == Token::Open {
            self.deeper()?;
            self.next();
            self.or()?;
            self.expect(&Token::Close, "`)`")?;
            self.depth -= 1;
            return Ok(());
        }
        self.test()
    }

    fn test(&mut self) -> Result<(), PredicateError> {
        let column = match self.peek().clone() {
            Token::Word(w) if is_keyword(&w) => {
                return Err(self.error(format!("expected a column, found the keyword {w}")));
            }
            Token::Word(w) => w,
            other => return Err(self.error(format!("expected a column, found {other}"))),
        };
        let Some(name) = self
            .columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&column))
        else {
            let known: Vec<&str> = self.columns.iter().map(String::as_str).collect();
            return Err(self.error(format!(
                "unknown column `{column}` (the table has: {})",
                known.join(", ")
            )));
        };
        let name = name.clone();
        self.next();
        self.out.sql.push_str(&format!("`{name}`"));
        if let Token::Op(op) = self.peek().clone() {
            self.next();
            self.out.sql.push_str(&format!(" {op} "));
            return self.literal();
        }
        let negated = self.keyword("NOT");
        if negated {
            self.next();
            self.out.sql.push_str(" NOT");
        }
        if self.keyword("IN") {
            self.next();
            self.out.sql.push_str(" IN (");
            self.expect(&Token::Open, "`(` after IN")?;
            let mut count = 0;
            loop {
                if count > 0 {
                    self.out.sql.push_str(", ");
                }
                self.literal()?;
                count += 1;
                if count > MAX_IN_LIST {
                    return Err(self.error(format!("more than {MAX_IN_LIST} values in IN")));
                }
                match self.peek() {
                    Token::Comma => {
                        self.next();
                    }
                    Token::Close => {
                        self.next();
                        break;
                    }
                    other => {
                        return Err(self
                            .error(format!("expected `,` or `)` in the IN list, found {other}")));
                    }
                }
            }
            self.out.sql.push(')');
            return Ok(());
        }
        if self.keyword("BETWEEN") {
            self.next();
            self.out.sql.push_str(" BETWEEN ");
            self.literal()?;
            self.expect_keyword("AND")?;
            self.out.sql.push_str(" AND ");
            return self.literal();
        }
        if !negated && self.keyword("IS") {
            self.next();
            self.out.sql.push_str(" IS ");
            if self.keyword("NOT") {
                self.next();
                self.out.sql.push_str("NOT ");
            }
            self.expect_keyword("NULL")?;
            self.out.sql.push_str("NULL");
            return Ok(());
        }
        Err(self.error(format!(
            "expected a comparison, IN, BETWEEN or IS NULL after `{name}`, found {}",
            self.peek()
        )))
    }

    fn literal(&mut self) -> Result<(), PredicateError> {
        let literal = match self.peek().clone() {
            Token::Int(n) => Literal::Int(n),
            Token::Decimal(d) => Literal::Decimal(d),
            Token::Text(t) => Literal::Text(t),
            Token::Word(w) if w.eq_ignore_ascii_case("TRUE") => Literal::Bool(true),
            Token::Word(w) if w.eq_ignore_ascii_case("FALSE") => Literal::Bool(false),
            other => {
                return Err(self.error(format!(
                    "expected a literal (number, 'text', TRUE or FALSE), found {other}"
                )));
            }
        };
        self.next();
        self.out.sql.push('?');
        self.out.binds.push(literal);
        Ok(())
    }
}

fn is_keyword(word: &str) -> bool {
    [
        "AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE",
    ]
    .iter()
    .any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> BTreeSet<String> {
        ["customer_id", "email", "created_at", "phone"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect()
    }

    fn ok(input: &str) -> Predicate {
        parse(input, &columns()).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    fn refused(input: &str) -> PredicateError {
        parse(input, &columns()).expect_err(input)
    }

    #[test]
    fn the_grammar_becomes_sql_with_bound_literals() {
        let p = ok("customer_id BETWEEN 1 AND 100 AND NOT (email = 'a''b@x.com' OR phone IS NULL)");
        assert_eq!(
            p.sql,
            "((`customer_id` BETWEEN ? AND ? AND NOT (((`email` = ?) OR (`phone` IS NULL)))))"
        );
        assert_eq!(
            p.binds,
            vec![
                Literal::Int(1),
                Literal::Int(100),
                Literal::Text("a'b@x.com".into())
            ]
        );
        let p = ok(
            "Customer_ID not in (1, -2, 3.50) or created_at >= '2026-01-01' and phone is not null",
        );
        assert_eq!(
            p.sql,
            "((`customer_id` NOT IN (?, ?, ?)) OR (`created_at` >= ? AND `phone` IS NOT NULL))"
        );
        assert_eq!(p.binds[1], Literal::Int(-2));
        assert_eq!(p.binds[2], Literal::Decimal("3.50".into()));
        for op in ["=", "!=", "<>", "<", "<=", ">", ">="] {
            let p = ok(&format!("customer_id {op} 5"));
            assert_eq!(p.sql, format!("((`customer_id` {op} ?))"));
        }
        assert_eq!(ok("email = TRUE").binds, vec![Literal::Bool(true)]);
    }

    #[test]
    fn hostile_input_is_refused_with_its_position() {
        let mut wrong = Vec::new();
        for (input, position, says) in [
            (
                "customer_id = 1; DROP TABLE Customers",
                16,
                "unexpected character ';'",
            ),
            ("customer_id = 1 -- comment", 17, "unexpected character '-'"),
            ("customer_id = 1 /* x */", 17, "unexpected character '/'"),
            ("customer_id = 1 OR SLEEP(5)", 20, "unknown column `SLEEP`"),
            (
                "customer_id IN (SELECT customer_id FROM Customers)",
                17,
                "expected a literal",
            ),
            ("`customer_id` = 1", 1, "unexpected character '`'"),
            ("password = 'x'", 1, "unknown column `password`"),
            ("Customers.customer_id = 1", 10, "unexpected character '.'"),
            ("email = 'unterminated", 9, "unterminated text literal"),
            ("customer_id IN ()", 17, "expected a literal"),
            (
                "customer_id = 99999999999999999999",
                15,
                "integer out of range",
            ),
            (
                "customer_id = 1 AND",
                20,
                "expected a column, found the end",
            ),
            ("customer_id", 12, "expected a comparison"),
            ("(customer_id = 1", 17, "expected `)`"),
            ("customer_id = 1)", 16, "expected AND, OR or the end"),
            ("customer_id = email", 15, "expected a literal"),
            ("NULL IS NULL", 1, "the keyword NULL"),
            ("customer_id = 0x41", 16, "expected AND, OR or the end"),
            ("email = \"x\"", 9, "unexpected character '\"'"),
            ("customer_id = 1 || 1", 17, "unexpected character '|'"),
            ("email LIKE '%'", 7, "expected a comparison"),
            ("", 1, "expected a column, found the end"),
        ] {
            let err = refused(input);
            if (err.position, err.reason.contains(says)) != (position, true) {
                wrong.push(format!("{input}: {err}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let deep = format!("{}customer_id = 1{}", "(".repeat(40), ")".repeat(40));
        assert!(refused(&deep).reason.contains("nested deeper than 32"));
        let nots = format!("{}customer_id = 1", "NOT ".repeat(40));
        assert!(refused(&nots).reason.contains("nested deeper than 32"));
        let long = format!("customer_id IN ({})", vec!["1"; 3000].join(","));
        assert!(refused(&long).reason.contains("longer than 4096"));
        let many = format!("customer_id IN ({})", vec!["1"; 1001].join(","));
        assert!(refused(&many).reason.contains("more than 1000 values"));
        let fits = format!("{}customer_id = 1{}", "(".repeat(31), ")".repeat(31));
        ok(&fits);
    }
}
