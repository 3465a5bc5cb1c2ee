//! Parse-tree nodes to the typed commands of this module, as BuildKit's
//! `instructions/parse.go` does: argument counts, each instruction's flags, FROM, ARG, COPY
//! and ADD with heredoc sources, RUN with its mounts, network, security and devices,
//! HEALTHCHECK options, and ONBUILD restrictions, with BuildKit's messages.
//!
//! It owns the checks that need no variable; it must never expand a word or know about
//! stages (that is `crate::convert`'s).

use super::*;

type Result<T> = std::result::Result<T, (String, Option<String>)>;

fn plain<T>(message: impl Into<String>) -> Result<T> {
    Err((message.into(), None))
}

fn flag_err(e: FlagError) -> (String, Option<String>) {
    (e.message, e.hint)
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

/// Parse every node; collect all errors rather than stopping at the first.
///
/// # Errors
/// Every instruction that could not be parsed.
pub fn parse_all(nodes: &[Node]) -> std::result::Result<Vec<Located>, Vec<InstructionError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for node in nodes {
        match parse_node(node) {
            Ok(instruction) => out.push(Located { instruction, source: Source::of(node) }),
            Err((message, hint)) => {
                errors.push(InstructionError { message, hint, start_line: node.start_line, end_line: node.end_line })
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Parse one node.
///
/// # Errors
/// The message (BuildKit's wording) and an optional hint.
pub fn parse_node(node: &Node) -> Result<Instruction> {
    let args = node.arg_values();
    let mut flags = Flags::new(node.flags.clone());
    let keyword = node.lower_keyword();
    let cmd = match keyword.as_str() {
        "from" => return parse_from(node, &args, flags).map(Instruction::Stage),
        "env" => Command::Env(parse_kvps(&args, "ENV", &mut flags)?),
        "label" => Command::Label(parse_kvps(&args, "LABEL", &mut flags)?),
        "maintainer" => {
            if args.len() != 1 {
                return plain(exactly_one("MAINTAINER"));
            }
            flags.parse().map_err(flag_err)?;
            Command::Maintainer(args[0].clone())
        }
        "add" | "copy" => Command::Copy(parse_copy(node, &args, flags, keyword == "add")?),
        "onbuild" => Command::Onbuild(parse_onbuild(node, &args, &mut flags)?),
        "workdir" => {
            if args.len() != 1 {
                return plain(exactly_one("WORKDIR"));
            }
            flags.parse().map_err(flag_err)?;
            Command::Workdir(args[0].clone())
        }
        "run" => Command::Run(parse_run(node, &args, flags)?),
        "cmd" => {
            flags.parse().map_err(flag_err)?;
            Command::Cmd(cmd_line(node, &args))
        }
        "entrypoint" => {
            flags.parse().map_err(flag_err)?;
            Command::Entrypoint(cmd_line(node, &args))
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(node, &args, flags)?),
        "expose" => {
            if args.is_empty() {
                return plain(at_least_one("EXPOSE"));
            }
            flags.parse().map_err(flag_err)?;
            let mut ports = args.clone();
            ports.sort();
            Command::Expose(ports)
        }
        "user" => {
            if args.len() != 1 {
                return plain(exactly_one("USER"));
            }
            flags.parse().map_err(flag_err)?;
            Command::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return plain(at_least_one("VOLUME"));
            }
            flags.parse().map_err(flag_err)?;
            let mut volumes = Vec::new();
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return plain("VOLUME specified can not be an empty string");
                }
                volumes.push(v.to_string());
            }
            Command::Volume(volumes)
        }
        "stopsignal" => {
            if args.len() != 1 {
                return plain(exactly_one("STOPSIGNAL"));
            }
            flags.parse().map_err(flag_err)?;
            Command::StopSignal(args[0].clone())
        }
        "arg" => Command::Arg(parse_arg(node, &args, &mut flags)?),
        "shell" => {
            flags.parse().map_err(flag_err)?;
            if args.is_empty() {
                return plain(at_least_one("SHELL"));
            }
            if !node.json {
                return Err((
                    "SHELL requires the arguments to be in JSON form".into(),
                    Some(format!("write it as SHELL [\"{}\"]", args.join("\", \""))),
                ));
            }
            Command::Shell(args)
        }
        _ => {
            let hint = closest(&node.keyword, &KEYWORDS).map(|k| format!("did you mean {k}?"));
            // A keyword with control characters (NUL bytes, say) would print as blanks: quote it.
            let shown =
                if node.keyword.chars().any(char::is_control) { go_quote(&node.keyword) } else { node.keyword.clone() };
            return Err((
                format!("unknown instruction: {shown}"),
                hint.or_else(|| Some(format!("instructions are {}", KEYWORDS.join(", ")))),
            ));
        }
    };
    Ok(Instruction::Command(cmd))
}

fn parse_from(node: &Node, args: &[String], mut flags: Flags) -> Result<StageDecl> {
    let (name, name_as_written, as_keyword) = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let lower = args[2].to_ascii_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err((
                    format!(
                        "invalid name for build stage: {}, name can't start with a number or contain symbols",
                        go_quote(&args[2])
                    ),
                    Some("stage names are letters, digits, '-', '_' and '.', starting with a letter".into()),
                ));
            }
            (Some(lower), Some(args[2].clone()), Some(args[1].clone()))
        }
        1 => (None, None, None),
        _ => {
            return Err((
                "FROM requires either one or three arguments".into(),
                Some("write FROM <image> or FROM <image> AS <name>".into()),
            ));
        }
    };
    flags.define("platform", Kind::String, "");
    flags.parse().map_err(flag_err)?;
    let comment = name.as_deref().map(|n| doc_comment(&node.comments, n)).unwrap_or_default();
    Ok(StageDecl {
        base_name: args[0].clone(),
        name,
        name_as_written,
        as_keyword,
        platform: flags.opt_string("platform"),
        comment,
    })
}

