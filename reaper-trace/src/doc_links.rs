//! Every relative link in README.md and docs/*.md points at a file that exists, and every
//! `#anchor` at a heading of the file it names (GitHub's slugs: lower case, punctuation
//! dropped, spaces as hyphens, `-1`, `-2`... for repeats). Links in code are not links.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("reaper-trace lives in the workspace")
        .to_path_buf()
}

/// The lines of a markdown text that are not inside a fenced code block.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown text's headings, repeats numbered as GitHub numbers them.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the `[text](target)` links (images included) of a markdown text, outside
/// code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        // Code spans: every other piece between backticks.
        for piece in line.split('`').step_by(2) {
            let mut rest = piece;
            while let Some(i) = rest.find("](") {
                rest = &rest[i + 2..];
                if let Some(end) = rest.find(')') {
                    out.push(rest[..end].to_string());
                    rest = &rest[end..];
                }
            }
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let root = workspace();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ has no markdown file");
    files.extend(docs);
    files
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug(" Containers: the article's experiment with real Docker"),
        "containers-the-articles-experiment-with-real-docker"
    );
    assert_eq!(
        slug(" Recording format (JSON Lines, schema 1)"),
        "recording-format-json-lines-schema-1"
    );
    assert_eq!(slug(" `tree --json`"), "tree---json");
    let a = anchors("# A\n```\n# not a heading\n```\n## A\n### b_c\n");
    let want: HashSet<String> = ["a", "a-1", "b_c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(a, want);
    assert_eq!(
        links("[x](a.md) `[y](b.md)` ![p](docs/top.png) [z](c.md#d)\n```\n[w](e.md)\n```"),
        ["a.md", "docs/top.png", "c.md#d"]
    );
}

#[test]
fn relative_links_in_the_readme_and_docs_resolve() {
    let mut checked = 0;
    for file in markdown_files() {
        let text = fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let to = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            assert!(
                to.exists(),
                "{}: link `{target}`: {} does not exist",
                file.display(),
                to.display()
            );
            if let Some(anchor) = anchor {
                let to_text = fs::read_to_string(&to).unwrap();
                assert!(
                    anchors(&to_text).contains(anchor),
                    "{}: link `{target}`: {} has no heading with the anchor `#{anchor}`",
                    file.display(),
                    to.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 10,
        "only {checked} links found: is the parser right?"
    );
}
