//! The expressions of GSM-Symbolic templates: a small subset of Python, parsed and evaluated
//! in Rust with Python's number semantics, so templates run without Python.
//!
//! Supported: integer, float and string literals; names; lists `[…]` and tuples `(…)`;
//! `+ - * / // % **` (int, `Fraction` and float arithmetic as in Python: `/` of two ints is a
//! float, `//` and `%` floor, fractions stay exact); comparisons, chained (`a < b < c`);
//! `and`, `or`, `not`; `x if c else y`; and calls of the template helpers: `range`,
//! `range_list`, `range_str`, `arange`, `sample`, `sample_sequential` (random draws, or every
//! possibility when enumerating), `int`, `float`, `round`, `str`, `len`, `list`, `is_int`,
//! `divides`, `ensure_int`, `Fraction` (a float as its closest fraction, as text), `plural`,
//! `to_title`. Not supported (the template is skipped): keyword arguments, subscripts,
//! attribute access, other functions.

use std::collections::HashMap;
use std::fmt::Write;

use anyhow::{anyhow, bail, ensure, Result};
use rand::rngs::StdRng;
use rand::Rng;

/// A Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// A reduced fraction, denominator > 0.
    Frac(i64, i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(Value),
    Name(String),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    IfElse(Box<Expr>, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

/// How the random helpers behave.
pub enum Mode<'a> {
    /// Draw one possibility.
    Sample(&'a mut StdRng),
    /// Return the list of every possibility.
    Enumerate,
    /// Random helpers are errors (answers and conditions use none).
    Fixed,
}

/// Names visible to an expression: looked up from the last scope to the first.
pub struct Env<'a> {
    pub scopes: Vec<&'a HashMap<String, Value>>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.scopes.iter().rev().find_map(|scope| scope.get(name))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    Op(&'static str),
}

const OPS: [&str; 17] = ["**", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]"];

