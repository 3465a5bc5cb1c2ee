//! `test` and `[`: the expression brush parses, evaluated against the filesystem the
//! shell sees (file types, permissions, times) and string and integer comparisons.
//!
//! It owns evaluation only; it must never change the shell's state.

use super::*;

pub(super) fn test(sh: &mut Shell, args: &[String]) -> Res {
    // POSIX's rules by argument count come first; the parser handles the rest.
    let expr = match brush_parser::test_command::parse(args) {
        Ok(expr) => expr,
        Err(_) => {
            sh.error(format!("test: syntax error: {}", args.join(" ")));
            return Ok(2);
        }
    };
    match eval_test(sh, &expr) {
        Ok(true) => Ok(0),
        Ok(false) => Ok(1),
        Err(message) => {
            sh.error(format!("test: {message}"));
            Ok(2)
        }
    }
}

fn eval_test(sh: &Shell, expr: &TestExpr) -> Result<bool, String> {
    Ok(match expr {
        TestExpr::False => false,
        TestExpr::Literal(s) => !s.is_empty(),
        TestExpr::And(a, b) => eval_test(sh, a)? && eval_test(sh, b)?,
        TestExpr::Or(a, b) => eval_test(sh, a)? || eval_test(sh, b)?,
        TestExpr::Not(a) => !eval_test(sh, a)?,
        TestExpr::Parenthesized(a) => eval_test(sh, a)?,
        TestExpr::UnaryTest(predicate, operand) => {
            let path = || sh.abs(operand);
            let meta = || std::fs::metadata(path()).ok();
            match predicate {
                UnaryPredicate::StringHasZeroLength => operand.is_empty(),
                UnaryPredicate::StringHasNonZeroLength => !operand.is_empty(),
                UnaryPredicate::FileExists => !operand.is_empty() && meta().is_some(),
                UnaryPredicate::FileExistsAndIsDir => meta().is_some_and(|m| m.is_dir()),
                UnaryPredicate::FileExistsAndIsRegularFile => meta().is_some_and(|m| m.is_file()),
                UnaryPredicate::FileExistsAndIsSymlink => {
                    std::fs::symlink_metadata(path()).is_ok_and(|m| m.file_type().is_symlink())
                }
                UnaryPredicate::FileExistsAndIsNotZeroLength => meta().is_some_and(|m| m.len() > 0),
                // WASI reports no permission bits; everything that exists is readable,
                // writable and (as a file or directory) executable for the sandbox's user.
                UnaryPredicate::FileExistsAndIsReadable
                | UnaryPredicate::FileExistsAndIsWritable
                | UnaryPredicate::FileExistsAndIsExecutable => !operand.is_empty() && meta().is_some(),
                UnaryPredicate::FileExistsAndOwnedByEffectiveUserId
                | UnaryPredicate::FileExistsAndOwnedByEffectiveGroupId => meta().is_some(),
                UnaryPredicate::FdIsOpenTerminal => false,
                UnaryPredicate::FileExistsAndIsBlockSpecialFile
                | UnaryPredicate::FileExistsAndIsCharSpecialFile
                | UnaryPredicate::FileExistsAndIsFifo
                | UnaryPredicate::FileExistsAndIsSocket
                | UnaryPredicate::FileExistsAndIsSetgid
                | UnaryPredicate::FileExistsAndIsSetuid
                | UnaryPredicate::FileExistsAndHasStickyBit
                | UnaryPredicate::FileExistsAndModifiedSinceLastRead => false,
                UnaryPredicate::ShellVariableIsSetAndAssigned | UnaryPredicate::ShellVariableIsSetAndNameRef => {
                    sh.get(operand).is_some()
                }
                UnaryPredicate::ShellOptionEnabled => false,
            }
        }
        TestExpr::BinaryTest(predicate, left, right) => {
            let int =
                |s: &str| -> Result<i64, String> { s.trim().parse::<i64>().map_err(|_| format!("{s}: bad number")) };
            match predicate {
                BinaryPredicate::StringExactlyMatchesString | BinaryPredicate::StringExactlyMatchesPattern => {
                    left == right
                }
                BinaryPredicate::StringDoesNotExactlyMatchString
                | BinaryPredicate::StringDoesNotExactlyMatchPattern => left != right,
                BinaryPredicate::LeftSortsBeforeRight => left < right,
                BinaryPredicate::LeftSortsAfterRight => left > right,
                BinaryPredicate::ArithmeticEqualTo => int(left)? == int(right)?,
                BinaryPredicate::ArithmeticNotEqualTo => int(left)? != int(right)?,
                BinaryPredicate::ArithmeticLessThan => int(left)? < int(right)?,
                BinaryPredicate::ArithmeticLessThanOrEqualTo => int(left)? <= int(right)?,
                BinaryPredicate::ArithmeticGreaterThan => int(left)? > int(right)?,
                BinaryPredicate::ArithmeticGreaterThanOrEqualTo => int(left)? >= int(right)?,
                BinaryPredicate::LeftFileIsNewerOrExistsWhenRightDoesNot => {
                    match (file_time(sh, left), file_time(sh, right)) {
                        (Some(l), Some(r)) => l > r,
                        (Some(_), None) => true,
                        _ => false,
                    }
                }
                BinaryPredicate::LeftFileIsOlderOrDoesNotExistWhenRightDoes => {
                    match (file_time(sh, left), file_time(sh, right)) {
                        (Some(l), Some(r)) => l < r,
                        (None, Some(_)) => true,
                        _ => false,
                    }
                }
                BinaryPredicate::FilesReferToSameDeviceAndInodeNumbers => {
                    normalize(&sh.abs(left)) == normalize(&sh.abs(right))
                }
                BinaryPredicate::StringMatchesRegex | BinaryPredicate::StringContainsSubstring => {
                    return Err("=~ is bash syntax; kiln's sh is POSIX".into());
                }
            }
        }
    })
}

fn file_time(sh: &Shell, path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(sh.abs(path)).and_then(|m| m.modified()).ok()
}
