//! Which dist-git branch a build, a tag or an update is for.
//!
//! Dist tags: `fcNN` → `fNN` (or the rawhide branch when NN is the release rawhide builds as),
//! `elN` → `epelN` (`el5`/`el6` stay `el5`/`el6`), `eln` → the rawhide branch (ELN builds from
//! rawhide's dist-git). Koji targets and tags name the branch in their first component:
//! `f40-candidate`, `f40-build-side-123`, `f40-updates-testing-pending` → `f40`; `epel9-…` →
//! `epel9`; `rawhide` and `eln…` → the rawhide branch.

/// How dist tags and koji tags map to branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRules {
    /// The Fedora release number rawhide currently builds as (`fc42` → rawhide), if known.
    pub rawhide_release: Option<u32>,
    pub rawhide_branch: String,
}

impl Default for BranchRules {
    fn default() -> Self {
        BranchRules {
            rawhide_release: None,
            rawhide_branch: "rawhide".to_string(),
        }
    }
}

impl BranchRules {
    /// The branch of Fedora release `n`.
    fn fedora(&self, n: u32) -> String {
        if self.rawhide_release == Some(n) {
            self.rawhide_branch.clone()
        } else {
            format!("f{n}")
        }
    }
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The branch a dist tag (`fc40`, `el9`, `el8_2`, `el6`, `eln`) builds for.
pub fn branch_for_dist_tag(tag: &str, rules: &BranchRules) -> Option<String> {
    if tag == "eln" || tag.strip_prefix("eln").and_then(number).is_some() {
        return Some(rules.rawhide_branch.clone());
    }
    if let Some(n) = tag.strip_prefix("fc").and_then(number) {
        return Some(rules.fedora(n));
    }
    let el = tag.strip_prefix("el")?;
    let major = number(el.split('_').next()?)?;
    Some(if major <= 6 {
        format!("el{major}")
    } else {
        format!("epel{major}")
    })
}

/// The dist tag in a release string (`1.fc40` → `fc40`, `3.el8_2` → `el8_2`, `1.eln130` →
/// `eln130`). An arch suffix (`6.fc29.x86_64`, as bodhi's build groups carry) is skipped.
pub fn dist_tag(release: &str) -> Option<&str> {
    release.split('.').rev().find(|part| {
        if part
            .strip_prefix("eln")
            .is_some_and(|n| n.is_empty() || number(n).is_some())
        {
            return true;
        }
        let rest = part
            .strip_prefix("fc")
            .or_else(|| part.strip_prefix("el"))
            .unwrap_or("");
        !rest.is_empty() && rest.split('_').all(|n| number(n).is_some())
    })
}

/// The branch a koji build target or tag is for (`rawhide`, `f40-candidate`,
/// `f40-build-side-123`, `epel9-testing-pending`, `eln`, `epel10.1-candidate`), if it names one.
pub fn branch_for_target(target: &str, rules: &BranchRules) -> Option<String> {
    let head = target.split('-').next()?;
    if head == "rawhide" || head == "eln" {
        return Some(rules.rawhide_branch.clone());
    }
    if let Some(n) = head.strip_prefix('f').and_then(number) {
        return Some(rules.fedora(n));
    }
    let versioned = |prefix: &str| {
        head.strip_prefix(prefix).is_some_and(|v| {
            !v.is_empty() && v.split('.').all(|n| number(n).is_some()) && v.split('.').count() <= 2
        })
    };
    if versioned("epel") || versioned("el") {
        return Some(head.to_string());
    }
    None
}

/// The branch a bodhi release name (`F40`, `F40F`, `EPEL-9`, `EPEL-9N`, `EPEL-10.1`, `ELN`) is
/// for.
pub fn branch_for_release_name(name: &str, rules: &BranchRules) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    if upper == "ELN" {
        return Some(rules.rawhide_branch.clone());
    }
    if let Some(v) = upper.strip_prefix("EPEL-") {
        // EPEL Next releases (`EPEL-9N`) build from the `epel9-next` branches.
        let (v, suffix) = match v.strip_suffix('N') {
            Some(v) => (v, "-next"),
            None => (v, ""),
        };
        return (!v.is_empty() && v.split('.').all(|n| number(n).is_some()))
            .then(|| format!("epel{v}{suffix}"));
    }
    let n = upper
        .strip_prefix('F')?
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    number(n).map(|n| rules.fedora(n))
}