fn tokenize(text: &str) -> Result<Vec<Token>> {
    // Templates of some languages write numbers in Devanagari digits.
    let text: String = text
        .chars()
        .map(|c| match c {
            '०'..='९' => char::from(b'0' + (c as u32 - '०' as u32) as u8),
            c => c,
        })
        .collect();
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            let mut float = false;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            if chars.get(i) == Some(&'.') {
                float = true;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                    i += 1;
                }
            }
            let digit_at = |k: usize| chars.get(k).is_some_and(char::is_ascii_digit);
            let signed_exponent = matches!(chars.get(i + 1), Some('+' | '-')) && digit_at(i + 2);
            if matches!(chars.get(i), Some('e' | 'E')) && (digit_at(i + 1) || signed_exponent) {
                float = true;
                i += 2;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let literal: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
            tokens.push(if float {
                Token::Float(literal.parse().map_err(|_| anyhow!("bad number {literal}"))?)
            } else {
                Token::Int(literal.parse().map_err(|_| anyhow!("integer {literal} is too large"))?)
            });
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else { bail!("unterminated string") };
                i += 1;
                match d {
                    d if d == c => break,
                    '\\' => {
                        let Some(&e) = chars.get(i) else { bail!("unterminated string") };
                        i += 1;
                        match e {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            '\\' | '\'' | '"' => s.push(e),
                            e => {
                                s.push('\\');
                                s.push(e);
                            }
                        }
                    }
                    d => s.push(d),
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if c == ',' {
            tokens.push(Token::Op(","));
            i += 1;
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else { bail!("unexpected character {c:?}") };
            tokens.push(Token::Op(op));
            i += op.chars().count();
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// Parses one expression.
pub fn parse(text: &str) -> Result<Expr> {
    let mut parser = Parser { tokens: tokenize(text)?, pos: 0 };
    let expr = parser.expr()?;
    if let Some(token) = parser.peek() {
        bail!("unexpected {token:?} in {text:?}");
    }
    Ok(expr)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == word) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect_op(&mut self, op: &str) -> Result<()> {
        ensure!(self.eat_op(op), "expected {op:?}, found {:?}", self.peek());
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr> {
        let value = self.or()?;
        if self.eat_keyword("if") {
            let condition = self.or()?;
            ensure!(self.eat_keyword("else"), "expected else");
            let otherwise = self.expr()?;
            return Ok(Expr::IfElse(Box::new(condition), Box::new(value), Box::new(otherwise)));
        }
        Ok(value)
    }

    fn or(&mut self) -> Result<Expr> {
        let mut terms = vec![self.and()?];
        while self.eat_keyword("or") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::Or(terms) })
    }

    fn and(&mut self) -> Result<Expr> {
        let mut terms = vec![self.not()?];
        while self.eat_keyword("and") {
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::And(terms) })
    }

    fn not(&mut self) -> Result<Expr> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let first = self.arith()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Token::Op("==")) => CmpOp::Eq,
                Some(Token::Op("!=")) => CmpOp::Ne,
                Some(Token::Op("<")) => CmpOp::Lt,
                Some(Token::Op("<=")) => CmpOp::Le,
                Some(Token::Op(">")) => CmpOp::Gt,
                Some(Token::Op(">=")) => CmpOp::Ge,
                _ => break,
            };
            self.pos += 1;
            rest.push((op, self.arith()?));
        }
        Ok(if rest.is_empty() { first } else { Expr::Compare(Box::new(first), rest) })
    }

    fn arith(&mut self) -> Result<Expr> {
        self.left_assoc(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::term)
    }

    fn term(&mut self) -> Result<Expr> {
        let ops = [("*", BinOp::Mul), ("//", BinOp::FloorDiv), ("/", BinOp::Div), ("%", BinOp::Mod)];
        self.left_assoc(&ops, Self::factor)
    }

    /// A left-associative chain of `operand`s joined by any of `ops` (tried in order, so `//`
    /// must come before `/`).
    fn left_assoc(&mut self, ops: &[(&str, BinOp)], operand: fn(&mut Self) -> Result<Expr>) -> Result<Expr> {
        let mut left = operand(self)?;
        while let Some(&(_, op)) = ops.iter().find(|(symbol, _)| self.eat_op(symbol)) {
            left = Expr::Binary(op, Box::new(left), Box::new(operand(self)?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr> {
        if self.eat_op("-") {
            return Ok(Expr::Neg(Box::new(self.factor()?)));
        }
        if self.eat_op("+") {
            return self.factor();
        }
        let base = self.atom()?;
        if self.eat_op("**") {
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(self.factor()?)));
        }
        Ok(base)
    }

    /// Expressions separated by commas up to `close`; whether a comma was seen.
    fn sequence(&mut self, close: &str) -> Result<(Vec<Expr>, bool)> {
        let mut items = Vec::new();
        let mut comma = false;
        while !self.eat_op(close) {
            items.push(self.expr()?);
            if !self.eat_op(",") {
                self.expect_op(close)?;
                break;
            }
            comma = true;
        }
        Ok((items, comma))
    }

    fn atom(&mut self) -> Result<Expr> {
        let token = self.peek().cloned().ok_or_else(|| anyhow!("unexpected end of expression"))?;
        self.pos += 1;
        Ok(match token {
            Token::Int(i) => Expr::Const(Value::Int(i)),
            Token::Float(f) => Expr::Const(Value::Float(f)),
            Token::Str(s) => Expr::Const(Value::Str(s)),
            Token::Name(name) => match name.as_str() {
                "True" => Expr::Const(Value::Bool(true)),
                "False" => Expr::Const(Value::Bool(false)),
                "None" => Expr::Const(Value::None),
                "and" | "or" | "not" | "if" | "else" | "in" | "is" | "lambda" | "for" => {
                    bail!("unsupported keyword {name}")
                }
                _ if self.eat_op("(") => {
                    let (args, _) = self.sequence(")")?;
                    Expr::Call(name, args)
                }
                _ => Expr::Name(name),
            },
            Token::Op("(") => {
                let (mut items, comma) = self.sequence(")")?;
                if items.len() == 1 && !comma {
                    items.remove(0)
                } else {
                    Expr::Tuple(items)
                }
            }
            Token::Op("[") => Expr::List(self.sequence("]")?.0),
            token => bail!("unexpected {token:?}"),
        })
    }
}

impl Expr {
    /// The functions the expression calls.
    pub fn calls(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Const(_) | Expr::Name(_) => {}
                Expr::List(items) | Expr::Tuple(items) | Expr::And(items) | Expr::Or(items) => stack.extend(items),
                Expr::Neg(e) | Expr::Not(e) => stack.push(e),
                Expr::Binary(_, a, b) => stack.extend([&**a, &**b]),
                Expr::Compare(first, rest) => {
                    stack.push(first);
                    stack.extend(rest.iter().map(|(_, e)| e));
                }
                Expr::IfElse(c, a, b) => stack.extend([&**c, &**a, &**b]),
                Expr::Call(name, args) => {
                    out.push(name.as_str());
                    stack.extend(args);
                }
            }
        }
        out
    }

    /// Every name the expression mentions, functions included.
    pub fn names(&self, out: &mut Vec<String>) {
        match self {
            Expr::Const(_) => {}
            Expr::Name(name) => out.push(name.clone()),
            Expr::List(items) | Expr::Tuple(items) | Expr::And(items) | Expr::Or(items) => {
                items.iter().for_each(|e| e.names(out))
            }
            Expr::Neg(e) | Expr::Not(e) => e.names(out),
            Expr::Binary(_, a, b) => {
                a.names(out);
                b.names(out);
            }
            Expr::Compare(first, rest) => {
                first.names(out);
                rest.iter().for_each(|(_, e)| e.names(out));
            }
            Expr::IfElse(c, a, b) => [c, a, b].iter().for_each(|e| e.names(out)),
            Expr::Call(name, args) => {
                out.push(name.clone());
                args.iter().for_each(|e| e.names(out));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Frac(i64, i64),
    Float(f64),
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// The reduced fraction n/d as a value.
fn frac(n: i128, d: i128) -> Result<Value> {
    ensure!(d != 0, "division by zero");
    let g = gcd(n, d).max(1);
    let (mut n, mut d) = (n / g, d / g);
    if d < 0 {
        (n, d) = (-n, -d);
    }
    let small = |x: i128| i64::try_from(x).map_err(|_| anyhow!("fraction overflow"));
    Ok(Value::Frac(small(n)?, small(d)?))
}

fn floor_div_i128(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

impl Value {
    fn num(&self) -> Option<Num> {
        match *self {
            Value::Bool(b) => Some(Num::Int(i64::from(b))),
            Value::Int(i) => Some(Num::Int(i)),
            Value::Frac(n, d) => Some(Num::Frac(n, d)),
            Value::Float(f) => Some(Num::Float(f)),
            _ => None,
        }
    }

    /// The value as a float, for numbers.
    pub fn as_f64(&self) -> Option<f64> {
        self.num().map(|n| match n {
            Num::Int(i) => i as f64,
            Num::Frac(n, d) => n as f64 / d as f64,
            Num::Float(f) => f,
        })
    }

    /// Python's truth value.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Frac(n, _) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(items) | Value::Tuple(items) => !items.is_empty(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Frac(..) => "Fraction",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
        }
    }

    /// Python's `str()`.
    pub fn py_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    /// Python's `repr()`.
    pub fn py_repr(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Frac(n, 1) => n.to_string(),
            Value::Frac(n, d) => format!("{n}/{d}"),
            Value::Float(f) => float_repr(*f),
            Value::Str(s) => {
                let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
                let mut out = String::from(quote);
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        c if c == quote => {
                            out.push('\\');
                            out.push(c);
                        }
                        c => out.push(c),
                    }
                }
                out.push(quote);
                out
            }
            Value::List(items) => format!("[{}]", items.iter().map(Value::py_repr).collect::<Vec<_>>().join(", ")),
            Value::Tuple(items) if items.len() == 1 => format!("({},)", items[0].py_repr()),
            Value::Tuple(items) => format!("({})", items.iter().map(Value::py_repr).collect::<Vec<_>>().join(", ")),
        }
    }

    /// How the template helpers read a stored value (`parse_value` upstream): an integral float
    /// is an int, and text that spells an int, a float or a fraction `a/b` is that number.
    pub fn parsed(&self) -> Value {
        match self {
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Value::Int(*f as i64),
            Value::Str(s) => parse_number_text(s).unwrap_or_else(|| self.clone()),
            other => other.clone(),
        }
    }
}

