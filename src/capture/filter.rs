//! Which containers are followed: glob filters on name, labels and image (exclude wins),
//! the `log-capturer.exclude=true` label, and our own container. Also which label keys
//! are copied into records. Pure; the globs are compiled with the config
//! (`config/patterns.rs`).

use std::collections::BTreeMap;

use crate::config::{ContainersConfig, Glob, LabelFilter};

/// A container as the filters see it.
pub struct Candidate<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// Label that opts a container out of capture.
pub const EXCLUDE_LABEL: &str = "log-capturer.exclude";

/// The compiled `[containers]` filters.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub include_names: Vec<Glob>,
    pub exclude_names: Vec<Glob>,
    pub include_labels: Vec<LabelFilter>,
    pub exclude_labels: Vec<LabelFilter>,
    pub include_images: Vec<Glob>,
    pub record_labels: Vec<Glob>,
    /// Our own container ID, when we run inside one.
    pub own_id: Option<String>,
}

impl Filter {
    /// The filters of `[containers]`; `own_id`: our own container, never followed.
    pub fn new(c: &ContainersConfig, own_id: Option<String>) -> Filter {
        Filter {
            include_names: c.include_names.clone(),
            exclude_names: c.exclude_names.clone(),
            include_labels: c.include_labels.clone(),
            exclude_labels: c.exclude_labels.clone(),
            include_images: c.include_images.clone(),
            record_labels: c.record_labels.clone(),
            own_id,
        }
    }

    /// Whether to follow this container.
    pub fn accepts(&self, c: &Candidate) -> bool {
        if let Some(own) = &self.own_id {
            if !own.is_empty() && c.id.starts_with(own.as_str()) {
                return false;
            }
        }
        if c.labels.get(EXCLUDE_LABEL).map(String::as_str) == Some("true") {
            return false;
        }
        if any_glob(&self.exclude_names, c.name) || any_label(&self.exclude_labels, c.labels) {
            return false;
        }
        let names_ok = self.include_names.is_empty() || any_glob(&self.include_names, c.name);
        let labels_ok = self.include_labels.is_empty() || any_label(&self.include_labels, c.labels);
        let images_ok = self.include_images.is_empty() || any_glob(&self.include_images, c.image);
        names_ok && labels_ok && images_ok
    }

    /// The labels copied into each record.
    pub fn record_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        labels
            .iter()
            .filter(|(k, _)| any_glob(&self.record_labels, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn any_glob(globs: &[Glob], s: &str) -> bool {
    globs.iter().any(|g| g.matches(s))
}

fn any_label(filters: &[LabelFilter], labels: &BTreeMap<String, String>) -> bool {
    filters.iter().any(|f| f.matches(labels))
}

/// Our own container ID when running inside Docker, from the mount table (the
/// `/etc/hostname` bind mount sits under `/containers/<id>/`).
pub fn own_container_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_container_id(&text)
}

fn find_container_id(mountinfo: &str) -> Option<String> {
    for line in mountinfo.lines() {
        if !line.contains("/etc/hostname") {
            continue;
        }
        let at = line.find("/containers/")? + "/containers/".len();
        let id: String = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        if id.len() == 64 {
            return Some(id);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_all;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn include_exclude() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let c = Candidate {
            id: "abc",
            name: "web-1",
            image: "nginx:1",
            labels: &l,
        };
        let mut f = Filter::default();
        assert!(f.accepts(&c));
        f.include_names = parse_all(&["web-*"]);
        assert!(f.accepts(&c));
        f.exclude_labels = parse_all(&["tier=fr*"]);
        assert!(!f.accepts(&c), "exclude wins");
        f.exclude_labels.clear();
        f.include_labels = parse_all(&["missing"]);
        assert!(!f.accepts(&c));
        f.include_labels = parse_all(&["app"]);
        f.include_images = parse_all(&["nginx:*"]);
        assert!(f.accepts(&c));
        f.include_images = parse_all(&["redis*"]);
        assert!(!f.accepts(&c));
    }

    #[test]
    fn opt_out_label_and_own_container() {
        let l = labels(&[(EXCLUDE_LABEL, "true")]);
        let f = Filter::default();
        assert!(!f.accepts(&Candidate {
            id: "a",
            name: "x",
            image: "i",
            labels: &l
        }));
        let none = BTreeMap::new();
        let f = Filter {
            own_id: Some("abcd".into()),
            ..Filter::default()
        };
        assert!(!f.accepts(&Candidate {
            id: "abcdef",
            name: "x",
            image: "i",
            labels: &none
        }));
        assert!(f.accepts(&Candidate {
            id: "ffff",
            name: "x",
            image: "i",
            labels: &none
        }));
    }

    #[test]
    fn record_label_selection() {
        let f = Filter {
            record_labels: parse_all(&["com.docker.compose.*"]),
            ..Filter::default()
        };
        let l = labels(&[("com.docker.compose.service", "web"), ("other", "x")]);
        assert_eq!(
            f.record_labels(&l),
            labels(&[("com.docker.compose.service", "web")])
        );
    }

    #[test]
    fn own_id_from_mountinfo() {
        let id = "a".repeat(64);
        let text = format!(
            "1 2 0:1 / / rw - overlay overlay rw\n\
             3 4 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(find_container_id(&text), Some(id));
        assert_eq!(find_container_id("1 2 0:1 / / rw\n"), None);
    }
}