/// The doc comment for `name`: a comment line above the instruction that starts with
/// `name ` (BuildKit's `getComment`).
fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments.iter().find_map(|line| line.strip_prefix(&prefix).map(str::to_string)).unwrap_or_default()
}

fn parse_kvps(args: &[String], cmd: &str, flags: &mut Flags) -> Result<Vec<Pair>> {
    flags.parse().map_err(flag_err)?;
    if args.is_empty() {
        return plain(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return plain(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::new();
    for triple in args.chunks(3) {
        if triple[0].is_empty() {
            return plain(format!("{cmd} names can not be blank"));
        }
        out.push(Pair { key: triple[0].clone(), value: triple[1].clone() });
    }
    Ok(out)
}

fn parse_arg(node: &Node, args: &[String], flags: &mut Flags) -> Result<Vec<ArgDecl>> {
    if args.is_empty() {
        return plain(at_least_one("ARG"));
    }
    flags.parse().map_err(flag_err)?;
    let mut out = Vec::new();
    for arg in args {
        let (key, value) = match arg.split_once('=') {
            Some(("", _)) => return plain("ARG names can not be blank"),
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let comment = doc_comment(&node.comments, &key);
        out.push(ArgDecl { key, value, comment });
    }
    Ok(out)
}

/// A word is a heredoc opener; `<<` followed by the next word counts too (`<< EOF`).
fn heredoc_words(words: &[String]) -> Vec<(String, Option<parser::Heredoc>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if (word == "<<" || word == "<<-") && i + 1 < words.len() {
            let joined = format!("{word}{}", words[i + 1]);
            if let Ok(Some(doc)) = parser::parse_heredoc(&joined) {
                out.push((joined, Some(doc)));
                i += 2;
                continue;
            }
        }
        out.push((word.clone(), parser::parse_heredoc(word).ok().flatten()));
        i += 1;
    }
    out
}

fn parse_copy(node: &Node, args: &[String], mut flags: Flags, is_add: bool) -> Result<CopyCommand> {
    let cmd = if is_add { "ADD" } else { "COPY" };
    if args.len() < 2 {
        return plain(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    flags.define("chown", Kind::String, "");
    flags.define("chmod", Kind::String, "");
    flags.define("link", Kind::Bool, "false");
    flags.define("exclude", Kind::Strings, "");
    if is_add {
        flags.define("keep-git-dir", Kind::Bool, "false");
        flags.define("checksum", Kind::String, "");
        flags.define("unpack", Kind::Bool, "false");
    } else {
        flags.define("from", Kind::String, "");
        flags.define("parents", Kind::Bool, "false");
    }
    flags.parse().map_err(flag_err)?;

    let words = if node.json { args.iter().map(|a| (a.clone(), None)).collect() } else { heredoc_words(args) };
    let Some(((dest, dest_doc), sources)) = words.split_last() else {
        return plain(format!("{cmd} requires at least two arguments"));
    };
    if dest_doc.is_some() {
        return plain(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut paths = Vec::new();
    let mut contents = Vec::new();
    for (word, doc) in sources {
        match doc {
            Some(doc) => {
                let body =
                    node.heredocs.iter().find(|h| h.name == doc.name).map(|h| h.content.clone()).unwrap_or_default();
                let data = if doc.chomp { parser::chomp_heredoc(&body) } else { body };
                contents.push(SourceContent { path: doc.name.clone(), data, expand: doc.expand });
            }
            None => paths.push(word.clone()),
        }
    }
    if paths.is_empty() && contents.is_empty() {
        return plain(format!("{cmd} requires at least one source"));
    }
    Ok(CopyCommand {
        is_add,
        sources: paths,
        contents,
        dest: dest.clone(),
        from: flags.opt_string("from"),
        chown: flags.opt_string("chown"),
        chmod: flags.opt_string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        excludes: flags.strings("exclude"),
        keep_git_dir: flags.bool("keep-git-dir"),
        checksum: flags.opt_string("checksum"),
        unpack: flags.opt_bool("unpack"),
        json: node.json,
    })
}

fn parse_onbuild(node: &Node, args: &[String], flags: &mut Flags) -> Result<String> {
    if args.is_empty() {
        return plain(at_least_one("ONBUILD"));
    }
    flags.parse().map_err(flag_err)?;
    let trigger = args[0].trim().to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return plain("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        "MAINTAINER" | "FROM" => {
            return plain(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    if let Some(sub) = node.sub_node() {
        // The trigger is parsed again when the image is used; check it now so the error
        // points at this line rather than at a child's FROM.
        parse_node(sub).map_err(|(m, h)| (format!("invalid ONBUILD trigger: {m}"), h))?;
    }
    // `^\s*ONBUILD\s*` removed, case-insensitively.
    let original = node.original.trim_start();
    let mut expression = original
        .get(7..)
        .filter(|_| original.len() >= 7 && original[..7].eq_ignore_ascii_case("onbuild"))
        .unwrap_or(original)
        .trim_start()
        .to_string();
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(expression)
}

fn cmd_line(node: &Node, args: &[String]) -> CmdLine {
    let args = if node.json || args.is_empty() { args.to_vec() } else { vec![args.join(" ")] };
    let files = node
        .heredocs
        .iter()
        .map(|h| InlineScript { name: h.name.clone(), data: h.content.clone(), chomp: h.chomp })
        .collect();
    CmdLine { args, prepend_shell: !node.json, files }
}

fn parse_run(node: &Node, args: &[String], mut flags: Flags) -> Result<RunCommand> {
    flags.define("mount", Kind::Strings, "");
    flags.define("network", Kind::String, "");
    flags.define("security", Kind::String, "");
    flags.define("device", Kind::Strings, "");
    flags.parse().map_err(flag_err)?;
    let mount_values = flags.strings("mount");
    for value in &mount_values {
        mounts::parse(value, None).map_err(|m| (m, Some("see `RUN --mount` in the Dockerfile reference".into())))?;
    }
    let network = flags.opt_string("network");
    if let Some(n) = &network
        && !matches!(n.as_str(), "default" | "none" | "host")
    {
        return Err((
            format!("unsupported network mode {}", go_quote(n)),
            Some("use --network=default, none or host".into()),
        ));
    }
    let security = flags.opt_string("security");
    if let Some(s) = &security
        && !matches!(s.as_str(), "sandbox" | "insecure")
    {
        return Err((
            format!("unsupported security mode {}", go_quote(s)),
            Some("use --security=sandbox or insecure".into()),
        ));
    }
    let devices = flags.strings("device");
    for device in &devices {
        parse_device(device).map_err(|m| (m, None))?;
    }
    let cmd = cmd_line(node, args);
    if cmd.args.is_empty() && cmd.files.is_empty() {
        return Err((
            "RUN requires at least one argument".into(),
            Some("write the command to run, e.g. RUN make".into()),
        ));
    }
    Ok(RunCommand { cmd, mounts: mount_values, network, security, devices, flags_used: flags.used() })
}

/// A `RUN --device=` value: the device name and whether it is required.
///
/// # Errors
/// A value that names the device twice.
pub fn parse_device(value: &str) -> std::result::Result<(String, bool), String> {
    let mut name: Option<String> = None;
    let mut required = false;
    for (i, field) in value.split(',').enumerate() {
        if field == "required" {
            required = true;
            continue;
        }
        if let Some(v) = field.strip_prefix("required=") {
            required = parse_go_bool(v).ok_or_else(|| format!("invalid value for required: {v}"))?;
            continue;
        }
        let this = match field.strip_prefix("name=") {
            Some(v) => v,
            None if i == 0 => field,
            None => {
                return Err(format!("unexpected device option {}", go_quote(field)));
            }
        };
        if let Some(existing) = &name {
            return Err(format!("device name already set to {existing}"));
        }
        name = Some(this.to_string());
    }
    Ok((name.unwrap_or_default(), required))
}

fn parse_healthcheck(node: &Node, args: &[String], mut flags: Flags) -> Result<Health> {
    if args.is_empty() {
        return plain(at_least_one("HEALTHCHECK"));
    }
    let kind = args[0].to_ascii_uppercase();
    let rest = &args[1..];
    if kind == "NONE" {
        if !rest.is_empty() {
            return plain("HEALTHCHECK NONE takes no arguments");
        }
        return Ok(Health { test: vec!["NONE".into()], ..Health::default() });
    }
    for name in ["interval", "timeout", "start-period", "start-interval", "retries"] {
        flags.define(name, Kind::String, "");
    }
    flags.parse().map_err(flag_err)?;
    if kind != "CMD" {
        return Err((
            format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&kind)),
            Some("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE".into()),
        ));
    }
    let cmd = if node.json || rest.is_empty() { rest.to_vec() } else { vec![rest.join(" ")] };
    if cmd.is_empty() {
        return plain("Missing command after HEALTHCHECK CMD");
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(cmd);
    let interval = |name: &str| -> Result<u64> {
        let value = flags.string(name);
        if value.is_empty() {
            return Ok(0);
        }
        let nanos = crate::duration::parse(&value).map_err(|e| (e, None))?;
        if nanos == 0 {
            return Ok(0);
        }
        if nanos < 1_000_000 {
            return plain(format!("Interval {} cannot be less than 1ms", go_quote(name)));
        }
        Ok(nanos as u64)
    };
    let retries = match flags.string("retries").as_str() {
        "" => 0,
        v => {
            let n: i64 =
                v.parse().map_err(|_| (format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(v)), None))?;
            if n < 0 {
                return plain(format!("--retries cannot be negative ({n})"));
            }
            u32::try_from(n).map_err(|_| (format!("--retries value {n} is too large"), None))?
        }
    };
    Ok(Health {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_command(src: &str) -> std::result::Result<Instruction, String> {
        let parsed = parser::parse(src).map_err(|e| e.message)?;
        parse_node(&parsed.children[0]).map_err(|(m, _)| m)
    }

    macro_rules! error_case {
        ($name:ident, $src:expr, $msg:expr) => {
            #[test]
            fn $name() {
                assert_eq!(first_command($src).unwrap_err(), $msg);
            }
        };
    }

    // GO_TEST_CASES.md I1.
    error_case!(maintainer_no_arg, "MAINTAINER", "MAINTAINER requires exactly one argument");
    error_case!(workdir_no_arg, "WORKDIR", "WORKDIR requires exactly one argument");
    error_case!(user_no_arg, "USER", "USER requires exactly one argument");
    error_case!(stopsignal_no_arg, "STOPSIGNAL", "STOPSIGNAL requires exactly one argument");
    error_case!(env_no_arg, "ENV", "ENV requires at least one argument");
    error_case!(label_no_arg, "LABEL", "LABEL requires at least one argument");
    error_case!(onbuild_no_arg, "ONBUILD", "ONBUILD requires at least one argument");
    error_case!(healthcheck_no_arg, "HEALTHCHECK", "HEALTHCHECK requires at least one argument");
    error_case!(expose_no_arg, "EXPOSE", "EXPOSE requires at least one argument");
    error_case!(volume_no_arg, "VOLUME", "VOLUME requires at least one argument");
    error_case!(
        add_one_arg,
        "ADD arg1",
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    error_case!(
        copy_one_arg,
        "COPY arg1",
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    // I2.
    error_case!(env_blank_name, "ENV =arg2", "ENV names can not be blank");
    error_case!(label_blank_name, "LABEL =arg2", "LABEL names can not be blank");
    // I6.
    error_case!(
        copy_tab_then_more,
        "COPY\t\n\t\tquux \\\n      bar",
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    error_case!(onbuild_from, "ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger");
    error_case!(onbuild_maintainer, "ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger");
    error_case!(maintainer_flag, "MAINTAINER --boo joe@example.com", "unknown flag: --boo");
    error_case!(
        onbuild_onbuild,
        "ONBUILD ONBUILD RUN touch foobar",
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    error_case!(unknown_upper, "FOO bar", "unknown instruction: FOO");
    error_case!(unknown_lower, "foo bar", "unknown instruction: foo");
    error_case!(unknown_with_nul, "FR\0OM scratch", "unknown instruction: \"FR\\x00OM\"");
    // I8.
    error_case!(heredoc_dest, "COPY /foo <<EOF\nEOF", "COPY cannot accept a heredoc as a destination");
    // I3.
    error_case!(health_too_short, "HEALTHCHECK --interval=50ns CMD x", "Interval \"interval\" cannot be less than 1ms");
    error_case!(shell_not_json, "SHELL bash -c", "SHELL requires the arguments to be in JSON form");

    #[test]
    fn unknown_instruction_suggests() {
        let parsed = parser::parse("FORM alpine").unwrap();
        let (_, hint) = parse_node(&parsed.children[0]).unwrap_err();
        assert_eq!(hint.as_deref(), Some("did you mean FROM?"));
    }

    #[test]
    fn healthcheck_shell_and_durations() {
        let Ok(Instruction::Command(Command::Healthcheck(h))) = first_command("HEALTHCHECK CMD hello world") else {
            panic!()
        };
        assert_eq!(h.test, vec!["CMD-SHELL", "hello world"]);
        for ok in ["0ms", "1ms"] {
            assert!(first_command(&format!("HEALTHCHECK --interval={ok} CMD x")).is_ok());
        }
        let Ok(Instruction::Command(Command::Healthcheck(h))) =
            first_command("HEALTHCHECK --interval=1m30s --retries=3 CMD [\"a\", \"b\"]")
        else {
            panic!()
        };
        assert_eq!((h.interval, h.retries, h.test.len()), (90_000_000_000, 3, 3));
        assert_eq!(h.test[0], "CMD");
    }

    /// A heredoc a case expects: name, contents, whether it expands.
    type ExpectedDoc<'a> = (&'a str, &'a str, bool);

    // I8: heredoc sources and RUN inline files.
    #[test]
    fn copy_heredoc_sources() {
        let cases: [(&str, &str, Vec<&str>, Vec<ExpectedDoc>); 7] = [
            ("COPY /foo /bar", "/bar", vec!["/foo"], vec![]),
            ("COPY <<EOF /bar\nEOF", "/bar", vec![], vec![("EOF", "", true)]),
            ("COPY <<EOF /bar\nTESTING\nEOF", "/bar", vec![], vec![("EOF", "TESTING\n", true)]),
            ("COPY <<-EOF /bar\n\tTESTING\nEOF", "/bar", vec![], vec![("EOF", "TESTING\n", true)]),
            ("COPY <<'EOF' /bar\nTESTING\nEOF", "/bar", vec![], vec![("EOF", "TESTING\n", false)]),
            (
                "COPY <<EOF1 <<EOF2 /bar\nthis is the first file\nEOF1\nthis is the second file\nEOF2",
                "/bar",
                vec![],
                vec![("EOF1", "this is the first file\n", true), ("EOF2", "this is the second file\n", true)],
            ),
            (
                "COPY <<EOF foo.txt /bar\nthis is inline\nEOF",
                "/bar",
                vec!["foo.txt"],
                vec![("EOF", "this is inline\n", true)],
            ),
        ];
        for (src, dest, paths, contents) in cases {
            let Ok(Instruction::Command(Command::Copy(c))) = first_command(src) else { panic!("{src}") };
            assert_eq!(c.dest, dest, "{src}");
            assert_eq!(c.sources, paths, "{src}");
            let got: Vec<_> = c.contents.iter().map(|s| (s.path.as_str(), s.data.as_str(), s.expand)).collect();
            assert_eq!(got, contents, "{src}");
        }
    }

    #[test]
    fn run_heredoc_files() {
        let cases: [(&str, bool, Vec<&str>, Vec<ExpectedDoc>); 6] = [
            ("RUN [\"ls\", \"/\"]", false, vec!["ls", "/"], vec![]),
            ("RUN [\"<<EOF\"]", false, vec!["<<EOF"], vec![]),
            ("RUN ls /", true, vec!["ls /"], vec![]),
            ("RUN <<EOF\nls /\nwhoami\nEOF", true, vec!["<<EOF"], vec![("EOF", "ls /\nwhoami\n", false)]),
            (
                "RUN <<'EOF' | python\nprint(\"hello\")\nprint(\"world\")\nEOF",
                true,
                vec!["<<'EOF' | python"],
                vec![("EOF", "print(\"hello\")\nprint(\"world\")\n", false)],
            ),
            ("RUN <<-EOF\n\techo test\nEOF", true, vec!["<<-EOF"], vec![("EOF", "\techo test\n", true)]),
        ];
        for (src, shell, cmdline, files) in cases {
            let Ok(Instruction::Command(Command::Run(r))) = first_command(src) else { panic!("{src}") };
            assert_eq!(r.cmd.prepend_shell, shell, "{src}");
            assert_eq!(r.cmd.args, cmdline, "{src}");
            let got: Vec<_> = r.cmd.files.iter().map(|f| (f.name.as_str(), f.data.as_str(), f.chomp)).collect();
            assert_eq!(got, files, "{src}");
        }
    }

    #[test]
    fn run_flags_used() {
        let Ok(Instruction::Command(Command::Run(r))) = first_command("RUN --mount=type=tmpfs,target=/foo/ echo hello")
        else {
            panic!()
        };
        assert_eq!(r.flags_used, vec!["mount"]);
    }

    // I11.
    #[test]
    fn device_values() {
        let ok = [
            ("vendor1.com/device=foo", "vendor1.com/device=foo", false),
            ("vendor1.com/device", "vendor1.com/device", false),
            ("vendor1.com/device=foo,required", "vendor1.com/device=foo", true),
            ("vendor1.com/device=foo,required=true", "vendor1.com/device=foo", true),
            ("vendor1.com/device=foo,required=false", "vendor1.com/device=foo", false),
            ("name=vendor1.com/device=foo", "vendor1.com/device=foo", false),
            ("name=vendor1.com/device=foo,required", "vendor1.com/device=foo", true),
        ];
        for (value, name, required) in ok {
            assert_eq!(parse_device(value).unwrap(), (name.to_string(), required), "{value}");
        }
        assert_eq!(
            parse_device("vendor1.com/device=foo,name=vendor2.com/device=bar").unwrap_err(),
            "device name already set to vendor1.com/device=foo"
        );
    }

    // I5.
    #[test]
    fn doc_comments() {
        let src = "# foo sets foo\nARG foo=bar\n\n# base defines first stage\nFROM busybox AS base\n# this is irrelevant\nARG foo\n# bar defines bar\n# baz is something else\nARG bar baz=123\n";
        let parsed = parser::parse(src).unwrap();
        let all = parse_all(&parsed.children).unwrap();
        let Instruction::Command(Command::Arg(meta)) = &all[0].instruction else { panic!() };
        assert_eq!(meta[0].comment, "sets foo");
        let Instruction::Stage(stage) = &all[1].instruction else { panic!() };
        assert_eq!(stage.comment, "defines first stage");
        let Instruction::Command(Command::Arg(a)) = &all[2].instruction else { panic!() };
        assert_eq!(a[0].comment, "");
        let Instruction::Command(Command::Arg(b)) = &all[3].instruction else { panic!() };
        assert_eq!((b[0].comment.as_str(), b[1].comment.as_str()), ("defines bar", "is something else"));
    }

    // I4: no crash on any keyword with odd arguments.
    #[test]
    fn no_crash_smoke() {
        let keywords = [
            "add",
            "arg",
            "cmd",
            "copy",
            "entrypoint",
            "env",
            "expose",
            "from",
            "healthcheck",
            "label",
            "maintainer",
            "onbuild",
            "run",
            "shell",
            "stopsignal",
            "user",
            "volume",
            "workdir",
        ];
        for kw in keywords {
            for suffix in [" foo=bar", " a", " a b", " a b c", " 0 0"] {
                if let Ok(parsed) = parser::parse(&format!("FROM busybox\n{kw}{suffix}")) {
                    let _ = parse_all(&parsed.children);
                }
            }
        }
    }
}
