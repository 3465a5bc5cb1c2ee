//! `RUN --mount=` values: a comma-separated (CSV) list of `key=value` options.
//!
//! Owns the option grammar (keys, aliases, which keys each mount type accepts, value syntax)
//! and the defaults BuildKit applies. It expands variables only through the expander it is
//! given, and knows nothing about stages: `from` stays a string for the caller to resolve.

/// The kinds of mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// `type=bind` (the default).
    Bind,
    /// `type=cache`.
    Cache,
    /// `type=tmpfs`.
    Tmpfs,
    /// `type=secret`.
    Secret,
    /// `type=ssh`.
    Ssh,
}

impl MountType {
    fn parse(v: &str) -> Option<MountType> {
        Some(match v.to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return None,
        })
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The type.
    pub kind: MountType,
    /// `from=`.
    pub from: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// Read-only, after BuildKit's per-type default.
    pub read_only: bool,
    /// `required`.
    pub required: bool,
    /// `id=`.
    pub id: Option<String>,
    /// `sharing=`.
    pub sharing: Option<String>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `size=` in bytes.
    pub size: Option<u64>,
    /// `env=`.
    pub env: Option<String>,
}

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Split a CSV record (Go's `encoding/csv` rules: `"..."` quotes a field, `""` is a quote).
fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("unterminated quote in mount options {value:?}")),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => {
                    return Err(format!("unexpected {c:?} after a quoted field in mount options {value:?}"));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// Parse a byte size the way Docker's `units.RAMInBytes` does: `512`, `64m`, `1.5GiB`
/// (binary multiples, case-insensitive).
pub fn parse_ram_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let num_len = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (num, unit) = v.split_at(num_len);
    let number: f64 = num.parse().ok()?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    let bytes = number * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Expands variables in an option value (the stage's ARG/ENV), or explains why it cannot.
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parse one `--mount` value. With no `expand`, values holding `$` are left unchecked
/// (they are checked again after expansion); with `expand`, every value is expanded first.
///
/// # Errors
/// A message naming the bad option.
pub fn parse(value: &str, expand: Option<Expander<'_>>) -> Result<MountSpec, String> {
    let fields = csv_fields(value)?;
    let mut spec = MountSpec {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: true,
        required: false,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
    };
    // The type decides which keys are allowed; find it first so option order does not matter.
    for field in &fields {
        if let Some((key, v)) = field.split_once('=')
            && key.eq_ignore_ascii_case("type")
        {
            let v = match expand {
                Some(f) => f(v)?,
                None => v.to_string(),
            };
            if expand.is_some() || !v.contains('$') {
                spec.kind = MountType::parse(&v)
                    .ok_or_else(|| format!("unsupported mount type {v:?} (use bind, cache, tmpfs, secret or ssh)"))?;
            }
        }
    }
    let mut ro_auto = true;
    let needs_type = |key: &str, allowed: &[MountType], kind: MountType| -> Result<(), String> {
        if allowed.contains(&kind) {
            Ok(())
        } else {
            Err(format!("unexpected key '{key}' for mount type '{}'", kind.name()))
        }
    };
    for field in &fields {
        let Some((key, raw)) = field.split_once('=') else {
            let key = field.to_ascii_lowercase();
            match key.as_str() {
                "" => {}
                "readonly" | "ro" => {
                    spec.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    spec.read_only = false;
                    ro_auto = false;
                }
                "required" => {
                    needs_type(&key, &[MountType::Secret, MountType::Ssh], spec.kind)?;
                    spec.required = true;
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_ascii_lowercase();
        if !KEYS.contains(&key.as_str()) {
            let hint =
                crate::suggest::closest(&key, &KEYS).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
            return Err(format!("unexpected key '{key}' in '{field}'{hint}"));
        }
        let value = match expand {
            Some(f) => f(raw)?,
            None if key == "from" && raw.find('$').is_some_and(|i| i + 1 != raw.len()) => {
                return Err("'from' doesn't support variable expansion, define alias stage instead".into());
            }
            None if raw.contains('$') => continue,
            None => raw.to_string(),
        };
        let bool_value =
            |v: &str| crate::strconv::parse_go_bool(v).ok_or_else(|| format!("invalid value for {key}: {v}"));
        match key.as_str() {
            "type" => {}
            "from" => spec.from = Some(value),
            "source" | "src" => spec.source = Some(value),
            "target" | "dst" | "destination" => spec.target = Some(value),
            "readonly" | "ro" => {
                spec.read_only = bool_value(&value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                spec.read_only = !bool_value(&value)?;
                ro_auto = false;
            }
            "required" => {
                needs_type(&key, &[MountType::Secret, MountType::Ssh], spec.kind)?;
                spec.required = bool_value(&value)?;
            }
            "size" => {
                needs_type(&key, &[MountType::Tmpfs], spec.kind)?;
                spec.size = Some(parse_ram_bytes(&value).ok_or_else(|| format!("invalid value for size: {value}"))?);
            }
            "id" => spec.id = Some(value),
            "sharing" => {
                if spec.kind != MountType::Cache {
                    return Err(format!("invalid cache sharing set for {} mount", spec.kind.name()));
                }
                if !matches!(value.as_str(), "shared" | "private" | "locked") {
                    return Err(format!("unsupported sharing value \"{value}\" (use shared, private or locked)"));
                }
                spec.sharing = Some(value);
            }
            "mode" => {
                spec.mode = Some(u32::from_str_radix(&value, 8).map_err(|_| format!("invalid value {value} for mode"))?)
            }
            "uid" => spec.uid = Some(value.parse().map_err(|_| format!("invalid value {value} for uid"))?),
            "gid" => spec.gid = Some(value.parse().map_err(|_| format!("invalid value {value} for gid"))?),
            "env" => spec.env = Some(value),
            _ => unreachable!("checked against KEYS"),
        }
    }
    let file_info_allowed = matches!(spec.kind, MountType::Secret | MountType::Ssh | MountType::Cache);
    if !file_info_allowed {
        for (name, set) in [("mode", spec.mode.is_some()), ("uid", spec.uid.is_some()), ("gid", spec.gid.is_some())] {
            if set {
                return Err(format!("{name} not allowed for \"{}\" type mounts", spec.kind.name()));
            }
        }
    }
    if ro_auto {
        spec.read_only = !matches!(spec.kind, MountType::Cache | MountType::Tmpfs);
    }
    if spec.env.is_some() && spec.kind != MountType::Secret {
        return Err(format!("unexpected key 'env' for mount type '{}'", spec.kind.name()));
    }
    if spec.kind == MountType::Secret {
        if spec.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if expand.is_some() && spec.source.is_none() && spec.target.is_none() && spec.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if spec.source.is_some() && spec.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if expand.is_some() && spec.target.is_none() && !matches!(spec.kind, MountType::Secret | MountType::Ssh) {
        return Err(format!("mount target must be specified for a {} mount", spec.kind.name()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(v: &str) -> Result<MountSpec, String> {
        parse(v, Some(&|s: &str| Ok(s.to_string())))
    }

    #[test]
    fn defaults_per_type() {
        let m = full("type=cache,target=/root/.cache").unwrap();
        assert_eq!((m.kind, m.read_only), (MountType::Cache, false));
        let m = full("target=/src").unwrap();
        assert_eq!((m.kind, m.read_only), (MountType::Bind, true));
        let m = full("type=bind,target=/src,rw").unwrap();
        assert!(!m.read_only);
        let m = full("type=secret,id=tok,required").unwrap();
        assert!(m.required);
        let m = full("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = full("required,type=ssh").unwrap();
        assert!(m.required, "type is found regardless of order");
    }

    #[test]
    fn errors() {
        assert!(full("type=nfs,target=/x").unwrap_err().contains("unsupported mount type"));
        assert!(full("type=bind,target=/x,mode=0755").unwrap_err().contains("mode not allowed"));
        assert!(full("type=bind,target=/x,required").unwrap_err().contains("unexpected key 'required'"));
        assert!(full("type=cache,targte=/x").unwrap_err().contains("did you mean target?"));
        assert!(full("type=cache").unwrap_err().contains("mount target must be specified"));
        assert!(full("type=secret").unwrap_err().contains("one of source, target required"));
        assert!(full("type=bind,target=/x,sharing=locked").unwrap_err().contains("invalid cache sharing"));
        assert!(parse("type=bind,from=$X,target=/x", None).unwrap_err().contains("doesn't support variable"));
        assert!(parse("type=cache,target=$DIR", None).is_ok());
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\"").unwrap(), vec!["a", "b,c", "d\"e"]);
        assert!(csv_fields("\"open").is_err());
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(parse_ram_bytes("512"), Some(512));
        assert_eq!(parse_ram_bytes("1k"), Some(1024));
        assert_eq!(parse_ram_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_ram_bytes("12x"), None);
    }
}
