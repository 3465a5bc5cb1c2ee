//! Arithmetic expansion `$((...))`: the expression is expanded like a double-quoted word,
//! parsed by `brush_parser::arithmetic`, and evaluated here in 64-bit signed integers with
//! C's operators. Division by zero is an error, not a crash; overflow wraps.

use brush_parser::ast::{ArithmeticExpr, ArithmeticTarget, BinaryOperator, UnaryAssignmentOperator, UnaryOperator};

use crate::state::{Flow, Shell};

impl Shell {
    /// Expand and evaluate the text of an arithmetic expression.
    pub fn arith_text(&mut self, text: &str) -> Result<i64, Flow> {
        // The expression is a double-quoted word first ($x, $(cmd) inside it).
        let expanded = self.expand_heredoc(text)?;
        if expanded.trim().is_empty() {
            return Ok(0);
        }
        let expr = brush_parser::arithmetic::parse(&expanded)
            .map_err(|_| self.fatal(format!("arithmetic expression: expecting EOF: \"{}\"", expanded.trim())))?;
        self.arith(&expr)
    }

    fn variable_value(&mut self, name: &str, depth: u32) -> Result<i64, Flow> {
        let value = self.get(name).unwrap_or("").trim().to_string();
        if value.is_empty() {
            if self.opts.nounset && self.get(name).is_none() {
                return Err(self.fatal(format!("{name}: parameter not set")));
            }
            return Ok(0);
        }
        if let Some(n) = parse_number(&value) {
            return Ok(n);
        }
        if depth > 32 {
            return Err(self.fatal(format!("{name}: expression recursion level exceeded")));
        }
        // A variable holding an expression (bash and dash both evaluate it).
        let expr = brush_parser::arithmetic::parse(&value)
            .map_err(|_| self.fatal(format!("arithmetic expression: bad number: \"{value}\"")))?;
        self.arith(&expr)
    }

    fn target_name(&self, target: &ArithmeticTarget) -> Result<String, Flow> {
        match target {
            ArithmeticTarget::Variable(name) => Ok(name.clone()),
            ArithmeticTarget::ArrayElement(name, _) => {
                Err(self.fatal(format!("{name}[...]: arrays are not supported by kiln's sh")))
            }
        }
    }

    fn assign_number(&mut self, name: &str, value: i64) -> Result<i64, Flow> {
        self.set(name, value.to_string()).map_err(|e| self.fatal(e))?;
        Ok(value)
    }

    /// Evaluate a parsed expression.
    pub fn arith(&mut self, expr: &ArithmeticExpr) -> Result<i64, Flow> {
        Ok(match expr {
            ArithmeticExpr::Literal(n) => *n,
            ArithmeticExpr::Reference(target) => {
                let name = self.target_name(target)?;
                self.variable_value(&name, 0)?
            }
            ArithmeticExpr::UnaryOp(op, inner) => {
                let v = self.arith(inner)?;
                match op {
                    UnaryOperator::UnaryPlus => v,
                    UnaryOperator::UnaryMinus => v.wrapping_neg(),
                    UnaryOperator::BitwiseNot => !v,
                    UnaryOperator::LogicalNot => (v == 0) as i64,
                }
            }
            ArithmeticExpr::BinaryOp(op, left, right) => match op {
                BinaryOperator::LogicalAnd => {
                    let l = self.arith(left)?;
                    (l != 0 && self.arith(right)? != 0) as i64
                }
                BinaryOperator::LogicalOr => {
                    let l = self.arith(left)?;
                    (l != 0 || self.arith(right)? != 0) as i64
                }
                _ => {
                    let l = self.arith(left)?;
                    let r = self.arith(right)?;
                    self.binary(op, l, r)?
                }
            },
            ArithmeticExpr::Conditional(cond, then, otherwise) => {
                if self.arith(cond)? != 0 {
                    self.arith(then)?
                } else {
                    self.arith(otherwise)?
                }
            }
            ArithmeticExpr::Assignment(target, value) => {
                let name = self.target_name(target)?;
                let v = self.arith(value)?;
                self.assign_number(&name, v)?
            }
            ArithmeticExpr::BinaryAssignment(op, target, value) => {
                let name = self.target_name(target)?;
                let current = self.variable_value(&name, 0)?;
                let v = self.arith(value)?;
                let result = self.binary(op, current, v)?;
                self.assign_number(&name, result)?
            }
            ArithmeticExpr::UnaryAssignment(op, target) => {
                let name = self.target_name(target)?;
                let current = self.variable_value(&name, 0)?;
                let (new, result) = match op {
                    UnaryAssignmentOperator::PrefixIncrement => (current.wrapping_add(1), current.wrapping_add(1)),
                    UnaryAssignmentOperator::PrefixDecrement => (current.wrapping_sub(1), current.wrapping_sub(1)),
                    UnaryAssignmentOperator::PostfixIncrement => (current.wrapping_add(1), current),
                    UnaryAssignmentOperator::PostfixDecrement => (current.wrapping_sub(1), current),
                };
                self.assign_number(&name, new)?;
                result
            }
        })
    }

    fn binary(&self, op: &BinaryOperator, l: i64, r: i64) -> Result<i64, Flow> {
        Ok(match op {
            BinaryOperator::Power => {
                if r < 0 {
                    return Err(self.fatal("arithmetic expression: exponent less than 0"));
                }
                l.wrapping_pow(r.min(u32::MAX as i64) as u32)
            }
            BinaryOperator::Multiply => l.wrapping_mul(r),
            BinaryOperator::Divide | BinaryOperator::Modulo => {
                if r == 0 {
                    return Err(self.fatal("arithmetic expression: division by zero"));
                }
                if matches!(op, BinaryOperator::Divide) { l.wrapping_div(r) } else { l.wrapping_rem(r) }
            }
            BinaryOperator::Comma => r,
            BinaryOperator::Add => l.wrapping_add(r),
            BinaryOperator::Subtract => l.wrapping_sub(r),
            BinaryOperator::ShiftLeft => l.wrapping_shl(r as u32),
            BinaryOperator::ShiftRight => l.wrapping_shr(r as u32),
            BinaryOperator::LessThan => (l < r) as i64,
            BinaryOperator::LessThanOrEqualTo => (l <= r) as i64,
            BinaryOperator::GreaterThan => (l > r) as i64,
            BinaryOperator::GreaterThanOrEqualTo => (l >= r) as i64,
            BinaryOperator::Equals => (l == r) as i64,
            BinaryOperator::NotEquals => (l != r) as i64,
            BinaryOperator::BitwiseAnd => l & r,
            BinaryOperator::BitwiseXor => l ^ r,
            BinaryOperator::BitwiseOr => l | r,
            BinaryOperator::LogicalAnd => (l != 0 && r != 0) as i64,
            BinaryOperator::LogicalOr => (l != 0 || r != 0) as i64,
        })
    }
}

/// A C integer constant: decimal, `0x` hex, `0` octal, with an optional sign.
pub fn parse_number(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { value.wrapping_neg() } else { value })
}