fn parse_number_text(s: &str) -> Option<Value> {
    let t = s.trim();
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().ok().map(Value::Int);
    }
    let decimal = |x: &str| {
        let (mantissa, exponent) = x.split_once(['e', 'E']).unwrap_or((x, "0"));
        let exponent = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        (!whole.is_empty() || !fraction.is_empty())
            && whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())
            && !exponent.is_empty()
            && exponent.chars().all(|c| c.is_ascii_digit())
    };
    if !unsigned.is_empty() && decimal(unsigned) {
        return t.parse().ok().map(Value::Float);
    }
    let (n, d) = t.split_once('/')?;
    let int = |x: &str| {
        let digits = x.strip_prefix('-').unwrap_or(x);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    };
    if int(n) && int(d) {
        return frac(n.parse().ok()?, d.parse().ok()?).ok();
    }
    None
}

/// Python's `repr()` of a float: the shortest digits that round-trip, positional from 1e-4 to
/// 1e16 (with `.0` when integral), scientific (`1e+16`, `1.5e-05`) outside.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = f.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let s = format!("{f}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{f:e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value> {
    match (op, a, b) {
        (BinOp::Add, Value::Str(x), Value::Str(y)) => return Ok(Value::Str(format!("{x}{y}"))),
        (BinOp::Add, Value::List(x), Value::List(y)) => return Ok(Value::List(x.iter().chain(y).cloned().collect())),
        (BinOp::Mul, Value::Str(s), Value::Int(n)) | (BinOp::Mul, Value::Int(n), Value::Str(s)) => {
            return Ok(Value::Str(s.repeat(usize::try_from(*n).unwrap_or(0))))
        }
        _ => {}
    }
    let (Some(x), Some(y)) = (a.num(), b.num()) else {
        bail!("unsupported operand types for {op:?}: {} and {}", a.type_name(), b.type_name())
    };
    match (x, y) {
        (Num::Float(_), _) | (_, Num::Float(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            float_arith(op, x, y)
        }
        (Num::Frac(..), _) | (_, Num::Frac(..)) => {
            let parts = |n: Num| match n {
                Num::Int(i) => (i128::from(i), 1),
                Num::Frac(n, d) => (i128::from(n), i128::from(d)),
                Num::Float(_) => (0, 1),
            };
            let ((n1, d1), (n2, d2)) = (parts(x), parts(y));
            let overflow = || anyhow!("fraction overflow");
            match op {
                BinOp::Add => frac(n1 * d2 + n2 * d1, d1 * d2),
                BinOp::Sub => frac(n1 * d2 - n2 * d1, d1 * d2),
                BinOp::Mul => frac(n1.checked_mul(n2).ok_or_else(overflow)?, d1 * d2),
                BinOp::Div => frac(n1 * d2, d1.checked_mul(n2).ok_or_else(overflow)?),
                BinOp::FloorDiv => {
                    ensure!(n2 != 0, "division by zero");
                    let q = floor_div_i128(n1 * d2, d1 * n2);
                    Ok(Value::Int(i64::try_from(q).map_err(|_| overflow())?))
                }
                BinOp::Mod => {
                    ensure!(n2 != 0, "division by zero");
                    let q = floor_div_i128(n1 * d2, d1 * n2);
                    frac(n1 * d2 - q * n2 * d1, d1 * d2)
                }
                BinOp::Pow => match y {
                    Num::Int(e) => {
                        let e32 = u32::try_from(e.unsigned_abs()).map_err(|_| overflow())?;
                        let n = n1.checked_pow(e32).ok_or_else(overflow)?;
                        let d = d1.checked_pow(e32).ok_or_else(overflow)?;
                        if e >= 0 { frac(n, d) } else { frac(d, n) }
                    }
                    _ => float_arith(op, a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN)),
                },
            }
        }
        (Num::Int(x), Num::Int(y)) => {
            let overflow = || anyhow!("integer overflow");
            Ok(match op {
                BinOp::Add => Value::Int(x.checked_add(y).ok_or_else(overflow)?),
                BinOp::Sub => Value::Int(x.checked_sub(y).ok_or_else(overflow)?),
                BinOp::Mul => Value::Int(x.checked_mul(y).ok_or_else(overflow)?),
                BinOp::Div => {
                    ensure!(y != 0, "division by zero");
                    Value::Float(x as f64 / y as f64)
                }
                BinOp::FloorDiv => {
                    ensure!(y != 0, "division by zero");
                    Value::Int(floor_div_i128(x.into(), y.into()) as i64)
                }
                BinOp::Mod => {
                    ensure!(y != 0, "division by zero");
                    let q = floor_div_i128(x.into(), y.into());
                    Value::Int((i128::from(x) - q * i128::from(y)) as i64)
                }
                BinOp::Pow if y >= 0 => {
                    let y = u32::try_from(y).map_err(|_| overflow())?;
                    Value::Int(x.checked_pow(y).ok_or_else(overflow)?)
                }
                BinOp::Pow => return float_arith(op, x as f64, y as f64),
            })
        }
    }
}