/// The package name of an N-V-R (`python-requests-2.32.3-1.fc41` → `python-requests`).
pub fn name_of_nvr(nvr: &str) -> Option<&str> {
    let mut parts = nvr.rsplitn(3, '-');
    let (_release, _version, name) = (parts.next()?, parts.next()?, parts.next()?);
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> BranchRules {
        BranchRules {
            rawhide_release: Some(42),
            rawhide_branch: "rawhide".into(),
        }
    }

    #[test]
    fn dist_tags_map_to_branches() {
        let r = rules();
        let b = |t: &str| branch_for_dist_tag(t, &r);
        assert_eq!(b("fc40").as_deref(), Some("f40"));
        assert_eq!(b("fc42").as_deref(), Some("rawhide"));
        assert_eq!(b("el7").as_deref(), Some("epel7"));
        assert_eq!(b("el8_2").as_deref(), Some("epel8"));
        assert_eq!(b("el6").as_deref(), Some("el6"));
        assert_eq!(b("el5").as_deref(), Some("el5"));
        assert_eq!(b("eln").as_deref(), Some("rawhide"));
        assert_eq!(b("eln130").as_deref(), Some("rawhide"));
        assert_eq!(b("module_el8"), None);
        assert_eq!(dist_tag("1.fc22"), Some("fc22"));
        assert_eq!(dist_tag("0.3.rc1.el8_2"), Some("el8_2"));
        assert_eq!(dist_tag("6.fc29.x86_64"), Some("fc29"));
        assert_eq!(dist_tag("1.eln130"), Some("eln130"));
        assert_eq!(dist_tag("1"), None);
    }

    #[test]
    fn targets_and_tags_map_to_branches() {
        let r = rules();
        let b = |t: &str| branch_for_target(t, &r);
        assert_eq!(b("rawhide").as_deref(), Some("rawhide"));
        assert_eq!(b("f40-candidate").as_deref(), Some("f40"));
        assert_eq!(b("f40-build-side-123").as_deref(), Some("f40"));
        assert_eq!(b("f40-updates-testing-pending").as_deref(), Some("f40"));
        assert_eq!(b("f42-candidate").as_deref(), Some("rawhide"));
        assert_eq!(b("epel9-candidate").as_deref(), Some("epel9"));
        assert_eq!(b("epel10.1-candidate").as_deref(), Some("epel10.1"));
        assert_eq!(b("eln").as_deref(), Some("rawhide"));
        assert_eq!(b("eln-build").as_deref(), Some("rawhide"));
        assert_eq!(b("module-nodejs-20"), None);
        assert_eq!(b("trusted-artifacts"), None);
    }

    #[test]
    fn bodhi_release_names_map_to_branches() {
        let r = rules();
        let b = |t: &str| branch_for_release_name(t, &r);
        assert_eq!(b("F29").as_deref(), Some("f29"));
        assert_eq!(b("F40F").as_deref(), Some("f40"));
        assert_eq!(b("F42").as_deref(), Some("rawhide"));
        assert_eq!(b("EPEL-9").as_deref(), Some("epel9"));
        assert_eq!(b("EPEL-10.1").as_deref(), Some("epel10.1"));
        assert_eq!(b("EPEL-9N").as_deref(), Some("epel9-next"));
        assert_eq!(b("ELN").as_deref(), Some("rawhide"));
        assert_eq!(b("Fedora"), None);
    }

    #[test]
    fn nvr_names() {
        assert_eq!(
            name_of_nvr("python-requests-2.32.3-1.fc41"),
            Some("python-requests")
        );
        assert_eq!(
            name_of_nvr("libselinux-2.8-6.fc29.x86_64"),
            Some("libselinux")
        );
        assert_eq!(name_of_nvr("foo-1"), None);
    }
}
