//! Variables: the scope a word is expanded in (ARG, LET, SET, Earthly's builtins, then ENV),
//! word expansion with the Dockerfile frontend's lexer, ARG declarations and their
//! overrides, and the refusal of `$(...)` shell-outs outside RUN.
//!
//! It owns what a name means where it is used; it must never push steps or stages.

use super::*;

/// Whether a raw word holds a `$(...)` shell-out (outside single quotes).
pub(super) fn has_shell_out(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().collect();
    let mut single = false;
    let mut k = 0;
    while k < chars.len() {
        match chars[k] {
            '\\' if !single => k += 1,
            '\'' => single = !single,
            '$' if !single && chars.get(k + 1) == Some(&'(') => return true,
            _ => {}
        }
        k += 1;
    }
    false
}

impl<'a> Converter<'a> {
    pub(super) fn scope<'e>(ev: &'e Eval) -> Scope<'e> {
        Scope { vars: &ev.vars, env: ev.seg.as_ref().map_or(&[][..], |s| &s.state.env[..]) }
    }

    /// Expand one word in the target's scope.
    pub(super) fn expand(&mut self, ev: &Eval, raw: &str, span: Span) -> Option<String> {
        if has_shell_out(raw) {
            self.fail(
                format!("kiln cannot run the command in {raw} while reading the Earthfile"),
                span,
                "compute the value in a RUN step, or pass it in: kiln build --build-arg NAME=\"$(command)\"",
                "shell-out",
            );
            return None;
        }
        match self.lexer.process_word(raw, &Self::scope(ev)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(e.to_string(), span, "close the quote, or escape it with a backslash", "invalid-word");
                None
            }
        }
    }
}

impl<'a> Converter<'a> {
    /// The value of a builtin ARG, or `None` when `name` is not a builtin.
    pub(super) fn builtin(&mut self, ev: &Eval, name: &str, span: Span) -> Option<String> {
        let platform = ev
            .seg
            .as_ref()
            .and_then(|s| s.platform.as_deref())
            .and_then(|p| platform::parse(p).ok())
            .unwrap_or_else(|| self.target_platform.clone());
        let parts = |p: &platform::Platform, what: &str| -> Option<String> {
            Some(match what {
                "PLATFORM" => p.format(),
                "OS" => p.os.clone(),
                "ARCH" => p.arch.clone(),
                "VARIANT" => p.variant.clone(),
                _ => return None,
            })
        };
        if let Some(what) = name.strip_prefix("TARGET") {
            return parts(&platform, what);
        }
        if let Some(what) = name.strip_prefix("USER").or_else(|| name.strip_prefix("NATIVE")) {
            return parts(&self.build_platform, what);
        }
        match name {
            "EARTHLY_TARGET_NAME" => Some(ev.name.clone()),
            "EARTHLY_TARGET" => Some(format!("+{}", ev.name)),
            "EARTHLY_LOCALLY" | "EARTHLY_PUSH" | "EARTHLY_CI" => Some("false".into()),
            _ if UNKNOWN_BUILTINS.contains(&name) => {
                if let Some(v) = ev.overrides.get(name) {
                    self.consumed.insert(name.to_string());
                    return Some(v.clone());
                }
                self.warnings.push(warning(
                    format!("kiln does not know the value of Earthly's builtin {name}; it is empty"),
                    Some(span),
                    format!("pass it in if the build needs it: kiln build --build-arg {name}=..."),
                    "unknown-builtin",
                ));
                Some(String::new())
            }
            _ => None,
        }
    }

    pub(super) fn arg(&mut self, ev: &mut Eval, s: &Statement, a: command::Arg<'_>) {
        let name = a.name.text.as_str();
        let global = a.flags.on("global");
        if global && !ev.is_base {
            self.fail(
                format!("ARG --global {name} is outside the base recipe"),
                s.span,
                "declare global ARGs before the first target, or drop --global",
                "invalid-arguments",
            );
            return;
        }
        let kind =
            if ev.is_base && (global || self.file.version.implicit_globals()) { VarKind::Global } else { VarKind::Arg };
        let value = if let Some(v) = self.builtin(ev, name, s.span) {
            ev.vars.set(name, v, VarKind::Builtin);
            return;
        } else if let Some(v) = ev.overrides.get(name) {
            self.consumed.insert(name.to_string());
            v.clone()
        } else if a.flags.on("required") {
            self.fail(
                format!("ARG --required {name} has no value"),
                s.span,
                format!("pass it: kiln build --build-arg {name}=VALUE"),
                "required-arg",
            );
            return;
        } else if let Some(default) = a.default {
            let Some(v) = self.expand(ev, &default.text, default.span) else { return };
            v
        } else {
            // No default: a global of the same name keeps its value.
            ev.vars.get(name).unwrap_or_default().to_string()
        };
        ev.vars.set(name, value, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_outs() {
        assert!(has_shell_out("$(date)"));
        assert!(has_shell_out("\"v-$(git describe)\""));
        assert!(!has_shell_out("'$(not)'"));
        assert!(!has_shell_out("\\$(escaped)"));
        assert!(!has_shell_out("$HOME"));
    }
}
