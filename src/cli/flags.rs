//! Command-line flags: `--name VALUE` pairs, `--switch`es and files.

pub(crate) struct Flags {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) switches: Vec<String>,
    pub(crate) files: Vec<String>,
}

pub(crate) fn flags(args: &[String], with_value: &[&str]) -> Result<Flags, String> {
    let mut f = Flags {
        values: Vec::new(),
        switches: Vec::new(),
        files: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if with_value.contains(&a.as_str()) {
            let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
            f.values.push((a.clone(), v.clone()));
        } else if a.starts_with("--") {
            f.switches.push(a.clone());
        } else {
            f.files.push(a.clone());
        }
    }
    Ok(f)
}

impl Flags {
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// Flags of a command that takes no files.
pub(crate) fn parse_flags(args: &[String], with_value: &[&str]) -> Result<Flags, String> {
    let f = flags(args, with_value)?;
    if let Some(extra) = f.files.first().or(f.switches.first()) {
        return Err(format!(
            "unexpected argument {extra} (see `jwt-policy help`)"
        ));
    }
    Ok(f)
}