fn float_arith(op: BinOp, x: f64, y: f64) -> Result<Value> {
    let zero = || anyhow!("float division by zero");
    Ok(Value::Float(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            ensure!(y != 0.0, zero());
            x / y
        }
        BinOp::FloorDiv => {
            ensure!(y != 0.0, zero());
            (x / y).floor()
        }
        BinOp::Mod => {
            ensure!(y != 0.0, zero());
            let r = x % y;
            if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                r + y
            } else {
                r
            }
        }
        BinOp::Pow => x.powf(y),
    }))
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool> {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (a.num(), b.num()) {
        (Some(Num::Float(_)), Some(_)) | (Some(_), Some(Num::Float(_))) => a.as_f64().partial_cmp(&b.as_f64()),
        (Some(x), Some(y)) => {
            let parts = |n: Num| match n {
                Num::Int(i) => (i128::from(i), 1i128),
                Num::Frac(n, d) => (i128::from(n), i128::from(d)),
                Num::Float(_) => (0, 1),
            };
            let ((n1, d1), (n2, d2)) = (parts(x), parts(y));
            Some((n1 * d2).cmp(&(n2 * d1)))
        }
        _ => match (a, b) {
            (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    Ok(match (op, ordering) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Eq, None) => a == b,
        (CmpOp::Ne, None) => a != b,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => bail!("cannot order {} and {}", a.type_name(), b.type_name()),
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Evaluates `expr` with the names of `env`; random helpers behave as `mode` says.
pub fn eval(expr: &Expr, env: &Env, mode: &mut Mode) -> Result<Value> {
    Ok(match expr {
        Expr::Const(value) => value.clone(),
        Expr::Name(name) => env.get(name).cloned().ok_or_else(|| anyhow!("name {name:?} is not defined"))?,
        Expr::List(items) => Value::List(items.iter().map(|e| eval(e, env, mode)).collect::<Result<_>>()?),
        Expr::Tuple(items) => Value::Tuple(items.iter().map(|e| eval(e, env, mode)).collect::<Result<_>>()?),
        Expr::Neg(e) => match eval(e, env, mode)? {
            Value::Bool(b) => Value::Int(-i64::from(b)),
            Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(|| anyhow!("integer overflow"))?),
            Value::Frac(n, d) => Value::Frac(-n, d),
            Value::Float(f) => Value::Float(-f),
            other => bail!("bad operand type for unary -: {}", other.type_name()),
        },
        Expr::Not(e) => Value::Bool(!eval(e, env, mode)?.truthy()),
        Expr::Binary(op, a, b) => arith(*op, &eval(a, env, mode)?, &eval(b, env, mode)?)?,
        Expr::Compare(first, rest) => {
            let mut left = eval(first, env, mode)?;
            for (op, e) in rest {
                let right = eval(e, env, mode)?;
                if !compare(*op, &left, &right)? {
                    return Ok(Value::Bool(false));
                }
                left = right;
            }
            Value::Bool(true)
        }
        Expr::And(terms) => {
            let mut value = Value::Bool(true);
            for term in terms {
                value = eval(term, env, mode)?;
                if !value.truthy() {
                    break;
                }
            }
            value
        }
        Expr::Or(terms) => {
            let mut value = Value::Bool(false);
            for term in terms {
                value = eval(term, env, mode)?;
                if value.truthy() {
                    break;
                }
            }
            value
        }
        Expr::IfElse(condition, then, otherwise) => {
            if eval(condition, env, mode)?.truthy() {
                eval(then, env, mode)?
            } else {
                eval(otherwise, env, mode)?
            }
        }
        Expr::Call(name, args) => {
            let args: Vec<Value> = args.iter().map(|e| eval(e, env, mode)).collect::<Result<_>>()?;
            call(name, &args, mode)?
        }
    })
}

/// The functions templates may call.
pub const FUNCTIONS: [&str; 18] = [
    "range",
    "range_list",
    "range_str",
    "arange",
    "sample",
    "sample_sequential",
    "int",
    "float",
    "round",
    "str",
    "len",
    "list",
    "is_int",
    "divides",
    "ensure_int",
    "Fraction",
    "plural",
    "to_title",
];

fn int_arg(args: &[Value], i: usize, function: &str) -> Result<i64> {
    match args.get(i) {
        Some(Value::Int(v)) => Ok(*v),
        Some(Value::Bool(b)) => Ok(i64::from(*b)),
        Some(other) => bail!("{function}: expected an int, got {}", other.type_name()),
        None => bail!("{function}: missing argument {}", i + 1),
    }
}

fn items_arg<'v>(args: &'v [Value], i: usize, function: &str) -> Result<&'v [Value]> {
    match args.get(i) {
        Some(Value::List(items) | Value::Tuple(items)) => Ok(items),
        Some(other) => bail!("{function}: expected a list, got {}", other.type_name()),
        None => bail!("{function}: missing argument {}", i + 1),
    }
}

/// Python's `range(start, end, step)` as a list (at most 10 million items).
fn python_range(start: i64, end: i64, step: i64) -> Result<Vec<i64>> {
    ensure!(step != 0, "range: step must not be zero");
    let len = if step > 0 { (end - start + step - 1).max(0) / step } else { (start - end - step - 1).max(0) / -step };
    ensure!(len <= 10_000_000, "range of {len} values is too long");
    Ok((0..len).map(|k| start + k * step).collect())
}

/// One of `candidates` (drawn, or all of them as a list when enumerating).
fn choose(candidates: Vec<Value>, mode: &mut Mode, function: &str) -> Result<Value> {
    match mode {
        Mode::Sample(rng) => {
            ensure!(!candidates.is_empty(), "{function}: nothing to choose from");
            let i = rng.random_range(0..candidates.len());
            let mut candidates = candidates;
            Ok(candidates.swap_remove(i))
        }
        Mode::Enumerate => Ok(Value::List(candidates)),
        Mode::Fixed => bail!("{function} draws at random; it is not allowed here"),
    }
}

/// Python's `round(x)` (to an int, ties to even) or `round(x, digits)`.
fn round(x: &Value, digits: Option<i64>) -> Result<Value> {
    let half_even = |n: i128, d: i128| -> i128 {
        // round(n / d) with ties to even, d > 0
        let q = floor_div_i128(n, d);
        let r = n - q * d;
        match (2 * r).cmp(&d) {
            std::cmp::Ordering::Less => q,
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal => q + (q & 1),
        }
    };
    match (x, digits) {
        (Value::Int(i), _) => Ok(Value::Int(*i)),
        (Value::Bool(b), _) => Ok(Value::Int(i64::from(*b))),
        (Value::Float(f), None) => {
            ensure!(f.is_finite(), "cannot round {f}");
            let r = f.round_ties_even();
            ensure!(r.abs() < 9.2e18, "integer overflow");
            Ok(Value::Int(r as i64))
        }
        (Value::Float(f), Some(d)) => {
            let d = usize::try_from(d).map_err(|_| anyhow!("round: negative digits are not supported"))?;
            Ok(Value::Float(format!("{f:.d$}").parse().map_err(|_| anyhow!("cannot round {f}"))?))
        }
        (Value::Frac(n, d), None) => Ok(Value::Int(half_even((*n).into(), (*d).into()) as i64)),
        (Value::Frac(n, d), Some(digits)) => {
            let digits = u32::try_from(digits).map_err(|_| anyhow!("round: negative digits are not supported"))?;
            let scale = 10i128.checked_pow(digits).ok_or_else(|| anyhow!("round: too many digits"))?;
            frac(half_even(i128::from(*n) * scale, (*d).into()), scale)
        }
        (other, _) => bail!("round: expected a number, got {}", other.type_name()),
    }
}

/// The fraction closest to `x` whose denominator is at most `max` (Python's
/// `Fraction(x).limit_denominator(max)`), by the continued fraction of x's exact value.
fn limit_denominator(x: f64, max: i128) -> Result<(i128, i128)> {
    ensure!(x.is_finite(), "cannot turn {x} into a fraction");
    let negative = x < 0.0;
    let a = x.abs();
    // x's exact value: mantissa · 2^exponent
    let bits = a.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = if exponent == 0 { (bits & ((1 << 52) - 1)) << 1 } else { (bits & ((1 << 52) - 1)) | (1 << 52) };
    let exponent = exponent - 1075;
    let (num, den): (i128, i128) = if exponent >= 0 {
        ensure!(exponent < 70, "number too large");
        (i128::from(mantissa) << exponent, 1)
    } else if exponent > -120 {
        let g = gcd(mantissa.into(), 1i128 << -exponent).max(1);
        (i128::from(mantissa) / g, (1i128 << -exponent) / g)
    } else {
        (0, 1)
    };
    let (p, q) = if den <= max {
        (num, den)
    } else {
        let (mut p0, mut q0, mut p1, mut q1) = (0i128, 1i128, 1i128, 0i128);
        let (mut n, mut d) = (num, den);
        loop {
            let a = n / d;
            let q2 = q0 + a * q1;
            if q2 > max {
                break;
            }
            (p0, q0, p1, q1) = (p1, q1, p0 + a * p1, q2);
            (n, d) = (d, n - a * d);
            if d == 0 {
                break;
            }
        }
        let k = (max - q0) / q1;
        let (b1n, b1d) = (p0 + k * p1, q0 + k * q1);
        // |p1/q1 - x| <= |b1 - x|, compared exactly: x = num/den
        let distance = |pn: i128, pd: i128| ((pn * den - num * pd).abs(), pd * den);
        let ((e2n, e2d), (e1n, e1d)) = (distance(p1, q1), distance(b1n, b1d));
        if e2n * e1d <= e1n * e2d {
            (p1, q1)
        } else {
            (b1n, b1d)
        }
    };
    Ok((if negative { -p } else { p }, q))
}

fn is_int(x: &Value) -> bool {
    match x {
        Value::Int(_) | Value::Bool(_) => true,
        Value::Float(f) => f.fract() == 0.0 || (f - f.round()).abs() < 1e-6,
        Value::Frac(_, d) => *d == 1,
        _ => false,
    }
}

fn call(name: &str, args: &[Value], mode: &mut Mode) -> Result<Value> {
    let arity = |min: usize, max: usize| {
        ensure!((min..=max).contains(&args.len()), "{name}: expected {min} to {max} arguments, got {}", args.len());
        Ok(())
    };
    Ok(match name {
        "range" | "range_list" => {
            arity(2, 3)?;
            let step = if args.len() == 3 { int_arg(args, 2, name)? } else { 1 };
            let range = python_range(int_arg(args, 0, name)?, int_arg(args, 1, name)?, step)?;
            let values: Vec<Value> = range.into_iter().map(Value::Int).collect();
            if name == "range_list" {
                Value::List(values)
            } else {
                choose(values, mode, name)?
            }
        }
        "range_str" => {
            arity(4, 4)?;
            let numbers = items_arg(args, 3, name)?;
            let mut candidates = Vec::new();
            for i in python_range(int_arg(args, 0, name)?, int_arg(args, 1, name)?, int_arg(args, 2, name)?)? {
                let word = usize::try_from(i - 1).ok().and_then(|k| numbers.get(k));
                let word = word.ok_or_else(|| anyhow!("range_str: no number word {i}"))?;
                candidates.push(Value::Tuple(vec![word.clone(), Value::Int(i)]));
            }
            choose(candidates, mode, name)?
        }
        "arange" => {
            arity(2, 3)?;
            let number = |i: usize| args[i].as_f64().ok_or_else(|| anyhow!("arange: expected numbers"));
            let (start, end) = (number(0)?, number(1)?);
            let step_value = args.get(2).cloned().unwrap_or(Value::Int(1));
            let step = step_value.as_f64().ok_or_else(|| anyhow!("arange: expected numbers"))?;
            ensure!(step > 0.0, "arange: step must be positive");
            // decimals of the step as written (`0.25` → 2, `1` → 0, `1.0` → 1)
            let repr = step_value.py_repr();
            let decimals = repr.split_once('.').map_or(0, |(_, f)| f.len());
            let mut candidates = Vec::new();
            if start <= end {
                let count = ((end - start) / step).round() as usize + 1;
                ensure!(count <= 10_000_000, "arange of {count} values is too long");
                let delta = if count > 1 { (end - start) / (count - 1) as f64 } else { 0.0 };
                for k in 0..count {
                    let v = if k + 1 == count && count > 1 { end } else { start + k as f64 * delta };
                    let rounded: f64 = format!("{v:.decimals$}").parse().unwrap_or(v);
                    candidates.push(Value::Str(float_repr(rounded)));
                }
            }
            choose(candidates, mode, name)?
        }
        "sample" => {
            arity(1, 2)?;
            let items = items_arg(args, 0, name)?;
            let n = if args.len() == 2 { int_arg(args, 1, name)? } else { 1 };
            if n == 1 {
                choose(items.to_vec(), mode, name)?
            } else {
                let n = usize::try_from(n).map_err(|_| anyhow!("sample: negative size"))?;
                ensure!(n <= items.len(), "sample: {n} items from a list of {}", items.len());
                match mode {
                    Mode::Sample(rng) => {
                        // a uniform n-subset, in list order (as a combination is)
                        let mut chosen = rand::seq::index::sample(&mut **rng, items.len(), n).into_vec();
                        chosen.sort_unstable();
                        Value::Tuple(chosen.into_iter().map(|i| items[i].clone()).collect())
                    }
                    Mode::Enumerate => Value::List(combinations(items, n)?),
                    Mode::Fixed => bail!("sample draws at random; it is not allowed here"),
                }
            }
        }
        "sample_sequential" => {
            arity(2, 2)?;
            let items = items_arg(args, 0, name)?;
            let n = usize::try_from(int_arg(args, 1, name)?).map_err(|_| anyhow!("sample_sequential: negative size"))?;
            let run = |start: usize| Value::List((0..n).map(|j| items[(start + j) % items.len()].clone()).collect());
            let runs: Vec<Value> = (0..items.len()).map(run).collect();
            choose(runs, mode, name)?
        }
        "int" => {
            arity(1, 1)?;
            match &args[0] {
                Value::Str(s) => Value::Int(s.trim().parse().map_err(|_| anyhow!("int: invalid literal {s:?}"))?),
                Value::Float(f) => {
                    ensure!(f.is_finite() && f.abs() < 9.2e18, "int: cannot convert {f}");
                    Value::Int(f.trunc() as i64)
                }
                Value::Frac(n, d) => Value::Int(n / d),
                Value::Int(i) => Value::Int(*i),
                Value::Bool(b) => Value::Int(i64::from(*b)),
                other => bail!("int: cannot convert {}", other.type_name()),
            }
        }
        "float" => {
            arity(1, 1)?;
            match &args[0] {
                Value::Str(s) => Value::Float(s.trim().parse().map_err(|_| anyhow!("float: invalid literal {s:?}"))?),
                other => {
                    Value::Float(other.as_f64().ok_or_else(|| anyhow!("float: cannot convert {}", other.type_name()))?)
                }
            }
        }
        "round" => {
            arity(1, 2)?;
            let digits = if args.len() == 2 { Some(int_arg(args, 1, name)?) } else { None };
            round(&args[0], digits)?
        }
        "str" => {
            arity(1, 1)?;
            Value::Str(args[0].py_str())
        }
        "len" => {
            arity(1, 1)?;
            match &args[0] {
                Value::Str(s) => Value::Int(s.chars().count() as i64),
                Value::List(items) | Value::Tuple(items) => Value::Int(items.len() as i64),
                other => bail!("len: {} has no length", other.type_name()),
            }
        }
        "list" => {
            arity(1, 1)?;
            match &args[0] {
                Value::List(items) | Value::Tuple(items) => Value::List(items.clone()),
                Value::Str(s) => Value::List(s.chars().map(|c| Value::Str(c.to_string())).collect()),
                other => bail!("list: {} is not iterable", other.type_name()),
            }
        }
        "is_int" => {
            arity(1, 1)?;
            Value::Bool(is_int(&args[0]))
        }
        "divides" => {
            arity(2, 2)?;
            if args[1].as_f64() == Some(0.0) {
                Value::Bool(false)
            } else {
                let rest = arith(BinOp::Mod, &args[0], &args[1])?;
                Value::Bool(rest.as_f64() == Some(0.0))
            }
        }
        "ensure_int" => {
            arity(1, 1)?;
            ensure!(is_int(&args[0]), "ensure_int: {} is not an integer", args[0].py_repr());
            round(&args[0], None)?
        }
        "Fraction" => {
            arity(1, 1)?;
            match &args[0] {
                Value::Float(f) => {
                    let (n, d) = limit_denominator(*f, 1_000_000)?;
                    Value::Str(if d == 1 { n.to_string() } else { format!("{n}/{d}") })
                }
                other => Value::Str(other.py_str()),
            }
        }
        "plural" => {
            arity(3, 4)?;
            let n = args[0].as_f64().ok_or_else(|| anyhow!("plural: expected a number"))?;
            if args.len() == 3 {
                if n.abs() == 1.0 { args[1].clone() } else { args[2].clone() }
            } else {
                let m = n.abs().trunc() as i64;
                if m % 10 == 1 && m % 100 != 11 {
                    args[1].clone()
                } else if (2..=4).contains(&(m % 10)) && !(12..=14).contains(&(m % 100)) {
                    args[2].clone()
                } else {
                    args[3].clone()
                }
            }
        }
        "to_title" => {
            arity(1, 1)?;
            let s = args[0].py_str();
            let mut chars = s.chars();
            Value::Str(chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default())
        }
        _ => bail!("unknown function {name}"),
    })
}

/// Every n-combination of `items` in order, as tuples (at most a million).
fn combinations(items: &[Value], n: usize) -> Result<Vec<Value>> {
    let mut count: u128 = 1;
    for k in 0..n {
        count = count * (items.len() - k) as u128 / (k + 1) as u128;
    }
    ensure!(count <= 1_000_000, "{count} combinations are too many to list");
    let mut out = Vec::new();
    let mut index: Vec<usize> = (0..n).collect();
    loop {
        out.push(Value::Tuple(index.iter().map(|&i| items[i].clone()).collect()));
        let Some(k) = (0..n).rev().find(|&k| index[k] != k + items.len() - n) else { break };
        index[k] += 1;
        for j in k + 1..n {
            index[j] = index[j - 1] + 1;
        }
    }
    Ok(out)
}

/// A number as the answer text shows it: an integral float as an int, else Python's `str()`.
pub fn display(value: &Value) -> String {
    match value {
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => format!("{}", *f as i64),
        other => other.py_str(),
    }
}

/// `name=value` pairs for the `entity` column.
pub fn describe(assignments: &[(String, Value)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in assignments.iter().enumerate() {
        let _ = write!(out, "{}{name}={}", if i == 0 { "" } else { "; " }, value.py_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn run(text: &str, vars: &[(&str, Value)]) -> Result<Value> {
        let scope: HashMap<String, Value> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        eval(&parse(text)?, &Env { scopes: vec![&scope] }, &mut Mode::Fixed)
    }

    /// `text` evaluates to what Python prints for it.
    fn check(text: &str, expected: &str) {
        let s = Value::Str("ab".into());
        let vars = [("half", Value::Frac(1, 2)), ("n", Value::Int(7)), ("x", Value::Float(2.5)), ("s", s)];
        let got = run(text, &vars);
        assert_eq!(got.map(|v| v.py_repr()).unwrap_or_else(|e| format!("error: {e}")), expected, "{text}");
    }

    #[test]
    fn arithmetic_follows_python() {
        check("7 / 2", "3.5");
        check("-7 // 2", "-4");
        check("-7 % 3", "2");
        check("7 % -3", "-2");
        check("2 ** 10", "1024");
        check("2 ** -1", "0.5");
        check("n * half", "7/2");
        check("half * 4", "2");
        check("half / 3 + 1", "7/6");
        check("n // half", "14");
        check("n % (half * 3)", "1");
        check("half ** 2", "1/4");
        check("half * 0.5", "0.25");
        check("x // 1", "2.0");
        check("-7.5 % 2", "0.5");
        check("1 + 2 * 3 ** 2", "19");
        check("-2 ** 2", "-4");
        check("(1 + 2) * 3", "9");
        check("0.1 + 0.2", "0.30000000000000004");
        check("1e16 * 1.0", "1e+16");
        check("0.00001", "1e-05");
        check("10.0", "10.0");
        check("s + 'c'", "'abc'");
        check("7 / 0", "error: division by zero");
        check("s - 1", "error: unsupported operand types for Sub: str and int");
        check("9223372036854775807 + 1", "error: integer overflow");
    }

    #[test]
    fn logic_and_comparisons_follow_python() {
        check("1 < 2 < 3", "True");
        check("1 < 3 < 2", "False");
        check("half == 0.5", "True");
        check("half < 1 and n > 5", "True");
        check("0 or 'x'", "'x'");
        check("not divides(n, 2)", "True");
        check("'up' if x > 2 else 'down'", "'up'");
        check("(n, 'a')", "(7, 'a')");
        check("[1, 2.0, half]", "[1, 2.0, 1/2]");
        check("s < 1", "error: cannot order str and int");
        check("s == 1", "False");
    }

    #[test]
    fn helpers_follow_the_template_library() {
        check("int(7 / 2)", "3");
        check("int(-3.5)", "-3");
        check("int('12')", "12");
        check("round(2.5)", "2");
        check("round(3.5)", "4");
        check("round(2.675, 2)", "2.67");
        check("round(7 / 3, 2)", "2.33");
        check("round(half * 5)", "2");
        check("is_int(n * half)", "False");
        check("is_int(half * 4)", "True");
        check("is_int(2.0000000001)", "True");
        check("divides(12, 4)", "True");
        check("divides(12, 0)", "False");
        check("ensure_int(4.0)", "4");
        check("ensure_int(4.5)", "error: ensure_int: 4.5 is not an integer");
        check("Fraction(0.75)", "'3/4'");
        check("Fraction(1 / 3)", "'1/3'");
        check("Fraction(2.0)", "'2'");
        check("Fraction(half)", "'1/2'");
        check("str(x)", "'2.5'");
        check("len([1, 2])", "2");
        check("range_list(3, 7, 2)", "[3, 5]");
        check("plural(1, 'coin', 'coins')", "'coin'");
        check("to_title('bob')", "'Bob'");
        check("float(2)", "2.0");
        check("sample([1, 2])", "error: sample draws at random; it is not allowed here");
        check("unknown(1)", "error: unknown function unknown");
    }

    #[test]
    fn random_helpers_enumerate_what_they_draw_from() {
        let all = |text: &str| {
            let numbers = ["one", "two", "three", "four"].map(|s| Value::Str(s.into())).to_vec();
            let scope = HashMap::from([("numbers".to_owned(), Value::List(numbers))]);
            eval(&parse(text).unwrap(), &Env { scopes: vec![&scope] }, &mut Mode::Enumerate).unwrap().py_repr()
        };
        assert_eq!(all("range(2, 8, 2)"), "[2, 4, 6]");
        assert_eq!(all("range(5, 2)"), "[]");
        assert_eq!(all("range_str(2, 4, 1, numbers)"), "[('two', 2), ('three', 3)]");
        assert_eq!(all("arange(1, 2, 0.25)"), "['1.0', '1.25', '1.5', '1.75', '2.0']");
        assert_eq!(all("arange(0.2, 0.5, 0.1)"), "['0.2', '0.3', '0.4', '0.5']");
        assert_eq!(
            all("sample(numbers, 3)"),
            "[('one', 'two', 'three'), ('one', 'two', 'four'), ('one', 'three', 'four'), ('two', 'three', 'four')]"
        );
        assert_eq!(
            all("sample_sequential(numbers, 2)"),
            "[['one', 'two'], ['two', 'three'], ['three', 'four'], ['four', 'one']]"
        );
        let mut rng = StdRng::seed_from_u64(1);
        let scope = HashMap::new();
        for _ in 0..50 {
            let mut draw = |text: &str| {
                eval(&parse(text).unwrap(), &Env { scopes: vec![&scope] }, &mut Mode::Sample(&mut rng))
            };
            let v = draw("range(10, 500, 10)").unwrap();
            assert!(matches!(v, Value::Int(i) if (10..500).contains(&i) && i % 10 == 0), "{v:?}");
            let v = draw("sample([1, 2, 3, 4], 2)").unwrap();
            assert!(matches!(&v, Value::Tuple(t) if t.len() == 2 && t[0].as_f64() < t[1].as_f64()), "{v:?}");
        }
    }

    #[test]
    fn stored_values_parse_as_the_helpers_read_them() {
        let check = |value: Value, expected: Value| assert_eq!(value.parsed(), expected);
        check(Value::Str("12".into()), Value::Int(12));
        check(Value::Str("0.25".into()), Value::Float(0.25));
        check(Value::Str("2/4".into()), Value::Frac(1, 2));
        check(Value::Str("Sophie".into()), Value::Str("Sophie".into()));
        check(Value::Str("nan".into()), Value::Str("nan".into()));
        check(Value::Float(3.0), Value::Int(3));
        check(Value::Float(3.5), Value::Float(3.5));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        for (text, needle) in [
            ("1 +", "unexpected end"),
            ("f(x=1)", "unexpected character '='"),
            ("a[0]", "unexpected Op(\"[\")"),
            ("'open", "unterminated string"),
            ("a ; b", "unexpected character ';'"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
